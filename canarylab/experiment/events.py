"""Phase events of an experiment run, and the listeners that receive them.

The engine emits an :class:`Event` at every phase change (setup, calibrate,
warmup, each repetition's load start/end per variant, collect, analyse, report,
done) and a ``progress`` event every few seconds while load runs.  Listeners
implement :class:`Listener` (one method, ``on_event``); the engine holds its own
list of them, there is no global registry.

Shipped listeners: :class:`ProgressFileWriter` (JSON lines, tailed by
``canarylab experiment run``), :class:`TerminalRenderer` (when the engine runs
directly in a terminal).  The dashboard issue adds a Grafana annotator the same way.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO, runtime_checkable

#: Event kinds.
SETUP = "setup"
READY = "ready"
CALIBRATE = "calibrate"
WARMUP = "warmup"
LOAD_START = "load_start"
LOAD_END = "load_end"
PROGRESS = "progress"
COLLECT = "collect"
LOOK = "look"  #: sequential mode: the deciding interval after a repetition, and whether the run stops
ANALYSE = "analyse"
VERDICT = "verdict"  #: the verdict is known (report and plots follow)
REPORT = "report"
DONE = "done"
ERROR = "error"
ENGINE = "engine"  #: first event: the engine's pid, so a front end can stop it


@dataclass(frozen=True)
class Event:
    kind: str
    message: str
    time: float = field(default_factory=time.time)
    #: 1-based repetition, when the event belongs to one
    repetition: int | None = None
    variant: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str, sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> Event:
        raw = json.loads(line)
        return cls(
            kind=str(raw["kind"]),
            message=str(raw.get("message", "")),
            time=float(raw.get("time", 0.0)),
            repetition=raw.get("repetition"),
            variant=raw.get("variant"),
            data=dict(raw.get("data") or {}),
        )


@runtime_checkable
class Listener(Protocol):
    def on_event(self, event: Event) -> None: ...


class EventBus:
    """Delivers events to its listeners; a listener that raises is reported once and dropped."""

    def __init__(self, listeners: Sequence[Listener] = ()) -> None:
        self.listeners: list[Listener] = list(listeners)
        self._lock = threading.Lock()

    def add(self, listener: Listener) -> None:
        self.listeners.append(listener)

    def emit(self, kind: str, message: str, **kw: Any) -> Event:
        event = Event(kind=kind, message=message, **kw)
        with self._lock:
            for listener in list(self.listeners):
                try:
                    listener.on_event(event)
                except Exception as err:  # a listener must never break a run
                    self.listeners.remove(listener)
                    print(f"canarylab: listener {listener!r} failed, removed: {err}", file=sys.stderr)
        return event


class ProgressFileWriter:
    """Appends each event as one JSON line and flushes, so a reader can tail the file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: TextIO = path.open("a", encoding="utf-8")

    def on_event(self, event: Event) -> None:
        self._file.write(event.to_json() + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class Recorder:
    """Keeps every event in memory (tests, and the run's events.jsonl)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def on_event(self, event: Event) -> None:
        self.events.append(event)


def format_event(event: Event) -> str | None:
    """One human line for an event, or None for events not worth a line."""
    stamp = time.strftime("%H:%M:%S", time.localtime(event.time))
    if event.kind == PROGRESS:
        d = event.data
        rates = ", ".join(f"{v} {r:.1f} req/s" for v, r in sorted((d.get("rates") or {}).items()))
        return f"{stamp}  {d.get('phase', 'load')} {d.get('elapsed', 0):.0f}/{d.get('total', 0):.0f}s" + (
            f"  {rates}" if rates else ""
        )
    if event.kind == ENGINE:
        return None
    return f"{stamp}  {event.kind:<10} {event.message}"


class TerminalRenderer:
    """Prints events as lines on a terminal (the engine run directly, not through the CLI)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr

    def on_event(self, event: Event) -> None:
        line = format_event(event)
        if line:
            print(line, file=self.stream, flush=True)


def tail_events(path: Path, stop: threading.Event, poll: float = 0.2) -> Iterator[Event]:
    """Yield the events appended to ``path`` until ``stop`` is set and the file is drained."""
    offset = 0
    buffer = ""
    while True:
        stopping = stop.is_set()
        with contextlib.suppress(FileNotFoundError):
            with path.open("r", encoding="utf-8") as f:
                f.seek(offset)
                chunk = f.read()
                offset = f.tell()
            buffer += chunk
            *lines, buffer = buffer.split("\n")
            for line in lines:
                if line.strip():
                    with contextlib.suppress(ValueError, KeyError):
                        yield Event.from_json(line)
        if stopping:
            return
        stop.wait(poll)
