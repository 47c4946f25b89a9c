"""Behaviour: the thread count takes effect.

With a 200 ms blocking wait per prediction, 16 concurrent requests need about
4 rounds (~0.8 s) on 4 threads and one round (~0.2 s) on 16.  Both servers are
measured in the same test and only the ratio is asserted.
"""

from __future__ import annotations

import pytest
from model_service_support import StartServer, timed_burst

import canarylab_contract as contract
from canarylab.procs import free_port

pytestmark = pytest.mark.integration

CLIENTS = 16
LATENCY_MS = 200


def _burst(base: str) -> float:
    return timed_burst(base, CLIENTS, "tasty and friendly")


def test_sixteen_threads_finish_a_burst_in_under_half_the_time_of_four(start_server: StartServer) -> None:
    latency = {"MODEL_SERVICE_SIMULATED_LATENCY_MS": str(LATENCY_MS)}
    _, four = start_server(free_port(), name="ms-4", MODEL_SERVICE_THREADS="4", **latency)
    canary = {"MODEL_SERVICE_VARIANT": contract.CANARY}
    _, sixteen = start_server(free_port(), name="ms-16", MODEL_SERVICE_THREADS="16", **canary, **latency)
    for base in (four, sixteen):  # warm up: first prediction, connection set-up
        _burst(base)
    # Interleaved, best of two each: a noisy neighbour hurts both, not just one.
    runs = [(_burst(four), _burst(sixteen)) for _ in range(2)]
    t4 = min(r[0] for r in runs)
    t16 = min(r[1] for r in runs)
    ratio = t16 / t4
    print(f"16 requests x {LATENCY_MS} ms: 4 threads {t4:.3f}s, 16 threads {t16:.3f}s, ratio {ratio:.2f}")
    assert ratio < 0.5, f"16 threads took {t16:.3f}s, 4 threads {t4:.3f}s (ratio {ratio:.2f}, expected ~0.25)"
