"""How busy the host's CPUs were during a load: one job, from psutil's CPU times.

The engine reads :func:`cpu_reading` before and after each measured repetition, and
:func:`busy_share` gives the share of the CPU time of every core that was not
available: not idle and not waiting for I/O, steal included (a hypervisor that gave
the time to another machine).  The host is where bombardier runs; on the local target
the services and Prometheus share it.  When it was saturated, the variants and the
generator queued for a CPU, so the latencies measure the host, not the variants: the
verdict is then INVALID (``criteria.max_host_cpu_busy``, verdict.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class CpuReading:
    """Cumulative CPU seconds over every core since boot."""

    #: idle and waiting for I/O: time a task could have had
    available: float
    total: float


def cpu_reading() -> CpuReading:
    """The host's cumulative CPU times now."""
    times = psutil.cpu_times()
    fields = times._asdict()
    # On Linux guest time is already counted in user and nice; do not count it twice.
    total = sum(v for k, v in fields.items() if k not in ("guest", "guest_nice"))
    available = fields.get("idle", 0.0) + fields.get("iowait", 0.0)
    return CpuReading(available=available, total=total)


def busy_share(before: CpuReading, after: CpuReading) -> float:
    """The share (0..1) of CPU time between the readings that was busy; NaN if none passed."""
    total = after.total - before.total
    if total <= 0:
        return math.nan
    return min(1.0, max(0.0, 1.0 - (after.available - before.available) / total))


def cpu_count() -> int | None:
    """The host's logical CPUs (None: not known): what CPU-bound processes can scale to."""
    return psutil.cpu_count(logical=True)
