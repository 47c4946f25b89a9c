"""The verdict rules: pure functions of the measurements, no I/O.

Each verdict means one thing, and its reason says which case it is:

1. INVALID: the measurement broke, so nothing can be said of the candidate: a
   variant's achieved (offered) rate is more than 5% below target, the host's
   CPUs were saturated in a repetition (over 98% busy), the baseline
   broke (restarted, unreachable, malformed-request 4xx answers, errors over the
   budget: there is nothing sound to compare with), or a deciding statistic has
   no data.
2. FAIL, the candidate broke: it restarted, could not be reached, answered 4xx,
   or caused errors (5xx, timeouts) over the absolute budget (1%) or more often
   than the baseline beyond chance (Fisher's exact test, one-sided, at the
   decision's confidence), or it missed an absolute SLO of the spec
   (``criteria.slo``, e.g. p95 <= 500 ms; a baseline that misses one is only
   reported).  Errors are an outcome, not noise.
3. On the confidence intervals of the relative change (candidate/baseline - 1)
   of every deciding statistic, with threshold -min_reduction:
   - FAIL when some interval lies wholly above 0 (the candidate is slower), and
     PASS when every interval lies at or below the threshold, each only when the
     intervals include run-to-run variation (3 or more repetitions): one run's
     interval cannot see that two processes differ from run to run, so it
     neither passes nor fails on latency (benchmarks/verdict_quality.py);
   - INCONCLUSIVE otherwise, saying which: better beyond the threshold, or
     slower, but from one run only; better, but not shown to be min_reduction
     better; a min_reduction improvement ruled out but not worse; or the
     interval straddles.  It also says what change this run could have shown.

The seed's criterion (exact max fell by >= 5% in the run) is evaluated and
reported beside the verdict, and never decides it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from canarylab.experiment.spec import CriteriaSpec, SloSpec
from canarylab.experiment.stats import ChangeEstimate
from canarylab.experiment.summary import SeedOutcome
from canarylab.experiment.vocabulary import (
    FAIL,
    INCONCLUSIVE,
    INVALID,
    MIN_REPETITIONS_TO_PASS,
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


def _broke(v: VariantHealth) -> list[str]:
    """How ``v`` broke as a service (restarted, unreachable, 4xx); empty when it did not."""
    problems: list[str] = []
    if v.unreachable:
        problems.append(f"{v.name} could not be reached ({v.unreachable} requests: nobody listening)")
    if v.restarts:
        problems.append(f"{v.name} exited or restarted during the run: {'; '.join(v.restarts)}")
    if v.client_errors:
        problems.append(f"{v.name} answered {v.client_errors} requests with 4xx (rejected them as malformed)")
    return problems


def validity_problems(variants: Sequence[VariantHealth], min_achieved: float, baseline: str) -> list[str]:
    """Why the measurement cannot be trusted; empty when it can.

    Only the baseline's own breakage invalidates the run; the candidate's is a FAIL (:func:`decide`).
    """
    problems: list[str] = []
    for v in variants:
        if v.requests == 0:
            problems.append(f"{v.name}: no requests were sent")
            continue
        if v.name == baseline:
            problems.extend(_broke(v))
        if not math.isfinite(v.achieved_rps) or v.achieved_rps < min_achieved * v.target_rps:
            problems.append(
                f"{v.name}: the generator achieved {v.achieved_rps:.2f} req/s, more than "
                f"{(1 - min_achieved):.0%} below the target {v.target_rps:g} req/s"
            )
    return problems


def host_problems(host_cpu_busy: Sequence[tuple[int, float | None]], limit: float) -> list[str]:
    """Why the host was saturated, per (repetition, busy share) over ``limit``; empty when it was not."""
    return [
        f"the host was saturated: its CPUs were {busy:.1%} busy in repetition {rep} (over "
        f"{limit:.0%}), so the variants and the generator queued for a CPU and the latencies "
        "measure the host; stop what else runs on it, or lower the rate or the work per request"
        for rep, busy in host_cpu_busy
        if busy is not None and math.isfinite(busy) and busy > limit
    ]


def more_errors_p(candidate: VariantHealth, baseline: VariantHealth) -> float:
    """One-sided p-value of Fisher's exact test that ``candidate`` errs more often than ``baseline``."""
    from scipy.stats import fisher_exact  # noqa: PLC0415 - scipy.stats takes ~1 s to import

    table = [
        [candidate.errors, max(candidate.requests - candidate.errors, 0)],
        [baseline.errors, max(baseline.requests - baseline.errors, 0)],
    ]
    return float(fisher_exact(table, alternative="greater").pvalue)


