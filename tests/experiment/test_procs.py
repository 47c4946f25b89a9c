"""canarylab.procs: the one home of signal handlers and process trees (engine and runner use it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from canarylab import runner
from canarylab.procs import descendants, handling, process_table, signals_interrupt, terminate


def test_handling_installs_and_restores_the_previous_handlers() -> None:
    before = signal.getsignal(signal.SIGUSR1)
    seen: list[int] = []
    with handling([signal.SIGUSR1], lambda signum, _frame: seen.append(signum)):
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(0.05)
    assert seen == [signal.SIGUSR1]
    assert signal.getsignal(signal.SIGUSR1) is before


def test_signals_interrupt_turns_sigterm_into_keyboard_interrupt() -> None:
    before = signal.getsignal(signal.SIGTERM)

    def interrupted() -> None:
        with signals_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)

    with pytest.raises(KeyboardInterrupt, match="signal 15"):
        interrupted()
    assert signal.getsignal(signal.SIGTERM) is before


def test_descendants_follow_matching_children_and_all_below_them() -> None:
    table = {10: (1, "ansible-playbook x"), 11: (10, "worker"), 12: (11, "engine"), 20: (1, "other")}
    assert descendants(1, table, lambda cmd: "ansible-playbook" in cmd) == [10, 11, 12]
    assert sorted(descendants(1, table)) == [10, 11, 12, 20]
    assert runner.playbook_tree(1, table) == [10, 11, 12]  # the runner's use of it


def test_terminate_ends_a_process_that_ignores_sigterm() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
         "print('ready', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        assert child.pid in process_table()
        began = time.monotonic()
        terminate([child.pid], grace=0.5)
        assert child.wait(5) == -signal.SIGKILL
        assert time.monotonic() - began < 3
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
