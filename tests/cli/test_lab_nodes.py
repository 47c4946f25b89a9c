"""canarylab.lab.nodes: the nodes' working set from their memory cgroup, and its peak."""

from __future__ import annotations

from pathlib import Path

import pytest

from canarylab.lab import nodes


def _v1(path: Path, usage: int, inactive: int) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "memory.usage_in_bytes").write_text(f"{usage}\n")
    (path / "memory.stat").write_text(f"cache 5\ntotal_inactive_file {inactive}\ntotal_rss 7\n")
    return path


def test_working_set_v1_leaves_out_inactive_page_cache(tmp_path: Path) -> None:
    assert nodes.working_set_bytes(_v1(tmp_path / "a", 3 * 2**30, 2**30)) == 2 * 2**30


def test_working_set_v2(tmp_path: Path) -> None:
    (tmp_path / "memory.current").write_text("1000\n")
    (tmp_path / "memory.stat").write_text("anon 600\ninactive_file 300\n")
    assert nodes.working_set_bytes(tmp_path) == 700


def test_working_set_of_a_vanished_cgroup_is_none(tmp_path: Path) -> None:
    assert nodes.working_set_bytes(tmp_path / "gone") is None


def test_watch_keeps_each_nodes_peak(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    groups = {"cp": _v1(tmp_path / "cp", 500 * 2**20, 0), "w1": _v1(tmp_path / "w1", 300 * 2**20, 0)}
    monkeypatch.setattr(nodes, "cgroup_dir", groups.get)
    watch = nodes.MemoryWatch.of(["cp", "w1", "not-running"])
    watch.sample()
    _v1(groups["cp"], 900 * 2**20, 100 * 2**20)  # rises to 800 MB
    watch.sample()
    _v1(groups["cp"], 200 * 2**20, 0)  # falls again: the peak stays
    watch.sample()
    assert watch.peak_mb == {"cp": 800, "w1": 300}
    assert "all nodes (sum)" in watch.render()
    assert "1100 MB" in watch.render()


def test_watch_samples_in_a_thread_until_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    group = _v1(tmp_path / "cp", 64 * 2**20, 0)
    monkeypatch.setattr(nodes, "cgroup_dir", lambda name: group)
    with nodes.MemoryWatch(("cp",), interval=0.01) as watch:
        pass
    assert watch.peak_mb == {"cp": 64}
