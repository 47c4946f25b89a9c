"""gunicorn's ``gthread`` worker, balanced across processes, with a queue that can be counted.

The gthread worker accepts connections in its main thread and hands each one to
a ``ThreadPoolExecutor`` of ``threads`` threads.  Unchanged, a worker keeps
accepting while all its threads are busy (up to ``worker_connections``), so
under CPU-bound load one process can hoard requests that wait behind its GIL
while another process idles.  This worker stops accepting while it has as many
requests as threads: the others wait in the kernel's accept queue, where the
first worker with a free thread takes them (the queue-depth gauge reads that
queue, see :func:`accept_backlog`).

``get_thread_pool`` is the worker's documented hook to customise the pool: here
it counts the requests it holds and those waiting for a thread (a kept-alive
connection's next request is queued even when every thread is busy), and
reports each change of the latter to :attr:`CountingThreadPool.on_change`
(bound by the server to the queue-depth gauge once the worker's app exists).
"""

from __future__ import annotations

import socket
import struct
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from gunicorn.workers.gthread import ThreadWorker  # type: ignore[import-untyped]

#: Offset of ``tcpi_unacked`` in Linux's ``struct tcp_info``: on a listening socket,
#: the connections waiting in its accept queue.
_TCPI_UNACKED_OFFSET = 24


def _ignore(_delta: int) -> None:
    pass


def accept_backlog(listener: socket.socket) -> int:
    """Connections waiting in ``listener``'s accept queue (Linux; 0 where unknown)."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        info = listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    except OSError:
        return 0
    if len(info) < _TCPI_UNACKED_OFFSET + 4:
        return 0
    return int(struct.unpack_from("I", info, _TCPI_UNACKED_OFFSET)[0])


class CountingThreadPool(ThreadPoolExecutor):
    """A thread pool that counts the tasks it holds and reports +1 / -1 as tasks
    start waiting for a thread / get one."""

    def __init__(self, max_workers: int) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix="request")
        self.size = max_workers
        self.on_change: Callable[[int], None] = _ignore
        self._lock = threading.Lock()
        self._held = 0

    @property
    def held(self) -> int:
        """Tasks submitted and not finished: running or waiting."""
        with self._lock:
            return self._held

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self._lock:
            self._held += 1
        self.on_change(1)

        def started() -> Any:
            self.on_change(-1)
            try:
                return fn(*args, **kwargs)
            finally:
                with self._lock:
                    self._held -= 1

        return super().submit(started)


class CountingThreadWorker(ThreadWorker):  # type: ignore[misc]  # gunicorn is untyped
    """The gthread worker with a :class:`CountingThreadPool`, accepting only with a free thread."""

    def get_thread_pool(self) -> CountingThreadPool:
        return CountingThreadPool(max_workers=self.cfg.threads)

    def _has_free_thread(self) -> bool:
        pool = self.tpool
        return not isinstance(pool, CountingThreadPool) or pool.held < pool.size

    def set_accept_enabled(self, enabled: bool) -> None:
        # The main loop re-enables accepting at every turn (a finished request wakes it).
        super().set_accept_enabled(enabled and self._has_free_thread())

    def accept(self, listener: socket.socket) -> None:
        super().accept(listener)
        if not self._has_free_thread():
            super().set_accept_enabled(False)
