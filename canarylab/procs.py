"""Signals and process trees: children that are always cleaned up, and the handlers that make sure.

Every child runs in its own session (process group), so stopping it also stops
whatever it spawned.  On Linux a child also gets SIGTERM when its parent dies,
so even a SIGKILLed engine leaves nothing behind.

This module is the one place that installs signal handlers (:func:`handling`,
:func:`signals_interrupt`, :class:`ProcessGroup`), walks the process table
(:func:`process_table`, :func:`descendants`) and ends processes it did not start
as children (:func:`terminate`); the engine and canarylab.runner use it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import requests

from canarylab.errors import CanarylabError

_PR_SET_PDEATHSIG = 1

#: A signal handler as ``signal.signal`` takes it.
Handler = Callable[[int, FrameType | None], Any]


# --- signal handlers -----------------------------------------------------------------------


@contextlib.contextmanager
def handling(signals: Iterable[int], handler: Handler) -> Iterator[None]:
    """``handler`` for ``signals`` inside the block, the previous handlers restored after.

    Only the main thread may set handlers: elsewhere this changes nothing.
    """
    old: dict[int, Any] = {}
    for sig in signals:
        with contextlib.suppress(ValueError):
            old[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, previous in old.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, previous)


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP stop the block like Ctrl-C (KeyboardInterrupt), so clean-up runs."""
    with handling((signal.SIGTERM, signal.SIGHUP), _interrupt):
        yield


def watch_owner(owner_pid: int | None, interval: float = 0.5) -> threading.Event:
    """Stop this process (SIGTERM to itself) when ``owner_pid`` or the parent process goes away.

    The engine runs under ansible-playbook; if whoever started it dies without
    telling it, the engine must not keep load and servers running.  Set the
    returned event to stop watching.
    """
    stop = threading.Event()
    parent = os.getppid()

    def gone() -> bool:
        if owner_pid:
            try:
                os.kill(owner_pid, 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                pass
        return os.getppid() != parent

    def loop() -> None:
        while not stop.wait(interval):
            if gone():
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=loop, name="owner-watch", daemon=True).start()
    return stop


# --- process trees (processes this one did not start as children) ----------------------------


def process_table() -> dict[int, tuple[int, str]]:
    """pid -> (ppid, command line) of every visible process (/proc on Linux, ps elsewhere)."""
    table: dict[int, tuple[int, str]] = {}
    proc = Path("/proc")
    if (proc / "self" / "stat").exists():
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            table[int(entry.name)] = (ppid, cmd)
        return table
    ps = ["ps", "-A", "-o", "pid=,ppid=,command="]
    out = subprocess.run(ps, capture_output=True, text=True, check=False)
    for line in out.stdout.splitlines():
        fields = line.split(None, 2)
        if len(fields) >= 2 and fields[0].isdigit() and fields[1].isdigit():
            table[int(fields[0])] = (int(fields[1]), fields[2] if len(fields) > 2 else "")
    return table


def descendants(
    parent: int, table: Mapping[int, tuple[int, str]], child_matches: Callable[[str], bool] | None = None
) -> list[int]:
    """The children of ``parent`` whose command line ``child_matches`` (all when None), and all
    their descendants, whatever session they moved to; parents before their children."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    tree = [pid for pid in children.get(parent, []) if child_matches is None or child_matches(table[pid][1])]
    i = 0
    while i < len(tree):
        tree.extend(children.get(tree[i], []))
        i += 1
    return tree


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    with contextlib.suppress(OSError, IndexError):  # a zombie is gone already
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2 :].split()[0] != "Z"
    return True


def terminate(pids: Sequence[int], grace: float = 5.0) -> None:
    """SIGTERM to every pid, then SIGKILL whatever is still there after ``grace`` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)


