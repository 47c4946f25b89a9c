"""Live progress of an Ansible run, fed with ansible-runner's event dicts.

Three views share one small interface (``handle(event)``, ``close()``):
``RichProgress`` redraws one status block on a terminal, ``PlainProgress``
prints one line per task for logs and CI, ``NullProgress`` shows nothing.
``make_progress`` picks one from ``show`` and whether the stream is a TTY.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from rich.console import Console
from rich.errors import LiveError
from rich.live import Live
from rich.text import Text

#: Per-host result events and the counter each one increments.
RESULT_EVENTS: dict[str, str] = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped",
}
COUNTERS = ("ok", "changed", "failed", "unreachable", "skipped")
TASK_START_EVENTS = ("playbook_on_task_start", "playbook_on_handler_task_start")


class ProgressView(Protocol):
    def handle(self, event: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


@dataclass
class RunState:
    """What the run is doing now, and how many host results of each kind it has seen."""

    play: str = ""
    role: str = ""
    task: str = ""
    host: str = ""
    tasks: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))

    def update(self, event: Mapping[str, Any]) -> None:
        kind = str(event.get("event", ""))
        data: Mapping[str, Any] = event.get("event_data") or {}
        if kind == "playbook_on_play_start":
            self.play, self.role, self.task, self.host = str(data.get("play") or ""), "", "", ""
        elif kind in TASK_START_EVENTS:
            self.role, self.task, self.host = str(data.get("role") or ""), str(data.get("task") or ""), ""
            self.tasks += 1
        elif kind == "runner_on_start":
            self.host = str(data.get("host") or "")
        elif kind in RESULT_EVENTS:
            if data.get("ignore_errors") and kind == "runner_on_failed":
                self.counts["ok"] += 1
            else:
                self.counts[RESULT_EVENTS[kind]] += 1
            res = data.get("res")
            if kind == "runner_on_ok" and isinstance(res, Mapping) and res.get("changed"):
                self.counts["changed"] += 1

    def counts_text(self) -> str:
        return "  ".join(f"{k}={v}" for k, v in self.counts.items())


def _where(play: str, role: str, task: str) -> str:
    return " / ".join(p for p in (play, role, task) if p)


def _failure_line(event: Mapping[str, Any]) -> str | None:
    kind = event.get("event")
    data: Mapping[str, Any] = event.get("event_data") or {}
    if kind not in ("runner_on_failed", "runner_on_unreachable") or data.get("ignore_errors"):
        return None
    res = data.get("res")
    msg = res.get("msg", "") if isinstance(res, Mapping) else ""
    word = "UNREACHABLE" if kind == "runner_on_unreachable" else "FAILED"
    return f"  {word} {data.get('host', '?')}: {str(msg).strip().splitlines()[0] if msg else ''}".rstrip()


class NullProgress:
    def handle(self, event: Mapping[str, Any]) -> None:
        return None

    def close(self) -> None:
        return None


@dataclass
class PlainProgress:
    """One line per play and per task, plus one per failed host: readable in CI logs."""

    stream: TextIO
    state: RunState = field(default_factory=RunState)
    started: float = field(default_factory=time.monotonic)

    def _print(self, line: str) -> None:
        print(f"[{time.monotonic() - self.started:7.1f}s] {line}", file=self.stream, flush=True)

    def handle(self, event: Mapping[str, Any]) -> None:
        self.state.update(event)
        kind = event.get("event")
        if kind == "playbook_on_play_start":
            self._print(f"PLAY {self.state.play}")
        elif kind in TASK_START_EVENTS:
            self._print(f"  {_where('', self.state.role, self.state.task)}")
        elif kind == "playbook_on_stats":
            self._print(f"done: {self.state.tasks} tasks, {self.state.counts_text()}")
        failure = _failure_line(event)
        if failure:
            self._print(failure)

    def close(self) -> None:
        return None


@dataclass
class RichProgress:
    """A live status block (play, role, task, host, counts, elapsed) redrawn in place."""

    console: Console
    title: str = "ansible"
    state: RunState = field(default_factory=RunState)
    started: float = field(default_factory=time.monotonic)
    _live: Live | None = None
    _nested: bool = False

    def _render(self) -> Text:
        s = self.state
        text = Text()
        text.append(f"{self.title} ", style="bold")
        text.append(f"{time.monotonic() - self.started:6.1f}s  ", style="dim")
        text.append(f"play: {s.play or '-'}\n", style="cyan")
        text.append(f"  role: {s.role or '-'}   task: {s.task or '-'}   host: {s.host or '-'}\n")
        text.append(f"  tasks: {s.tasks}  {s.counts_text()}", style="dim")
        return text

    def handle(self, event: Mapping[str, Any]) -> None:
        if self._live is None and not self._nested:
            live = Live(self._render(), console=self.console, refresh_per_second=4, transient=True)
            try:
                live.start()
                self._live = live
            except LiveError:  # the caller already shows a live display: print task lines instead
                self._nested = True
        previous_play = self.state.play
        self.state.update(event)
        if event.get("event") == "playbook_on_play_start" and self.state.play != previous_play:
            self.console.print(Text(f"PLAY {self.state.play}", style="bold cyan"))
        elif self._nested and event.get("event") in TASK_START_EVENTS:
            self.console.print(Text(f"  {_where('', self.state.role, self.state.task)}"))
        failure = _failure_line(event)
        if failure:
            self.console.print(Text(failure, style="bold red"))
        if self._live is not None:
            self._live.update(self._render())

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        s = self.state
        self.console.print(Text(f"{self.title}: {s.tasks} tasks, {s.counts_text()}", style="dim"))


def make_progress(show: bool, title: str, stream: TextIO | None = None) -> ProgressView:
    """Rich live view on a terminal, a line per task otherwise, nothing when ``show`` is false."""
    out = stream or sys.stdout
    if not show:
        return NullProgress()
    if out.isatty():
        return RichProgress(console=Console(file=out), title=title)
    return PlainProgress(stream=out)
