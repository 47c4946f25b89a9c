"""The exact rolling maximum behind MODEL_PROCESSING_WINDOW_MAX_SECONDS, on an injected clock."""

from __future__ import annotations

import random
import threading

import pytest

from model_service.rolling import RollingMax


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_empty_window_is_zero() -> None:
    assert RollingMax(5.0, FakeClock()).value() == 0.0


def test_max_follows_the_window() -> None:
    clock = FakeClock()
    rm = RollingMax(5.0, clock)
    rm.observe(0.3)
    clock.now += 1
    rm.observe(0.9)
    clock.now += 1
    rm.observe(0.5)
    assert rm.value() == 0.9
    clock.now += 3.75  # 0.9 was observed 4.75 s ago: still inside
    assert rm.value() == 0.9
    clock.now += 0.25  # exactly 5 s ago: out; 0.5 (4 s ago) is now the max
    assert rm.value() == 0.5
    clock.now += 3
    assert rm.value() == 0.0


def test_smaller_value_after_a_larger_one_takes_over_when_it_expires() -> None:
    clock = FakeClock()
    rm = RollingMax(2.0, clock)
    rm.observe(1.0)
    clock.now += 1.5
    rm.observe(0.2)
    rm.observe(0.1)
    assert rm.value() == 1.0
    clock.now += 0.5
    assert rm.value() == 0.2


def test_matches_brute_force_on_random_data() -> None:
    rng = random.Random(7)
    clock = FakeClock()
    rm = RollingMax(3.0, clock)
    seen: list[tuple[float, float]] = []
    for _ in range(2000):
        clock.now += rng.choice([0.0, 0.01, 0.1, 0.7, 2.5])
        value = rng.random()
        rm.observe(value)
        seen.append((clock.now, value))
        expected = max((v for t, v in seen if t > clock.now - 3.0), default=0.0)
        assert rm.value() == expected


def test_concurrent_observers_keep_the_true_max() -> None:
    rm = RollingMax(60.0)
    values = [[random.Random(i).random() for _ in range(500)] for i in range(8)]
    threads = [threading.Thread(target=lambda vs=vs: [rm.observe(v) for v in vs]) for vs in values]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert rm.value() == max(max(vs) for vs in values)


def test_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        RollingMax(0.0)
