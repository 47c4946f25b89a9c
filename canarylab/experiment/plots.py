"""PNG plots of a run, from its saved Prometheus results only (matplotlib, Agg).

- ``latency-over-time-<variant>.png``: p50, p90 and p95 of the response time
  over time, like the seed's Grafana graph (the same queries as the dashboard);
- ``latency-over-time.png``: both variants on one time axis, to compare;
- ``load-over-time.png``: per variant, threads busy, CPU per process and the queue
  over time, which tell "queued" from "slow";
- ``latency-distribution.png``: each variant's request-level latency
  distribution (the fine-bucket histogram over the experiment windows);
- ``calibration.png`` (``--calibrate`` only): the baseline's p95 by rate, each
  step marked light, loaded or too far, with the threshold and the rate chosen.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from canarylab import queries as q
from canarylab.experiment.collect import RepetitionCollection
from canarylab.experiment.stats import Histogram
from canarylab.experiment.summary import Calibration
from canarylab.style import plot_color

#: Figure size (inches) and resolution: every PNG is 1200 x 500 pixels.
FIGSIZE = (12.0, 5.0)
DPI = 100
PLOTTED = (0.5, 0.9, 0.95)
COLORS = {0.5: "#2b83ba", 0.9: "#fdae61", 0.95: "#d7191c", 0.99: "#7b3294"}


def _save(fig: Figure, path: Path, subtitle: str = "") -> Path:
    """Write ``fig`` to ``path`` (its folder made), with ``subtitle`` in the lower right corner."""
    if subtitle:
        fig.text(0.99, 0.01, subtitle, ha="right", va="bottom", fontsize=8, color="#555555")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _series(
    reps: Sequence[RepetitionCollection], key: str, variant: str, t0: float, scale: float = 1000.0
) -> tuple[np.ndarray, np.ndarray]:
    """One variant's over-time series across the repetitions, times ``scale`` (seconds to ms)."""
    xs: list[float] = []
    ys: list[float] = []
    for r in reps:
        pts = r.series.get(key, {}).get(variant, [])
        for t, v in pts:
            xs.append(t - t0)
            ys.append(v * scale if math.isfinite(v) else math.nan)
        xs.append(math.nan)  # a gap between repetitions
        ys.append(math.nan)
    return np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)


def _mark_repetitions(ax: Axes, reps: Sequence[RepetitionCollection], t0: float) -> None:
    for i, r in enumerate(reps):
        ax.axvspan(r.start - t0, r.end - t0, color="#000000", alpha=0.04 if i % 2 == 0 else 0.08, lw=0)
        if len(reps) > 1:
            ax.text(r.start - t0, 0.985, f"  repetition {r.repetition}", transform=ax.get_xaxis_transform(),
                    va="top", ha="left", fontsize=8, color="#555555")  # fmt: skip


def _over_time_axes(
    ax: Axes, reps: Sequence[RepetitionCollection], variant: str, t0: float, title: str
) -> bool:
    drew = False
    for p in PLOTTED:
        query = q.app_response_quantile(p)
        x, y = _series(reps, query.key, variant, t0)
        if np.isfinite(y).any():
            ax.plot(x, y, color=COLORS[p], lw=1.6, label=f"p{round(p * 100)}")
            drew = True
    _mark_repetitions(ax, reps, t0)
    ax.set_title(title, fontsize=11)
    ax.set_xlabel("seconds since the first measured repetition started")
    ax.set_ylabel("response time (ms)")
    ax.grid(True, alpha=0.3)
    ax.set_ylim(bottom=0)
    if drew:
        ax.legend(loc="lower right", fontsize=9, framealpha=0.9)
    else:
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="#999999")
    return drew


def plot_over_time(
    reps: Sequence[RepetitionCollection], variant: str, path: Path, subtitle: str = ""
) -> Path:
    t0 = reps[0].start if reps else 0.0
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    title = f"{variant}: model-service response time as the app sees it (p50, p90, p95; 5 s rate window)"
    _over_time_axes(ax, reps, variant, t0, title)
    return _save(fig, path, subtitle)


