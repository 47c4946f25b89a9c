"""The verdict rules, with synthetic inputs whose answers are known."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from canarylab.experiment import VERDICT_EXIT_CODES
from canarylab.experiment.spec import CriteriaSpec
from canarylab.experiment.stats import ChangeEstimate
from canarylab.experiment.verdict import (
    FAIL,
    INCONCLUSIVE,
    INVALID,
    PASS,
    SeedResult,
    VariantHealth,
    decide,
)

CRITERIA = CriteriaSpec()


def health(name: str, **kw: object) -> VariantHealth:
    base: dict[str, object] = {"target_rps": 10.0, "achieved_rps": 10.2, "requests": 600, "errors": 0}
    return VariantHealth(name=name, **{**base, **kw})  # type: ignore[arg-type]


def change(stat: str, point: float, lo: float, hi: float) -> ChangeEstimate:
    return ChangeEstimate(stat, 1.0, 1.0 + point, point, lo, hi, 0.95, "synthetic", 1000)


CLEAR = {"p95": change("p95", -0.30, -0.35, -0.25), "max": change("max", -0.40, -0.55, -0.20)}


def run(
    *,
    stable: VariantHealth | None = None,
    canary: VariantHealth | None = None,
    changes: dict[str, ChangeEstimate] | None = None,
    seed: SeedResult | None = None,
    criteria: CriteriaSpec = CRITERIA,
) -> tuple[str, str]:
    v = decide(
        baseline="stable",
        candidate="canary",
        variants=[stable or health("stable"), canary or health("canary")],
        changes=CLEAR if changes is None else changes,
        criteria=criteria,
        seed=seed,
    )
    return v.verdict, v.reason


def test_pass_when_every_interval_clears_the_threshold() -> None:
    verdict, reason = run()
    assert verdict == PASS
    assert "p95" in reason
    assert "max" in reason


def test_inconclusive_when_an_interval_straddles_the_threshold() -> None:
    verdict, reason = run(changes={**CLEAR, "p95": change("p95", -0.08, -0.15, 0.01)})
    assert verdict == INCONCLUSIVE
    assert "straddles" in reason
    assert "p95" in reason


def test_interval_touching_the_threshold_from_below_passes() -> None:
    verdict, _ = run(changes={**CLEAR, "p95": change("p95", -0.10, -0.15, -0.05)})
    assert verdict == PASS


def test_fail_when_the_improvement_is_ruled_out() -> None:
    verdict, reason = run(changes={**CLEAR, "max": change("max", 0.01, -0.03, 0.05)})
    assert verdict == FAIL
    assert "ruled out" in reason
    assert "max" in reason


def test_invalid_when_the_achieved_rate_is_more_than_5_percent_below_target() -> None:
    verdict, reason = run(canary=health("canary", achieved_rps=9.4))
    assert verdict == INVALID
    assert "canary" in reason
    assert "9.40" in reason
    assert run(canary=health("canary", achieved_rps=9.5))[0] == PASS  # exactly 5% below is fine


def test_invalid_on_restart() -> None:
    verdict, reason = run(stable=health("stable", restarts=("model-service-stable exited with code 1",)))
    assert verdict == INVALID
    assert "restarted" in reason


def test_invalid_when_unreachable() -> None:
    verdict, reason = run(canary=health("canary", unreachable=12))
    assert verdict == INVALID
    assert "could not be reached" in reason


def test_invalid_when_no_requests_or_no_data() -> None:
    assert run(stable=health("stable", requests=0))[0] == INVALID
    no_interval = {**CLEAR, "p95": change("p95", math.nan, math.nan, math.nan)}
    verdict, reason = run(changes=no_interval)
    assert verdict == INVALID
    assert "p95" in reason


def test_invalid_beats_everything_else() -> None:
    verdict, _ = run(canary=health("canary", achieved_rps=5.0, errors=500))
    assert verdict == INVALID


def test_candidate_over_1_percent_errors_fails_even_if_faster() -> None:
    verdict, reason = run(canary=health("canary", errors=7))  # 7 / 600 = 1.2%
    assert verdict == FAIL
    assert "canary" in reason
    assert "errors" in reason
    assert run(canary=health("canary", errors=6))[0] == PASS  # exactly 1%


def test_baseline_errors_count_against_the_baseline_not_the_candidate() -> None:
    v = decide(
        baseline="stable",
        candidate="canary",
        variants=[health("stable", errors=60), health("canary")],
        changes=CLEAR,
        criteria=CRITERIA,
    )
    assert v.verdict == PASS
    assert v.error_budget_ok == {"stable": False, "canary": True}
    assert any("stable fails its error budget" in d for d in v.details)


def test_the_seed_criterion_is_reported_but_never_decides() -> None:
    met = SeedResult(baseline_max=1.0, candidate_max=0.5, min_reduction=0.05, source="processing")
    not_met = SeedResult(baseline_max=1.0, candidate_max=1.2, min_reduction=0.05, source="processing")
    assert met.met is True
    assert not_met.met is False
    straddle = {**CLEAR, "p95": change("p95", -0.08, -0.15, 0.01)}
    verdict, _ = run(changes=straddle, seed=met)
    assert verdict == INCONCLUSIVE  # the seed alone would have said "success"
    v = decide(
        baseline="stable",
        candidate="canary",
        variants=[health("stable"), health("canary")],
        changes=CLEAR,
        criteria=CRITERIA,
        seed=not_met,
    )
    assert v.verdict == PASS  # ... and its "failure" does not stop a PASS
    assert any("seed criterion" in d and "not met" in d and "does not decide" in d for d in v.details)


def test_seed_criterion_exactly_as_stated() -> None:
    assert SeedResult(1.0, 0.95, 0.05, "client").met is True  # exactly 5% lower
    assert SeedResult(1.0, 0.951, 0.05, "client").met is False
    assert SeedResult(math.nan, 1.0, 0.05, "client").met is None


def test_threshold_and_statistics_come_from_the_spec() -> None:
    strict = replace(CRITERIA, decide=replace(CRITERIA.decide, min_reduction=0.5))
    assert run(criteria=strict)[0] in (INCONCLUSIVE, FAIL)
    only_p95 = replace(CRITERIA, decide=replace(CRITERIA.decide, statistics=("p95",)))
    verdict, _ = run(changes={**CLEAR, "max": change("max", 0.2, 0.1, 0.3)}, criteria=only_p95)
    assert verdict == PASS


@pytest.mark.parametrize("verdict", [PASS, FAIL, INCONCLUSIVE, INVALID])
def test_every_verdict_has_an_exit_code(verdict: str) -> None:
    assert VERDICT_EXIT_CODES[verdict] in (0, 1, 3, 4)


def test_seed_criterion_with_a_scrape_gap_is_unknown_not_met() -> None:
    seed = SeedResult(baseline_max=0.250, candidate_max=0.200, min_reduction=0.05, source="processing")
    assert (seed.met, seed.result) == (True, "met")
    gap = SeedResult(0.250, 0.200, 0.05, "processing", exact=False)
    assert gap.change == pytest.approx(-0.2)
    assert (gap.met, gap.result) == (None, "unknown (scrape gap)")
    assert "unknown (scrape gap)" in gap.describe()
    assert SeedResult(math.nan, 0.2, 0.05, "processing", exact=False).result == "no data"
