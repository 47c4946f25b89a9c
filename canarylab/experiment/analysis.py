"""From collected data to ``summary.json``: per-variant statistics, uncertainty, the verdict.

Pure: it reads the spec, the parsed bombardier results and the Prometheus
collections, and returns the types of :mod:`canarylab.experiment.summary`
(:func:`analyse`: per-variant figures, :func:`uncertainty`, the seed's
criterion, the verdict).  The random generator is seeded from the
spec, so the same data always gives the same summary.

Uncertainty (see docs/experiment.md):
- always, *within the run*: paired block bootstrap over time of the app's
  fine-bucket response-time histogram (blocks on a time grid shared by both
  variants), and for comparison the bootstrap of the pooled request-level
  distribution;
- with 3 or more repetitions, *across repetitions*: paired t-interval on the
  log ratios of the per-repetition client-side statistics (exact, from
  bombardier), plus each statistic's spread; in sequential mode the same
  interval with the anytime-valid critical value (sequential.py).  This one then decides, because
  it also captures the run-to-run variation that a single run cannot show.

Only the across-repetition interval may PASS (:func:`~canarylab.experiment.verdict.decide`,
``run_to_run``) or FAIL on latency: with fewer repetitions the within-run
intervals give INCONCLUSIVE at most (FAIL only when the candidate broke).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

import canarylab_contract as c
from canarylab import queries as q
from canarylab.experiment import sequential
from canarylab.experiment.collect import (
    APP_RESPONSE,
    PROCESSING,
    RANGE_STEP,
    RANGE_WINDOW_SECONDS,
    RepetitionCollection,
)
from canarylab.experiment.load import LoadResult
from canarylab.experiment.spec import ExperimentSpec, VariantSpec
from canarylab.experiment.stats import (
    ChangeEstimate,
    Histogram,
    block_bootstrap,
    bootstrap_histograms,
    spread,
)
from canarylab.experiment.summary import (
    QUANTILE_STATISTICS,
    Analysis,
    Change,
    Comparison,
    Latency,
    LoadRegime,
    PodFigures,
    ProcessingFigures,
    Quantiles,
    RepetitionFigures,
    SeedCriterion,
    SeedOnClient,
    ServerFigures,
    Spread,
    Validity,
    VariantFigures,
    VariantLoad,
    as_statistic,
)
from canarylab.experiment.verdict import SeedResult, VariantHealth, decide
from canarylab.experiment.vocabulary import (
    INVALID,
    MIN_REPETITIONS_TO_PASS,
    STATISTICS,
    Metric,
    Statistic,
    seconds_to_ms,
)

#: What the deciding interval compares, per metric, in the words of ``decided_by``.
METRIC_WORDS: Mapping[Metric, str] = {
    "client_latency": "client-side statistics",
    "app_response_seconds": "the app's response-time histogram, per repetition",
}
#: Repetitions from which the across-repetition interval decides (and may PASS).
MIN_REPETITIONS_ACROSS = MIN_REPETITIONS_TO_PASS
N_BOOT = 2000
#: Fewer time blocks than this: the block bootstrap has too little to resample.
MIN_BLOCKS = 5
#: A baseline with at least this many requests waiting for a thread on average queued.
QUEUED_MEAN = 0.1
#: A process busy on the CPU for at least this share of one core is CPU-bound: Python code
#: holds the GIL, so one process cannot use much more than one core however many threads it has.
CPU_BOUND_SHARE = 0.5
#: A repetition whose host was busier than this (but not saturated) gets a warning.
HOST_BUSY_WARN = 0.90
#: A job scraped less often than this gets a warning in the summary.
SCRAPE_WARN = 0.9


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def paired_blocks(
    reps: Sequence[RepetitionCollection], base: str, cand: str
) -> tuple[list[Histogram], list[Histogram]]:
    """The time blocks of every repetition, paired: block i of both variants covers the same seconds.

    The collection builds them on a time grid shared by the variants
    (:func:`~canarylab.experiment.collect.blocks_on_shared_grid`), so both have
    the same number.  A repetition where the numbers differ (data collected
    before the shared grid) cannot be paired by index and is left out
    (:func:`unpaired_repetitions` names it); pairing a truncated list would
    compare different seconds.
    """
    out_b: list[Histogram] = []
    out_c: list[Histogram] = []
    for r in reps:
        b, c_ = r.blocks.get(base, []), r.blocks.get(cand, [])
        if len(b) == len(c_):
            out_b.extend(b)
            out_c.extend(c_)
    return out_b, out_c


def unpaired_repetitions(reps: Sequence[RepetitionCollection], base: str, cand: str) -> list[int]:
    """Repetitions whose variants have different numbers of time blocks (left out of the block bootstrap)."""
    return [r.repetition for r in reps if len(r.blocks.get(base, [])) != len(r.blocks.get(cand, []))]


def pooled_histogram(reps: Sequence[RepetitionCollection], name: str, variant: str) -> Histogram | None:
    hists = [r.histograms.get(name, {}).get(variant) for r in reps]
    present = [h for h in hists if h is not None]
    if not present:
        return None
    total = present[0]
    for h in present[1:]:
        total = total + h
    return total


def processing_max_gap(r: RepetitionCollection, variant: str, variants: Sequence[str]) -> float | None:
    """The gap (s) that makes ``variant``'s processing maximum in ``r`` inexact, or None.

    The gauge is the maximum of the last PROCESSING_MAX_WINDOW_SECONDS; when the
    model-service missed scrapes (scrape success below 1: its own job, or the shared
    model-service job of the lab) and its gauge went unsampled for longer than that
    window, a maximum in the gap was never seen.
    """
    jobs = [
        share
        for job, share in r.scrape_success.items()
        if "model-service" in job and (variant in job or not any(v in job for v in variants))
    ]
    gap = r.processing_gap(variant)
    if gap is None or gap <= c.PROCESSING_MAX_WINDOW_SECONDS:
        return None
    return gap if not jobs or min(jobs) < 1.0 else None


def _health(
    spec: ExperimentSpec, variant: str, results: Sequence[LoadResult], restarts: list[str]
) -> VariantHealth:
    return VariantHealth(
        name=variant,
        target_rps=float(results[0].rate) if results and math.isfinite(results[0].rate) else spec.load.rate,
        achieved_rps=min((r.achieved_rps for r in results), default=math.nan),
        requests=sum(r.total for r in results),
        errors=sum(r.variant_errors for r in results),
        unreachable=sum(r.unreachable for r in results),
        client_errors=sum(r.req4xx for r in results),
        restarts=tuple(restarts),
    )


def _ms_of(hist: Histogram | None) -> Quantiles:
    if hist is None:
        return Quantiles()
    return Quantiles(**{f"{s}_ms": seconds_to_ms(hist.stat(s)) for s in QUANTILE_STATISTICS})


def client_latency(results: Sequence[LoadResult]) -> Latency:
    """Client-side statistics over the repetitions: percentiles averaged, max the largest."""
    per_rep = [r.stats() for r in results]
    means: dict[str, float | None] = {}
    for stat in QUANTILE_STATISTICS:
        values = [s[stat] for s in per_rep if math.isfinite(s[stat])]
        means[f"{stat}_ms"] = seconds_to_ms(float(np.mean(values))) if values else None
    maxima = [s["max"] for s in per_rep if math.isfinite(s["max"])]
    return Latency(**means, max_ms=seconds_to_ms(max(maxima)) if maxima else None)


def client_seconds(latency: Latency) -> dict[str, float]:
    """The client's statistics in seconds (as the SLOs are written), the ones measured."""
    return {s: ms / 1000.0 for s in STATISTICS if (ms := latency.ms(s)) is not None}


