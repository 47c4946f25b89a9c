"""The experiment's shared words, defined once: verdicts and exit codes, statistics, units.

Every module that names a verdict, an exit code or a statistic, or shows a
time in milliseconds or a change in percent, takes it from here
(tests/experiment/test_definitions.py checks that nothing else defines them).
The target kinds live with the targets: ``canarylab.experiment.targets.TARGETS``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, Literal, get_args

# --- verdicts and exit codes -------------------------------------------------------------

VerdictName = Literal["PASS", "FAIL", "INCONCLUSIVE", "INVALID"]
VERDICTS: tuple[VerdictName, ...] = get_args(VerdictName)
PASS: Final[VerdictName] = "PASS"  # noqa: S105 - a verdict, not a password
FAIL: Final[VerdictName] = "FAIL"
INCONCLUSIVE: Final[VerdictName] = "INCONCLUSIVE"
INVALID: Final[VerdictName] = "INVALID"

#: Exit codes of the engine and of ``canarylab experiment run``.
EXIT_PASS: Final = 0
EXIT_FAIL: Final = 1
EXIT_ERROR: Final = 2
EXIT_INCONCLUSIVE: Final = 3
EXIT_INVALID: Final = 4
EXIT_INTERRUPTED: Final = 130

VERDICT_EXIT_CODES: Mapping[str, int] = MappingProxyType(
    {PASS: EXIT_PASS, FAIL: EXIT_FAIL, INCONCLUSIVE: EXIT_INCONCLUSIVE, INVALID: EXIT_INVALID}
)


def exit_code(verdict: object) -> int:
    """The exit code of a verdict; anything that is not one (no verdict reached) is an error."""
    return VERDICT_EXIT_CODES.get(str(verdict), EXIT_ERROR)


# --- statistics ------------------------------------------------------------------------

Statistic = Literal["p50", "p90", "p95", "p99", "max"]
#: The statistics of a latency distribution the experiment reports and may decide on.
STATISTICS: tuple[Statistic, ...] = get_args(Statistic)
#: The statistics a verdict may be decided on: never "max".  One extreme value cannot carry a
#: decision: the histogram's max is quantised by its buckets (x1.1, twice a 5% threshold), a
#: bootstrap of a maximum is inconsistent, and it halves the power.  The seed's max criterion is
#: reported beside the verdict, from an exact maximum.
DECIDING_STATISTICS: tuple[Statistic, ...] = ("p50", "p90", "p95", "p99")
#: Repetitions from which the interval across them (which includes run-to-run variation)
#: decides; only that interval may PASS.
MIN_REPETITIONS_TO_PASS: Final = 3
#: What decides when the spec names nothing.
DEFAULT_DECIDING: tuple[Statistic, ...] = ("p95",)
#: Quantile of each percentile statistic; "max" is handled on its own.
QUANTILES: Mapping[str, float] = MappingProxyType({"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99})

# --- what is compared across repetitions -------------------------------------------------

Metric = Literal["client_latency", "app_response_seconds"]
#: The spec's ``metric``: the latency whose per-repetition statistics the deciding interval
#: compares.  ``client_latency``: bombardier's, exact, and it includes every queue on the way
#: (coordinated omission, docs/experiment.md); ``app_response_seconds``: the app's histogram of
#: the model-service's response time, the seed's Grafana metric (quantiles within ~10%).
METRICS: tuple[Metric, ...] = get_args(Metric)
DEFAULT_METRIC: Final[Metric] = "client_latency"

# --- units and formatting ----------------------------------------------------------------

#: What a table shows for a missing or non-finite number.
MISSING: Final = "–"


def _finite(x: object) -> float | None:
    if x is None or isinstance(x, bool):
        return None
    try:
        value = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def seconds_to_ms(seconds: float | None, digits: int | None = 3) -> float | None:
    """A time in seconds as a number of milliseconds (summary.json's ``*_ms``), rounded to
    ``digits`` (None: not rounded); None when missing or not finite (JSON has no NaN)."""
    value = _finite(seconds)
    if value is None:
        return None
    ms = value * 1000.0
    return ms if digits is None else round(ms, digits)


def format_ms(ms: object, *, unit: str = "", missing: str = MISSING) -> str:
    """Milliseconds for people: ``12.3`` (``unit=" ms"``: ``12.3 ms``); ``missing`` when there is none."""
    value = _finite(ms)
    return missing if value is None else f"{value:.1f}{unit}"


def format_pct(ratio: object, *, missing: str = MISSING) -> str:
    """A relative change (-0.123) for people: ``-12.3%``; ``missing`` when there is none."""
    value = _finite(ratio)
    return missing if value is None else f"{value * 100:+.1f}%"
