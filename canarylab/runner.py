"""Run an Ansible playbook through ansible-runner: live progress, phase timings, short failures.

``run_playbook`` is the one way canarylab runs a playbook.  It keeps the full
Ansible output in a log file, shows a progress view while the play runs,
measures how long each play and role took, and, when the run fails, raises a
``CanarylabError`` that names the failing task, host and message with the log
path as the hint.  Ctrl-C (and SIGTERM) cancel the playbook cleanly: the
ansible-playbook process group is killed before ``KeyboardInterrupt`` is
re-raised.  Nothing secret is left in the private data dir: ansible-runner
writes no ``env/`` files, extra vars go through a 0600 file deleted after the
run, and the environment is removed from the ``command`` artifact.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from canarylab.errors import CanarylabError
from canarylab.paths import project_root
from canarylab.procs import descendants, handling, process_table, terminate
from canarylab.progress import TASK_START_EVENTS, ProgressView, make_progress

#: The inventory `vagrant up` writes: the default of every command that runs a playbook against the lab.
LAB_INVENTORY = "inventory/vagrant.yml"
#: How many private data dirs to keep under .cache/runner/ (older ones are removed).
KEEP_RUNS = 30
#: How often (seconds) ansible-runner asks whether the run was cancelled.
CANCEL_POLL_SECONDS = 0.5
_STATS_KEYS = {
    "ok": "ok",
    "changed": "changed",
    "failures": "failed",
    "dark": "unreachable",
    "skipped": "skipped",
    "rescued": "rescued",
    "ignored": "ignored",
}


@dataclass(frozen=True)
class TaskFailure:
    host: str
    task: str
    role: str | None
    message: str
    play: str = ""
    unreachable: bool = False

    def describe(self) -> str:
        role = f" (role {self.role})" if self.role else ""
        word = "unreachable" if self.unreachable else "failed"
        return f"task '{self.task}'{role} {word} on {self.host}: {self.message}"


@dataclass(frozen=True)
class Phase:
    """A play or role, in order of first appearance, with the wall time spent in it."""

    name: str
    seconds: float
    kind: str = "play"  # "play" or "role"


@dataclass(frozen=True)
class PlaybookResult:
    ok: bool
    rc: int
    status: str
    phases: tuple[Phase, ...]
    failures: tuple[TaskFailure, ...]
    log_path: Path
    artifact_dir: Path
    stats: dict[str, dict[str, int]]  # host -> ok/changed/failed/unreachable/skipped/rescued/ignored
    seconds: float = 0.0
    playbook: str = ""

    def changed(self) -> int:
        return sum(host.get("changed", 0) for host in self.stats.values())

    def summary(self) -> str:
        """A few lines that say what failed, where, and why (no JSON)."""
        head = f"playbook {self.playbook} {self.status} (rc={self.rc})"
        if self.ok:
            return head
        if self.failures:
            return "\n".join([head, *(f"  {f.describe()}" for f in self.failures[:5])])
        tail = log_tail(self.log_path)
        return f"{head}; last output:\n{tail}" if tail else head


class PlaybookError(CanarylabError):
    """Raised by ``run_playbook(check=True)`` on failure; carries the full result."""

    def __init__(self, result: PlaybookResult) -> None:
        super().__init__(result.summary(), f"full Ansible output: {result.log_path}")
        self.result = result


# --- event stream -> phases, failures, stats ------------------------------------


def _event_time(event: Mapping[str, Any]) -> float:
    created = event.get("created")
    if isinstance(created, str):
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(created).timestamp()
    return time.time()


@dataclass
class PhaseClock:
    """Attributes wall time between events to the current play or role."""

    _order: list[tuple[str, str]] = field(default_factory=list)
    _seconds: dict[tuple[str, str], float] = field(default_factory=dict)
    _current: tuple[str, str] | None = None
    _since: float = 0.0
    _play: str = ""
    _last: float = 0.0

    def _switch(self, phase: tuple[str, str] | None, at: float) -> None:
        if self._current is not None:
            self._seconds[self._current] += max(0.0, at - self._since)
        if phase is not None and phase not in self._seconds:
            self._order.append(phase)
            self._seconds[phase] = 0.0
        self._current, self._since = phase, at

    def feed(self, event: Mapping[str, Any]) -> None:
        kind = event.get("event")
        data: Mapping[str, Any] = event.get("event_data") or {}
        at = _event_time(event)
        self._last = max(self._last, at)
        if kind == "playbook_on_play_start":
            self._play = str(data.get("play") or data.get("name") or "(unnamed play)")
            self._switch((self._play, "play"), at)
        elif kind in TASK_START_EVENTS:
            role = data.get("role")
            phase = (str(role), "role") if role else (self._play, "play")
            if phase != self._current:
                self._switch(phase, at)
        elif kind == "playbook_on_stats":
            self._switch(None, at)

    def phases(self) -> tuple[Phase, ...]:
        if self._current is not None:
            self._switch(None, self._last)
        return tuple(Phase(name=n, kind=k, seconds=round(self._seconds[(n, k)], 3)) for n, k in self._order)


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def failure_message(res: Mapping[str, Any] | None, limit: int = 400) -> str:
    """The useful part of a failed task's result: msg, the first failed loop item, stderr tail."""
    if not isinstance(res, Mapping):
        return "no result"
    parts: list[str] = []
    msg = _text(res.get("msg"))
    results = res.get("results")
    if isinstance(results, list):
        for item in results:
            if isinstance(item, Mapping) and item.get("failed"):
                inner = failure_message(item, limit)
                label = item.get("item")
                parts.append(f"item {label!r}: {inner}" if label is not None else inner)
                break
    if msg and not (parts and msg.startswith("One or more items failed")):
        parts.insert(0, msg)
    stderr = _text(res.get("stderr")) or _text(res.get("module_stderr"))
    if stderr and stderr not in msg:
        parts.append("stderr: " + " | ".join(stderr.splitlines()[-3:]))
    if not parts and res.get("rc") is not None:
        parts.append(f"exit code {res.get('rc')}")
    text = "; ".join(parts) or "failed without a message"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def failure_from_event(event: Mapping[str, Any]) -> TaskFailure | None:
    kind = event.get("event")
    if kind not in ("runner_on_failed", "runner_on_unreachable"):
        return None
    data: Mapping[str, Any] = event.get("event_data") or {}
    if data.get("ignore_errors"):
        return None
    res = data.get("res")
    return TaskFailure(
        host=str(data.get("host") or "?"),
        task=str(data.get("task") or "?"),
        role=str(data["role"]) if data.get("role") else None,
        message=failure_message(res if isinstance(res, Mapping) else None),
        play=str(data.get("play") or ""),
        unreachable=kind == "runner_on_unreachable",
    )