def _repetition_figures(
    variant: str, results: Sequence[LoadResult], reps: Sequence[RepetitionCollection], proc_max: list[float]
) -> tuple[RepetitionFigures, ...]:
    out = []
    for i, r in enumerate(results):
        server = (
            Quantiles(
                **{
                    f"{s}_ms": seconds_to_ms(
                        reps[i].window_values.get(f"app_response_{s}", {}).get(variant, math.nan)
                    )
                    for s in QUANTILE_STATISTICS
                }
            )
            if i < len(reps)
            else Quantiles()
        )
        out.append(
            RepetitionFigures(
                repetition=i + 1,
                achieved_rps=_finite(r.achieved_rps),
                requests=r.total,
                errors=r.variant_errors,
                client=Latency(**{f"{k}_ms": seconds_to_ms(x) for k, x in r.stats().items()}),
                server=server,
                processing_max_ms=seconds_to_ms(proc_max[i]) if i < len(proc_max) else None,
            )
        )
    return tuple(out)


def _spread(results: Sequence[LoadResult]) -> dict[Statistic, Spread] | None:
    if len(results) < 2:
        return None
    out: dict[Statistic, Spread] = {}
    for s in STATISTICS:
        d = spread([r.stats()[s] for r in results])
        out[s] = Spread(
            n=int(d["n"] or 0),
            mean=seconds_to_ms(d["mean"]),
            std=seconds_to_ms(d["std"]),
            min=seconds_to_ms(d["min"]),
            max=seconds_to_ms(d["max"]),
        )
    return out


