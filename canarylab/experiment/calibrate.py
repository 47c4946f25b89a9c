"""``--calibrate``: find "significant load" the way the experiment will see it.

The seed's team raised the rate until a delay appeared.  Here, with both variants
loaded at once (as the experiment loads them) after the warm-up:

1. the **unloaded reference**: ``unloaded_rate`` for long enough to hold at least
   :data:`MIN_REFERENCE_REQUESTS` requests (a p95 of 20 requests is their 19th);
2. the **search**: from ``start_rate`` upward (x ``growth`` a step) until a step is
   not light, then a **bisection** between the highest light rate and the lowest
   rate that was not, down to :data:`RESOLUTION` of the rate;
3. each step lasts ``step_duration``, as two halves, and is one of:
   - *light*: the baseline's p95 below ``p95_factor`` x the unloaded p95;
   - *loaded*: at or above it, and **stationary**: the second half's p95 at most
     :data:`STATIONARY_FACTOR` x the first's (a queue that keeps growing makes the
     latency depend on how long the run is);
   - *too far*: errors or unreachable requests, the generator below 95% of the rate,
     or a loaded step that was not stationary.

The rate chosen is the lowest loaded rate found, the knee; with none (the latency
jumped from light to too far within the resolution), the highest light rate; with
nothing but light steps, the highest rate tried.  At most ``max_steps`` search steps,
so the whole search is bounded (``bound_seconds``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

from canarylab.experiment.load import LoadResult
from canarylab.experiment.spec import CalibrationSpec
from canarylab.experiment.vocabulary import seconds_to_ms

StepKind = Literal["light", "loaded", "too far"]
#: The unloaded reference holds at least this many requests.
MIN_REFERENCE_REQUESTS: Final = 100
#: A loaded step is stationary when its second half's p95 is at most this x the first half's.
STATIONARY_FACTOR: Final = 1.5
#: The bisection stops when the rates it brackets are this close (relative), or 1 req/s.
RESOLUTION: Final = 0.1
#: The generator must hold this share of the rate (as the experiment's validity rule).
MIN_ACHIEVED: Final = 0.95

#: ``step(rate, step_number, part, duration)``: load both variants; the baseline's result.
Step = Callable[[int, int, str, float], LoadResult]


def next_rate(rate: int, growth: float) -> int:
    return max(rate + 1, math.ceil(rate * growth))


def reference_seconds(cal: CalibrationSpec) -> float:
    """How long the unloaded step lasts: ``step_duration``, or longer to hold enough requests."""
    return max(cal.step_duration, math.ceil(MIN_REFERENCE_REQUESTS / cal.unloaded_rate))


@dataclass(frozen=True)
class Measured:
    """One search step: the two halves of the baseline's load, classified."""

    rate: int
    first: LoadResult
    second: LoadResult
    kind: StepKind
    why: str

    @property
    def p95(self) -> float:
        """The step's p95: its second half, after the first half let a queue build."""
        return self.second.quantile(0.95)


def classify(rate: int, first: LoadResult, second: LoadResult, threshold: float) -> tuple[StepKind, str]:
    """Light, loaded or too far (the module docstring), and why."""
    errors = first.variant_errors + second.variant_errors
    unreachable = first.unreachable + second.unreachable
    if errors or unreachable:
        return "too far", f"{errors} errors and {unreachable} unreachable requests"
    achieved = min(first.achieved_rps, second.achieved_rps)
    if not math.isfinite(achieved) or achieved < MIN_ACHIEVED * rate:
        return "too far", f"the generator achieved {achieved:.1f} of {rate} req/s"
    p1, p2 = first.quantile(0.95), second.quantile(0.95)
    if not (math.isfinite(p1) and math.isfinite(p2)):
        return "too far", "no latency measured"
    if p2 < threshold:
        return "light", f"p95 {p2 * 1000:.1f} ms < {threshold * 1000:.1f} ms"
    if p2 > STATIONARY_FACTOR * p1:
        return "too far", (
            f"not stationary: p95 grew from {p1 * 1000:.1f} ms to {p2 * 1000:.1f} ms within the step "
            f"(more than x{STATIONARY_FACTOR:g}): a queue that keeps growing"
        )
    return "loaded", f"p95 {p2 * 1000:.1f} ms >= {threshold * 1000:.1f} ms, stationary"


