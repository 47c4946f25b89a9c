"""Statistics of the experiment, with numpy only.  Every random draw takes an explicit
``numpy.random.Generator``, so a run's analysis is reproducible from its seed.

- :func:`histogram_quantile`: a quantile from cumulative bucket counts, with the
  same interpolation as Prometheus's ``histogram_quantile``.
- :class:`Histogram`: the request-level latency distribution a fine-bucket
  histogram gives (bucket increases over the experiment window).
- :func:`bootstrap_histograms`: resample both variants' request-level
  distributions (multinomial over the buckets) and return the bootstrap
  distribution of the relative change of a statistic.
- :func:`bootstrap_repetitions`: with 3 or more repetitions, resample whole
  repetitions (paired: both variants ran at the same time) instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

#: Quantile of each percentile statistic; "max" is handled on its own.
QUANTILES: dict[str, float] = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}
STAT_NAMES: tuple[str, ...] = ("p50", "p90", "p95", "p99", "max")


def histogram_quantile(  # noqa: PLR0911 - mirrors Prometheus case by case
    q: float, bounds: Sequence[float], cumulative: Sequence[float]
) -> float:
    """Prometheus's ``histogram_quantile`` on one histogram.

    ``bounds`` are the bucket upper bounds in increasing order, the last one
    ``+Inf``; ``cumulative`` the cumulative counts of those buckets.  Like
    Prometheus: linear interpolation inside the bucket, a lowest bucket starting
    at 0, the second-highest bound when the rank falls into ``+Inf``, NaN when
    there are no observations.
    """
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    if len(bounds) != len(cumulative):
        raise ValueError("bounds and counts differ in length")
    if len(bounds) < 2 or not math.isinf(bounds[-1]):
        return math.nan
    counts = np.maximum.accumulate(np.asarray(cumulative, dtype=float))  # Prometheus: ensureMonotonic
    total = float(counts[-1])
    if total <= 0:
        return math.nan
    rank = q * total
    b = int(np.searchsorted(counts[:-1], rank, side="left"))  # first finite bucket with count >= rank
    if b == len(bounds) - 1:
        return float(bounds[-2])
    if b == 0 and bounds[0] <= 0:
        return float(bounds[0])
    start = 0.0 if b == 0 else float(bounds[b - 1])
    end = float(bounds[b])
    below = 0.0 if b == 0 else float(counts[b - 1])
    in_bucket = float(counts[b]) - below
    if in_bucket <= 0:
        return end
    return start + (end - start) * (rank - below) / in_bucket


@dataclass(frozen=True)
class Histogram:
    """Per-bucket (not cumulative) counts of a latency histogram over a window.

    ``bounds[i]`` is the upper bound of bucket i; the last bound is ``+Inf``.
    """

    bounds: tuple[float, ...]
    counts: tuple[float, ...]

    @classmethod
    def from_cumulative(cls, cumulative: Mapping[float, float]) -> Histogram:
        """From ``{le: cumulative count}`` (e.g. a Prometheus ``_bucket`` increase)."""
        bounds = sorted(cumulative)
        if not bounds or not math.isinf(bounds[-1]):
            bounds.append(math.inf)
        cum = np.maximum.accumulate(np.array([cumulative.get(b, 0.0) for b in bounds], dtype=float))
        if math.isinf(bounds[-1]) and math.inf not in cumulative:
            cum[-1] = cum[-2] if len(cum) > 1 else 0.0
        per = np.diff(np.concatenate([[0.0], cum]))
        return cls(tuple(float(b) for b in bounds), tuple(float(max(0.0, x)) for x in per))

    @classmethod
    def from_samples(cls, samples: Sequence[float] | FloatArray, bounds: Sequence[float]) -> Histogram:
        """Bucket raw samples (seconds) like a Prometheus histogram would (``le`` inclusive)."""
        finite = [float(b) for b in bounds if not math.isinf(b)]
        edges = np.array(finite)
        idx = np.searchsorted(edges, np.asarray(samples, dtype=float), side="left")
        counts = np.bincount(idx, minlength=len(finite) + 1).astype(float)
        return cls((*finite, math.inf), tuple(float(x) for x in counts))

    def __add__(self, other: Histogram) -> Histogram:
        if self.bounds != other.bounds:
            raise ValueError("cannot add histograms with different buckets")
        return Histogram(self.bounds, tuple(a + b for a, b in zip(self.counts, other.counts, strict=True)))

    @property
    def total(self) -> float:
        return float(sum(self.counts))

    @property
    def cumulative(self) -> FloatArray:
        return np.cumsum(np.asarray(self.counts, dtype=float))

    def quantile(self, q: float) -> float:
        return histogram_quantile(q, self.bounds, list(self.cumulative))

    def max_bound(self) -> float:
        """The upper bound of the highest non-empty bucket: a histogram only bounds a maximum."""
        nonzero = [i for i, n in enumerate(self.counts) if n > 0]
        if not nonzero:
            return math.nan
        i = nonzero[-1]
        return self.bounds[i] if not math.isinf(self.bounds[i]) else self.bounds[i - 1]

    def expected_max(self) -> float:
        """Estimate of the maximum: k uniform draws in the top bucket have mean max lo + (hi-lo)k/(k+1)."""
        nonzero = [i for i, n in enumerate(self.counts) if n > 0]
        if not nonzero:
            return math.nan
        i = nonzero[-1]
        lo, hi = self._edges(i)
        k = self.counts[i]
        return lo + (hi - lo) * k / (k + 1)

    def _edges(self, i: int) -> tuple[float, float]:
        lo = 0.0 if i == 0 else self.bounds[i - 1]
        hi = self.bounds[i]
        if math.isinf(hi):  # nothing above the highest finite bound is known
            hi = lo
        return lo, hi

    def stat(self, name: str) -> float:
        if name == "max":
            return self.expected_max()
        return self.quantile(QUANTILES[name])

    def stats(self) -> dict[str, float]:
        return {name: self.stat(name) for name in STAT_NAMES}

    def sample(self) -> FloatArray:
        """The request-level distribution as an array: each bucket's requests spread evenly inside it."""
        parts: list[FloatArray] = []
        for i, n in enumerate(self.counts):
            k = round(n)
            if k <= 0:
                continue
            lo, hi = self._edges(i)
            parts.append(lo + (hi - lo) * (np.arange(k, dtype=float) + 0.5) / k)
        return np.concatenate(parts) if parts else np.zeros(0)