def variant_figures(
    spec: ExperimentSpec,
    variant: str,
    results: Sequence[LoadResult],
    reps: Sequence[RepetitionCollection],
    health: VariantHealth,
) -> VariantFigures:
    """One variant's figures over every repetition (``error_budget_ok`` is set once decided)."""
    names = [v.name for v in spec.variants]
    app_hist = pooled_histogram(reps, APP_RESPONSE, variant)
    proc_hist = pooled_histogram(reps, PROCESSING, variant)
    proc_max = [r.window_values.get(q.PROCESSING_MAX.key, {}).get(variant, math.nan) for r in reps]
    proc_max_f = [x for x in proc_max if math.isfinite(x)]
    proc_gaps = [g for g in (processing_max_gap(r, variant, names) for r in reps) if g is not None]
    spec_v = spec.variant(variant)
    return VariantFigures(
        threads=spec_v.threads,
        env=dict(spec_v.env),
        app_env=dict(spec_v.app_env),
        target_rps=health.target_rps,
        achieved_rps=_finite(float(np.mean([r.achieved_rps for r in results])) if results else math.nan),
        achieved_rps_min=_finite(health.achieved_rps),
        requests=health.requests,
        errors=health.errors,
        error_ratio=_finite(health.error_ratio),
        timeouts=sum(r.timeouts for r in results),
        http_5xx=sum(r.req5xx for r in results),
        http_4xx=health.client_errors,
        unreachable=health.unreachable,
        restarts=health.restarts,
        client=client_latency(results),
        server=ServerFigures(
            metric=c.APP_MODEL_RESPONSE_SECONDS,
            source="Prometheus histogram (bucket increases over the repetition windows)",
            quantiles=_ms_of(app_hist),
            max_ms=seconds_to_ms(app_hist.max_bound()) if app_hist else None,
            requests=round(app_hist.total) if app_hist else 0,
        ),
        processing=ProcessingFigures(
            metric=c.MODEL_PROCESSING_SECONDS,
            quantiles=_ms_of(proc_hist),
            max_ms=seconds_to_ms(max(proc_max_f)) if proc_max_f else None,
            max_exact=not proc_gaps,
            scrape_gap_s=round(max(proc_gaps), 3) if proc_gaps else None,
            max_source=c.MODEL_PROCESSING_WINDOW_MAX_SECONDS,
        ),
        repetitions=_repetition_figures(variant, results, reps, proc_max),
        spread=_spread(results),
    )


@dataclass(frozen=True)
class Uncertainty:
    """The estimates of the relative change, per statistic, and which of them decide."""

    #: paired block bootstrap (or, with too few blocks, the request-level bootstrap)
    within_run: Mapping[str, ChangeEstimate]
    request_level: Mapping[str, ChangeEstimate]
    #: paired t-interval across repetitions (3 or more), else empty
    across: Mapping[str, ChangeEstimate]
    decided_by: str

    @property
    def deciding(self) -> Mapping[str, ChangeEstimate]:
        return self.across or self.within_run

    @property
    def run_to_run(self) -> bool:
        """Whether the deciding intervals include run-to-run variation: only then may they PASS."""
        return bool(self.across)


