"""The guarantees benchmarks/verdict_quality.py measures, held at a few hundred seeded simulations.

The benchmark prints the figures (docs/experiment.md quotes them); this keeps its code
running and the engine's statistics honest: the model, the engine's own paired t-interval,
block bootstrap and rules.  Seeded, so each assertion always sees the same simulations.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "verdict_quality.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("verdict_quality", BENCHMARK)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["verdict_quality"] = module
    spec.loader.exec_module(module)
    return module


def test_identical_variants_rarely_pass_and_intervals_cover(bench: ModuleType) -> None:
    r = bench.simulate(np.random.default_rng(11), bench.Scenario(10, 0.07, 0.0, 20), 400, 0)
    assert r["PASS"] <= 1.5
    assert r["FAIL"] <= 5.0
    assert 91.0 <= r["coverage"] <= 99.0


def test_the_default_design_finds_a_25_percent_reduction(bench: ModuleType) -> None:
    r = bench.simulate(np.random.default_rng(12), bench.Scenario(10, 0.07, -0.25, 20), 300, 0)
    assert r["PASS"] >= 90.0


def test_one_run_never_passes_though_its_interval_often_clears(bench: ModuleType) -> None:
    """The reason one run may not PASS: its interval misses run-to-run offsets."""
    r = bench.simulate(np.random.default_rng(13), bench.Scenario(1, 0.10, 0.0, 60), 60, 200)
    assert r["PASS"] == r["FAIL"] == 0.0
    assert r["coverage"] < 85.0  # promised 95%


def test_sequential_mode_rarely_passes_identical_variants(bench: ModuleType) -> None:
    r = bench.methods(
        np.random.default_rng(21), bench.Scenario(10, 0.07, 0.0, 20), bench.Scenario(40, 0.07, 0.0, 5), 300
    )
    assert r["sequential"][0] <= 1.5
    assert r["default"][0] <= 1.5


def test_sequential_mode_finds_a_25_percent_reduction_with_less_load(bench: ModuleType) -> None:
    r = bench.methods(
        np.random.default_rng(22),
        bench.Scenario(10, 0.07, -0.25, 20),
        bench.Scenario(40, 0.07, -0.25, 5),
        150,
    )
    passed, load = r["sequential"]
    assert passed >= 90.0
    assert load <= 0.6 * r["default"][1]  # the same most load, stopped early


def test_the_anchors_pass_a_5_percent_boundary_far_more_often(bench: ModuleType) -> None:
    """At the boundary (a true -5%) PASS should happen at most 5% of the time: the seed's rule
    and a Kayenta-style judge pass it several times as often as the engine's designs."""
    r = bench.methods(
        np.random.default_rng(23),
        bench.Scenario(10, 0.07, -0.05, 20),
        bench.Scenario(40, 0.07, -0.05, 5),
        150,
    )
    assert r["default"][0] <= 6.0
    assert r["sequential"][0] <= 6.0
    assert r["seed rule"][0] >= 25.0
    assert r["kayenta"][0] >= 15.0