def _step_row(number: int, role: str, m: Measured, base_p95: float) -> dict[str, Any]:
    p95 = m.p95
    return {
        "step": number,
        "rate": m.rate,
        "role": role,
        "p95_ms": seconds_to_ms(p95),
        "first_half_p95_ms": seconds_to_ms(m.first.quantile(0.95)),
        "p95_vs_unloaded": (p95 / base_p95) if base_p95 > 0 and math.isfinite(p95) else None,
        "errors": m.first.variant_errors + m.second.variant_errors,
        "achieved_rps": min(m.first.achieved_rps, m.second.achieved_rps),
        "kind": m.kind,
        "why": m.why,
    }


def _choose(measured: list[Measured], cal: CalibrationSpec) -> tuple[int, str]:
    loaded = [m for m in measured if m.kind == "loaded"]
    light = [m for m in measured if m.kind == "light"]
    too_far = [m for m in measured if m.kind == "too far"]
    if loaded:
        knee = min(loaded, key=lambda m: m.rate)
        below = max((m.rate for m in light if m.rate < knee.rate), default=cal.unloaded_rate)
        return knee.rate, (
            f"the knee: {knee.rate} req/s is the lowest rate where the baseline queues ({knee.why}); "
            f"{below} req/s was light"
        )
    if too_far and light:
        lo = max(m.rate for m in light)
        above = min((m for m in too_far if m.rate > lo), key=lambda m: m.rate, default=too_far[0])
        return lo, (
            f"no stationary loaded rate between {lo} req/s (light) and {above.rate} req/s (too far: "
            f"{above.why}); using {lo} req/s, the highest light rate"
        )
    if too_far:
        first = min(too_far, key=lambda m: m.rate)
        return first.rate, f"too far already at {first.rate} req/s ({first.why}); lower start_rate"
    top = max(m.rate for m in measured)
    return top, (
        f"p95 stayed below {cal.p95_factor:g} x the unloaded p95 in {cal.max_steps} steps; "
        f"using the highest rate tried, {top} req/s (raise max_steps or growth)"
    )


def calibrate(cal: CalibrationSpec, step: Step) -> dict[str, Any]:
    """Run the search with ``step``; return what calibration.json holds."""
    started = time.monotonic()
    unloaded = step(cal.unloaded_rate, 0, "reference", reference_seconds(cal))
    base_p95 = unloaded.quantile(0.95)
    steps: list[dict[str, Any]] = [
        {
            "step": 0,
            "rate": cal.unloaded_rate,
            "role": "unloaded",
            "p95_ms": seconds_to_ms(base_p95),
            "first_half_p95_ms": None,
            "p95_vs_unloaded": None,
            "errors": unloaded.variant_errors,
            "achieved_rps": unloaded.achieved_rps,
            "kind": "light",
            "why": f"{unloaded.total} requests",
        }
    ]
    threshold = cal.p95_factor * base_p95
    half = cal.step_duration / 2
    measured: list[Measured] = []
    lo, hi = cal.unloaded_rate, None  # the highest light rate, the lowest rate that was not
    rate = cal.start_rate
    for number in range(1, cal.max_steps + 1):
        role = "search" if hi is None else "bisect"
        first, second = step(rate, number, "a", half), step(rate, number, "b", half)
        kind, why = classify(rate, first, second, threshold)
        m = Measured(rate, first, second, kind, why)
        measured.append(m)
        steps.append(_step_row(number, role, m, base_p95))
        if kind == "light":
            lo = max(lo, rate)
        else:
            hi = rate if hi is None else min(hi, rate)
        if hi is None:
            rate = next_rate(rate, cal.growth)
            continue
        if hi - lo <= max(1, math.floor(RESOLUTION * lo)):
            break
        rate = (lo + hi) // 2
    chosen, reason = _choose(measured, cal)
    return {
        "chosen_rate": chosen,
        "reason": reason,
        "unloaded_p95_ms": seconds_to_ms(base_p95),
        "p95_factor": cal.p95_factor,
        "stationary_factor": STATIONARY_FACTOR,
        "steps": steps,
        "seconds": round(time.monotonic() - started, 3),
        "bound_seconds": reference_seconds(cal) + cal.max_steps * cal.step_duration,
    }