def _resampled_stats(hist: Histogram, stat: str, rng: np.random.Generator, n_boot: int) -> FloatArray:
    """``n_boot`` bootstrap replicates of ``stat`` of ``hist``: multinomial bucket counts.

    Quantiles use Prometheus's interpolation on the resampled counts; the
    maximum is drawn as the max of the top bucket's k uniform draws
    (lo + (hi-lo) U^(1/k)).
    """
    n = round(hist.total)
    if n <= 0:
        return np.full(n_boot, math.nan)
    p = np.asarray(hist.counts, dtype=float) / hist.total
    counts = rng.multinomial(n, p, size=n_boot).astype(float)  # (n_boot, buckets)
    return stat_of_rows(counts, hist.bounds, stat, rng)


def stat_of_rows(
    counts: FloatArray, bounds_: Sequence[float], stat: str, rng: np.random.Generator
) -> FloatArray:
    """``stat`` of every row of per-bucket ``counts`` (rows: resampled histograms), vectorised.

    Quantiles: Prometheus's interpolation.  Maximum: the max of the top
    non-empty bucket's k uniform draws (lo + (hi-lo) U^(1/k)): where inside its
    bucket the maximum lies is unknown, and that uncertainty is drawn too.
    A row without observations gives NaN.
    """
    n_boot = counts.shape[0]
    empty = counts.sum(axis=1) <= 0
    bounds = np.asarray(bounds_, dtype=float)
    finite_top = bounds[-2] if len(bounds) > 1 else 0.0
    lower = np.concatenate([[0.0], bounds[:-1]])
    upper = np.where(np.isinf(bounds), finite_top, bounds)
    if stat == "max":
        top = counts.shape[1] - 1 - np.argmax(counts[:, ::-1] > 0, axis=1)
        k = counts[np.arange(n_boot), top]
        u = rng.random(n_boot) ** (1.0 / np.maximum(k, 1.0))
        lo, hi = lower[top], upper[top]
        return np.asarray(np.where(empty, math.nan, lo + (hi - lo) * u), dtype=float)
    q = QUANTILES[stat]
    cum = np.cumsum(counts, axis=1)
    rank = q * cum[:, -1]
    # first finite bucket whose cumulative count reaches the rank (Prometheus's sort.Search)
    reached = cum[:, :-1] >= rank[:, None]
    b = np.where(reached.any(axis=1), np.argmax(reached, axis=1), counts.shape[1] - 1)
    rows = np.arange(n_boot)
    below = np.where(b > 0, cum[rows, np.maximum(b - 1, 0)], 0.0)
    in_bucket = cum[rows, np.minimum(b, counts.shape[1] - 1)] - below
    frac = np.divide(rank - below, in_bucket, out=np.ones(n_boot), where=in_bucket > 0)
    value = lower[b] + (upper[b] - lower[b]) * frac
    value = np.where(b == counts.shape[1] - 1, finite_top, value)
    return np.asarray(np.where(empty, math.nan, value), dtype=float)


