"""Fixtures of the CLI tests: ansible-runner runs that write only under tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"


@pytest.fixture
def run_kwargs(tmp_path: Path, root: Path) -> dict[str, object]:
    """Keyword arguments that keep a run_playbook call's files (runs, Ansible temp) in tmp_path."""
    temp = tmp_path / "ansible-tmp"
    return {
        "root": root,
        "inventory": "inventory/local.yml",
        "data_dir": tmp_path / "runs",
        "envvars": {"ANSIBLE_LOCAL_TEMP": str(temp), "ANSIBLE_REMOTE_TEMP": str(temp)},
    }
