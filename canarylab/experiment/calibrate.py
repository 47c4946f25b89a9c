"""``--calibrate``: find "significant load" the way the seed's team did by hand.

Load the baseline (stable) variant alone: first at ``unloaded_rate`` to learn
its unloaded p95, then from ``start_rate`` upward (x ``growth`` per step) until
its p95 is at least ``p95_factor`` x the unloaded p95, or errors appear.  Each
step lasts ``step_duration``; there are at most ``max_steps`` steps, so the
whole search takes at most (1 + max_steps) x step_duration.

The rate chosen: the step where p95 reached the factor; when errors appeared
first, the last step without errors (the highest error-free load); when
neither happened, the highest rate tried.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from canarylab.experiment.load import LoadResult
from canarylab.experiment.spec import CalibrationSpec
from canarylab.experiment.vocabulary import seconds_to_ms


def next_rate(rate: int, growth: float) -> int:
    return max(rate + 1, math.ceil(rate * growth))


def calibrate(cal: CalibrationSpec, step: Callable[[int, int], LoadResult]) -> dict[str, Any]:
    """Run the search with ``step(rate, step_number) -> LoadResult``; return what calibration.json holds."""
    started = time.monotonic()
    unloaded = step(cal.unloaded_rate, 0)
    base_p95 = unloaded.quantile(0.95)
    steps: list[dict[str, Any]] = [
        {
            "step": 0,
            "rate": cal.unloaded_rate,
            "role": "unloaded",
            "p95_ms": seconds_to_ms(base_p95),
            "p95_vs_unloaded": None,
            "errors": unloaded.variant_errors,
            "achieved_rps": unloaded.achieved_rps,
        }
    ]
    threshold = cal.p95_factor * base_p95
    rate = cal.start_rate
    chosen: int | None = None
    reason = ""
    last_ok: int | None = None
    for i in range(1, cal.max_steps + 1):
        r = step(rate, i)
        p95 = r.quantile(0.95)
        steps.append(
            {
                "step": i,
                "rate": rate,
                "role": "search",
                "p95_ms": seconds_to_ms(p95),
                "p95_vs_unloaded": (p95 / base_p95) if base_p95 > 0 and math.isfinite(p95) else None,
                "errors": r.variant_errors,
                "achieved_rps": r.achieved_rps,
            }
        )
        if r.variant_errors > 0 or r.unreachable > 0:
            chosen = last_ok if last_ok is not None else rate
            reason = (
                f"errors appeared at {rate} req/s; chose {chosen} req/s, the highest rate without errors"
                if last_ok is not None
                else f"errors appeared already at {rate} req/s, the first step"
            )
            break
        if math.isfinite(p95) and p95 >= threshold:
            chosen = rate
            reason = (
                f"p95 {p95 * 1000:.1f} ms >= {cal.p95_factor:g} x the unloaded {base_p95 * 1000:.1f} ms "
                f"at {rate} req/s"
            )
            break
        last_ok = rate
        rate = next_rate(rate, cal.growth)
    if chosen is None:
        chosen = int(steps[-1]["rate"])
        reason = (
            f"p95 stayed below {cal.p95_factor:g} x the unloaded p95 in {cal.max_steps} steps; "
            f"using the highest rate tried, {chosen} req/s"
        )
    return {
        "chosen_rate": chosen,
        "reason": reason,
        "unloaded_p95_ms": seconds_to_ms(base_p95),
        "p95_factor": cal.p95_factor,
        "steps": steps,
        "seconds": round(time.monotonic() - started, 3),
        "bound_seconds": (1 + cal.max_steps) * cal.step_duration,
    }
