"""Experiment phases as Grafana annotations: a listener for the engine's events.

At the start and at the end of each load phase the experiment posts an
annotation tagged ``canarylab`` (the dashboard's "Experiment phases"
annotation query shows every annotation with that tag).  Posting happens on a
background thread, so a slow or absent Grafana never delays the load; the
annotation carries the event's own timestamp.  A Grafana that fails is
reported once on stderr and then left alone: annotations are a convenience,
never a reason to stop a run.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TextIO

from canarylab.dashboard.build import TAG
from canarylab.errors import CanarylabError
from canarylab.experiment.events import LOAD_END, LOAD_START, Event
from canarylab.grafana import GrafanaClient, find_credentials

#: Set it to the Grafana URL to annotate every experiment run there.
URL_ENV = "CANARYLAB_GRAFANA_URL"
#: Event kinds that become annotations.
ANNOTATED_KINDS: tuple[str, ...] = (LOAD_START, LOAD_END)
_BOUNDARY = {LOAD_START: "start", LOAD_END: "end"}


class Annotations(Protocol):
    """What the annotator needs of Grafana (a :class:`GrafanaClient`)."""

    def annotate(
        self, text: str, tags: Sequence[str], time_ms: int, time_end_ms: int | None = None
    ) -> int: ...


@dataclass(frozen=True)
class Annotation:
    text: str
    tags: tuple[str, ...]
    time_ms: int


def annotation_for(event: Event, run: str, extra_tags: Sequence[str] = ()) -> Annotation | None:
    """The annotation for ``event``, or None if the event is not a load phase boundary."""
    if event.kind not in ANNOTATED_KINDS:
        return None
    tags = [TAG, f"run:{run}", f"load:{_BOUNDARY[event.kind]}", *extra_tags]
    phase = event.data.get("phase")
    if phase:
        tags.append(f"phase:{phase}")
    if event.variant:
        tags.append(f"variant:{event.variant}")
    if event.repetition is not None:
        tags.append(f"repetition:{event.repetition}")
    return Annotation(text=f"{run}: {event.message}", tags=tuple(tags), time_ms=round(event.time * 1000))


_STOP = object()


class GrafanaAnnotator:
    """An engine event listener posting load-phase annotations to Grafana, off the engine's thread."""

    def __init__(
        self,
        grafana: Annotations,
        run: str,
        extra_tags: Sequence[str] = (),
        stderr: TextIO | None = None,
    ) -> None:
        self.grafana = grafana
        self.run = run
        self.extra_tags = tuple(extra_tags)
        self.posted: list[int] = []
        self.failed: str | None = None
        self._stderr = stderr or sys.stderr
        self._queue: queue.Queue[object] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="grafana-annotator", daemon=True)
        self._thread.start()

    def on_event(self, event: Event) -> None:
        annotation = annotation_for(event, self.run, self.extra_tags)
        if annotation is not None and self.failed is None:
            self._queue.put(annotation)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            assert isinstance(item, Annotation)
            if self.failed is not None:
                continue
            try:
                self.posted.append(self.grafana.annotate(item.text, item.tags, item.time_ms))
            except Exception as err:  # annotations must never stop a run, whatever went wrong
                self.failed = str(err) if isinstance(err, CanarylabError) else f"{type(err).__name__}: {err}"
                print(f"canarylab: Grafana annotations switched off: {err}", file=self._stderr, flush=True)

    def close(self, timeout: float = 10.0) -> None:
        """Post what is queued (for at most ``timeout`` seconds), then stop the thread."""
        self._queue.put(_STOP)
        self._thread.join(timeout)


def annotator_from_env(
    run: str, env: Mapping[str, str] | None = None, extra_tags: Sequence[str] = ()
) -> GrafanaAnnotator | None:
    """A :class:`GrafanaAnnotator` when ``CANARYLAB_GRAFANA_URL`` is set, else None."""
    env = os.environ if env is None else env
    url = env.get(URL_ENV, "").strip()
    if not url:
        return None
    client = GrafanaClient(url, find_credentials(env), timeout=5.0)
    return GrafanaAnnotator(client, run, extra_tags)
