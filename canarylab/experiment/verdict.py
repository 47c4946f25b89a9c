"""The verdict rules: pure functions of the measurements, no I/O.

In order:

1. INVALID when the measurement itself cannot be trusted: a variant's achieved
   (offered) rate is more than 5% below target, a variant restarted, a variant
   could not be reached, the generator sent malformed requests (4xx), or a
   deciding statistic has no data.
2. FAIL when the candidate causes more errors (5xx, timeouts) than the budget
   (1%).  Errors are an outcome, not noise.
3. On the confidence intervals of the relative change (candidate/baseline - 1)
   of every deciding statistic, with threshold -min_reduction:
   PASS when every interval lies at or below it; FAIL when some interval lies
   wholly above it (the improvement is ruled out); INCONCLUSIVE otherwise.

The seed's criterion (exact max fell by >= 5% in the run) is evaluated and
reported beside the verdict, and never decides it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from canarylab.experiment.spec import CriteriaSpec
from canarylab.experiment.stats import ChangeEstimate
from canarylab.experiment.summary import SeedOutcome
from canarylab.experiment.vocabulary import (
    FAIL,
    INCONCLUSIVE,
    INVALID,
    PASS,
    VerdictName,
    format_ms,
    format_pct,
    seconds_to_ms,
)


@dataclass(frozen=True)
class VariantHealth:
    """What validity and the error budget need to know about one variant (over all repetitions)."""

    name: str
    target_rps: float
    #: the lowest achieved (offered) rate of any repetition
    achieved_rps: float
    requests: int
    #: errors the variant caused: 5xx answers, timeouts
    errors: int
    unreachable: int = 0
    client_errors: int = 0  #: 4xx answers: the generator's requests were malformed
    restarts: tuple[str, ...] = ()

    @property
    def error_ratio(self) -> float:
        return self.errors / self.requests if self.requests else math.nan


@dataclass(frozen=True)
class SeedResult:
    """The seed's criterion: max(candidate) <= (1 - min_reduction) * max(baseline), from exact maxima."""

    baseline_max: float
    candidate_max: float
    min_reduction: float
    source: str  #: which exact maximum: "processing" (model-service) or "client" (bombardier)
    #: False when a maximum may have been missed (the model-service was not scraped for longer
    #: than its rolling window): then the criterion cannot be decided, see :attr:`result`
    exact: bool = True

    @property
    def change(self) -> float:
        b, c = self.baseline_max, self.candidate_max
        if not (math.isfinite(b) and math.isfinite(c)) or b <= 0:
            return math.nan
        return c / b - 1.0

    @property
    def met(self) -> bool | None:
        if math.isnan(self.change) or not self.exact:
            return None
        return self.change <= -self.min_reduction

    @property
    def result(self) -> SeedOutcome:
        """The criterion's outcome: "met", "not met", "unknown (scrape gap)" or "no data"."""
        if math.isnan(self.change):
            return "no data"
        if not self.exact:
            return "unknown (scrape gap)"
        return "met" if self.met else "not met"

    def describe(self) -> str:
        if math.isnan(self.change):
            return f"seed criterion (max {self.source} time falls >= {self.min_reduction:.0%}): no data"
        if not self.exact:
            return (
                f"seed criterion (max {self.source} time falls >= {self.min_reduction:.0%}): "
                f"unknown (scrape gap), {_ms_na(self.baseline_max)} -> {_ms_na(self.candidate_max)} "
                f"({_pct_na(self.change)}) is not exact: the model-service went unscraped for longer than "
                "its rolling maximum's window, so a larger maximum may have been missed"
            )
        word = "met" if self.met else "not met"
        return (
            f"seed criterion (exact max {self.source} time falls >= {self.min_reduction:.0%}): {word}, "
            f"{_ms_na(self.baseline_max)} -> {_ms_na(self.candidate_max)} ({_pct_na(self.change)}); "
            "reported beside the verdict, it does not decide it"
        )


@dataclass(frozen=True)
class Verdict:
    verdict: VerdictName
    reason: str
    #: every rule that fired, in order, for the report
    details: tuple[str, ...] = field(default_factory=tuple)
    #: per variant: did it stay within the error budget
    error_budget_ok: Mapping[str, bool] = field(default_factory=dict)