def plot_comparison(
    reps: Sequence[RepetitionCollection], variants: Sequence[str], path: Path, labels: Mapping[str, str]
) -> Path:
    t0 = reps[0].start if reps else 0.0
    fig, axes = plt.subplots(1, len(variants), figsize=FIGSIZE, dpi=DPI, sharey=True, squeeze=False)
    for ax, v in zip(axes[0], variants, strict=True):
        _over_time_axes(ax, reps, v, t0, labels.get(v, v))
        if ax is not axes[0][0]:
            ax.set_ylabel("")
    fig.suptitle("Response time over time: p50, p90, p95 per variant (same y axis)", fontsize=12)
    return _save(fig, path)


def plot_load(
    reps: Sequence[RepetitionCollection],
    variants: Sequence[str],
    path: Path,
    labels: Mapping[str, str],
    subtitle: str = "",
) -> Path:
    """Per variant, over time: threads busy and CPU per process (percent), and the queue.

    "Queued" and "slow" look different here: a queue with CPU per process near 100% is a
    process held by its GIL (more threads cannot help); a queue with threads at 100% and little
    CPU is threads waiting for I/O (more threads can)."""
    t0 = reps[0].start if reps else 0.0
    fig, axes = plt.subplots(2, len(variants), figsize=FIGSIZE, dpi=DPI, sharex=True, squeeze=False)
    most_waiting = 1.0
    for col, v in enumerate(variants):
        top, bottom = axes[0][col], axes[1][col]
        for query, color in ((q.UTILISATION, "#2b83ba"), (q.CPU_PER_PROCESS, "#d7191c")):
            x, y = _series(reps, query.key, v, t0, scale=100.0)
            if np.isfinite(y).any():
                top.plot(x, y, color=color, lw=1.4, label=query.title)
        x, y = _series(reps, q.QUEUE_DEPTH.key, v, t0, scale=1.0)
        if np.isfinite(y).any():
            bottom.plot(x, y, color="#7b3294", lw=1.4)
            most_waiting = max(most_waiting, float(np.nanmax(y)))
        _mark_repetitions(bottom, reps, t0)
        top.set_ylim(0, 135)  # the same scale for both, with room for the legend above 100%
        if top.get_legend_handles_labels()[0]:
            top.legend(loc="upper right", fontsize=8, framealpha=0.9, ncols=2)
        for ax, drawn in ((top, bool(top.lines)), (bottom, bool(bottom.lines))):
            ax.grid(True, alpha=0.3)
            if not drawn:
                ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center",
                        color="#999999")  # fmt: skip
        top.set_title(labels.get(v, v), fontsize=10)
        top.set_ylabel("% (threads; one core)")
        bottom.set_ylabel("requests waiting for a thread")
        bottom.set_xlabel("seconds since the first measured repetition started")
    for col in range(len(variants)):
        axes[1][col].set_ylim(0, most_waiting * 1.15)  # one scale: the variants' queues compare
    fig.suptitle("The load: threads busy, CPU per process and the queue, per variant", fontsize=12)
    return _save(fig, path, subtitle)


