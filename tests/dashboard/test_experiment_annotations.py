"""A real (very short) experiment on the local target, with CANARYLAB_GRAFANA_URL pointing at the
fake Grafana: the engine posts an annotation at the start and at the end of every load phase."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fake_grafana import FakeGrafana

import canarylab_contract as c
from canarylab.dashboard.annotations import URL_ENV
from canarylab.dashboard.build import TAG
from canarylab.experiment import events

pytestmark = pytest.mark.experiment


def test_every_load_phase_boundary_becomes_an_annotation(
    fake_grafana: FakeGrafana, root: Path, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        URL_ENV: fake_grafana.url,
        "GRAFANA_TOKEN": fake_grafana.state.token,
        "CANARYLAB_ROOT": str(root),
    }
    argv = [sys.executable, "-m", "canarylab.experiment", str(root / "experiments/threads-4-vs-16.yml")]
    argv += [
        "--duration",
        "3s",
        "--warmup",
        "1s",
        "--rate",
        "5",
        "--repetitions",
        "1",
        "--results-dir",
        str(tmp_path),
    ]
    run = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert "verdict:" in run.stdout, run.stdout[-2000:] + run.stderr[-3000:]
    assert "annotations switched off" not in run.stderr

    (run_dir,) = [d for d in tmp_path.iterdir() if d.is_dir() and not d.is_symlink()]
    events_file = run_dir / "events.jsonl"
    boundaries = [
        e
        for e in map(events.Event.from_json, events_file.read_text().splitlines())
        if e.kind in (events.LOAD_START, events.LOAD_END)
    ]
    posted = fake_grafana.state.annotations
    # warm-up + 1 repetition, each started and ended for both variants
    assert len(boundaries) == len(posted) == 2 * 2 * len(c.VARIANTS)
    assert [a["time"] for a in posted] == [round(e.time * 1000) for e in boundaries]
    for event, annotation in zip(boundaries, posted, strict=True):
        assert TAG in annotation["tags"]
        assert f"variant:{event.variant}" in annotation["tags"]
        assert ("load:start" if event.kind == events.LOAD_START else "load:end") in annotation["tags"]
    auth = {r.headers.get("Authorization") for r in fake_grafana.state.calls("POST", "/api/annotations")}
    assert auth == {f"Bearer {fake_grafana.state.token}"}
    assert json.loads((run_dir / "summary.json").read_text())["verdict"]
