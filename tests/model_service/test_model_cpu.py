"""The CPU-cost knob holds the GIL and the I/O knob does not; the calibration is sound.

Only ratios measured in the same test are asserted: two threads that each spend
the cost, against one thread alone.  Under the GIL the CPU cost serialises
(about 2x), a sleep does not (about 1x), whatever the machine's speed.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable

import pytest
from flask import Flask

from canarylab.procs import console_script
from model_service import cpu
from model_service.metrics import ServiceMetrics

MakeApp = Callable[..., tuple[Flask, ServiceMetrics]]
COST_MS = 60.0


def _wall(action: Callable[[], None], threads: int) -> float:
    """Wall time for ``threads`` threads that each run ``action`` once, started together."""
    barrier = threading.Barrier(threads + 1)

    def run() -> None:
        barrier.wait()
        action()

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    return time.perf_counter() - started


def _two_over_one(action: Callable[[], None], rounds: int = 7) -> float:
    """Best two-thread time over best one-thread time, interleaved so that noise hits both."""
    one, two = [], []
    for _ in range(rounds):
        one.append(_wall(action, 1))
        two.append(_wall(action, 2))
    return min(two) / min(one)


def _predict(app: Flask) -> Callable[[], None]:
    def call() -> None:
        resp = app.test_client().post("/predict", json={"review": "cosy and friendly"})
        assert resp.status_code == 200

    return call


def test_calibration_is_positive_and_stable() -> None:
    first, second = cpu.calibrate(), cpu.calibrate()
    assert first.iterations_per_ms > 0
    assert len(first.runs_ms) == cpu.CALIBRATION_RUNS
    ratio = second.iterations_per_ms / first.iterations_per_ms
    print(f"calibration {first.describe()}; again {second.iterations_per_ms:.0f}/ms (ratio {ratio:.2f})")
    assert 0.67 <= ratio <= 1.5, (first, second)


def test_calibrated_cost_spends_about_that_much_cpu() -> None:
    cost = cpu.CpuCost.calibrated(COST_MS)
    started = time.thread_time()
    cost.spend()
    spent_ms = (time.thread_time() - started) * 1000
    # CPU time of this thread, not wall time: a ratio to the knob, loose for a busy host.
    assert 0.6 <= spent_ms / COST_MS <= 1.8, spent_ms


def test_a_given_calibration_is_used_and_nothing_is_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    def measure() -> cpu.Calibration:
        raise AssertionError("measured although a calibration was given")

    monkeypatch.setattr(cpu, "calibrate", measure)
    given = cpu.CpuCost.calibrated(40.0, iterations_per_ms=1000.0)
    assert given.iterations == 40_000
    assert given.calibration is not None
    assert "given, not measured here" in given.calibration.describe()


def test_calibrate_cpu_prints_the_number_a_variant_is_given() -> None:
    out = subprocess.run(
        [console_script("model-service"), "calibrate-cpu"], capture_output=True, text=True, check=True
    )
    assert float(out.stdout.strip()) > 0
    assert "best of 5 single-threaded runs" in out.stderr


def test_knob_off_spends_nothing_and_needs_no_calibration() -> None:
    off = cpu.CpuCost.calibrated(0)
    assert (off.calibration, off.iterations) == (None, 0)
    with pytest.raises(ValueError, match="calibration"):
        cpu.CpuCost(5.0, None)


def test_cpu_knob_holds_the_gil(make_app: MakeApp) -> None:
    app, _ = make_app(cpu_cost_ms=COST_MS)
    ratio = _two_over_one(_predict(app))
    print(f"CPU knob {COST_MS:g} ms: two threads / one thread = {ratio:.2f}")
    assert ratio >= 1.6, f"two threads took {ratio:.2f}x one thread's time; the GIL should make it ~2x"


def test_io_knob_releases_the_gil(make_app: MakeApp) -> None:
    app, _ = make_app(simulated_latency_ms=COST_MS)
    ratio = _two_over_one(_predict(app))
    print(f"I/O knob {COST_MS:g} ms: two threads / one thread = {ratio:.2f}")
    assert ratio <= 1.3, f"two threads took {ratio:.2f}x one thread's time; a sleep should overlap (~1x)"
