"""Statistics of the experiment, with numpy (and scipy.stats for Student's t).  Every random
draw takes an explicit ``numpy.random.Generator``, so a run's analysis is reproducible from its seed.

- :func:`histogram_quantile`: a quantile from cumulative bucket counts, with the
  same interpolation as Prometheus's ``histogram_quantile``.
- :class:`Histogram`: the request-level latency distribution a fine-bucket
  histogram gives (bucket increases over the experiment window).
- :func:`bootstrap_histograms`: resample both variants' request-level
  distributions (multinomial over the buckets) and return the bootstrap
  distribution of the relative change of a statistic.
- :func:`block_bootstrap`: the paired block bootstrap over time (within a run).
- :func:`paired_t_repetitions`: with 3 or more repetitions, a paired t-interval
  on the per-repetition log ratios (both variants ran at the same time);
  :func:`t_quantile` gives Student's t quantiles (scipy.stats).  With
  ``sequential=True`` the interval is instead an anytime-valid confidence
  sequence (:func:`sequential_t_critical`): it may be looked at after every
  repetition and the run stopped as soon as it decides.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from canarylab.experiment.vocabulary import MIN_REPETITIONS_TO_PASS, QUANTILES, STATISTICS

FloatArray = npt.NDArray[np.float64]


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
        return {name: self.stat(name) for name in STATISTICS}

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


def _percentile_estimate(
    stat: str,
    *,
    b_stat: float,
    c_stat: float,
    resampled_b: FloatArray,
    resampled_c: FloatArray,
    confidence: float,
    method: str,
) -> ChangeEstimate:
    """The change of ``stat`` with the percentile interval of the resampled relative changes."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = resampled_c / resampled_b - 1.0
    lo, hi = _interval(ratios, confidence)
    return ChangeEstimate(
        statistic=stat,
        baseline=b_stat,
        candidate=c_stat,
        change=relative_change(b_stat, c_stat),
        ci_low=lo,
        ci_high=hi,
        confidence=confidence,
        method=method,
        n_boot=len(ratios),
    )


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
    rb = _resampled_stats(baseline, stat, rng, n_boot)
    rc = _resampled_stats(candidate, stat, rng, n_boot)
    return _percentile_estimate(
        stat,
        b_stat=baseline.stat(stat),
        c_stat=candidate.stat(stat),
        resampled_b=rb,
        resampled_c=rc,
        confidence=confidence,
        method=(
            f"bootstrap of the request-level distribution from the fine-bucket histograms "
            f"({round(baseline.total)} vs {round(candidate.total)} requests, {n_boot} resamples)"
        ),
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
    total_b = Histogram(bounds, tuple(base.sum(axis=0)))
    total_c = Histogram(bounds, tuple(cand.sum(axis=0)))
    size = f"{block_seconds:.3g} s " if block_seconds else ""
    return _percentile_estimate(
        stat,
        b_stat=total_b.stat(stat),
        c_stat=total_c.stat(stat),
        resampled_b=rb,
        resampled_c=rc,
        confidence=confidence,
        method=(
            f"paired block bootstrap over time: {n_blocks} {size}blocks of the fine-bucket histograms "
            f"({round(total_b.total)} vs {round(total_c.total)} requests, {n_boot} resamples)"
        ),
    )


@lru_cache(maxsize=256)
def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t distribution with integer ``df`` >= 1 (0.5 <= p < 1),
    from scipy.stats; e.g. ``t_quantile(0.975, 4)`` = 2.776445."""
    if df < 1 or not 0.5 <= p < 1:
        raise ValueError(f"need df >= 1 and 0.5 <= p < 1, got df={df}, p={p}")
    from scipy.stats import t  # noqa: PLC0415 - scipy.stats takes ~1 s to import; only 3+ repetitions need it

    return float(t.ppf(p, df))


#: The prior variance g of the standardised effect (mean / sd of the log ratios) in the
#: sequential test's mixture.  It sets where the confidence sequence is narrowest; g = 15
#: favours the first looks of a short run: against the best g for each count of
#: repetitions (g from 0.01 to 2000) it is 8.7% wider at 3, 4.1% at 5, 11% at 10 and 18%
#: at 40.  At 95% it can decide from repetition 3 (1 + 3g must exceed 1 / alpha:
#: g > 6.3); at 98% and 99% from 4 (:func:`first_sequential_look`).
#: benchmarks/verdict_quality.py measures its error rates.
SEQUENTIAL_MIXTURE_G = 15.0


def _log_mixture_bf(t: float, n: int, g: float) -> float:
    """log of the Bayes factor of the one-sample t-test with a N(0, g) prior on the standardised
    effect and the right-Haar prior 1/sigma on the scale (Rouder et al. 2009, at a fixed g)."""
    nu = n - 1
    return -0.5 * math.log1p(n * g) + 0.5 * n * (
        math.log1p(t * t / nu) - math.log1p(t * t / (nu * (1.0 + n * g)))
    )


@lru_cache(maxsize=256)
def sequential_t_critical(n: int, confidence: float, g: float = SEQUENTIAL_MIXTURE_G) -> float:
    """The |t| from which the mixture Bayes factor reaches 1 / alpha after ``n`` values: inf when it
    cannot yet (n < 2, or too few values for this g).

    Under the hypothesis mean = mu0 that Bayes factor, a function of the t statistic of
    (x - mu0), is a nonnegative martingale in the filtration of the scale-invariant data
    (Perez-Ortiz, Lardy, de Heide and Grunwald, "E-statistics, group invariance and anytime
    valid testing", 2022), so by Ville's inequality it ever reaches 1 / alpha with probability
    at most alpha.  {mu0 : |t(mu0)| < critical} at every n is therefore a confidence sequence:
    it covers the true mean at every n at once, however often it is looked at and whenever the
    looking stops (for Gaussian log ratios).  It is wider than the fixed-n t-interval; that
    is the price of looking after every repetition.
    """
    if n < 2:
        return math.inf
    target = math.log(1.0 / (1.0 - confidence))
    # The factor grows with |t| towards its limit (1 + n g)^((n - 1) / 2): find the crossing.
    if 0.5 * (n - 1) * math.log1p(n * g) <= target:
        return math.inf
    low, high = 0.0, 1.0
    while _log_mixture_bf(high, n, g) < target:
        high *= 2.0
    for _ in range(100):
        mid = 0.5 * (low + high)
        if _log_mixture_bf(mid, n, g) < target:
            low = mid
        else:
            high = mid
    return high


def first_sequential_look(confidence: float, g: float = SEQUENTIAL_MIXTURE_G) -> int:
    """The first repetition after which a sequential run looks: from MIN_REPETITIONS_TO_PASS on,
    and once the confidence sequence is finite at ``confidence`` (from 4 at 98% or 99%)."""
    n = MIN_REPETITIONS_TO_PASS
    while math.isinf(sequential_t_critical(n, confidence, g)):
        n += 1
    return n


def paired_t_repetitions(
    baseline: Sequence[float],
    candidate: Sequence[float],
    stat: str,
    *,
    confidence: float = 0.95,
    sequential: bool = False,
) -> ChangeEstimate:
    """Across-repetition uncertainty: a paired t-interval on the log ratios.

    With d_i = log(c_i / b_i), the statistic of candidate and baseline in
    repetition i (both variants ran at the same time, so a repetition is a
    pair), the interval is exp(mean(d) +- t_{1-alpha/2, n-1} sd(d) / sqrt(n)) - 1
    and the point estimate exp(mean(d)) - 1: the change of the geometric means
    (``baseline`` and ``candidate`` are the geometric means of the repetitions'
    values).  A percentile bootstrap over 3-5 values is about their range and
    far too narrow; the t quantile accounts for estimating the spread from so
    few repetitions.  Fewer than 2 repetitions, or a value that is not finite
    and positive, gives NaN (the verdict turns a missing interval into INVALID).

    ``sequential``: the t quantile is replaced by :func:`sequential_t_critical`,
    which makes the interval valid at every repetition at once (infinite where it
    cannot decide yet).
    """
    b = np.asarray(baseline, dtype=float)
    cnd = np.asarray(candidate, dtype=float)
    if b.shape != cnd.shape or b.size == 0:
        raise ValueError("need the same, non-zero number of repetitions for both variants")
    n = int(b.size)
    kind = "anytime-valid confidence sequence (mixture t-test)" if sequential else "paired t-interval"
    method = f"{kind} on the log ratios across {n} repetitions (geometric mean of the ratios)"
    usable = bool(np.all(np.isfinite(b) & np.isfinite(cnd) & (b > 0) & (cnd > 0)))
    if not usable or n < 2:
        why = "a repetition's value is missing or not positive" if not usable else "needs 2+ repetitions"
        return ChangeEstimate(
            statistic=stat,
            baseline=math.nan,
            candidate=math.nan,
            change=math.nan,
            ci_low=math.nan,
            ci_high=math.nan,
            confidence=confidence,
            method=f"{method}: {why}",
            n_boot=0,
        )
    d = np.log(cnd) - np.log(b)
    mean = float(d.mean())
    if sequential:
        t, name = sequential_t_critical(n, confidence), "critical |t|"
    else:
        t, name = t_quantile(1.0 - (1.0 - confidence) / 2.0, n - 1), f"t({n - 1})"
    half = math.inf if math.isinf(t) else t * float(d.std(ddof=1)) / math.sqrt(n)
    return ChangeEstimate(
        statistic=stat,
        baseline=float(np.exp(np.log(b).mean())),
        candidate=float(np.exp(np.log(cnd).mean())),
        change=math.expm1(mean),
        ci_low=math.expm1(mean - half),
        ci_high=math.expm1(mean + half),
        confidence=confidence,
        method=f"{method}, {name} = {t:.3f}",
        n_boot=0,
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