def stats_from_event(data: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """``playbook_on_stats`` event_data (counter -> host -> n) as host -> counter -> n."""
    hosts: dict[str, dict[str, int]] = {}
    for key, name in _STATS_KEYS.items():
        per_host = data.get(key) or {}
        for host, count in per_host.items():
            hosts.setdefault(str(host), dict.fromkeys(_STATS_KEYS.values(), 0))[name] = int(count)
    for host in data.get("processed") or {}:
        hosts.setdefault(str(host), dict.fromkeys(_STATS_KEYS.values(), 0))
    return hosts


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def log_tail(path: Path, lines: int = 12) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    kept = [_ANSI.sub("", ln).rstrip() for ln in text.splitlines() if ln.strip()]
    return "\n".join(f"    {ln}" for ln in kept[-lines:])


# --- private data dir ---------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:60] or "run"


def new_private_dir(base: Path, label: str) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    for n in range(100):
        path = base / (f"{stamp}-{_slug(label)}" + (f"-{n}" if n else ""))
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            continue
        return path
    raise CanarylabError(f"cannot create a run directory under {base}", f"remove old runs from {base}")


def prune_runs(base: Path, keep: int = KEEP_RUNS) -> None:
    """Keep the ``keep`` newest run directories (names start with a sortable UTC timestamp)."""
    runs = sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
    for old in runs[: max(0, len(runs) - keep)]:
        shutil.rmtree(old, ignore_errors=True)


def _scrub_command_artifact(artifact_dir: Path) -> None:
    """ansible-runner saves the whole environment in artifacts/<ident>/command: drop it."""
    path = artifact_dir / "command"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if isinstance(data, dict) and "env" in data:
        data["env"] = "removed by canarylab (may hold secrets)"
        path.write_text(json.dumps(data))


# --- cancellation -----------------------------------------------------------------------


def playbook_tree(parent: int, table: Mapping[int, tuple[int, str]]) -> list[int]:
    """The ansible-playbook children of ``parent`` and all their descendants.

    Ansible's workers call setsid(), so killing ansible-playbook's process group
    (what ansible-runner does on cancel) leaves the tasks' commands running.
    """
    return descendants(parent, table, lambda cmdline: "ansible-playbook" in cmdline)


@dataclass
class _Cancel:
    """Turns SIGINT/SIGTERM into a flag ansible-runner polls, so the playbook is killed cleanly.

    When the flag is first seen, the playbook's process tree is recorded; after
    ansible-runner has killed ansible-playbook, ``reap`` ends whatever is left.
    """

    signum: int | None = None
    error: BaseException | None = None
    tree: list[int] = field(default_factory=list)
    _seen: bool = False

    def __call__(self) -> bool:
        cancelled = self.signum is not None or self.error is not None
        if cancelled and not self._seen:
            self._seen = True
            self.tree = playbook_tree(os.getpid(), process_table())
        return cancelled

    def reap(self) -> None:
        if self.tree:
            terminate(self.tree)

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum

    def installed(self) -> contextlib.AbstractContextManager[None]:
        """SIGINT and SIGTERM set the flag while the playbook runs (main thread only)."""
        return handling((signal.SIGINT, signal.SIGTERM), self._handler)


# --- the entry point ---------------------------------------------------------------------


def _resolve_playbook(playbook: str | Path, root: Path) -> str:
    path = Path(playbook)
    full = path if path.is_absolute() else root / path
    if not full.is_file():
        raise CanarylabError(f"playbook not found: {full}", "check the path (relative to the project root)")
    try:
        return str(full.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(full.resolve())


def _resolve_inventory(inventory: str | Path | None, root: Path) -> str | None:
    if inventory is None:
        return None
    path = Path(inventory)
    full = path if path.is_absolute() else root / path
    if not full.exists():
        raise CanarylabError(
            f"inventory not found: {full}",
            f"for the lab run `canarylab up` (it writes {LAB_INVENTORY}) or pass --inventory PATH; "
            "for the local target use inventory/local.yml",
        )
    return str(full.resolve())


def lab_inventory(root: Path, given: Path | None) -> Path:
    """The inventory of a playbook run against the lab: ``--inventory`` if given, else LAB_INVENTORY.

    A relative ``given`` is looked up from the working directory, then from the project root.
    """
    if given is not None:
        candidates = [given] if given.is_absolute() else [Path.cwd() / given, root / given]
        for path in candidates:
            if path.exists():
                return path.resolve()
        raise CanarylabError(f"inventory not found: {candidates[0]}", "check the path given to --inventory")
    path = root / LAB_INVENTORY
    if not path.is_file():
        raise CanarylabError(
            f"{LAB_INVENTORY} is missing: the VMs were never brought up here",
            "run `canarylab up` (it runs `vagrant up`, which writes the inventory), "
            "or pass --inventory PATH for machines that are not the Vagrant VMs",
        )
    return path


@dataclass
class _Collector:
    """Feeds every event to the phase clock, the failure list, the stats, the view and the caller."""

    view: ProgressView
    cancel: _Cancel
    on_event: Callable[[Mapping[str, Any]], None] | None = None
    clock: PhaseClock = field(default_factory=PhaseClock)
    failures: list[TaskFailure] = field(default_factory=list)
    stats: dict[str, dict[str, int]] = field(default_factory=dict)

    def __call__(self, event: dict[str, Any]) -> bool:
        try:
            self.clock.feed(event)
            failure = failure_from_event(event)
            if failure:
                self.failures.append(failure)
            if event.get("event") == "playbook_on_stats":
                self.stats.update(stats_from_event(event.get("event_data") or {}))
            self.view.handle(event)
            if self.on_event is not None:
                self.on_event(event)
        except Exception as err:  # a broken callback must not orphan the playbook: cancel it
            if self.cancel.error is None:
                self.cancel.error = err
        return True  # keep the event in artifacts/job_events


def _write_extravars(private: Path, extravars: Mapping[str, object] | None) -> Path | None:
    """Extra vars in a 0600 file (not on the command line, not in env/), deleted after the run."""
    if not extravars:
        return None
    path = private / "extravars.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(dict(extravars), fh, default=str)
    return path


def _raise_if_interrupted(cancel: _Cancel) -> None:
    if cancel.error is not None:
        raise cancel.error
    if cancel.signum == signal.SIGINT:
        raise KeyboardInterrupt
    if cancel.signum is not None:
        raise SystemExit(128 + cancel.signum)


def run_playbook(
    playbook: str | Path,
    *,
    inventory: str | Path | None = None,
    extravars: Mapping[str, object] | None = None,
    limit: str | None = None,
    tags: str | None = None,
    label: str | None = None,
    on_event: Callable[[Mapping[str, Any]], None] | None = None,
    show_progress: bool = True,
    check: bool = True,
    root: Path | None = None,
    cmdline: str | None = None,
    data_dir: Path | None = None,
    envvars: Mapping[str, str] | None = None,
) -> PlaybookResult:
    """Run ``playbook`` (relative to the project root) and return what happened.

    ``check=True`` raises ``PlaybookError`` (a ``CanarylabError``) unless the run
    succeeded.  ``cmdline`` adds raw ansible-playbook options (e.g. ``--syntax-check``).
    ``data_dir`` is where run directories go (default ``.cache/runner/``).
    ``envvars`` adds environment variables for Ansible.
    """
    import ansible_runner  # noqa: PLC0415 - heavy import, only when a playbook runs

    root = (root or project_root()).resolve()
    rel_playbook = _resolve_playbook(playbook, root)
    inv = _resolve_inventory(inventory, root)
    label = label or Path(rel_playbook).stem
    private = new_private_dir(data_dir or root / ".cache" / "runner", label)
    extravars_file = _write_extravars(private, extravars)
    cancel = _Cancel()
    collect = _Collector(view=make_progress(show_progress, title=label), cancel=cancel, on_event=on_event)
    optional = {
        "inventory": inv,
        "extravars": str(extravars_file) if extravars_file else None,
        "limit": limit,
        "tags": tags,
        "cmdline": cmdline,
    }
    kwargs: dict[str, Any] = {
        "private_data_dir": str(private),
        "project_dir": str(root),
        "playbook": rel_playbook,
        "ident": "run",
        "envvars": {
            "ANSIBLE_CONFIG": str(root / "ansible.cfg"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_LOG_PATH": str(private / "ansible.log"),
            # ansible-playbook of this Python's environment, even when .venv/bin is not on PATH
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
            **(envvars or {}),
        },
        "quiet": True,
        "suppress_env_files": True,
        "settings": {"pexpect_timeout": CANCEL_POLL_SECONDS, "suppress_ansible_output": True},
        "event_handler": collect,
        "cancel_callback": cancel,
        **{k: v for k, v in optional.items() if v},
    }
    started = time.monotonic()
    try:
        with cancel.installed():
            runner = ansible_runner.run(**kwargs)
    finally:
        cancel.reap()
        collect.view.close()
        if extravars_file is not None:
            extravars_file.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            prune_runs(private.parent)
    artifact_dir = Path(runner.config.artifact_dir)
    _scrub_command_artifact(artifact_dir)
    _raise_if_interrupted(cancel)

    rc = int(runner.rc if runner.rc is not None else -1)
    status = str(runner.status)
    result = PlaybookResult(
        ok=status == "successful" and rc == 0,
        rc=rc,
        status=status,
        phases=collect.clock.phases(),
        failures=tuple(collect.failures),
        log_path=artifact_dir / "stdout",
        artifact_dir=artifact_dir,
        stats=collect.stats,
        seconds=round(time.monotonic() - started, 3),
        playbook=rel_playbook,
    )
    if check and not result.ok:
        raise PlaybookError(result)
    return result