def _error_failure(cand: VariantHealth, base: VariantHealth, criteria: CriteriaSpec) -> str | None:
    """Why the candidate's errors fail it (over the budget, or beyond the baseline's), or None."""
    if cand.error_ratio > criteria.max_error_ratio:
        return (
            f"{cand.name} caused {cand.error_ratio:.1%} errors (5xx/timeouts), "
            f"over the {criteria.max_error_ratio:.0%} budget"
        )
    alpha = 1 - criteria.decide.confidence
    if cand.errors > 0 and cand.error_ratio > base.error_ratio:
        p = more_errors_p(cand, base)
        if p < alpha:
            return (
                f"{cand.name} caused more errors than {base.name} beyond chance: "
                f"{cand.errors}/{cand.requests} against {base.errors}/{base.requests} "
                f"(Fisher's exact test, one-sided p = {p:.3g} < {alpha:.2g})"
            )
    return None


def slo_misses(v: VariantHealth, values: Mapping[str, float], slo: SloSpec) -> list[str]:
    """The SLOs ``v`` missed: a client statistic (seconds, ``values``) or its error ratio over its limit."""
    misses = [
        f"{stat} {_ms_na(values[stat])} > {_ms_na(limit)}"
        for stat, limit in slo.latency.items()
        if stat in values and math.isfinite(values[stat]) and values[stat] > limit
    ]
    if slo.error_ratio is not None and v.requests and v.error_ratio > slo.error_ratio:
        misses.append(f"errors {v.error_ratio:.1%} > {slo.error_ratio:.1%}")
    return misses


def _detectable(est: ChangeEstimate, thr: float) -> str:
    """The change this interval's width could have shown as a PASS: point + upper half-width <= -thr."""
    half = est.ci_high - est.change
    return f"{est.statistic} would have had to fall by {thr + half:.1%} or more"