def _pct_na(x: float) -> str:
    return format_pct(x, missing="n/a")


def _ms_na(seconds: float) -> str:
    return format_ms(seconds_to_ms(seconds, digits=None), unit=" ms", missing="n/a")


def describe_change(est: ChangeEstimate) -> str:
    return f"{est.statistic} {_pct_na(est.change)} (CI {_pct_na(est.ci_low)} .. {_pct_na(est.ci_high)})"


def validity_problems(variants: Sequence[VariantHealth], min_achieved: float) -> list[str]:
    """Why the measurement cannot be trusted; empty when it can."""
    problems: list[str] = []
    for v in variants:
        if v.requests == 0:
            problems.append(f"{v.name}: no requests were sent")
            continue
        if v.unreachable:
            problems.append(f"{v.name} could not be reached ({v.unreachable} requests: nobody listening)")
        if v.restarts:
            problems.append(f"{v.name} restarted during the run: {'; '.join(v.restarts)}")
        if v.client_errors:
            problems.append(f"{v.name}: {v.client_errors} requests were rejected as malformed (4xx)")
        if not math.isfinite(v.achieved_rps) or v.achieved_rps < min_achieved * v.target_rps:
            problems.append(
                f"{v.name}: the generator achieved {v.achieved_rps:.2f} req/s, more than "
                f"{(1 - min_achieved):.0%} below the target {v.target_rps:g} req/s"
            )
    return problems


def decide(
    *,
    baseline: str,
    candidate: str,
    variants: Sequence[VariantHealth],
    changes: Mapping[str, ChangeEstimate],
    criteria: CriteriaSpec,
    seed: SeedResult | None = None,
) -> Verdict:
    """Apply the rules above; see the module docstring."""
    thr = criteria.decide.min_reduction
    by_name = {v.name: v for v in variants}
    budget = {v.name: (v.error_ratio <= criteria.max_error_ratio if v.requests else False) for v in variants}
    details: list[str] = []
    for v in variants:
        if v.requests and not budget[v.name]:
            details.append(
                f"{v.name} fails its error budget: "
                f"{v.error_ratio:.1%} errors (> {criteria.max_error_ratio:.0%})"
            )
    if seed is not None:
        details.append(seed.describe())

    problems = validity_problems(variants, criteria.min_achieved_rate)
    missing = [
        s
        for s in criteria.decide.statistics
        if s not in changes or not (math.isfinite(changes[s].ci_low) and math.isfinite(changes[s].ci_high))
    ]
    if missing:
        problems.append(f"no data to estimate the change of {', '.join(missing)}")
    if problems:
        return Verdict(INVALID, problems[0], tuple(problems + details), budget)

    cand = by_name.get(candidate)
    if cand is not None and not budget[candidate]:
        reason = (
            f"{candidate} caused {cand.error_ratio:.1%} errors (5xx/timeouts), "
            f"over the {criteria.max_error_ratio:.0%} budget"
        )
        return Verdict(FAIL, reason, (reason, *details), budget)

    deciding = [changes[s] for s in criteria.decide.statistics]
    cleared = [e for e in deciding if e.ci_high <= -thr]
    ruled_out = [e for e in deciding if e.ci_low > -thr]
    conf = f"{criteria.decide.confidence:.0%}"
    if len(cleared) == len(deciding):
        reason = (
            f"{candidate} beats {baseline} by more than {thr:.0%} beyond the {conf} uncertainty: "
            + "; ".join(describe_change(e) for e in deciding)
        )
        verdict = PASS
    elif ruled_out:
        reason = f"a {thr:.0%} reduction is ruled out at {conf}: " + "; ".join(
            describe_change(e) for e in ruled_out
        )
        verdict = FAIL
    else:
        open_ = [e for e in deciding if e not in cleared]
        reason = (
            f"the {conf} interval straddles -{thr:.0%}: "
            + "; ".join(describe_change(e) for e in open_)
            + " (run more repetitions or longer)"
        )
        verdict = INCONCLUSIVE
    return Verdict(verdict, reason, (reason, *details), budget)
