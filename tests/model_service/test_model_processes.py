"""Behaviour: under a CPU cost that holds the GIL, processes scale and threads do not.

40 ms of CPU per request, 8 concurrent requests.  One process serialises them on
its GIL (~320 ms whatever its thread count); two processes run on two cores
(~160 ms).  All three servers are measured in the same test, interleaved, best
of five each, and only ratios are asserted.  This machine has 2 cores shared
with others, hence the margins.
"""

from __future__ import annotations

import pytest
from model_service_support import StartServer, timed_burst

from canarylab.procs import free_port
from model_service import cpu

pytestmark = pytest.mark.integration

CLIENTS = 8
CPU_COST_MS = 40
#: Interleaved rounds; the best of each server counts.
ROUNDS = 5


def _burst(base: str) -> float:
    return timed_burst(base, CLIENTS, "slow but tasty")


def test_processes_scale_cpu_bound_work_and_threads_do_not(start_server: StartServer) -> None:
    # One calibration for the three: each timing the loop at its own start, side by side,
    # calibrated up to a factor 2 apart, and "40 ms" was then different work in each.
    calibration = cpu.calibrate().iterations_per_ms
    cost = {
        "MODEL_SERVICE_CPU_COST_MS": str(CPU_COST_MS),
        "MODEL_SERVICE_CPU_ITERATIONS_PER_MS": str(calibration),
    }
    _, one_by_4 = start_server(free_port(), name="p1-t4", MODEL_SERVICE_THREADS="4", **cost)
    _, two_by_4 = start_server(
        free_port(), name="p2-t4", MODEL_SERVICE_THREADS="4", MODEL_SERVICE_PROCESSES="2", **cost
    )
    _, one_by_16 = start_server(free_port(), name="p1-t16", MODEL_SERVICE_THREADS="16", **cost)
    servers = (one_by_4, two_by_4, one_by_16)
    for base in servers:  # warm up: first prediction, connection set-up, every worker
        _burst(base)
    runs = [tuple(_burst(base) for base in servers) for _ in range(ROUNDS)]
    t1x4, t2x4, t1x16 = (min(run[i] for run in runs) for i in range(3))
    processes = t2x4 / t1x4
    threads = t1x16 / t1x4
    print(
        f"{CLIENTS} requests x {CPU_COST_MS} ms CPU: 1 process x 4 threads {t1x4:.3f}s, "
        f"2 processes x 4 threads {t2x4:.3f}s (ratio {processes:.2f}), "
        f"1 process x 16 threads {t1x16:.3f}s (ratio {threads:.2f})"
    )
    assert processes <= 0.75, f"2 processes / 1 process = {processes:.2f}; expected ~0.5 on 2 free cores"
    # Without the GIL, 16 threads would gain like 2 processes (~0.5 on 2 cores).
    assert threads >= 0.7, f"16 threads / 4 threads = {threads:.2f}; the GIL should allow no gain (~1.0)"
