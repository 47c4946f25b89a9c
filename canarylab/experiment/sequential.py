"""Sequential mode (``sequential: true``): look after every repetition, stop once it decides.

From repetition :data:`~canarylab.experiment.vocabulary.MIN_REPETITIONS_TO_PASS` on (later
at a confidence above 95%: :func:`~canarylab.experiment.stats.first_sequential_look`), the
engine calls :func:`look` on the per-repetition statistics so far, of the spec's ``metric``
(:func:`repetition_values`: the client's latency by default).  Each
deciding statistic gets the across-repetition interval of the log ratios with the
anytime-valid critical value (:func:`~canarylab.experiment.stats.sequential_t_critical`),
a confidence sequence: it covers the true change at every look at once, so stopping at the
first look that decides keeps the error rates of a single look.  That is also why "run
more repetitions" stays valid here, where re-analysing a fixed-length test after each
added repetition inflates its false PASS (issue #11).

A look decides, and the run stops, when :func:`~canarylab.experiment.verdict.on_intervals`
gives PASS (every interval at or below -min_reduction) or FAIL (an interval wholly above
0), or when a min_reduction improvement is ruled out for some statistic (its interval
lies wholly above -min_reduction, "futile"), or when a deciding statistic has no interval
(a repetition's value missing: the analysis makes that INVALID, "no data").  Otherwise the run
goes on, up to ``repetitions``.  The final verdict is the analysis's, on every repetition
run (analysis.py uses the same confidence sequence), with the breakage and error rules
of verdict.py; errors do not stop a run early, because Fisher's test after every
repetition would not keep its error rate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from canarylab.experiment.collect import APP_RESPONSE, RepetitionCollection
from canarylab.experiment.load import LoadResult
from canarylab.experiment.spec import ExperimentSpec
from canarylab.experiment.stats import ChangeEstimate, first_sequential_look, paired_t_repetitions
from canarylab.experiment.verdict import describe_change, on_intervals
from canarylab.experiment.vocabulary import FAIL, PASS

#: What a look decided: go on, or stop with PASS, FAIL, "futile" (a min_reduction improvement
#: ruled out, INCONCLUSIVE) or "no data" (a deciding statistic has no interval: INVALID).
Decision = Literal["continue", "PASS", "FAIL", "futile", "no data"]


@dataclass(frozen=True)
class Look:
    """What one look saw: the deciding intervals after ``repetition`` repetitions, and whether
    the run stops there."""

    repetition: int
    #: seconds of load so far, the warm-up (and any calibration) included
    load_seconds: float
    estimates: Mapping[str, ChangeEstimate]
    decision: Decision
    reason: str

    @property
    def counts(self) -> bool:
        """Whether this was a look (from repetition MIN_REPETITIONS_TO_PASS on)."""
        return bool(self.estimates)

    @property
    def stops(self) -> bool:
        return self.decision != "continue"


def repetition_values(
    spec: ExperimentSpec,
    client: Mapping[str, Sequence[LoadResult]],
    reps: Sequence[RepetitionCollection],
    variant: str,
    stat: str,
) -> list[float]:
    """``stat`` of ``variant`` in each repetition, of the spec's ``metric``: bombardier's exact
    statistic, or the quantile of the app's histogram of that repetition (NaN where it has none)."""
    if spec.metric == "client_latency":
        return [r.stats()[stat] for r in client.get(variant, [])]
    hists = [r.histograms.get(APP_RESPONSE, {}).get(variant) for r in reps]
    return [math.nan if h is None or h.total <= 0 else h.stat(stat) for h in hists]


def across(
    spec: ExperimentSpec,
    client: Mapping[str, Sequence[LoadResult]],
    reps: Sequence[RepetitionCollection],
    statistics: Sequence[str],
) -> dict[str, ChangeEstimate]:
    """The across-repetition estimate of each of ``statistics`` on the spec's metric: a confidence
    sequence when the spec is sequential, else the fixed-n t-interval (analysis.py and
    :func:`look` share this)."""
    return {
        s: paired_t_repetitions(
            repetition_values(spec, client, reps, spec.baseline, s),
            repetition_values(spec, client, reps, spec.candidate, s),
            s,
            confidence=spec.criteria.decide.confidence,
            sequential=spec.sequential,
        )
        for s in statistics
    }


def repetitions_of(
    spec: ExperimentSpec, client: Mapping[str, Sequence[LoadResult]], reps: Sequence[RepetitionCollection]
) -> int:
    """How many repetitions both variants have of the spec's metric."""
    if spec.metric == "client_latency":
        return min(len(client.get(spec.baseline, [])), len(client.get(spec.candidate, [])))
    return len(reps)


def with_deciding(spec: ExperimentSpec, client: Mapping[str, Sequence[LoadResult]]) -> ExperimentSpec:
    """``spec`` with the statistics that decide this run: the spec's, and p99 where every repetition
    of both variants has ``p99_from_requests`` requests or more (one rule for analysis and looks)."""
    decide = spec.criteria.decide
    counts = [r.total for v in (spec.baseline, spec.candidate) for r in client.get(v, [])]
    enough = decide.p99_from_requests > 0 and bool(counts) and min(counts) >= decide.p99_from_requests
    if not enough or "p99" in decide.statistics:
        return spec
    statistics = (*decide.statistics, "p99")
    return replace(spec, criteria=replace(spec.criteria, decide=replace(decide, statistics=statistics)))


def look(
    spec: ExperimentSpec,
    client: Mapping[str, Sequence[LoadResult]],
    reps: Sequence[RepetitionCollection],
    *,
    load_seconds: float,
) -> Look:
    """The look after the repetitions so far (the module docstring says when it stops)."""
    n = repetitions_of(spec, client, reps)
    spec = with_deciding(spec, client)
    stats = spec.criteria.decide.statistics
    first = first_sequential_look(spec.criteria.decide.confidence)
    if n < first:
        why = f"repetition {n}: the first look is after repetition {first}"
        return Look(n, load_seconds, {}, "continue", why)
    estimates = across(spec, client, reps, stats)
    missing = [s for s, e in estimates.items() if not (math.isfinite(e.ci_low) and math.isfinite(e.ci_high))]
    if missing:
        why = f"no data to estimate the change of {', '.join(missing)}: {estimates[missing[0]].method}"
        return Look(n, load_seconds, estimates, "no data", why)
    verdict, reason = on_intervals(
        spec.baseline, spec.candidate, list(estimates.values()), spec.criteria, run_to_run=True
    )
    thr = spec.criteria.decide.min_reduction
    decision: Decision = "continue"
    if verdict == PASS:
        decision = "PASS"
    elif verdict == FAIL:
        decision = "FAIL"
    else:
        futile = [e for e in estimates.values() if e.ci_low > -thr]
        if futile:
            decision = "futile"
            reason = (
                f"a {thr:.0%} reduction is ruled out (a confidence sequence holds wherever the run "
                "stops, so stopping here keeps its error rate): "
                + "; ".join(describe_change(e) for e in futile)
            )
        elif n >= spec.repetitions:
            reason = f"the most repetitions ({spec.repetitions}) ran without a decision: {reason}"
    return Look(n, load_seconds, estimates, decision, reason)
