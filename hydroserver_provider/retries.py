"""One retry loop for every HTTP call the provider makes (HydroServer, sources, Hydrocron).

Transient failures (connection errors, 429, 502/503/504) are retried with exponential backoff and
full jitter, honouring ``Retry-After``; every other answer goes back to the caller unchanged, so a
400 is never hammered. Each retry is logged with the reason and the delay, never with headers.
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import requests

log = logging.getLogger(__name__)

TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry.

    ``tries`` counts every attempt (1 = no retry). The n-th retry waits a random time up to
    ``backoff * 2**(n-1)`` (full jitter, capped by ``max_delay``) unless the server said
    ``Retry-After``, which wins (capped by ``max_retry_after``).
    """

    tries: int = 5
    backoff: float = 1.0
    max_delay: float = 60.0
    max_retry_after: float = 300.0
    statuses: frozenset[int] = field(default=TRANSIENT_STATUSES)

    def delay(self, retry_number: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        ceiling = min(self.max_delay, self.backoff * (2 ** (retry_number - 1)))
        return random.uniform(ceiling / 2, ceiling)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header given as seconds or as an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class RequestSender(Protocol):
    """What :func:`send_with_retries` sends through: a ``requests.Session``, or a wrapper with
    the same ``request(method, url, **kwargs)`` method (e.g. one that rate-limits)."""

    @property
    def request(self) -> Callable[..., requests.Response]: ...


class RetriesExhausted(requests.RequestException):
    """Every attempt failed with a transient error; ``last`` is the final response or exception."""

    def __init__(self, message: str, last: requests.Response | BaseException | None) -> None:
        super().__init__(message)
        self.last = last


def send_with_retries(
    session: RequestSender,
    method: str,
    url: str,
    *,
    policy: RetryPolicy,
    describe: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
    **kwargs,
) -> requests.Response:
    """Send one request, retrying transient failures; returns the first non-transient response.

    After the last try a transient *status* is returned to the caller (so it can read the body and
    build its own error), while a transient *exception* is raised as :class:`RetriesExhausted`.
    ``describe`` is what the logs call the request (defaults to ``METHOD url-without-query``).
    """
    what = describe or f"{method} {url.split('?', 1)[0]}"
    transport_error = False
    for attempt in range(1, policy.tries + 1):
        try:
            response = session.request(method, url, **kwargs)
            # a try that lost its connection may have been carried out: callers that write
            # read this to tell "already done by me" from "done by someone else"
            response.after_transport_error = transport_error  # type: ignore[attr-defined]
        except (requests.ConnectionError, requests.Timeout) as exc:
            transport_error = True
            if attempt == policy.tries:
                raise RetriesExhausted(
                    f"{what} failed after {attempt} tries: {type(exc).__name__}", exc
                ) from exc
            wait = policy.delay(attempt)
            log.warning("%s: %s; retry %d/%d in %.1f s", what, type(exc).__name__, attempt,
                        policy.tries - 1, wait)
        else:
            if response.status_code not in policy.statuses or attempt == policy.tries:
                return response
            wait = policy.delay(attempt, parse_retry_after(response.headers.get("Retry-After")))
            log.warning("%s answered %d; retry %d/%d in %.1f s", what, response.status_code,
                        attempt, policy.tries - 1, wait)
            response.close()
        sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


def describe_transport_error(exc: BaseException | None) -> str:
    """A failed connection in a few words, for one-line messages: ``connection refused``,
    ``the host name 'x' could not be resolved``, ``no answer within 10 s``, ``TLS error: ...``
    -- rather than urllib3's nested ``MaxRetryError(... NewConnectionError(...))`` dump."""
    if exc is None:
        return "no answer"
    if isinstance(exc, RetriesExhausted) and isinstance(exc.last, BaseException):
        exc = exc.last
    chain = _exception_chain(exc)
    for err in chain:
        name = type(err).__name__
        if isinstance(err, ConnectionRefusedError):
            return "connection refused"
        if name == "NameResolutionError" or isinstance(err, socket.gaierror):
            host = getattr(getattr(err, "conn", None), "host", None)
            return (f"the host name '{host}' could not be resolved" if host
                    else "the host name could not be resolved")
        if isinstance(err, requests.exceptions.SSLError) or name in ("SSLError",
                                                                     "SSLCertVerificationError"):
            text = str(getattr(err, "reason", None) or err)
            match = re.search(r"\[SSL[^\]]*\]\s*([^(]*?)\s*(?:\(_ssl|$)", text)
            return f"TLS error: {(match.group(1) if match else text)[:120]}"
    for err in chain:
        if isinstance(err, requests.exceptions.ConnectTimeout):
            return f"no connection within {_timeout_seconds(err, 'connect')}"
        if isinstance(err, requests.exceptions.ReadTimeout):
            return f"no answer within {_timeout_seconds(err, 'read')}"
        if (isinstance(err, OSError) and err.strerror
                and not isinstance(err, requests.RequestException)):
            return err.strerror[0].lower() + err.strerror[1:]
        if type(err).__name__ in ("RemoteDisconnected", "ProtocolError"):
            return "the connection was closed without an answer"
    return type(exc).__name__


def _exception_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps (urllib3's ``reason``, exceptions in ``args``, causes), in
    order, each once."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo and len(seen) < 20:
        err = todo.pop(0)
        if err is None or any(err is s for s in seen):
            continue
        seen.append(err)
        todo.extend(a for a in getattr(err, "args", ()) if isinstance(a, BaseException))
        for attr in ("reason", "__cause__", "__context__"):
            inner = getattr(err, attr, None)
            if isinstance(inner, BaseException):
                todo.append(inner)
    return seen


def _timeout_seconds(err: BaseException, which: str) -> str:
    match = re.search(rf"{which} timeout=([\d.]+)", str(err))
    return f"{float(match.group(1)):g} s" if match else "the timeout"
