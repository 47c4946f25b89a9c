"""The knobs' distribution: fixed is exactly the knob; exponential keeps its mean and varies.

A fixed service time under near-regular arrivals queues not at all below capacity and
without end above it; the exponential draw is what lets requests queue at 70-90% busy,
as in production (model_service/emulation.py).
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable

import pytest
from flask import Flask

from model_service.emulation import DISTRIBUTIONS, Draws
from model_service.metrics import ServiceMetrics

MakeApp = Callable[..., tuple[Flask, ServiceMetrics]]


def test_fixed_is_the_knob_itself() -> None:
    assert {Draws("fixed").factor() for _ in range(100)} == {1.0}
    assert Draws().distribution == "fixed"
    assert DISTRIBUTIONS == ("fixed", "exponential")


def test_exponential_keeps_the_mean_and_varies_like_an_exponential() -> None:
    draws = Draws("exponential", random.Random(20261202))
    xs = [draws.factor() for _ in range(20_000)]
    assert min(xs) >= 0
    assert statistics.fmean(xs) == pytest.approx(1.0, rel=0.03)
    assert statistics.stdev(xs) == pytest.approx(1.0, rel=0.05)  # an exponential's sd is its mean
    share_over_3 = sum(x > 3 for x in xs) / len(xs)
    assert 0.04 <= share_over_3 <= 0.06  # e^-3 = 0.0498: the tail that makes a p95 three means


def test_each_draws_has_its_own_sequence() -> None:
    """A gunicorn worker makes its own after the fork: two must not repeat one another."""
    a, b = Draws("exponential"), Draws("exponential")
    assert [a.factor() for _ in range(5)] != [b.factor() for _ in range(5)]


def test_the_app_draws_the_io_wait_per_request(make_app: MakeApp) -> None:
    app, _ = make_app(simulated_latency_ms=20.0, emulation_distribution="exponential")
    client = app.test_client()
    waits = []
    for _ in range(60):
        started = time.perf_counter()
        assert client.post("/predict", json={"review": "lovely"}).status_code == 200
        waits.append(time.perf_counter() - started)
    # Fixed, every request would take 20 ms and the model's few.  Exponential, the longest of
    # 60 draws is under 36 ms with probability (1 - e^-1.8)^60 = 2e-5, the shortest above 1 ms
    # with e^-3 = 5%: the spread exceeds 35 ms all but never.
    assert max(waits) - min(waits) > 0.035, waits
    assert client.get("/version").get_json()["emulation"]["distribution"] == "exponential"
