"""The exact maximum of the values observed in the last ``window`` seconds.

A monotonic deque: each observation drops every older one it is at least as
large as (those can never be the maximum again, since they expire first), so
the front is always the maximum and each value is pushed and popped once.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class RollingMax:
    """Thread-safe rolling maximum over a time window; ``clock`` is injectable for tests."""

    def __init__(self, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        if window <= 0:
            raise ValueError("window must be positive")
        self._window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._items: deque[tuple[float, float]] = deque()

    @property
    def window(self) -> float:
        return self._window

    def observe(self, value: float) -> None:
        now = self._clock()
        with self._lock:
            while self._items and self._items[-1][1] <= value:
                self._items.pop()
            self._items.append((now, value))
            self._expire(now)

    def value(self) -> float:
        """The largest value observed within the last ``window`` seconds, 0.0 if none."""
        now = self._clock()
        with self._lock:
            self._expire(now)
            return self._items[0][1] if self._items else 0.0

    def _expire(self, now: float) -> None:
        horizon = now - self._window
        while self._items and self._items[0][0] <= horizon:
            self._items.popleft()
