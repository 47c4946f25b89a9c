"""The verdict rules, with synthetic inputs whose answers are known."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from canarylab.experiment import VERDICT_EXIT_CODES
from canarylab.experiment.spec import CriteriaSpec, SloSpec
from canarylab.experiment.stats import ChangeEstimate
from canarylab.experiment.verdict import (
    FAIL,
    INCONCLUSIVE,
    INVALID,
    PASS,
    SeedResult,
    VariantHealth,
    Verdict,
    decide,
)

CRITERIA = CriteriaSpec()
#: Two deciding statistics, for the rules on "every interval".
BOTH = replace(CRITERIA, decide=replace(CRITERIA.decide, statistics=("p95", "p99")))


def health(name: str, **kw: object) -> VariantHealth:
    base: dict[str, object] = {"target_rps": 10.0, "achieved_rps": 10.2, "requests": 600, "errors": 0}
    return VariantHealth(name=name, **{**base, **kw})  # type: ignore[arg-type]


def change(stat: str, point: float, lo: float, hi: float) -> ChangeEstimate:
    return ChangeEstimate(stat, 1.0, 1.0 + point, point, lo, hi, 0.95, "synthetic", 1000)


CLEAR = {"p95": change("p95", -0.30, -0.35, -0.25), "p99": change("p99", -0.40, -0.55, -0.20)}


def run(
    *,
    stable: VariantHealth | None = None,
    canary: VariantHealth | None = None,
    changes: dict[str, ChangeEstimate] | None = None,
    seed: SeedResult | None = None,
    criteria: CriteriaSpec = BOTH,
    run_to_run: bool = True,
    host_cpu_busy: tuple[tuple[int, float | None], ...] = (),
) -> tuple[str, str]:
    v = decide(
        baseline="stable",
        candidate="canary",
        variants=[stable or health("stable"), canary or health("canary")],
        changes=CLEAR if changes is None else changes,
        criteria=criteria,
        run_to_run=run_to_run,
        seed=seed,
        host_cpu_busy=host_cpu_busy,
    )
    return v.verdict, v.reason


def test_pass_when_every_interval_clears_the_threshold() -> None:
    verdict, reason = run()
    assert verdict == PASS
    assert "p95" in reason
    assert "p99" in reason
    assert "run-to-run variation included" in reason


def test_one_run_never_passes_however_clear() -> None:
    """Within-run intervals cannot see run-to-run variation: INCONCLUSIVE unless something broke."""
    verdict, reason = run(run_to_run=False)
    assert verdict == INCONCLUSIVE
    assert "within the run" in reason
    assert "repetitions: 3" in reason
    # nor fails on latency: slower within one run is no more sound than faster
    slower = {**CLEAR, "p95": change("p95", 0.20, 0.10, 0.30)}
    verdict, reason = run(changes=slower, run_to_run=False)
    assert verdict == INCONCLUSIVE
    assert "canary is slower than stable within the run" in reason
    assert run(changes=slower)[0] == FAIL
    # a candidate that broke fails from one run too
    assert run(canary=health("canary", unreachable=3), run_to_run=False)[0] == FAIL


def test_inconclusive_when_an_interval_straddles_the_threshold() -> None:
    verdict, reason = run(changes={**CLEAR, "p95": change("p95", -0.08, -0.15, 0.01)})
    assert verdict == INCONCLUSIVE
    assert "straddles" in reason
    assert "p95" in reason
    # what this run could have shown: -8% + the upper half-width (9%) + the 5% threshold
    assert "p95 would have had to fall by 14.0% or more to PASS" in reason


def test_faster_but_not_shown_to_be_5_percent_faster_is_inconclusive() -> None:
    verdict, reason = run(changes={**CLEAR, "p95": change("p95", -0.04, -0.07, -0.01)})
    assert verdict == INCONCLUSIVE
    assert "faster, but not shown to be 5% faster" in reason


def test_interval_touching_the_threshold_from_below_passes() -> None:
    verdict, _ = run(changes={**CLEAR, "p95": change("p95", -0.10, -0.15, -0.05)})
    assert verdict == PASS


def test_a_ruled_out_improvement_that_is_not_slower_is_inconclusive_not_fail() -> None:
    verdict, reason = run(changes={**CLEAR, "p99": change("p99", 0.01, -0.03, 0.05)})
    assert verdict == INCONCLUSIVE
    assert "5% reduction is ruled out, but canary is not shown to be slower" in reason
    assert "p99" in reason


def test_fail_when_the_candidate_is_slower_beyond_the_uncertainty() -> None:
    verdict, reason = run(changes={**CLEAR, "p99": change("p99", 0.08, 0.02, 0.15)})
    assert verdict == FAIL
    assert "canary is slower than stable" in reason
    assert "p99" in reason


def test_invalid_when_the_achieved_rate_is_more_than_5_percent_below_target() -> None:
    verdict, reason = run(canary=health("canary", achieved_rps=9.4))
    assert verdict == INVALID
    assert "canary" in reason
    assert "9.40" in reason
    assert run(canary=health("canary", achieved_rps=9.5))[0] == PASS  # exactly 5% below is fine


def test_invalid_when_the_host_was_saturated_in_a_repetition() -> None:
    verdict, reason = run(host_cpu_busy=((1, 0.60), (2, 0.995), (3, None)))
    assert verdict == INVALID
    assert reason.startswith("the host was saturated: its CPUs were 99.5% busy in repetition 2 (over 98%)")
    assert "stop what else runs on it" in reason
    assert run(host_cpu_busy=((1, 0.98), (2, None)))[0] == PASS  # at the limit, or not measured: fine
    lenient = replace(BOTH, max_host_cpu_busy=1.0)
    assert run(host_cpu_busy=((1, 0.995),), criteria=lenient)[0] == PASS


def test_a_baseline_that_broke_invalidates_a_candidate_that_broke_fails() -> None:
    restart = ("model-service-x exited with code 1",)
    for broke in ({"restarts": restart}, {"unreachable": 12}, {"client_errors": 3}):
        verdict, reason = run(stable=health("stable", **broke))
        assert verdict == INVALID, broke
        assert reason.startswith("stable"), reason
        verdict, reason = run(canary=health("canary", **broke))
        assert verdict == FAIL, broke
        assert reason.startswith("canary broke: canary"), reason
    assert "restarted" in run(canary=health("canary", restarts=restart))[1]
    assert "could not be reached" in run(canary=health("canary", unreachable=12))[1]
    assert "4xx" in run(canary=health("canary", client_errors=3))[1]


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
    assert "over the 1% budget" in reason
    # exactly 1%, as often as the baseline: within the budget, and no more than the baseline
    assert run(canary=health("canary", errors=6), stable=health("stable", errors=6))[0] == PASS


def test_candidate_errors_beyond_the_baselines_fail_within_the_budget() -> None:
    """6/600 against 0/600 is within the 1% budget but not chance: Fisher's exact test, one-sided."""
    verdict, reason = run(canary=health("canary", errors=6))
    assert verdict == FAIL
    assert "more errors than stable beyond chance: 6/600 against 0/600" in reason
    assert "p = 0.0154" in reason
    assert run(canary=health("canary", errors=2))[0] == PASS  # p = 0.25: could be chance
    assert run(canary=health("canary", errors=6), stable=health("stable", errors=5))[0] == PASS


