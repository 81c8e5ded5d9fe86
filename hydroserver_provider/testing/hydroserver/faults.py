"""Fault injection and the per-client throttle of a local HydroServer."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Iterable
from typing import Any


class Faults:
    """Fault injection for a :class:`LocalHydroServer` (``hs.faults``).

    Faults are applied when a request arrives, before throttling, authentication or any database
    work, so a failed or dropped request changes nothing; a *lost* or *slow* answer comes after
    the work was done. Rules are used in the order they were added, before :meth:`at_random`.

    * :meth:`fail_next` - the next ``n`` matching requests answer ``status`` (a 429 carries the
      throttle body; ``retry_after`` adds a ``Retry-After`` header).
    * :meth:`drop_next` - the next ``n`` matching requests get no answer: the connection is closed.
    * :meth:`lose_answer_next` - the next ``n`` matching requests are carried out (observations
      stored, ...), then the connection is closed before the answer.
    * :meth:`slow_next` - the next ``n`` matching requests are carried out at once and answered
      ``seconds`` later, past a client's read timeout.
    * :meth:`at_random` - from now on, fault a share of the matching requests, seeded.
    * :attr:`latency` - seconds added to every request (also to faulted ones).
    * :attr:`injected` - how many requests were faulted, by kind (``"503"``, ``"drop"``, ...).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[dict[str, Any]] = []
        self._random: dict[str, Any] | None = None
        self.latency: float = 0.0
        self.injected: collections.Counter = collections.Counter()

    def fail_next(
        self,
        n: int = 1,
        status: int = 503,
        retry_after: float | None = None,
        path_contains: str | None = None,
        *,
        after: int = 0,
    ) -> None:
        """Answer the next ``n`` requests (whose path contains ``path_contains``) with ``status``.

        ``after``: let that many matching requests through first (e.g. fail the 4th chunk).
        """
        self._add(
            n,
            {
                "kind": "fail",
                "status": int(status),
                "retry_after": retry_after,
                "path_contains": path_contains,
            },
            after,
        )

    def drop_next(self, n: int = 1, path_contains: str | None = None, *, after: int = 0) -> None:
        """Close the connection of the next ``n`` matching requests without answering."""
        self._add(n, {"kind": "drop", "path_contains": path_contains}, after)

    def lose_answer_next(
        self, n: int = 1, path_contains: str | None = None, *, after: int = 0
    ) -> None:
        """Carry out the next ``n`` matching requests, then close the connection unanswered."""
        self._add(n, {"kind": "lose", "path_contains": path_contains}, after)

    def slow_next(
        self, n: int = 1, seconds: float = 1.0, path_contains: str | None = None, *, after: int = 0
    ) -> None:
        """Carry out the next ``n`` matching requests at once; answer them ``seconds`` later."""
        self._add(
            n, {"kind": "slow", "seconds": float(seconds), "path_contains": path_contains}, after
        )

    def at_random(
        self,
        rate: float,
        kinds: Iterable[Any] = (500, 502, 503, 429, "drop", "lose", "slow"),
        *,
        seed: int = 0,
        retry_after: float | None = None,
        slow_seconds: float = 1.0,
        path_contains: str | None = None,
    ) -> None:
        """Fault each later matching request with probability ``rate``, of a kind drawn from
        ``kinds`` (a status, ``"drop"``, ``"lose"`` or ``"slow"``); ``seed`` makes the draws
        repeatable for the same order of requests. ``rate=0`` stops it."""
        import random

        kinds = tuple(kinds)
        unknown = [k for k in kinds if not isinstance(k, int) and k not in ("drop", "lose", "slow")]
        if unknown or not kinds:
            raise ValueError(f"kinds: expected statuses and 'drop', 'lose', 'slow'; found {kinds}")
        with self._lock:
            self._random = (
                None
                if rate <= 0
                else {
                    "rng": random.Random(seed),
                    "rate": float(rate),
                    "kinds": kinds,
                    "retry_after": retry_after,
                    "seconds": float(slow_seconds),
                    "path_contains": path_contains,
                }
            )

    def _add(self, n: int, rule: dict[str, Any], after: int = 0) -> None:
        if n < 1 or after < 0:
            raise ValueError("n must be >= 1 and after >= 0")
        with self._lock:
            self._rules.append({**rule, "remaining": int(n), "after": int(after)})

    def clear(self) -> None:
        """Forget all pending faults and the counts, and set :attr:`latency` back to 0."""
        with self._lock:
            self._rules.clear()
            self._random = None
            self.injected.clear()
        self.latency = 0.0

    @property
    def pending(self) -> int:
        """How many requests the pending rules will still fault."""
        with self._lock:
            return sum(rule["remaining"] for rule in self._rules)

    def take(self, raw_path: str) -> dict[str, Any] | None:
        """The fault for this request (and count it), or ``None`` to let it through."""
        with self._lock:
            chosen = None
            for rule in self._rules:
                needle = rule["path_contains"]
                if rule["remaining"] > 0 and (needle is None or needle in raw_path):
                    if rule["after"] > 0:  # not yet: this one goes through
                        rule["after"] -= 1
                        continue
                    rule["remaining"] -= 1
                    if rule["remaining"] == 0:
                        self._rules.remove(rule)
                    chosen = rule
                    break
            plan = self._random
            if (
                chosen is None
                and plan is not None
                and (plan["path_contains"] is None or plan["path_contains"] in raw_path)
                and plan["rng"].random() < plan["rate"]
            ):
                kind = plan["rng"].choice(plan["kinds"])
                chosen = (
                    {"kind": kind, "seconds": plan["seconds"]}
                    if isinstance(kind, str)
                    else {"kind": "fail", "status": kind, "retry_after": plan["retry_after"]}
                )
            if chosen is not None:
                self.injected[
                    str(chosen["status"]) if chosen["kind"] == "fail" else chosen["kind"]
                ] += 1
            return chosen

    def __repr__(self) -> str:
        return f"<Faults pending={self.pending} latency={self.latency}>"


class ClientThrottle:
    """A sliding one-second window of requests per client IP, like the real server's throttle."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hits: dict[str, collections.deque] = {}

    def admit(self, client: str, limit: int | None) -> bool:
        """Record a request of ``client``; ``False`` when it is over ``limit`` per second."""
        if not limit:
            return True
        now = time.monotonic()
        with self._lock:
            hits = self._hits.setdefault(client, collections.deque())
            while hits and hits[0] <= now - 1.0:
                hits.popleft()
            if len(hits) >= limit:
                return False
            hits.append(now)
        return True
