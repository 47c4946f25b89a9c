"""Run the project's roles for real on this machine (the local target), through
ansible-playbook and inventory/local.yml, with every path the roles write to
under the test's tmp_path."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"


@dataclass
class PlaybookRun:
    rc: int
    output: str
    stats: dict[str, int]
    report: dict[str, Any]

    @property
    def changed(self) -> int:
        return self.stats.get("changed", -1)

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.output.splitlines()[-lines:])

    @property
    def failure_messages(self) -> str:
        """Every `msg` in the JSON output (failed tasks say why there)."""
        return " ".join(re.findall(r'"msg": "((?:[^"\\]|\\.)*)"', self.output))


def _parse(stdout: str) -> tuple[dict[str, int], dict[str, Any]]:
    """Stats and the `msg` of the task named 'Report ...' from the ansible.posix.json callback."""
    start = stdout.find("{")
    if start < 0:
        return {}, {}
    doc = json.loads(stdout[start:])
    stats = doc.get("stats", {}).get("localhost", {})
    report: dict[str, Any] = {}
    for play in doc.get("plays", []):
        for task in play.get("tasks", []):
            if task["task"]["name"].startswith("Report"):
                report = task["hosts"]["localhost"].get("msg", {})
    return stats, report


@pytest.fixture
def run_playbook(tmp_path: Path) -> Callable[..., PlaybookRun]:
    def run(
        playbook: str,
        extra_vars: dict[str, Any],
        extra_args: list[str] | None = None,
        path_first: list[Path] | None = None,
    ) -> PlaybookRun:
        """`extra_args` go last on the command line (e.g. `-e name=false`, as a user types it);
        `path_first` directories come first on PATH (stand-in commands)."""
        vars_file = tmp_path / f"vars-{len(list(tmp_path.glob('vars-*')))}.json"
        vars_file.write_text(json.dumps(extra_vars))
        scratch = tmp_path / "ansible"
        scratch.mkdir(exist_ok=True)
        env = {
            **os.environ,
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
            "ANSIBLE_LOG_PATH": str(scratch / "ansible.log"),
            "ANSIBLE_LOCAL_TEMP": str(scratch / "local"),
            "ANSIBLE_REMOTE_TMP": str(scratch / "remote"),
            "ANSIBLE_NOCOLOR": "1",
        }
        # as scripts/env.sh does: the project's tools first, Go's install dir last
        tools = [*(path_first or []), ROOT / ".venv" / "bin", ROOT / ".cache" / "bin"]
        env["PATH"] = os.pathsep.join([*map(str, tools), env.get("PATH", ""), "/usr/local/go/bin"])
        proc = subprocess.run(
            [
                str(ROOT / ".venv" / "bin" / "ansible-playbook"),
                "-i",
                str(ROOT / "inventory" / "local.yml"),
                str(PLAYBOOKS / playbook),
                "-e",
                f"@{vars_file}",
                *(extra_args or []),
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        try:
            stats, report = _parse(proc.stdout)
        except json.JSONDecodeError:
            stats, report = {}, {}
        return PlaybookRun(proc.returncode, proc.stdout + proc.stderr, stats, report)

    return run