def uncertainty(
    spec: ExperimentSpec,
    client: Mapping[str, Sequence[LoadResult]],
    reps: Sequence[RepetitionCollection],
    rng: np.random.Generator,
) -> Uncertainty:
    """The uncertainty of candidate / baseline - 1 (the module docstring says which decides)."""
    base, cand = spec.baseline, spec.candidate
    conf = spec.criteria.decide.confidence
    request_level: dict[str, ChangeEstimate] = {}
    hb, hc = pooled_histogram(reps, APP_RESPONSE, base), pooled_histogram(reps, APP_RESPONSE, cand)
    if hb is not None and hc is not None and hb.total > 0 and hc.total > 0:
        for s in STATISTICS:
            request_level[s] = bootstrap_histograms(hb, hc, s, rng, n_boot=N_BOOT, confidence=conf)
    blocks_b, blocks_c = paired_blocks(reps, base, cand)
    within: dict[str, ChangeEstimate] = {}
    if len(blocks_b) >= MIN_BLOCKS:
        block_s = float(np.mean([r.block_seconds for r in reps])) if reps else None
        for s in STATISTICS:
            within[s] = block_bootstrap(
                blocks_b, blocks_c, s, rng, n_boot=N_BOOT, confidence=conf, block_seconds=block_s
            )
        decided_by = "within the run: paired block bootstrap over time of the app's fine-bucket histogram"
    else:  # too few blocks (a very short run): the request-level bootstrap, knowingly too narrow
        within = request_level
        decided_by = "within the run: bootstrap of the request-level distribution from the app's histogram"
    across: dict[str, ChangeEstimate] = {}
    n = sequential.repetitions_of(spec, client, reps)
    same = len(client.get(base, [])) == len(client.get(cand, []))
    if n >= MIN_REPETITIONS_ACROSS and same:
        across = sequential.across(spec, client, reps, STATISTICS)
        interval = (
            "anytime-valid confidence sequence (sequential)" if spec.sequential else "paired t-interval"
        )
        decided_by = f"across repetitions ({n}): {interval} on the log ratios of {METRIC_WORDS[spec.metric]}"
    return Uncertainty(within_run=within, request_level=request_level, across=across, decided_by=decided_by)


def changes_of(estimates: Mapping[str, ChangeEstimate]) -> dict[Statistic, Change]:
    """The estimates as summary.json's :class:`Change` values."""
    return {as_statistic(s): Change.from_dict(e.to_dict()) for s, e in estimates.items()}


def comparison(spec: ExperimentSpec, u: Uncertainty, variants: Mapping[str, VariantFigures]) -> Comparison:
    base, cand = variants[spec.baseline].client, variants[spec.candidate].client
    return Comparison(
        decided_by=u.decided_by,
        statistics=tuple(as_statistic(s) for s in spec.criteria.decide.statistics),
        min_reduction=spec.criteria.decide.min_reduction,
        confidence=spec.criteria.decide.confidence,
        changes=changes_of(u.deciding),
        within_run=changes_of(u.within_run),
        request_level=changes_of(u.request_level),
        across_repetitions=changes_of(u.across) or None,
        client_change={
            s: _finite((cand.ms(s) or math.nan) / (base.ms(s) or math.nan) - 1) for s in STATISTICS
        },
    )


def seed_results(
    spec: ExperimentSpec, variants: Mapping[str, VariantFigures]
) -> tuple[SeedResult, SeedResult]:
    """The seed's criterion on the spec's exact maximum (the other one when it has no data),
    and on the client's maximum."""
    base, cand = spec.baseline, spec.candidate
    min_reduction = spec.criteria.seed.min_reduction
    proc = {v: f.processing.max_ms for v, f in variants.items()}
    cli = {v: f.client.max_ms for v, f in variants.items()}
    source = spec.criteria.seed.source
    chosen = proc if source == "processing" else cli
    if chosen[base] is None or chosen[cand] is None:  # fall back to the other exact maximum
        source = "client" if source == "processing" else "processing"
        chosen = cli if source == "client" else proc
    exact = variants[base].processing.max_exact and variants[cand].processing.max_exact
    seed = SeedResult(
        baseline_max=(chosen[base] or math.nan) / 1000.0,
        candidate_max=(chosen[cand] or math.nan) / 1000.0,
        min_reduction=min_reduction,
        source=source,
        exact=source == "client" or exact,
    )
    on_client = SeedResult(
        baseline_max=(cli[base] or math.nan) / 1000.0,
        candidate_max=(cli[cand] or math.nan) / 1000.0,
        min_reduction=min_reduction,
        source="client",
    )
    return seed, on_client


