"""Collection: what Prometheus says about one repetition's window, as plain data.

Every query comes from :mod:`canarylab.queries` (the dashboard renders the same
templates).  For each repetition window [start, end]:

- over the whole window (instant queries at ``end``, range = the window):
  p50/p90/p95/p99 of the app's response time and of the processing time per
  variant, the exact processing maximum, request rate, error ratio, the
  model-service's CPU per process and per request, counter resets (restarts)
  and scrape success;
- over time (range queries, 1 s step, 5 s rate window): the same quantiles,
  request rate, exact processing max, queue depth, in-flight requests, threads
  busy and CPU per process, for the plots;
- per model-service pod, over the whole window: requests answered, processing p95 and CPU
  per request (how the load spread over a variant's replicas);
- the cumulative bucket counters at ``start`` and at ``end``: their difference
  is the request-level latency distribution of the window;
- the same counters on a time grid (one step per block): the time blocks of
  the block bootstrap, differenced between timestamps where every variant has
  data, so block i covers the same seconds in both variants.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import canarylab_contract as c
from canarylab import queries as q
from canarylab.experiment.prometheus import PrometheusClient, Sample, Series, by_label
from canarylab.experiment.stats import Histogram

#: Rate window of the over-time queries: at least 4 scrapes at 1 s.
RANGE_WINDOW = "5s"
RANGE_WINDOW_SECONDS = 5.0
RANGE_STEP = 1.0
#: A repetition is cut into about this many time blocks for the block bootstrap.
BLOCKS_PER_REPETITION = 20

WINDOW_QUERIES: tuple[q.Query, ...] = (
    *(q.app_response_quantile(p) for p in q.PERCENTILES),
    *(q.processing_quantile(p) for p in q.PERCENTILES),
    q.PROCESSING_MAX,
    q.REQUEST_RATE,
    q.ERROR_RATIO,
    q.APP_COUNTER_RESETS,
    q.MODEL_COUNTER_RESETS,
    q.CPU_PER_PROCESS,
    q.CPU_PER_REQUEST,
)
RANGE_QUERIES: tuple[q.Query, ...] = (
    *(q.app_response_quantile(p) for p in q.PERCENTILES),
    q.PROCESSING_MAX,
    q.REQUEST_RATE,
    q.QUEUE_DEPTH,
    q.IN_FLIGHT,
    q.UTILISATION,
    q.CPU_PER_PROCESS,
)
POD_QUERIES: tuple[q.Query, ...] = (q.POD_REQUESTS, q.POD_PROCESSING_P95, q.POD_CPU_PER_REQUEST)
#: The names of the collected histograms (``RepetitionCollection.histograms``).
APP_RESPONSE, PROCESSING = "app_response", "processing"
HISTOGRAMS: dict[str, q.Query] = {APP_RESPONSE: q.APP_RESPONSE_BUCKETS, PROCESSING: q.PROCESSING_BUCKETS}


def window_range(start: float, end: float) -> str:
    """The PromQL range of the instant queries at ``end`` over the window: samples after ``start`` only.

    ``f(x[d])`` at time T takes the samples in (T-d, T] (Prometheus 3; 2.x also the one
    exactly at T-d), so d must not exceed end - start: whole milliseconds, rounded down,
    less one for the millisecond rounding of the evaluation time.  Rounding *up* (as
    whole seconds did) took in the scrape just before ``start``: a processing maximum of
    the load before.  A sample in the first millisecond that is left out loses nothing:
    the next sample's rolling maximum covers the same requests.
    """
    return f"{max(1, math.floor((end - start) * 1000) - 1)}ms"


def longest_sample_gaps(
    series: list[Series], start: float, end: float, label: str = c.LABEL_VARIANT
) -> dict[str, float]:
    """Per variant, the longest time in [start, end] without a sample of ``series``.

    ``series`` is a range query of ``timestamp(gauge)``: its values are the times of the
    gauge's samples (one per successful scrape).  The window's edges count as samples,
    so a late first or an early last sample shows as a gap too.
    """
    times: dict[str, set[float]] = {}
    for s in series:
        seen = times.setdefault(s.labels.get(label, ""), set())
        seen.update(v for _t, v in s.points if math.isfinite(v) and start < v <= end)
    return {
        variant: max(b - a for a, b in itertools.pairwise([start, *sorted(seen), end]))
        for variant, seen in times.items()
    }


def histograms_from_counters(
    before: list[Sample], after: list[Sample], label: str = c.LABEL_VARIANT
) -> tuple[dict[str, Histogram], list[str]]:
    """Per-variant histograms of the increase between two bucket-counter snapshots.

    A bucket that went down means the counters restarted: that is reported
    (second value) and the "after" counts alone are used for that variant.
    """

    def table(samples: list[Sample]) -> dict[str, dict[float, float]]:
        out: dict[str, dict[float, float]] = {}
        for s in samples:
            le = s.labels.get("le")
            if le is None:
                continue
            out.setdefault(s.labels.get(label, ""), {})[float(le)] = s.value
        return out

    t0, t1 = table(before), table(after)
    hists: dict[str, Histogram] = {}
    resets: list[str] = []
    for variant, end_counts in t1.items():
        start_counts = t0.get(variant, {})
        diff = {le: n - start_counts.get(le, 0.0) for le, n in end_counts.items()}
        if any(d < 0 for d in diff.values()):
            resets.append(variant)
            diff = dict(end_counts)
        hists[variant] = Histogram.from_cumulative({le: max(0.0, d) for le, d in diff.items()})
    return hists, resets


def block_plan(start: float, end: float, min_block: float) -> tuple[int, float]:
    """How to cut [start, end] into time blocks: (count, seconds each), blocks >= ``min_block``."""
    span = max(end - start, 0.0)
    target = max(min_block, span / BLOCKS_PER_REPETITION, 1e-3)
    count = max(1, int(span // target))
    return count, (span / count if span > 0 else target)


def blocks_on_shared_grid(
    series: list[Series], label: str = c.LABEL_VARIANT
) -> tuple[list[float], dict[str, list[Histogram]]]:
    """Per-variant histograms of consecutive time blocks on a time grid shared by every variant.

    ``series`` is a range query of cumulative bucket counters (one series per
    ``le`` and variant, evaluated at the same timestamps).  A failed scrape
    makes a variant's series stale, so the range query has no point for it
    there; such a timestamp is dropped for *every* variant, and the counters
    are differenced between the remaining shared timestamps.  Block i therefore
    covers the same seconds in every variant (a block spanning a gap is
    longer, in all of them).  A variant has a point at a timestamp only when
    every one of its buckets has a finite value there.  Returns the shared
    timestamps (block i is [grid[i], grid[i+1]]) and the blocks.
    """
    table: dict[str, dict[float, dict[float, float]]] = {}  # variant -> time -> le -> count
    les: dict[str, set[float]] = {}
    for s in series:
        le = s.labels.get("le")
        if le is None:
            continue
        variant = s.labels.get(label, "")
        per_time = table.setdefault(variant, {})
        les.setdefault(variant, set()).add(float(le))
        for t, v in s.points:
            if math.isfinite(v):
                per_time.setdefault(t, {})[float(le)] = v
    complete = [
        {t for t, snap in per_time.items() if len(snap) == len(les[v])} for v, per_time in table.items()
    ]
    grid = sorted(set.intersection(*complete)) if complete else []
    out: dict[str, list[Histogram]] = {}
    for variant, per_time in table.items():
        blocks: list[Histogram] = []
        for t0, t1 in itertools.pairwise(grid):
            before, after = per_time[t0], per_time[t1]
            diff = {le: max(0.0, n - before.get(le, 0.0)) for le, n in after.items()}
            blocks.append(Histogram.from_cumulative(diff))
        out[variant] = blocks
    return grid, out


def histograms_over_time(series: list[Series], label: str = c.LABEL_VARIANT) -> dict[str, list[Histogram]]:
    """Per-variant histograms of consecutive time blocks, on the grid of :func:`blocks_on_shared_grid`."""
    return blocks_on_shared_grid(series, label)[1]


def _sparse(h: Histogram) -> dict[str, list[Any]]:
    idx = [i for i, n in enumerate(h.counts) if n]
    return {"i": idx, "n": [h.counts[i] for i in idx]}


def _dense(data: Mapping[str, Any], bounds: tuple[float, ...]) -> Histogram:
    counts = [0.0] * len(bounds)
    for i, n in zip(data.get("i", []), data.get("n", []), strict=False):
        counts[int(i)] = float(n)
    return Histogram(bounds, tuple(counts))


@dataclass
class RepetitionCollection:
    """What Prometheus said about one repetition (plain data, JSON-able via to_dict)."""

    repetition: int
    start: float
    end: float
    window: str
    #: query key -> {variant: value} over the whole window
    window_values: dict[str, dict[str, float]] = field(default_factory=dict)
    #: query key (POD_QUERIES) -> {variant: {pod: value}} over the whole window
    pods: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    #: query key -> {variant: [(t, v), ...]}
    series: dict[str, dict[str, list[tuple[float, float]]]] = field(default_factory=dict)
    #: "app_response"/"processing" -> {variant: Histogram}
    histograms: dict[str, dict[str, Histogram]] = field(default_factory=dict)
    #: the app's response-time histogram per consecutive time block: {variant: [Histogram, ...]}
    blocks: dict[str, list[Histogram]] = field(default_factory=dict)
    block_seconds: float = 0.0
    #: the shared time grid of the blocks: block i covers [block_edges[i], block_edges[i+1]] in every variant
    block_edges: list[float] = field(default_factory=list)
    #: job -> share of successful scrapes
    scrape_success: dict[str, float] = field(default_factory=dict)
    #: variant -> the longest time in the window without a sample of the processing-max gauge
    #: (a successful scrape of the model-service); see :meth:`processing_gap`
    processing_gaps: dict[str, float] = field(default_factory=dict)
    #: variant -> restart evidence found in Prometheus
    restarts: dict[str, list[str]] = field(default_factory=dict)
    queries: dict[str, str] = field(default_factory=dict)
    #: validity warnings found while collecting (a wait for Prometheus timed out, scrapes missing)
    warnings: list[str] = field(default_factory=list)
    #: the share of the host's CPU time that was busy during the load (host.py); None: not measured
    host_cpu_busy: float | None = None
    #: the host's logical CPUs (None: not recorded)
    host_cpus: int | None = None

    def _blocks_dict(self) -> dict[str, Any]:
        firsts = [hs[0] for hs in self.blocks.values() if hs]
        return {
            "seconds": self.block_seconds,
            "edges": self.block_edges,
            "bounds": [_num(b) for b in firsts[0].bounds] if firsts else [],
            "variants": {v: [_sparse(h) for h in hs] for v, hs in self.blocks.items()},
        }

    def processing_gap(self, variant: str) -> float | None:
        """The longest time without a successful scrape of ``variant``'s model-service, in seconds.

        Results saved before ``processing_gaps`` existed: estimated from the over-time
        processing max (``max_over_time[5s]`` every second): a run of k steps without a
        value means no sample for more than 5 s + (k - 1) steps, estimated as 5 s + k
        steps; None when nothing is missing.
        """
        if variant in self.processing_gaps:
            return self.processing_gaps[variant]
        points = self.series.get(q.PROCESSING_MAX.key, {}).get(variant)
        if points is None:
            return None
        have = {round(t - self.start) for t, x in points if math.isfinite(x)}
        missing = longest = 0
        for step in range(int((self.end - self.start) // RANGE_STEP) + 1):
            missing = 0 if step in have else missing + 1
            longest = max(longest, missing)
        return c.PROCESSING_MAX_WINDOW_SECONDS + longest * RANGE_STEP if longest else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "repetition": self.repetition,
            "start": self.start,
            "end": self.end,
            "window": self.window,
            "window_values": {k: {v: _num(x) for v, x in d.items()} for k, d in self.window_values.items()},
            "pods": {
                k: {v: {pod: _num(x) for pod, x in per.items()} for v, per in d.items()}
                for k, d in self.pods.items()
            },
            "series": {
                k: {v: [[t, _num(x)] for t, x in pts] for v, pts in d.items()} for k, d in self.series.items()
            },
            "histograms": {
                k: {
                    v: {"bounds": [_num(b) for b in h.bounds], "counts": list(h.counts)} for v, h in d.items()
                }
                for k, d in self.histograms.items()
            },
            "blocks": self._blocks_dict(),
            "scrape_success": self.scrape_success,
            "processing_gaps": self.processing_gaps,
            "restarts": self.restarts,
            "queries": self.queries,
            "warnings": self.warnings,
            "host_cpu_busy": self.host_cpu_busy,
            "host_cpus": self.host_cpus,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RepetitionCollection:
        def num(x: Any) -> float:
            return math.nan if x is None else float(x)

        def bound(x: Any) -> float:
            return math.inf if x is None or x == "+Inf" else float(x)

        return cls(
            repetition=int(data["repetition"]),
            start=float(data["start"]),
            end=float(data["end"]),
            window=str(data["window"]),
            window_values={
                k: {v: num(x) for v, x in d.items()} for k, d in (data.get("window_values") or {}).items()
            },
            pods={
                k: {v: {str(pod): num(x) for pod, x in per.items()} for v, per in d.items()}
                for k, d in (data.get("pods") or {}).items()
            },
            series={
                k: {v: [(float(t), num(x)) for t, x in pts] for v, pts in d.items()}
                for k, d in (data.get("series") or {}).items()
            },
            histograms={
                k: {
                    v: Histogram(tuple(bound(b) for b in h["bounds"]), tuple(float(n) for n in h["counts"]))
                    for v, h in d.items()
                }
                for k, d in (data.get("histograms") or {}).items()
            },
            blocks={
                v: [_dense(h, tuple(bound(b) for b in data["blocks"]["bounds"])) for h in hs]
                for v, hs in ((data.get("blocks") or {}).get("variants") or {}).items()
            },
            block_seconds=float((data.get("blocks") or {}).get("seconds") or 0.0),
            block_edges=[float(t) for t in (data.get("blocks") or {}).get("edges") or []],
            scrape_success={k: float(v) for k, v in (data.get("scrape_success") or {}).items()},
            processing_gaps={k: float(v) for k, v in (data.get("processing_gaps") or {}).items()},
            restarts={k: list(v) for k, v in (data.get("restarts") or {}).items()},
            queries=dict(data.get("queries") or {}),
            warnings=[str(w) for w in data.get("warnings") or []],
            host_cpu_busy=None if data.get("host_cpu_busy") is None else float(data["host_cpu_busy"]),
            host_cpus=None if data.get("host_cpus") is None else int(data["host_cpus"]),
        )


def _num(x: float) -> float | str | None:
    if x is None or math.isnan(x):
        return None
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    return x


def collect_repetition(
    client: PrometheusClient,
    repetition: int,
    start: float,
    end: float,
    selector: str = "",
    *,
    min_block: float = 1.0,
) -> RepetitionCollection:
    """Query everything about [start, end]; ``end`` must be at least one scrape after the load ended.

    Warnings the client gathered since the last collection (a timed-out
    :func:`~canarylab.experiment.prometheus.wait_scraped_after` before this
    window ended) are moved into the collection's ``warnings``.
    """
    window = window_range(start, end)
    out = RepetitionCollection(repetition=repetition, start=start, end=end, window=window)
    out.warnings.extend(client.warnings)
    client.warnings.clear()
    for query in WINDOW_QUERIES:
        expr = query.render(window, selector)
        out.queries[f"window:{query.key}"] = expr
        out.window_values[query.key] = by_label(
            client.query(expr, at=end, key=f"rep{repetition}:{query.key}")
        )
    for query in POD_QUERIES:
        expr = query.render(window, selector)
        out.queries[f"window:{query.key}"] = expr
        per: dict[str, dict[str, float]] = {}
        for sample in client.query(expr, at=end, key=f"rep{repetition}:{query.key}"):
            variant = sample.labels.get(c.LABEL_VARIANT, "")
            per.setdefault(variant, {})[sample.labels.get(c.LABEL_POD, "")] = sample.value
        out.pods[query.key] = per
    for query in RANGE_QUERIES:
        expr = query.render(RANGE_WINDOW, selector)
        out.queries[f"range:{query.key}"] = expr
        series = client.query_range(expr, start, end, RANGE_STEP, key=f"rep{repetition}:range:{query.key}")
        out.series[query.key] = {s.labels.get(c.LABEL_VARIANT, ""): s.points for s in series}
    for name, query in HISTOGRAMS.items():
        expr = query.render(window, selector)
        out.queries[f"buckets:{name}"] = expr
        before = client.query(expr, at=start, key=f"rep{repetition}:{query.key}:start")
        after = client.query(expr, at=end, key=f"rep{repetition}:{query.key}:end")
        hists, resets = histograms_from_counters(before, after)
        out.histograms[name] = hists
        for variant in resets:
            out.restarts.setdefault(variant, []).append(f"{name} bucket counters went down (a restart)")
    n_blocks, block = block_plan(start, end, min_block)
    expr = q.APP_RESPONSE_BUCKETS.render(window, selector)
    series = client.query_range(expr, start, start + n_blocks * block, block, key=f"rep{repetition}:blocks")
    out.block_edges, out.blocks = blocks_on_shared_grid(series)
    out.block_seconds = block
    evaluated = {t for s in series for t, _ in s.points}
    if len(evaluated) > len(out.block_edges):
        out.warnings.append(
            f"{len(evaluated) - len(out.block_edges)} of {len(evaluated)} time-grid points had no data for a "
            "variant (a failed scrape); they were dropped for every variant, so the time blocks around them "
            "are longer and still cover the same seconds in both"
        )
    times = q.PROCESSING_MAX_SAMPLE_TIMES.render(window, selector)
    out.queries["range:processing_max_sample_times"] = times
    step = max(0.25, min(RANGE_STEP, min_block / 2))  # finer than the scrapes: every sample shows
    series = client.query_range(times, start, end, step, key=f"rep{repetition}:processing_scrapes")
    out.processing_gaps = longest_sample_gaps(series, start, end)
    scrape = q.SCRAPE_SUCCESS.render(window, selector)
    out.queries["window:scrape_success"] = scrape
    out.scrape_success = by_label(client.query(scrape, at=end, key=f"rep{repetition}:scrape_success"), "job")
    for key, what in ((q.APP_COUNTER_RESETS.key, "app"), (q.MODEL_COUNTER_RESETS.key, "model-service")):
        for variant, n in out.window_values.get(key, {}).items():
            if n and n > 0:
                out.restarts.setdefault(variant, []).append(f"{what} counters reset {n:g} times (a restart)")
    return out