def test_a_baseline_over_the_error_budget_invalidates_the_run() -> None:
    v = decide(
        baseline="stable",
        candidate="canary",
        variants=[health("stable", errors=60), health("canary")],
        changes=CLEAR,
        criteria=CRITERIA,
        run_to_run=True,
    )
    assert v.verdict == INVALID
    assert "the baseline stable broke: 10.0% errors" in v.reason
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
        run_to_run=True,
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
    verdict, _ = run(changes={**CLEAR, "p99": change("p99", 0.2, 0.1, 0.3)}, criteria=only_p95)
    assert verdict == PASS
    assert run(changes={**CLEAR, "p99": change("p99", 0.2, 0.1, 0.3)})[0] == FAIL


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


def test_a_candidate_that_misses_an_slo_fails_and_a_baseline_that_does_is_reported() -> None:
    """Iter8-style absolute limits, per variant: a limit fails a candidate, never passes one."""
    slo = replace(BOTH, slo=SloSpec(latency={"p95": 0.500}, error_ratio=0.005))
    fast = {"p95": 0.300, "p99": 0.400}
    slow = {"p95": 0.612, "p99": 0.700}

    def verdict(stats: dict[str, dict[str, float]], **kw: VariantHealth) -> Verdict:
        return decide(baseline="stable", candidate="canary",
                      variants=[kw.get("stable", health("stable")), kw.get("canary", health("canary"))],
                      changes=CLEAR, criteria=slo, run_to_run=True, client_stats=stats)  # fmt: skip

    v = verdict({"stable": fast, "canary": slow})
    assert v.verdict == FAIL
    assert v.reason == "canary misses its SLO: p95 612.0 ms > 500.0 ms"
    v = verdict({"stable": fast, "canary": fast}, canary=health("canary", errors=4))  # 0.7% > 0.5%
    assert v.verdict == FAIL
    assert v.reason == "canary misses its SLO: errors 0.7% > 0.5%"
    v = verdict({"stable": slow, "canary": fast})
    assert v.verdict == PASS
    assert any(d.startswith("the baseline stable misses its SLO: p95 612.0 ms > 500.0 ms") for d in v.details)
    assert verdict({"stable": fast, "canary": fast}).verdict == PASS
    assert run()[0] == PASS  # no SLO in the spec: nothing to miss