@dataclass(frozen=True)
class ChangeEstimate:
    """Relative change (candidate / baseline - 1) of one statistic, with a confidence interval."""

    statistic: str
    baseline: float
    candidate: float
    change: float  #: point estimate, e.g. -0.12 for 12% lower
    ci_low: float
    ci_high: float
    confidence: float
    method: str  #: how the uncertainty was estimated
    n_boot: int

    def to_dict(self) -> dict[str, object]:
        return {
            "statistic": self.statistic,
            "baseline": _clean(self.baseline),
            "candidate": _clean(self.candidate),
            "change": _clean(self.change),
            "ci_low": _clean(self.ci_low),
            "ci_high": _clean(self.ci_high),
            "confidence": self.confidence,
            "method": self.method,
            "n_boot": self.n_boot,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> ChangeEstimate:
        def num(key: str) -> float:
            v = data.get(key)
            return float(v) if isinstance(v, int | float) else math.nan

        return cls(
            statistic=str(data["statistic"]),
            baseline=num("baseline"),
            candidate=num("candidate"),
            change=num("change"),
            ci_low=num("ci_low"),
            ci_high=num("ci_high"),
            confidence=num("confidence"),
            method=str(data.get("method", "")),
            n_boot=int(num("n_boot")) if not math.isnan(num("n_boot")) else 0,
        )


def _clean(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def relative_change(baseline: float, candidate: float) -> float:
    if not math.isfinite(baseline) or not math.isfinite(candidate) or baseline <= 0:
        return math.nan
    return candidate / baseline - 1.0


def _interval(ratios: FloatArray, confidence: float) -> tuple[float, float]:
    good = ratios[np.isfinite(ratios)]
    if good.size == 0:
        return math.nan, math.nan
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(good, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def bootstrap_histograms(
    baseline: Histogram,
    candidate: Histogram,
    stat: str,
    rng: np.random.Generator,
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
) -> ChangeEstimate:
    """Within-run uncertainty: resample each variant's request-level distribution independently.

    The point estimate is the statistic of the histograms themselves
    (Prometheus interpolation for quantiles, the expected top-bucket maximum
    for ``max``); the interval is the percentile bootstrap interval.
    """
    b_stat, c_stat = baseline.stat(stat), candidate.stat(stat)
    rb = _resampled_stats(baseline, stat, rng, n_boot)
    rc = _resampled_stats(candidate, stat, rng, n_boot)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = rc / rb - 1.0
    lo, hi = _interval(ratios, confidence)
    return ChangeEstimate(
        statistic=stat,
        baseline=b_stat,
        candidate=c_stat,
        change=relative_change(b_stat, c_stat),
        ci_low=lo,
        ci_high=hi,
        confidence=confidence,
        method=(
            f"bootstrap of the request-level distribution from the fine-bucket histograms "
            f"({round(baseline.total)} vs {round(candidate.total)} requests, {n_boot} resamples)"
        ),
        n_boot=n_boot,
    )


def block_bootstrap(
    baseline_blocks: Sequence[Histogram],
    candidate_blocks: Sequence[Histogram],
    stat: str,
    rng: np.random.Generator,
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    block_seconds: float | None = None,
) -> ChangeEstimate:
    """Within-run uncertainty that respects correlation in time: a paired block bootstrap.

    The run is cut into consecutive time blocks (a few seconds each); block i
    of the baseline and block i of the candidate cover the same seconds, when
    both variants shared the machine.  A resample draws blocks with
    replacement, the same ones for both variants, sums their histograms and
    computes the statistic of each variant.  Slow stretches (a busy CPU, a
    garbage collection, a queue building up) stay whole, so the interval is
    as wide as the run's own variation in time; resampling single requests as
    if they were independent would make it too narrow.
    """
    if len(baseline_blocks) != len(candidate_blocks) or not baseline_blocks:
        raise ValueError("need the same, non-zero number of blocks for both variants")
    bounds = baseline_blocks[0].bounds
    base = np.array([h.counts for h in baseline_blocks], dtype=float)  # (blocks, buckets)
    cand = np.array([h.counts for h in candidate_blocks], dtype=float)
    n_blocks = base.shape[0]
    picks = rng.integers(0, n_blocks, size=(n_boot, n_blocks))
    times = np.zeros((n_boot, n_blocks))
    np.add.at(times, (np.arange(n_boot)[:, None], picks), 1.0)  # how often each block was drawn
    rb = stat_of_rows(times @ base, bounds, stat, rng)
    rc = stat_of_rows(times @ cand, bounds, stat, rng)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = rc / rb - 1.0
    lo, hi = _interval(ratios, confidence)
    total_b = Histogram(bounds, tuple(base.sum(axis=0)))
    total_c = Histogram(bounds, tuple(cand.sum(axis=0)))
    b_stat, c_stat = total_b.stat(stat), total_c.stat(stat)
    size = f"{block_seconds:.3g} s " if block_seconds else ""
    return ChangeEstimate(
        statistic=stat,
        baseline=b_stat,
        candidate=c_stat,
        change=relative_change(b_stat, c_stat),
        ci_low=lo,
        ci_high=hi,
        confidence=confidence,
        method=(
            f"paired block bootstrap over time: {n_blocks} {size}blocks of the fine-bucket histograms "
            f"({round(total_b.total)} vs {round(total_c.total)} requests, {n_boot} resamples)"
        ),
        n_boot=n_boot,
    )


def bootstrap_repetitions(
    baseline: Sequence[float],
    candidate: Sequence[float],
    stat: str,
    rng: np.random.Generator,
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
) -> ChangeEstimate:
    """Across-repetition uncertainty: resample repetitions (paired), ratio of the means."""
    b = np.asarray(baseline, dtype=float)
    cnd = np.asarray(candidate, dtype=float)
    if b.shape != cnd.shape or b.size == 0:
        raise ValueError("need the same, non-zero number of repetitions for both variants")
    idx = rng.integers(0, b.size, size=(n_boot, b.size))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = cnd[idx].mean(axis=1) / b[idx].mean(axis=1) - 1.0
    lo, hi = _interval(ratios, confidence)
    return ChangeEstimate(
        statistic=stat,
        baseline=float(b.mean()),
        candidate=float(cnd.mean()),
        change=relative_change(float(b.mean()), float(cnd.mean())),
        ci_low=lo,
        ci_high=hi,
        confidence=confidence,
        method=f"paired bootstrap across {b.size} repetitions ({n_boot} resamples) of the mean",
        n_boot=n_boot,
    )


def spread(values: Sequence[float]) -> dict[str, float | None]:
    """Mean, standard deviation (n-1), min and max of one statistic across repetitions."""
    arr = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if arr.size == 0:
        return {"n": 0, "mean": None, "std": None, "min": None, "max": None}
    return {
        "n": int(arr.size),
        "mean": float(arr.mean()),
        "std": float(arr.std(ddof=1)) if arr.size > 1 else None,
        "min": float(arr.min()),
        "max": float(arr.max()),
    }


def statistic_of_samples(samples: Sequence[float] | FloatArray, stat: str) -> float:
    """A statistic of raw samples (numpy's linear quantile), for tests and synthetic checks."""
    arr = np.asarray(samples, dtype=float)
    if arr.size == 0:
        return math.nan
    if stat == "max":
        return float(arr.max())
    return float(np.quantile(arr, QUANTILES[stat]))