def seed_criterion(spec: ExperimentSpec, seed: SeedResult, on_client: SeedResult) -> SeedCriterion:
    return SeedCriterion(
        statement=f"the maximum processing time falls by at least {spec.criteria.seed.min_reduction:.0%}",
        source=seed.source,
        exact=seed.exact,
        which_maximum=(
            f"exact maximum recorded by the model-service ({c.MODEL_PROCESSING_WINDOW_MAX_SECONDS}, "
            "max_over_time over each repetition window)"
            if seed.source == "processing"
            else "exact maximum latency measured by the client (bombardier)"
        ),
        baseline_max_ms=seconds_to_ms(seed.baseline_max),
        candidate_max_ms=seconds_to_ms(seed.candidate_max),
        change=_finite(seed.change),
        met=seed.met,
        result=seed.result,
        client=SeedOnClient(
            baseline_max_ms=seconds_to_ms(on_client.baseline_max),
            candidate_max_ms=seconds_to_ms(on_client.candidate_max),
            change=_finite(on_client.change),
            met=on_client.met,
        ),
    )


def _mean_and_max(
    reps: Sequence[RepetitionCollection], key: str, variant: str, duration: float, lag: float = 0.0
) -> tuple[float | None, float | None]:
    """Mean and maximum of an over-time series while the load ran: from ``lag`` seconds after each
    repetition's start (a rate's window, to be wholly inside the load) to ``duration`` after it.
    The window a repetition is collected over also holds the wait after the load (collect.py), in
    which nothing is in flight; a mean over it would understate the load.

    Both ends take half a step's slack: Prometheus gives the steps' times in milliseconds, so the
    step at exactly ``lag`` can come back a fraction of a millisecond early; when ``lag`` equals
    ``duration`` (a rate window as long as a short repetition) that step is the only one."""
    slack = RANGE_STEP / 2
    values = [
        x
        for r in reps
        for t, x in r.series.get(key, {}).get(variant, [])
        if math.isfinite(x) and r.start + lag - slack <= t <= r.start + duration + slack
    ]
    return (float(np.mean(values)), float(max(values))) if values else (None, None)


def _window_mean(reps: Sequence[RepetitionCollection], key: str, variant: str) -> float | None:
    values = [x for r in reps if math.isfinite(x := r.window_values.get(key, {}).get(variant, math.nan))]
    return float(np.mean(values)) if values else None


def _processes(env: Mapping[str, str]) -> int:
    try:
        return max(1, int(env.get("MODEL_SERVICE_PROCESSES", "1")))
    except ValueError:
        return 1


def _variant_load(v: VariantSpec, reps: Sequence[RepetitionCollection], duration: float) -> VariantLoad:
    processes = _processes(v.env)
    in_flight, _ = _mean_and_max(reps, q.IN_FLIGHT.key, v.name, duration)
    queue, queue_max = _mean_and_max(reps, q.QUEUE_DEPTH.key, v.name, duration)
    # A rate over the whole window would be diluted by the wait after the load; CPU per request
    # is a ratio of two rates over the same window, so it is not.
    lag = min(RANGE_WINDOW_SECONDS, duration)
    cpu_process, _ = _mean_and_max(reps, q.CPU_PER_PROCESS.key, v.name, duration, lag=lag)
    cpu_request = _window_mean(reps, q.CPU_PER_REQUEST.key, v.name)
    return VariantLoad(
        threads=v.threads,
        processes=processes,
        mean_in_flight=in_flight,
        utilisation=None if in_flight is None else in_flight / (v.threads * processes * v.replicas),
        mean_queue=queue,
        max_queue=queue_max,
        cpu_per_process=cpu_process,
        cpu_ms_per_request=None if cpu_request is None else cpu_request * 1000.0,
        replicas=v.replicas,
    )


def pod_figures(spec: ExperimentSpec, reps: Sequence[RepetitionCollection]) -> tuple[PodFigures, ...]:
    """Each model-service pod's requests, share, processing p95 and CPU per request over the repetitions."""
    out: list[PodFigures] = []
    for v in spec.variants:

        def per_pod(key: str, variant: str = v.name) -> dict[str, list[float]]:
            found: dict[str, list[float]] = {}
            for r in reps:
                for pod, x in r.pods.get(key, {}).get(variant, {}).items():
                    if math.isfinite(x):
                        found.setdefault(pod, []).append(x)
            return found

        requests = {pod: sum(xs) for pod, xs in per_pod(q.POD_REQUESTS.key).items()}
        p95, cpu = per_pod(q.POD_PROCESSING_P95.key), per_pod(q.POD_CPU_PER_REQUEST.key)
        total = sum(requests.values())
        for pod in sorted(requests.keys() | p95.keys()):
            n = requests.get(pod, 0.0)
            out.append(
                PodFigures(
                    variant=v.name,
                    pod=pod,
                    requests=n,
                    share=n / total if total > 0 else None,
                    processing_p95_ms=float(np.median(p95[pod])) * 1000.0 if pod in p95 else None,
                    cpu_ms_per_request=float(np.mean(cpu[pod])) * 1000.0 if pod in cpu else None,
                )
            )
    return tuple(out)