def decide(
    *,
    baseline: str,
    candidate: str,
    variants: Sequence[VariantHealth],
    changes: Mapping[str, ChangeEstimate],
    criteria: CriteriaSpec,
    run_to_run: bool,
    seed: SeedResult | None = None,
    host_cpu_busy: Sequence[tuple[int, float | None]] = (),
    client_stats: Mapping[str, Mapping[str, float]] | None = None,
) -> Verdict:
    """Apply the rules above; see the module docstring.

    ``run_to_run``: whether the intervals in ``changes`` include run-to-run variation
    (the across-repetition interval); without it there is no PASS.  ``host_cpu_busy``:
    (repetition, share of the host's CPU time busy) for each measured repetition.
    ``client_stats``: per variant, the client's statistics in seconds, for the SLOs.
    """
    by_name = {v.name: v for v in variants}
    budget = {v.name: (v.error_ratio <= criteria.max_error_ratio if v.requests else False) for v in variants}
    details: list[str] = []
    for v in variants:
        if v.requests and not budget[v.name]:
            details.append(
                f"{v.name} fails its error budget: "
                f"{v.error_ratio:.1%} errors (> {criteria.max_error_ratio:.0%})"
            )
    slo = {v.name: slo_misses(v, (client_stats or {}).get(v.name, {}), criteria.slo) for v in variants}
    if slo.get(baseline):
        details.append(
            f"the baseline {baseline} misses its SLO: {', '.join(slo[baseline])} (reported; "
            "an SLO fails a candidate, and the comparison stands)"
        )
    if seed is not None:
        details.append(seed.describe())

    problems = validity_problems(variants, criteria.min_achieved_rate, baseline)
    problems.extend(host_problems(host_cpu_busy, criteria.max_host_cpu_busy))
    base = by_name.get(baseline)
    if base is not None and base.requests and not budget[baseline]:
        problems.append(
            f"the baseline {baseline} broke: {base.error_ratio:.1%} errors (5xx/timeouts), over the "
            f"{criteria.max_error_ratio:.0%} budget; there is nothing sound to compare {candidate} with"
        )
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
    if cand is not None:
        broke = _broke(cand)
        errors = _error_failure(cand, base, criteria) if base is not None else None
        missed = [f"{candidate} misses its SLO: {', '.join(slo[candidate])}"] if slo.get(candidate) else []
        if broke or errors or missed:
            reasons = [*broke, *([errors] if errors else []), *missed]
            reason = f"{candidate} broke: {reasons[0]}" if broke or errors else missed[0]
            return Verdict(FAIL, reason, (reason, *reasons[1:], *details), budget)

    deciding = [changes[s] for s in criteria.decide.statistics]
    verdict, reason = on_intervals(baseline, candidate, deciding, criteria, run_to_run)
    return Verdict(verdict, reason, (reason, *details), budget)


def on_intervals(
    baseline: str,
    candidate: str,
    deciding: Sequence[ChangeEstimate],
    criteria: CriteriaSpec,
    run_to_run: bool,
) -> tuple[VerdictName, str]:
    """Rule 3 of the module docstring: the verdict and its reason from the deciding intervals alone."""
    thr = criteria.decide.min_reduction
    conf = f"{criteria.decide.confidence:.0%}"
    worse = [e for e in deciding if e.ci_low > 0]
    cleared = [e for e in deciding if e.ci_high <= -thr]
    one_run = (
        ", but an interval from within runs cannot see how two processes differ from run to run: "
        f"run {MIN_REPETITIONS_TO_PASS} or more repetitions "
        f"(repetitions: {MIN_REPETITIONS_TO_PASS}) to decide"
    )
    if worse and run_to_run:
        return FAIL, f"{candidate} is slower than {baseline} beyond the {conf} uncertainty: " + "; ".join(
            describe_change(e) for e in worse
        )
    if worse:
        return INCONCLUSIVE, (
            f"{candidate} is slower than {baseline} within the run "
            + "; ".join(describe_change(e) for e in worse)
            + one_run
        )
    if len(cleared) == len(deciding) and run_to_run:
        return PASS, (
            f"{candidate} beats {baseline} by more than {thr:.0%} beyond the {conf} uncertainty, "
            "run-to-run variation included: " + "; ".join(describe_change(e) for e in deciding)
        )
    if len(cleared) == len(deciding):
        return INCONCLUSIVE, (
            f"{candidate} beats {baseline} by more than {thr:.0%} within the run "
            + "; ".join(describe_change(e) for e in deciding)
            + one_run
        )
    open_ = [e for e in deciding if e not in cleared]
    if all(e.ci_high < 0 for e in open_):
        case = f"{candidate} is faster, but not shown to be {thr:.0%} faster"
    elif all(e.ci_low > -thr for e in open_):
        case = f"a {thr:.0%} reduction is ruled out, but {candidate} is not shown to be slower"
    else:
        case = f"the {conf} interval straddles -{thr:.0%}"
    return INCONCLUSIVE, (
        f"{case}: "
        + "; ".join(describe_change(e) for e in open_)
        + "; with intervals this wide, "
        + ", ".join(_detectable(e, thr) for e in open_)
        + " to PASS"
        + ("" if run_to_run else f" (and {MIN_REPETITIONS_TO_PASS} or more repetitions)")
    )
