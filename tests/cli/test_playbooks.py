"""Every playbook of the project passes `ansible-playbook --syntax-check`, run through
run_playbook (ansible-runner).  The listed playbooks must exist: a missing one fails
with a clear message instead of being skipped; others are discovered."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from canarylab.runner import run_playbook

ROOT = Path(__file__).resolve().parents[2]
#: The entry points the CLI and the docs name: they must exist.
REQUIRED = ("experiment.yml", "playbooks/site.yml")


def is_playbook(path: Path) -> bool:
    """A YAML list of plays (``hosts:``) or imports (``import_playbook:``)."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return True  # let the syntax check report it
    return (
        isinstance(data, list)
        and bool(data)
        and all(
            isinstance(item, dict)
            and bool({"hosts", "import_playbook", "ansible.builtin.import_playbook"} & set(item))
            for item in data
        )
    )


def discover(root: Path) -> list[str]:
    candidates = [*root.glob("*.yml"), *(root / "playbooks").glob("*.yml")]
    found = {str(p.relative_to(root)) for p in candidates if is_playbook(p)}
    return sorted(found | set(REQUIRED))


def test_discovery_finds_plays_and_ignores_config(tmp_path: Path) -> None:
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "play.yml").write_text("- name: P\n  hosts: all\n  tasks: []\n")
    (tmp_path / "playbooks" / "all.yml").write_text("- ansible.builtin.import_playbook: x.yml\n")
    (tmp_path / "lab.yml").write_text("workers: 2\n")
    (tmp_path / "list.yml").write_text("- 1\n- 2\n")
    assert discover(tmp_path) == sorted(["play.yml", "playbooks/all.yml", *REQUIRED])


@pytest.mark.static
@pytest.mark.parametrize("playbook", discover(ROOT))
def test_playbook_syntax(playbook: str, run_kwargs: dict[str, Any]) -> None:
    if not (ROOT / playbook).is_file():
        pytest.fail(f"{playbook} is missing: it is a required entry point of canarylab (see {__file__})")
    result = run_playbook(playbook, cmdline="--syntax-check", show_progress=False, check=False, **run_kwargs)
    assert result.ok, result.summary()