def pod_warnings(spec: ExperimentSpec, pods: Sequence[PodFigures]) -> list[str]:
    """A variant whose replicas did not all serve: fewer pods answered than the file asked for."""
    warnings: list[str] = []
    for v in spec.variants:
        mine = [p for p in pods if p.variant == v.name]
        if not mine:
            continue  # not measured (results from before per-pod figures)
        serving = [p for p in mine if p.requests >= 1]
        if len(serving) < v.replicas:
            warnings.append(
                f"{v.name}: {len(serving)} of its {v.replicas} model-service pods answered requests; "
                "the load did not reach every replica (check the pods: kubectl -n canarylab get pods)"
            )
    return warnings


def _cpu_cause(base: VariantLoad, host_cpus: int | None) -> tuple[bool | None, str]:
    """Whether the baseline's work was CPU-bound, and the sentence that says what that means."""
    if base.cpu_per_process is None:
        return None, ""
    ms = base.cpu_ms_per_request
    per_request = "" if ms is None else f", {ms:.1f} ms of CPU a request"
    cores = "" if host_cpus is None else f", up to this host's {host_cpus} CPUs"
    each = f"each of its {base.processes} processes" if base.processes > 1 else "its process"
    used = f"{each} used {base.cpu_per_process:.0%} of one core{per_request}"
    if base.cpu_per_process >= CPU_BOUND_SHARE:
        return True, (
            f"  Its work was CPU-bound: {used}.  Python runs one thread of a process at a time (the "
            f"GIL), so its requests in flight waited for the GIL, and more threads cannot serve more "
            f"at once; more processes can{cores}."
        )
    return False, f"  Not CPU-bound: {used}, so its threads mostly waited (for I/O), not for the CPU."


def load_regime(spec: ExperimentSpec, reps: Sequence[RepetitionCollection]) -> LoadRegime:
    """What "significant load" meant in this run: each variant's threads busy, its queue and its
    CPU over the repetitions (the model-service's metrics, every scrape), and a plain statement
    of whether the baseline queued, why, and, if it did not, what to do."""
    per = {v.name: _variant_load(v, reps, spec.load.duration) for v in spec.variants}
    host_cpus = max((r.host_cpus for r in reps if r.host_cpus), default=None)
    base, rate = per[spec.baseline], spec.load.rate
    pods = "" if base.replicas == 1 else f" {base.replicas} pods'"
    busy = (
        ""
        if base.utilisation is None
        else f", its{pods} {base.capacity} threads {base.utilisation:.0%} busy on average"
    )
    cpu_bound, cause = _cpu_cause(base, host_cpus)
    queued: bool | None
    if base.mean_queue is None or base.max_queue is None:
        queued = None
        statement = (
            f"At {rate} req/s the baseline {spec.baseline}'s queue was not measured (no samples of "
            f"{c.MODEL_QUEUE_DEPTH}), so whether this was significant load is not known{busy}.{cause}"
        )
    elif base.mean_queue >= QUEUED_MEAN:
        queued = True
        statement = (
            f"Significant load: at {rate} req/s the baseline {spec.baseline} queued, "
            f"{base.mean_queue:.1f} requests waiting for a thread on average (at most "
            f"{base.max_queue:g}){busy}.{cause}"
        )
    else:
        queued = False
        statement = (
            f"No queueing: at {rate} req/s {base.mean_queue:.2f} requests waited for one of the "
            f"baseline {spec.baseline}'s threads on average (at most {base.max_queue:g}){busy}. "
            "This is not significant load: with no request waiting, more threads or processes have "
            "nothing to remove.  Find the rate where the baseline starts to queue with --calibrate "
            "(docs/experiment.md, Calibration), or raise load.rate."
        )
    return LoadRegime(
        rate_per_variant=rate,
        variants=per,
        queued=queued,
        statement=statement,
        cpu_bound=cpu_bound,
        host_cpus=host_cpus,
        pods=pod_figures(spec, reps),
    )


