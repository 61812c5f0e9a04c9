"""Fixed-window request limits per key (client IP, user), in this process's memory.

Each replica counts on its own, so a cluster admits up to ``replicas × limit``; that bounds brute
force and scripted logins well enough without a shared store.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from auth.errors import RateLimited


class RateLimiter:
    def __init__(self, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self._clock = clock
        self._windows: dict[str, tuple[float, int]] = {}

    def hit(self, key: str, limit: int) -> None:
        """Counts one request for ``key``; raises RateLimited (429 + Retry-After) past ``limit``."""
        now = self._clock()
        started, count = self._windows.get(key, (now, 0))
        if now - started >= self.window_s:
            started, count = now, 0
        if count >= limit:
            retry_after = max(1, math.ceil(started + self.window_s - now))
            raise RateLimited(
                f"too many requests; retry in {retry_after} s", retry_after_s=retry_after
            )
        self._windows[key] = (started, count + 1)
        if len(self._windows) > 100_000:  # keep memory bounded under a flood of distinct keys
            self._windows = {k: v for k, v in self._windows.items() if now - v[0] < self.window_s}
