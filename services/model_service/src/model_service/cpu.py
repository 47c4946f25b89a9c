"""The CPU-cost knob: a fixed amount of real work per request that holds the GIL.

Why a pure-Python loop: CPython's bytecode interpreter runs only while it holds
the GIL, so threads spending this cost in one process take turns (two threads
take about twice as long as one), exactly like CPU-bound Python inference.
numpy, scipy and scikit-learn may release the GIL inside their C loops, and
their speed depends on the BLAS build; "repeat the prediction N times" would
therefore not be a controlled amount of GIL-held work.  The I/O knob
(``time.sleep``) releases the GIL; this one does not.

The loop is calibrated once at start-up in iterations per millisecond on this
host: the best (fastest) of a few short single-threaded runs, measured in the
thread's own CPU time, so a noisy neighbour during start-up does not make the
cost smaller.  ``N ms`` then means N ms of CPU on this host when uncontended.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final

#: Runs of the calibration; the fastest counts.
CALIBRATION_RUNS: Final = 5
#: Length of each calibration run, milliseconds of CPU.
CALIBRATION_RUN_MS: Final = 20.0
#: Iterations of the first, sizing run.
_PROBE_ITERATIONS: Final = 20_000
_MODULUS: Final = 1_000_003


def work(iterations: int) -> int:
    """The fixed arithmetic loop: pure Python, so it holds the GIL while it runs."""
    x = 1
    for i in range(iterations):
        x = (x * 31 + i) % _MODULUS
    return x


def _cpu_ms(iterations: int) -> float:
    started = time.thread_time_ns()
    work(iterations)
    return max(time.thread_time_ns() - started, 1) / 1e6


@dataclass(frozen=True)
class Calibration:
    """Iterations of :func:`work` per millisecond of CPU on this host, and the runs it came from."""

    iterations_per_ms: float
    run_iterations: int
    runs_ms: tuple[float, ...]

    @classmethod
    def given(cls, iterations_per_ms: float) -> Calibration:
        """A calibration measured elsewhere (``MODEL_SERVICE_CPU_ITERATIONS_PER_MS``), not here."""
        return cls(iterations_per_ms=iterations_per_ms, run_iterations=0, runs_ms=())

    def describe(self) -> str:
        if not self.runs_ms:
            return f"{self.iterations_per_ms:.0f} iterations/ms (given, not measured here)"
        runs = ", ".join(f"{ms:.1f}" for ms in self.runs_ms)
        return (
            f"{self.iterations_per_ms:.0f} iterations/ms "
            f"(best of {len(self.runs_ms)} single-threaded runs of {self.run_iterations} iterations: "
            f"{runs} ms of CPU)"
        )


def calibrate(runs: int = CALIBRATION_RUNS, run_ms: float = CALIBRATION_RUN_MS) -> Calibration:
    """Measure :func:`work` on this host: size a run to ``run_ms``, then keep the fastest of ``runs``."""
    if runs < 1 or run_ms <= 0:
        raise ValueError("need runs >= 1 and run_ms > 0")
    probe = _PROBE_ITERATIONS / _cpu_ms(_PROBE_ITERATIONS)
    iterations = max(1000, round(probe * run_ms))
    times = tuple(_cpu_ms(iterations) for _ in range(runs))
    return Calibration(iterations_per_ms=iterations / min(times), run_iterations=iterations, runs_ms=times)


class CpuCost:
    """Spends ``cost_ms`` milliseconds of GIL-held CPU per call (nothing when 0)."""

    def __init__(self, cost_ms: float, calibration: Calibration | None) -> None:
        if cost_ms > 0 and calibration is None:
            raise ValueError("a CPU cost needs a calibration")
        self.cost_ms = cost_ms
        self.calibration = calibration
        self.iterations = round(cost_ms * calibration.iterations_per_ms) if calibration and cost_ms > 0 else 0

    @classmethod
    def calibrated(cls, cost_ms: float, iterations_per_ms: float | None = None) -> CpuCost:
        """Calibrate on this host when the knob is on, unless ``iterations_per_ms`` is given; no
        calibration (and no start-up cost) when off."""
        if cost_ms <= 0:
            return cls(cost_ms, None)
        given = None if iterations_per_ms is None else Calibration.given(iterations_per_ms)
        return cls(cost_ms, given or calibrate())

    def spend(self, factor: float = 1.0) -> None:
        """Spend the cost, times ``factor`` (a request's draw, emulation.py; 1 = the cost itself)."""
        if self.iterations:
            work(round(self.iterations * factor))
