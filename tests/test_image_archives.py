"""How roles move image archives: never through become-slurp, never when unchanged.

`ansible.builtin.fetch` under become reads the file with the slurp module
(base64 in the module's JSON answer, the whole archive in memory on both ends)
and cannot compare before it reads.  Every fetch of canarylab_images (the
archives) runs without become and only when the sha256 of the two ends differs.
(A small root-only file, such as kubeadm_control_plane's admin.conf, still
needs become.)  The molecule scenario
of canarylab_images fetches an archive for real (and not again: idempotence).
"""

from __future__ import annotations

import pytest
from ansible_tasks import Task, all_tasks

pytestmark = pytest.mark.static

FETCHES = [
    t for t in all_tasks() if t.role == "canarylab_images" and t.action in ("ansible.builtin.fetch", "fetch")
]


def _fetch_id(task: Task) -> str:
    return f"{task.where}:{task.name}"


def test_the_image_archives_fetch_is_found() -> None:
    assert FETCHES


@pytest.mark.parametrize("task", FETCHES, ids=_fetch_id)
def test_a_fetch_runs_without_become(task: Task) -> None:
    assert task.data.get("become") is False, (
        f"{task.where}: {task.name!r} must set `become: false` (under become, fetch slurps the file)"
    )


@pytest.mark.parametrize("task", FETCHES, ids=_fetch_id)
def test_an_image_archive_is_fetched_only_when_its_checksum_differs(task: Task) -> None:
    assert any("checksum" in w for w in task.when), (
        f"{task.where}: {task.name!r} fetches without comparing first"
    )
    checksums = [
        t
        for t in all_tasks()
        if t.path == task.path
        and t.action == "ansible.builtin.stat"
        and t.args.get("checksum_algorithm") == "sha256"
    ]
    assert len(checksums) == 2, "sha256 of the build host's archive and of the Ansible host's copy"
    assert any(t.data.get("delegate_to") == "localhost" for t in checksums)