def validity_warnings(
    spec: ExperimentSpec, reps: Sequence[RepetitionCollection], healths: Mapping[str, VariantHealth]
) -> list[str]:
    """What may weaken the measurement without invalidating it."""
    warnings: list[str] = []
    for r in reps:
        busy = r.host_cpu_busy
        if busy is not None and HOST_BUSY_WARN < busy <= spec.criteria.max_host_cpu_busy:
            warnings.append(
                f"repetition {r.repetition}: the host's CPUs were {busy:.0%} busy; near saturation "
                "the variants and the generator start to queue for a CPU"
            )
        for job, share in sorted(r.scrape_success.items()):
            if math.isfinite(share) and share < SCRAPE_WARN:
                warnings.append(
                    f"repetition {r.repetition}: {job} answered {share:.0%} of scrapes; its server-side "
                    "statistics may miss part of the window (a scrape failed or timed out)"
                )
        warnings.extend(f"repetition {r.repetition}: {w}" for w in r.warnings)
    for rep in unpaired_repetitions(reps, spec.baseline, spec.candidate):
        warnings.append(
            f"repetition {rep}: the variants' time blocks differ in number, so they cannot be paired; "
            "the repetition was left out of the block bootstrap"
        )
    for v, h in healths.items():
        if h.errors and h.error_ratio <= spec.criteria.max_error_ratio:
            warnings.append(f"{v}: {h.errors} errors, within the budget")
    return warnings


def analyse(
    spec: ExperimentSpec,
    client: Mapping[str, Sequence[LoadResult]],
    reps: Sequence[RepetitionCollection],
    *,
    target_restarts: Mapping[str, Sequence[str]] | None = None,
    deployment_warnings: Sequence[str] = (),
) -> Analysis:
    """The analysis part of summary.json: figures, uncertainty, the seed's criterion, the verdict.

    ``deployment_warnings``: where the variants that ran are not the file's (a lab target's
    :func:`canarylab.experiment.deployment.lab_warnings`); they are validity warnings."""
    spec = sequential.with_deciding(spec, client)
    rng = np.random.default_rng(spec.seed)
    names = [v.name for v in spec.variants]
    restarts: dict[str, list[str]] = {v: list((target_restarts or {}).get(v, [])) for v in names}
    for r in reps:
        for v, items in r.restarts.items():
            restarts.setdefault(v, []).extend(f"repetition {r.repetition}: {i}" for i in items)
    healths = {v: _health(spec, v, client.get(v, []), restarts.get(v, [])) for v in names}
    figures = {v: variant_figures(spec, v, client.get(v, []), reps, healths[v]) for v in names}
    u = uncertainty(spec, client, reps, rng)
    seed, on_client = seed_results(spec, figures)
    regime = load_regime(spec, reps)
    host = [(r.repetition, r.host_cpu_busy) for r in reps]
    verdict = decide(
        baseline=spec.baseline,
        candidate=spec.candidate,
        variants=[healths[v] for v in names],
        changes=u.deciding,
        criteria=spec.criteria,
        run_to_run=u.run_to_run,
        seed=seed,
        host_cpu_busy=host,
        client_stats={v: client_seconds(f.client) for v, f in figures.items()},
    )
    figures = {
        v: replace(f, error_budget_ok=verdict.error_budget_ok.get(v, False)) for v, f in figures.items()
    }
    return Analysis(
        verdict=verdict.verdict,
        reason=verdict.reason,
        details=tuple(verdict.details),
        baseline=spec.baseline,
        candidate=spec.candidate,
        variants=figures,
        target_restarts={v: tuple((target_restarts or {}).get(v, [])) for v in names},
        comparison=comparison(spec, u, figures),
        seed_criterion=seed_criterion(spec, seed, on_client),
        validity=Validity(
            valid=verdict.verdict != INVALID,
            min_achieved_rate=spec.criteria.min_achieved_rate,
            achieved_rate_definition=(
                "requests the generator sent (answered, failed or timed out) / configured duration"
            ),
            warnings=tuple(
                validity_warnings(spec, reps, healths)
                + pod_warnings(spec, regime.pods)
                + list(deployment_warnings)
            ),
            host_cpu_busy=tuple(busy for _, busy in host),
            max_host_cpu_busy=spec.criteria.max_host_cpu_busy,
        ),
        load_regime=regime,
    )
