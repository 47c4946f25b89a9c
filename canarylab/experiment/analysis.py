"""From collected data to ``summary.json``: per-variant statistics, uncertainty, the verdict.

Pure: it reads the spec, the parsed bombardier results and the Prometheus
collections, and returns plain data.  The random generator is seeded from the
spec, so the same data always gives the same summary.

Uncertainty (see docs/experiment.md):
- always, *within the run*: paired block bootstrap over time of the app's
  fine-bucket response-time histogram (blocks on a time grid shared by both
  variants), and for comparison the bootstrap of the pooled request-level
  distribution;
- with 3 or more repetitions, *across repetitions*: paired t-interval on the
  log ratios of the per-repetition client-side statistics (exact, from
  bombardier), plus each statistic's spread.  This one then decides, because
  it also captures the run-to-run variation that a single run cannot show.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

import canarylab_contract as c
from canarylab import queries as q
from canarylab.experiment.collect import RepetitionCollection
from canarylab.experiment.load import LoadResult
from canarylab.experiment.spec import ExperimentSpec
from canarylab.experiment.stats import (
    ChangeEstimate,
    Histogram,
    block_bootstrap,
    bootstrap_histograms,
    paired_t_repetitions,
    spread,
)
from canarylab.experiment.verdict import SeedResult, VariantHealth, decide
from canarylab.experiment.vocabulary import INVALID, STATISTICS, seconds_to_ms

#: Repetitions from which the across-repetition bootstrap decides.
MIN_REPETITIONS_ACROSS = 3
N_BOOT = 2000
#: Fewer time blocks than this: the block bootstrap has too little to resample.
MIN_BLOCKS = 5
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


def _client_summary(results: Sequence[LoadResult]) -> dict[str, Any]:
    """Client-side statistics over the repetitions: percentiles averaged, max the largest."""
    per_rep = [r.stats() for r in results]
    out: dict[str, Any] = {}
    for stat in ("p50", "p90", "p95", "p99"):
        values = [s[stat] for s in per_rep if math.isfinite(s[stat])]
        out[f"{stat}_ms"] = seconds_to_ms(float(np.mean(values))) if values else None
    maxima = [s["max"] for s in per_rep if math.isfinite(s["max"])]
    out["max_ms"] = seconds_to_ms(max(maxima)) if maxima else None
    return out


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


def analyse(  # noqa: PLR0912, PLR0915 - one pass over the variants, kept together for readability
    spec: ExperimentSpec,
    client: Mapping[str, Sequence[LoadResult]],
    reps: Sequence[RepetitionCollection],
    *,
    target_restarts: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """The analysis part of summary.json (see docs/experiment.md for every key)."""
    rng = np.random.default_rng(spec.seed)
    base, cand = spec.baseline, spec.candidate
    variants = [v.name for v in spec.variants]
    conf = spec.criteria.decide.confidence
    restarts: dict[str, list[str]] = {v: list((target_restarts or {}).get(v, [])) for v in variants}
    for r in reps:
        for v, items in r.restarts.items():
            restarts.setdefault(v, []).extend(f"repetition {r.repetition}: {i}" for i in items)

    healths = {v: _health(spec, v, client.get(v, []), restarts.get(v, [])) for v in variants}

    out_variants: dict[str, Any] = {}
    for v in variants:
        results = list(client.get(v, []))
        h = healths[v]
        app_hist = pooled_histogram(reps, "app_response", v)
        proc_hist = pooled_histogram(reps, "processing", v)
        proc_max = [r.window_values.get(q.PROCESSING_MAX.key, {}).get(v, math.nan) for r in reps]
        proc_max_f = [x for x in proc_max if math.isfinite(x)]
        proc_gaps = [g for g in (processing_max_gap(r, v, variants) for r in reps) if g is not None]
        spec_v = spec.variant(v)
        entry: dict[str, Any] = {
            "threads": spec_v.threads,
            "env": spec_v.env,
            "app_env": spec_v.app_env,
            "target_rps": h.target_rps,
            "achieved_rps": _finite(
                float(np.mean([r.achieved_rps for r in results])) if results else math.nan
            ),
            "achieved_rps_min": _finite(h.achieved_rps),
            "requests": h.requests,
            "errors": h.errors,
            "error_ratio": _finite(h.error_ratio),
            "timeouts": sum(r.timeouts for r in results),
            "http_5xx": sum(r.req5xx for r in results),
            "http_4xx": h.client_errors,
            "unreachable": h.unreachable,
            "restarts": list(h.restarts),
            **_client_summary(results),
            "client_max_exact": True,
            "server": {
                "metric": c.APP_MODEL_RESPONSE_SECONDS,
                "source": "Prometheus histogram (bucket increases over the repetition windows)",
                **(
                    {f"{s}_ms": seconds_to_ms(app_hist.stat(s)) for s in ("p50", "p90", "p95", "p99")}
                    if app_hist
                    else {}
                ),
                "max_ms": seconds_to_ms(app_hist.max_bound()) if app_hist else None,
                "max_exact": False,
                "requests": round(app_hist.total) if app_hist else 0,
            },
            "processing": {
                "metric": c.MODEL_PROCESSING_SECONDS,
                **(
                    {f"{s}_ms": seconds_to_ms(proc_hist.stat(s)) for s in ("p50", "p90", "p95", "p99")}
                    if proc_hist
                    else {}
                ),
                "max_ms": seconds_to_ms(max(proc_max_f)) if proc_max_f else None,
                "max_exact": not proc_gaps,
                "scrape_gap_s": round(max(proc_gaps), 3) if proc_gaps else None,
                "max_source": c.MODEL_PROCESSING_WINDOW_MAX_SECONDS,
            },
            "repetitions": [
                {
                    "repetition": i + 1,
                    "achieved_rps": _finite(r.achieved_rps),
                    "requests": r.total,
                    "errors": r.variant_errors,
                    "client": {f"{k}_ms": seconds_to_ms(x) for k, x in r.stats().items()},
                    "server": {
                        f"{s}_ms": seconds_to_ms(
                            reps[i].window_values.get(f"app_response_{s}", {}).get(v, math.nan)
                        )
                        for s in ("p50", "p90", "p95", "p99")
                    }
                    if i < len(reps)
                    else {},
                    "processing_max_ms": seconds_to_ms(proc_max[i]) if i < len(proc_max) else None,
                }
                for i, r in enumerate(results)
            ],
        }
        if len(results) >= 2:
            entry["spread"] = {
                f"{s}_ms": {
                    k: seconds_to_ms(x) if k != "n" else x
                    for k, x in spread([r.stats()[s] for r in results]).items()
                }
                for s in STATISTICS
            }
        out_variants[v] = entry

    # --- uncertainty of the relative change ------------------------------------------------------
    request_level: dict[str, ChangeEstimate] = {}
    hb, hc = pooled_histogram(reps, "app_response", base), pooled_histogram(reps, "app_response", cand)
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
    else:  # too few blocks (a very short run): the request-level bootstrap, knowingly too narrow
        within = request_level
    across: dict[str, ChangeEstimate] = {}
    cb, cc = client.get(base, []), client.get(cand, [])
    if len(cb) >= MIN_REPETITIONS_ACROSS and len(cb) == len(cc):
        for s in STATISTICS:
            across[s] = paired_t_repetitions(
                [r.stats()[s] for r in cb], [r.stats()[s] for r in cc], s, confidence=conf
            )
    deciding = across or within
    if across:
        decided_by = (
            f"across repetitions ({len(cb)}): paired t-interval on the log ratios of client-side statistics"
        )
    elif within is not request_level:
        decided_by = "within the run: paired block bootstrap over time of the app's fine-bucket histogram"
    else:
        decided_by = "within the run: bootstrap of the request-level distribution from the app's histogram"

    # --- the seed's criterion ---------------------------------------------------------------------
    seed_spec = spec.criteria.seed
    proc = {v: out_variants[v]["processing"]["max_ms"] for v in variants}
    proc_exact = {v: bool(out_variants[v]["processing"]["max_exact"]) for v in variants}
    cli = {v: out_variants[v]["max_ms"] for v in variants}
    source = seed_spec.source
    chosen = proc if source == "processing" else cli
    if chosen[base] is None or chosen[cand] is None:  # fall back to the other exact maximum
        source = "client" if source == "processing" else "processing"
        chosen = cli if source == "client" else proc
    seed = SeedResult(
        baseline_max=(chosen[base] or math.nan) / 1000.0,
        candidate_max=(chosen[cand] or math.nan) / 1000.0,
        min_reduction=seed_spec.min_reduction,
        source=source,
        exact=source == "client" or (proc_exact[base] and proc_exact[cand]),
    )
    seed_client = SeedResult(
        baseline_max=(cli[base] or math.nan) / 1000.0,
        candidate_max=(cli[cand] or math.nan) / 1000.0,
        min_reduction=seed_spec.min_reduction,
        source="client",
    )

    verdict = decide(
        baseline=base,
        candidate=cand,
        variants=[healths[v] for v in variants],
        changes=deciding,
        criteria=spec.criteria,
        seed=seed,
    )
    for v in variants:
        out_variants[v]["error_budget_ok"] = verdict.error_budget_ok.get(v, False)

    warnings: list[str] = []
    for r in reps:
        for job, share in sorted(r.scrape_success.items()):
            if math.isfinite(share) and share < SCRAPE_WARN:
                warnings.append(
                    f"repetition {r.repetition}: {job} answered {share:.0%} of scrapes; its server-side "
                    "statistics may miss part of the window (a scrape failed or timed out)"
                )
        warnings.extend(f"repetition {r.repetition}: {w}" for w in r.warnings)
    for rep in unpaired_repetitions(reps, base, cand):
        warnings.append(
            f"repetition {rep}: the variants' time blocks differ in number, so they cannot be paired; "
            "the repetition was left out of the block bootstrap"
        )
    for v in variants:
        if healths[v].errors and healths[v].error_ratio <= spec.criteria.max_error_ratio:
            warnings.append(f"{v}: {healths[v].errors} errors, within the budget")

    return {
        "verdict": verdict.verdict,
        "reason": verdict.reason,
        "details": list(verdict.details),
        "baseline": base,
        "candidate": cand,
        "variants": out_variants,
        "target_restarts": {v: list((target_restarts or {}).get(v, [])) for v in variants},
        "comparison": {
            "decided_by": decided_by,
            "statistics": list(spec.criteria.decide.statistics),
            "min_reduction": spec.criteria.decide.min_reduction,
            "confidence": conf,
            "changes": {s: e.to_dict() for s, e in deciding.items()},
            "within_run": {s: e.to_dict() for s, e in within.items()},
            "request_level": {s: e.to_dict() for s, e in request_level.items()},
            "across_repetitions": {s: e.to_dict() for s, e in across.items()} or None,
            "client_change": {
                s: _finite(
                    (out_variants[cand][f"{s}_ms"] or math.nan) / (out_variants[base][f"{s}_ms"] or math.nan)
                    - 1
                )
                for s in STATISTICS
            },
        },
        "seed_criterion": {
            "statement": f"the maximum processing time falls by at least {seed_spec.min_reduction:.0%}",
            "source": seed.source,
            "exact": seed.exact,
            "which_maximum": (
                f"exact maximum recorded by the model-service ({c.MODEL_PROCESSING_WINDOW_MAX_SECONDS}, "
                "max_over_time over each repetition window)"
                if seed.source == "processing"
                else "exact maximum latency measured by the client (bombardier)"
            ),
            "baseline_max_ms": seconds_to_ms(seed.baseline_max),
            "candidate_max_ms": seconds_to_ms(seed.candidate_max),
            "change": _finite(seed.change),
            "met": seed.met,
            "result": seed.result,
            "deciding": False,
            "client": {
                "baseline_max_ms": seconds_to_ms(seed_client.baseline_max),
                "candidate_max_ms": seconds_to_ms(seed_client.candidate_max),
                "change": _finite(seed_client.change),
                "met": seed_client.met,
            },
        },
        "validity": {
            "valid": verdict.verdict != INVALID,
            "min_achieved_rate": spec.criteria.min_achieved_rate,
            "achieved_rate_definition": (
                "requests the generator sent (answered, failed or timed out) / configured duration"
            ),
            "warnings": warnings,
        },
    }
