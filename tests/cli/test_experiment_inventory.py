"""`canarylab experiment run`: which inventory experiment.yml gets (--target, --inventory).

ansible-runner is replaced by a fake that records its arguments and stops the run, so
nothing is measured: this is only about the inventory handed to ansible-runner."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import ansible_runner
import pytest

from canarylab.cli import main
from canarylab.errors import CanarylabError

SPEC = "experiments/threads-4-vs-16.yml"


@pytest.fixture
def runner_calls(tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """A throw-away project (no inventory/vagrant.yml), and ansible_runner.run recording its kwargs."""
    project = tmp_path / "project"
    (project / "inventory").mkdir(parents=True)
    (project / "experiments").mkdir()
    shutil.copy(root / "ansible.cfg", project)
    shutil.copy(root / "experiment.yml", project)
    shutil.copy(root / "inventory" / "local.yml", project / "inventory")
    shutil.copy(root / SPEC, project / SPEC)
    monkeypatch.setenv("CANARYLAB_ROOT", str(project))
    monkeypatch.chdir(project)
    calls: list[dict[str, Any]] = []

    def fake_run(**kwargs: Any) -> None:
        calls.append(kwargs)
        raise CanarylabError("fake ansible-runner: stopped before the playbook")

    monkeypatch.setattr(ansible_runner, "run", fake_run)
    return calls


def _run(*argv: str) -> int:
    return main(["experiment", "run", *argv, SPEC])


def test_local_target_uses_the_local_inventory(runner_calls: list[dict[str, Any]]) -> None:
    assert _run("--target", "local") == 2
    assert [c["inventory"] for c in runner_calls] == [str(Path("inventory/local.yml").resolve())]


def test_lab_target_passes_the_inventory_option_to_ansible_runner(
    runner_calls: list[dict[str, Any]], tmp_path: Path
) -> None:
    servers = tmp_path / "servers.yml"
    servers.write_text("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n")
    assert _run("--target", "lab", "--inventory", str(servers)) == 2
    assert [c["inventory"] for c in runner_calls] == [str(servers.resolve())]
    assert runner_calls[0]["playbook"] == "experiment.yml"


def test_lab_target_defaults_to_the_vagrant_inventory(runner_calls: list[dict[str, Any]]) -> None:
    vagrant = Path("inventory/vagrant.yml")
    vagrant.write_text("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n")
    assert _run("--target", "lab") == 2
    assert [c["inventory"] for c in runner_calls] == [str(vagrant.resolve())]


def test_lab_target_without_an_inventory_names_the_option(
    runner_calls: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run("--target", "lab") == 2
    err = capsys.readouterr().err
    assert "the lab has no inventory (inventory/vagrant.yml)" in err
    assert "vagrant up" in err
    assert "--inventory PATH" in err
    assert runner_calls == []


def test_inventory_is_refused_for_the_local_target(
    runner_calls: list[dict[str, Any]], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert _run("--target", "local", "--inventory", str(tmp_path)) == 2
    assert "--inventory is for --target lab" in capsys.readouterr().err
    assert runner_calls == []
