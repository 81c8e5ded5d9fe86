"""A small thread-safe rate limiter: at most ``rate`` requests per second, shared by threads.

Hydrocron has no multi-feature call, so a DAG that loads many reaches sends many small requests,
often from a thread pool. One :class:`RateLimiter` shared by those threads keeps the whole process
within a quota: each ``acquire()`` reserves the next free slot under a lock and sleeps *outside*
the lock until that slot, so waiting threads never block each other's bookkeeping.

The algorithm is the generic cell rate algorithm (a token bucket expressed as a "theoretical
arrival time"): ``burst`` requests may go at once, after that they are spaced ``1 / rate`` seconds
apart. With ``burst=1`` (the default) N requests take at least ``(N - 1) / rate`` seconds.

The limit holds within one process. Airflow runs task instances in separate processes; to cap
requests across them as well, give the tasks an Airflow *pool* (or a lower ``rate`` each).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["RateLimiter", "shared_limiter"]


class RateLimiter:
    """``limiter.acquire()`` before each request; thread-safe.

    ``rate``: requests per second (> 0). ``burst``: requests allowed back to back after an idle
    period (>= 1). ``clock``/``sleep`` are injectable for tests.
    """

    def __init__(
        self,
        rate: float,
        burst: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        rate = float(rate)
        if not rate > 0 or rate == float("inf"):
            raise ValueError(
                f"rate must be a positive number of requests per second, found {rate!r}"
            )
        if int(burst) < 1:
            raise ValueError(f"burst must be at least 1, found {burst!r}")
        self.rate = rate
        self.burst = int(burst)
        self._interval = 1.0 / rate
        self._tolerance = (self.burst - 1) * self._interval
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tat = clock()  # theoretical arrival time of the next request
        self.acquired = 0  # requests let through so far (for reports and tests)
        self.waited = 0.0  # total seconds callers were told to wait

    def _next_slot(self) -> tuple[float, float]:
        """(theoretical arrival time, seconds to wait) of the next free slot.

        Call it while holding the lock.
        """
        now = self._clock()
        tat = max(self._tat, now)
        return tat, tat - self._tolerance - now

    def reserve(self) -> float:
        """Book the next slot and return how long the caller must wait for it (no sleeping)."""
        with self._lock:
            tat, wait = self._next_slot()
            self._tat = tat + self._interval
            self.acquired += 1
            wait = max(wait, 0.0)
            self.waited += wait
            return wait

    def acquire(self) -> float:
        """Block until a request may be sent; returns the seconds waited."""
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)
        return wait

    def try_acquire(self) -> bool:
        """Take a slot only if one is free right now (never blocks)."""
        with self._lock:
            tat, wait = self._next_slot()
            if wait > 0:
                return False
            self._tat = tat + self._interval
            self.acquired += 1
            return True

    def __enter__(self) -> RateLimiter:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __repr__(self) -> str:
        return f"RateLimiter(rate={self.rate:g}/s, burst={self.burst})"


_SHARED: dict[tuple[str, float, int], RateLimiter] = {}
_SHARED_LOCK = threading.Lock()


def shared_limiter(name: str, rate: float, burst: int = 1) -> RateLimiter:
    """The process-wide limiter called ``name`` with this rate and burst (created once).

    Hooks built in different threads of one process for the same endpoint get the same object, so
    together they stay within ``rate``.
    """
    key = (name, float(rate), int(burst))
    with _SHARED_LOCK:
        limiter = _SHARED.get(key)
        if limiter is None:
            limiter = _SHARED[key] = RateLimiter(rate, burst)
        return limiter
