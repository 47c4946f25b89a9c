"""The app is ready when the model-service is; the answer is cached briefly so probes stay cheap."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Readiness:
    ready: bool
    detail: str


@dataclass
class CachedReadiness:
    """Runs ``check`` at most once per ``ttl_seconds``; concurrent probes share one check."""

    check: Callable[[], tuple[bool, str]]
    ttl_seconds: float = 1.0
    clock: Callable[[], float] = time.monotonic
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _last: Readiness | None = field(default=None, init=False, repr=False)
    _checked_at: float = field(default=0.0, init=False, repr=False)

    def get(self) -> Readiness:
        with self._lock:
            now = self.clock()
            if self._last is None or now - self._checked_at >= self.ttl_seconds:
                ready, detail = self.check()
                self._last = Readiness(ready, detail)
                self._checked_at = self.clock()
            return self._last
