"""Load phases become Grafana annotations (posted to the fake Grafana), without ever stopping a run."""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence
from pathlib import Path

from fake_grafana import FakeGrafana

import canarylab_contract as c
from canarylab.dashboard.annotations import URL_ENV, GrafanaAnnotator, annotation_for, annotator_from_env
from canarylab.dashboard.build import TAG, build
from canarylab.experiment import events
from canarylab.experiment.events import Event, EventBus
from canarylab.grafana import GrafanaClient, find_credentials


def _load_events(bus: EventBus) -> None:
    bus.emit(events.SETUP, "starting the local target")
    for variant in c.VARIANTS:
        bus.emit(
            events.LOAD_START,
            f"load {variant} 50 req/s",
            repetition=1,
            variant=variant,
            time=1000.5,
            data={"phase": "repetition 1"},
        )
        bus.emit(events.PROGRESS, "load", data={"elapsed": 1})
        bus.emit(events.LOAD_END, f"load {variant} done", repetition=1, variant=variant, time=1030.25)
    bus.emit(events.DONE, "PASS")


def test_each_load_phase_start_and_end_is_posted(fake_grafana: FakeGrafana, state: Path) -> None:
    client = GrafanaClient(fake_grafana.url, find_credentials({}, state))
    annotator = GrafanaAnnotator(client, run="threads-4-vs-16-20261128T1700")
    _load_events(EventBus([annotator]))
    annotator.close()

    posted = fake_grafana.state.annotations
    assert len(posted) == 4, "start and end of each variant's load phase, nothing else"
    assert [a["time"] for a in posted] == [1_000_500, 1_030_250] * 2, "the events' own times, in ms"
    first = posted[0]
    assert first["text"] == "threads-4-vs-16-20261128T1700: load stable 50 req/s"
    assert set(first["tags"]) == {
        TAG,
        "run:threads-4-vs-16-20261128T1700",
        "load:start",
        "phase:repetition 1",
        f"variant:{c.STABLE}",
        "repetition:1",
    }
    assert "load:end" in posted[1]["tags"]
    assert annotator.posted == [1, 2, 3, 4]


def test_the_dashboard_shows_what_the_annotator_tags() -> None:
    """The dashboard's experiment annotation query asks for tags every posted annotation carries."""
    query = next(a for a in build()["annotations"]["list"] if a.get("target", {}).get("type") == "tags")
    ann = annotation_for(Event(events.LOAD_START, "x", variant=c.CANARY, repetition=2), "run1")
    assert ann is not None
    assert set(query["target"]["tags"]) <= set(ann.tags)
    assert query["enable"] is True


def test_other_events_are_not_annotated() -> None:
    for kind in (events.SETUP, events.PROGRESS, events.COLLECT, events.DONE, events.ENGINE):
        assert annotation_for(Event(kind, "x"), "run") is None


def test_a_failing_grafana_is_reported_once_and_never_blocks_the_engine(port: int, state: Path) -> None:
    """Nothing listens on ``port``: the events still flow, one warning, no exception."""
    stderr = io.StringIO()
    client = GrafanaClient(f"http://127.0.0.1:{port}", find_credentials({}, state), timeout=2)
    annotator = GrafanaAnnotator(client, run="r", stderr=stderr)
    recorder = events.Recorder()
    bus = EventBus([annotator, recorder])
    _load_events(bus)
    annotator.close()
    assert len(recorder.events) == 8
    assert annotator in bus.listeners, "the bus did not have to drop it"
    assert annotator.failed
    assert "cannot connect" in annotator.failed
    assert stderr.getvalue().count("annotations switched off") == 1


class _StuckGrafana:
    """Answers nothing until released: a Grafana that hangs."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls: list[str] = []

    def annotate(self, text: str, tags: Sequence[str], time_ms: int, time_end_ms: int | None = None) -> int:
        self.calls.append(text)
        self.release.wait(30)
        return len(self.calls)


def test_posting_happens_off_the_engine_thread() -> None:
    stuck = _StuckGrafana()
    annotator = GrafanaAnnotator(stuck, run="r")
    recorder = events.Recorder()
    _load_events(EventBus([annotator, recorder]))
    # Every event was delivered while the first post is still hanging.
    assert len(recorder.events) == 8
    assert len(stuck.calls) <= 1
    stuck.release.set()
    annotator.close()
    assert len(stuck.calls) == 4
    assert annotator.posted == [1, 2, 3, 4]


def test_from_env_only_when_a_url_is_configured(fake_grafana: FakeGrafana, state: Path) -> None:
    assert annotator_from_env("r", {}) is None
    env = {URL_ENV: fake_grafana.url, "GRAFANA_TOKEN": fake_grafana.state.token}
    annotator = annotator_from_env("r", env)
    assert annotator is not None
    annotator.on_event(Event(events.LOAD_START, "go", time=5.0, variant=c.CANARY))
    annotator.close()
    assert fake_grafana.state.annotations[0]["time"] == 5000


class _BrokenGrafana:
    def __init__(self) -> None:
        self.calls = 0

    def annotate(self, text: str, tags: Sequence[str], time_ms: int, time_end_ms: int | None = None) -> int:
        self.calls += 1
        raise ValueError("unexpected answer")


def test_an_unexpected_failure_switches_annotations_off_too() -> None:
    broken = _BrokenGrafana()
    stderr = io.StringIO()
    annotator = GrafanaAnnotator(broken, run="r", stderr=stderr)
    _load_events(EventBus([annotator]))
    annotator.close()
    assert not annotator._thread.is_alive()
    assert broken.calls == 1, "tried once, then left alone"
    assert annotator.failed == "ValueError: unexpected answer"
    assert "annotations switched off" in stderr.getvalue()