# --- children ------------------------------------------------------------------------------


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def console_script(name: str) -> str:
    """A console script of this Python's environment (the venv), else one on PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise CanarylabError(f"{name} is not installed", "run `make setup-minimal`")
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


@dataclass
class ManagedProcess:
    name: str
    argv: list[str]
    log_path: Path
    popen: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 5.0) -> None:
        if self.popen.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue


def start(
    name: str,
    argv: Sequence[str],
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> ManagedProcess:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **(env or {})}
    with log_path.open("ab") as log:
        try:
            popen = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=full_env,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only calls prctl
            )
        except FileNotFoundError as err:
            raise CanarylabError(f"cannot start {name}: {argv[0]} not found", "run `make setup`") from err
    return ManagedProcess(name=name, argv=list(argv), log_path=log_path, popen=popen)


def wait_http_ok(
    url: str,
    timeout: float,
    process: ManagedProcess | None = None,
    accept: Callable[[requests.Response], bool] | None = None,
) -> None:
    """Poll ``url`` until it answers 2xx (or ``accept`` says yes); fail fast if ``process`` died."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if process is not None and not process.running():
            raise CanarylabError(
                f"{process.name} exited with code {process.popen.returncode} before it was ready:\n"
                f"{process.log_tail()}",
                f"see the full log in {process.log_path}",
            )
        try:
            resp = requests.get(url, timeout=1.0)
            if (accept or (lambda r: r.ok))(resp):
                return
            last = f"HTTP {resp.status_code}"
        except requests.RequestException as err:
            last = type(err).__name__
        time.sleep(0.1)
    name = process.name if process else url
    raise CanarylabError(f"{name} was not ready at {url} after {timeout:.0f}s ({last})")


#: How long stopping waits after SIGTERM (one deadline shared by every process) before SIGKILL.
STOP_TIMEOUT = 5.0
#: How long to wait for SIGKILLed processes to be reaped.
KILL_WAIT = 5.0


@dataclass
class ProcessGroup:
    """Starts processes and stops all of them on exit, on error, on Ctrl-C and on SIGTERM.

    Stopping (``__exit__`` / :meth:`stop_all`) cannot be interrupted: SIGTERM and
    SIGINT are held off while it runs (a second Ctrl-C or SIGTERM must not leave
    children behind); every process gets SIGTERM at once, then they share one
    deadline (``stop_timeout``), then whatever is left gets SIGKILL.
    """

    processes: list[ManagedProcess] = field(default_factory=list)
    stop_timeout: float = STOP_TIMEOUT
    _old_handlers: dict[int, Any] = field(default_factory=dict)
    #: signals that arrived while stopping (held off, see stop_all)
    held_signals: list[int] = field(default_factory=list)

    def start(self, name: str, argv: Sequence[str], log_path: Path, **kw: object) -> ManagedProcess:
        proc = start(name, argv, log_path, **kw)  # type: ignore[arg-type]
        self.processes.append(proc)
        return proc

    @contextlib.contextmanager
    def _signals_held(self) -> Iterator[None]:
        """SIGTERM and SIGINT are recorded in ``held_signals`` instead of interrupting; restored after."""

        def hold(signum: int, _frame: FrameType | None) -> None:
            self.held_signals.append(signum)

        with handling((signal.SIGTERM, signal.SIGINT), hold):
            yield

    def stop_all(self, timeout: float | None = None) -> None:
        """SIGTERM to every running process, one shared deadline, then SIGKILL; not interruptible."""
        with self._signals_held():
            running = [p for p in reversed(self.processes) if p.running()]
            for proc in running:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + (self.stop_timeout if timeout is None else timeout)
            for proc in running:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.popen.wait(max(0.0, deadline - time.monotonic()))
            left = [p for p in running if p.popen.poll() is None]
            for proc in left:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
            for proc in left:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.popen.wait(KILL_WAIT)

    def _on_sigterm(self, signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    def __enter__(self) -> ProcessGroup:
        with contextlib.suppress(ValueError):  # only the main thread may set handlers
            self._old_handlers[signal.SIGTERM] = signal.signal(signal.SIGTERM, self._on_sigterm)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        held = len(self.held_signals)
        self.stop_all()
        for signum, handler in self._old_handlers.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(signum, handler)
        self._old_handlers.clear()
        if exc_type is None and len(self.held_signals) > held:
            # a stop was asked for while cleaning up after a normal exit: honour it now
            raise KeyboardInterrupt(f"signal {self.held_signals[-1]} during clean-up")


@contextlib.contextmanager
def process_group() -> Iterator[ProcessGroup]:
    with ProcessGroup() as group:
        yield group
