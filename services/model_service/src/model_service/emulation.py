"""How the emulation knobs vary from one request to the next: fixed, or exponential.

With ``fixed`` (the default) every request waits exactly the I/O knob and spends
exactly the CPU knob.  Arrivals from a rate-limited generator are nearly regular,
so a fixed service time gives the D/D/c cliff: no queue at all below the thread
pool's capacity, a queue that grows without end above it, and nothing between.
Production services are not like that: a feature store answers in 5 ms one time
and 40 ms the next.  With ``exponential`` each request draws each knob on its own
from an exponential distribution with the knob's value as its mean, so the mean
load is unchanged and requests queue, more the closer the pool is to full, as they
do in production (an M/M/c-like service).
"""

from __future__ import annotations

import random
import threading
from typing import Final, Literal, get_args

Distribution = Literal["fixed", "exponential"]
DISTRIBUTIONS: Final[tuple[str, ...]] = get_args(Distribution)


class Draws:
    """The factor (mean 1) by which one request's knob is multiplied.

    Each :class:`Draws` has its own generator, seeded from the OS: a worker process
    makes its own after the fork, so two workers never draw the same sequence.
    """

    def __init__(self, distribution: Distribution = "fixed", rng: random.Random | None = None) -> None:
        self.distribution = distribution
        self._rng = rng or random.Random()  # noqa: S311 - emulated service times, not secrets
        self._lock = threading.Lock()

    def factor(self) -> float:
        if self.distribution == "fixed":
            return 1.0
        with self._lock:
            return self._rng.expovariate(1.0)
