"""The pieces of the gunicorn worker that feed the queue-depth gauge, in-process."""

from __future__ import annotations

import socket
import sys
import threading

import pytest

from model_service.prefork_worker import CountingThreadPool, accept_backlog


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="TCP_INFO of a listener is Linux's")
def test_accept_backlog_counts_connections_nobody_accepted() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        assert accept_backlog(listener) == 0
        clients = [socket.create_connection(listener.getsockname(), timeout=5) for _ in range(3)]
        try:
            assert accept_backlog(listener) == 3
            listener.accept()[0].close()
            assert accept_backlog(listener) == 2
        finally:
            for client in clients:
                client.close()


def test_pool_reports_tasks_waiting_for_a_thread() -> None:
    pool = CountingThreadPool(max_workers=1)
    changes: list[int] = []
    pool.on_change = changes.append
    release, running = threading.Event(), threading.Event()

    def hold() -> None:
        running.set()
        release.wait(10)

    try:
        first = pool.submit(hold)
        assert running.wait(10)
        second = pool.submit(lambda: None)
        assert pool.held == 2
        assert sum(changes) == 1  # the second waits for the only thread
        release.set()
        first.result(timeout=10)
        second.result(timeout=10)
    finally:
        release.set()
        pool.shutdown(wait=True)
    assert sum(changes) == 0
    assert pool.held == 0