def plot_distribution(
    hists: Mapping[str, Histogram],
    path: Path,
    *,
    labels: Mapping[str, str],
    client_max_ms: Mapping[str, float | None],
) -> Path:
    """Per variant: share of requests per latency bucket (log x), with p50/p95 and the exact client max."""
    variants = list(hists)
    fig, axes = plt.subplots(len(variants) or 1, 1, figsize=FIGSIZE, dpi=DPI, sharex=True, squeeze=False)
    finite_lo, finite_hi = math.inf, 0.0
    for h in hists.values():
        nz = [i for i, n in enumerate(h.counts) if n > 0]
        if nz:
            finite_lo = min(finite_lo, 0.001 if nz[0] == 0 else h.bounds[nz[0] - 1])
            top = h.bounds[nz[-1]] if not math.isinf(h.bounds[nz[-1]]) else h.bounds[nz[-1] - 1]
            finite_hi = max(finite_hi, top)
    finite_hi = max([finite_hi, *(m / 1000.0 for m in client_max_ms.values() if m)])
    for ax, v in zip(axes[:, 0], variants, strict=False):
        h = hists[v]
        color = plot_color(v)
        total = h.total
        if total <= 0:
            ax.text(0.5, 0.5, f"{v}: no data", transform=ax.transAxes, ha="center", color="#999999")
            continue
        lows = np.array([0.0, *h.bounds[:-1]]) * 1000.0
        highs = np.array(h.bounds) * 1000.0
        counts = np.asarray(h.counts, dtype=float)
        finite = np.isfinite(highs) & (counts > 0)
        lows = np.where(lows <= 0, highs / 1.1, lows)
        ax.bar(lows[finite], counts[finite] / total * 100.0, width=(highs - lows)[finite], align="edge",
               color=color, alpha=0.75, edgecolor=color)  # fmt: skip
        for stat, style in (("p50", ":"), ("p95", "--")):
            x = h.stat(stat) * 1000.0
            if math.isfinite(x):
                ax.axvline(x, color="#333333", ls=style, lw=1.2, label=f"{stat} {x:.1f} ms")
        cmax = client_max_ms.get(v)
        if cmax:
            ax.axvline(cmax, color="#d7191c", ls="-", lw=1.2, label=f"max {cmax:.1f} ms (client, exact)")
        ax.set_ylabel("% of requests")
        ax.set_title(f"{labels.get(v, v)}: {round(total)} requests", fontsize=10, loc="left")
        ax.grid(True, alpha=0.3, which="both")
        ax.legend(loc="best", fontsize=8, framealpha=0.9)
    ax_last = axes[-1, 0]
    ax_last.set_xscale("log")
    ax_last.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax_last.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x:g}"))
    ax_last.xaxis.set_minor_formatter(NullFormatter())
    if finite_hi > 0 and math.isfinite(finite_lo):
        ax_last.set_xlim(finite_lo * 1000.0 / 1.2, finite_hi * 1000.0 * 1.2)
    ax_last.set_xlabel("response time (ms, log scale; bars are the histogram's buckets)")
    fig.suptitle("Latency distribution per variant (the app's fine-bucket histogram)", fontsize=12)
    return _save(fig, path)


#: How a calibration step is drawn: colour and marker per kind (calibrate.py).
KIND_STYLE = {"light": ("#2b83ba", "o"), "loaded": ("#1a9641", "s"), "too far": ("#d7191c", "X")}


def plot_calibration(cal: Calibration, path: Path, subtitle: str = "") -> Path:
    """The curve the calibration measured: the baseline's p95 (second half of each step) by rate."""
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    search = [st for st in cal.steps if st.role != "unloaded" and st.p95_ms is not None]
    for kind, (color, marker) in KIND_STYLE.items():
        points = sorted((st.rate, st.p95_ms) for st in search if st.kind == kind and st.p95_ms is not None)
        if points:
            xs, ys = zip(*points, strict=True)
            ax.scatter(xs, ys, color=color, marker=marker, s=60, label=kind, zorder=3)
    if search:
        line = sorted((st.rate, st.p95_ms) for st in search if st.p95_ms is not None)
        ax.plot([r for r, _ in line], [y for _, y in line], color="#999999", lw=1, zorder=2)
    if cal.unloaded_p95_ms:
        ax.axhline(cal.unloaded_p95_ms, color="#555555", ls=":", lw=1.2,
                   label=f"unloaded p95 {cal.unloaded_p95_ms:.1f} ms")  # fmt: skip
        limit = cal.p95_factor * cal.unloaded_p95_ms
        threshold = f"{cal.p95_factor:g} x unloaded: {limit:.1f} ms"
        ax.axhline(limit, color="#fdae61", ls="--", lw=1.2, label=threshold)
    ax.axvline(cal.chosen_rate, color="#1a9641", lw=1.5, alpha=0.6, label=f"chosen: {cal.chosen_rate} req/s")
    ax.set_yscale("log")
    plain = FuncFormatter(lambda y, _pos: f"{y:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    ax.set_xlabel("rate to each variant (req/s; both variants loaded at once)")
    ax.set_ylabel("baseline p95 (ms, log scale)")
    ax.set_title("Calibration: where the baseline starts to queue (the knee)", fontsize=12)
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(loc="upper left", fontsize=8, framealpha=0.9)
    return _save(fig, path, subtitle)
