"""A local, offline stand-in for a HydroServer 1.11.2 instance.

:class:`LocalHydroServer` runs a real HTTP server on ``127.0.0.1`` (a free port by default) backed
by SQLite, and answers the HydroServer REST endpoints the provider uses the way the real
Django/django-ninja server does: the same JSON bodies (camelCase), the same status codes and error
bodies, the same pagination headers, the same bulk-create modes and their failures, API-key and
session (Bearer) authentication, anonymous fallback on public GETs, and the same ETL definitions.

On top of that it gives tests a few handles the real server does not have: direct seeding and
reading of observations, fault injection (errors, dropped connections, latency), a throttle, and
per-endpoint request counters.

Example::

    from hydroserver_provider.testing import LocalHydroServer

    with LocalHydroServer() as hs:
        ds = hs.create_datastream(name="Water temperature", unit="degC")
        requests.post(
            f"{hs.url}/api/data/datastreams/{ds}/observations/bulk-create",
            json={"fields": ["phenomenonTime", "result"], "data": [["2024-01-01T00:00:00Z", 4.2]]},
            headers={"X-Api-Key": hs.api_key},
        )
        assert hs.observations(ds)[0][1] == 4.2
        assert hs.request_counts["POST /api/data/datastreams/{id}/observations/bulk-create"] == 1

Only the standard library is used (``http.server``, ``sqlite3``, ``threading``); ``dateutil`` is
used for the rare timestamp forms :meth:`datetime.fromisoformat` does not read, when installed.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import hashlib
import http.server
import json
import logging
import math
import re
import secrets
import socket
import sqlite3
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http import HTTPStatus
from typing import Any, Iterable, Iterator, Optional
from urllib.parse import parse_qs, urlsplit

__all__ = ["LocalHydroServer", "Faults", "ROLES"]

logger = logging.getLogger("hydroserver_provider.testing")

UTC = timezone.utc
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)

#: API-key / collaborator roles of a stock HydroServer and what they may do, as
#: ``{(resource_type, permission_type), ...}`` (``"*"`` is a wildcard), as in its default fixtures.
ROLES: dict[str, frozenset[tuple[str, str]]] = {
    "Editor": frozenset({("*", "*")}),
    "Viewer": frozenset({("*", "view")}),
    "Data Loader": frozenset(
        {("*", "view"), ("Observation", "create"), ("Datastream", "edit")}
    ),
}

# Vocabulary objects every datastream points at (HydroServer ships system-wide defaults like these).
_SENSOR_ID = "019a0000-0000-7000-8000-000000000001"
_OBSERVED_PROPERTY_ID = "019a0000-0000-7000-8000-000000000002"
_PROCESSING_LEVEL_ID = "019a0000-0000-7000-8000-000000000003"

_SENSOR = {
    "name": "Unknown sensor",
    "description": "Default sensor of the local HydroServer.",
    "encodingType": "application/json",
    "manufacturer": None,
    "model": None,
    "modelLink": None,
    "methodType": "Instrument Deployment",
    "methodLink": None,
    "methodCode": None,
    "id": _SENSOR_ID,
    "workspaceId": None,
}
_OBSERVED_PROPERTY = {
    "name": "Unknown",
    "definition": "Default observed property of the local HydroServer.",
    "description": "Default observed property of the local HydroServer.",
    "type": "Hydrology",
    "code": "unknown",
    "id": _OBSERVED_PROPERTY_ID,
    "workspaceId": None,
}
_PROCESSING_LEVEL = {
    "code": "0",
    "definition": "Raw data",
    "explanation": None,
    "id": _PROCESSING_LEVEL_ID,
    "workspaceId": None,
}

_DJANGO_500 = (
    b'<!doctype html>\n<html lang="en">\n<head>\n  <title>Server Error (500)</title>\n</head>\n'
    b"<body>\n  <h1>Server Error (500)</h1><p></p>\n</body>\n</html>\n"
)
_THROTTLED_DETAIL = "Request was throttled. Expected available in 1 second."
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}")
_BULK_FIELDS = ("phenomenonTime", "result", "resultQualifierCodes")
_PAYLOAD_TYPES = ("CSV", "JSON")
_PLACEHOLDER_TYPES = ("run_time", "latest_observation_timestamp", "per_task", "window_start", "window_end")
_INTERVAL_PERIODS = ("minutes", "hours", "days")
_DELIMITERS = (",", "|", "\t", ";", " ")
_WINDOW_ANCHORS = ("latest_observation_timestamp", "run_time", "fixed_timestamp")


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------


class _UUID7:
    """Time-ordered UUIDs (version 7, monotonic within the process) like HydroServer's ``uuid6.uuid7``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._counter = 0

    def __call__(self) -> str:
        with self._lock:
            ms = time.time_ns() // 1_000_000
            if ms <= self._last_ms:
                ms = self._last_ms
                self._counter += 1
                if self._counter > 0xFFF:
                    ms += 1
                    self._counter = 0
            else:
                self._counter = 0
            self._last_ms = ms
            counter = self._counter
        value = (ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | secrets.randbits(62)
        return str(uuid.UUID(int=value))


_uuid7 = _UUID7()

try:  # the parser HydroServer itself uses; only needed for forms fromisoformat rejects
    from dateutil.parser import isoparse as _isoparse
except Exception:  # pragma: no cover - dateutil is always there next to Airflow
    _isoparse = None


def _parse_iso(value: str) -> datetime:
    """Parse an ISO 8601 timestamp like HydroServer's ``ISODatetime`` (naive means UTC)."""
    try:
        dt = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        if _isoparse is None:
            raise ValueError("Invalid ISO time format") from None
        try:
            dt = _isoparse(value)
        except (TypeError, ValueError, OverflowError):
            raise ValueError("Invalid ISO time format") from None
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def _to_us(value: Any) -> int:
    """Microseconds since the epoch (UTC) of a datetime, an ISO string or epoch seconds."""
    if isinstance(value, datetime):
        dt = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    elif isinstance(value, str):
        dt = _parse_iso(value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        return _epoch_number_to_us(value)
    else:
        raise TypeError(f"Cannot read a timestamp from {value!r}")
    return (dt - _EPOCH) // _US


def _epoch_number_to_us(value: float) -> int:
    # pydantic reads numbers as seconds, or as milliseconds when they are larger than 2e10
    seconds = value / 1000 if abs(value) > 2e10 else value
    return int(round(seconds * 1_000_000))


def _from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _iso(us: Optional[int]) -> Optional[str]:
    """Render like the real server (orjson of an aware UTC datetime): ``2024-01-01T00:00:00+00:00``."""
    if us is None:
        return None
    return (_EPOCH + timedelta(microseconds=us)).isoformat()


def _iso_dt(dt: Optional[datetime]) -> Optional[str]:
    return None if dt is None else dt.astimezone(UTC).isoformat()


def _hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _normalise_path(path: str) -> str:
    return "/".join("{id}" if _UUID_RE.fullmatch(seg) else seg for seg in path.split("/"))


def _canonical_uuid(value: Any) -> Optional[str]:
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, AttributeError, TypeError):
        return None


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class _HttpError(Exception):
    """An answer other than success: a JSON ``{"detail": ...}`` unless ``body`` is given."""

    def __init__(
        self,
        status: int,
        detail: Any = None,
        *,
        body: Optional[bytes] = None,
        content_type: str = "application/json; charset=utf-8",
        headers: Optional[dict[str, str]] = None,
    ) -> None:
        super().__init__(f"{status} {detail!r}")
        self.status = status
        self.detail = detail
        self.body = body
        self.content_type = content_type
        self.headers = headers or {}


class _ServerError(_HttpError):
    """A crash the real server answers with Django's plain 500 page."""

    def __init__(self, reason: str) -> None:
        super().__init__(500, reason, body=_DJANGO_500, content_type="text/html; charset=utf-8")


def _validation_error(errors: list[dict]) -> _HttpError:
    return _HttpError(422, errors)


@dataclass(frozen=True)
class _Principal:
    """Who is calling: a user (session) or an API key (acting within one workspace)."""

    kind: str  # "user" | "apikey"
    user_id: Optional[int] = None
    workspace_id: Optional[str] = None
    role: Optional[str] = None
    key_id: Optional[str] = None


@dataclass
class _Response:
    status: int
    body: bytes = b""
    content_type: Optional[str] = "application/json; charset=utf-8"
    headers: Optional[dict[str, str]] = None


_DROP = object()
_NOT_A_TIME = object()  # a non-string timestamp in the row form: the real server crashes on insert


# --------------------------------------------------------------------------------------------
# fault injection
# --------------------------------------------------------------------------------------------


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
        self._random: Optional[dict[str, Any]] = None
        self.latency: float = 0.0
        self.injected: collections.Counter = collections.Counter()

    def fail_next(
        self,
        n: int = 1,
        status: int = 503,
        retry_after: Optional[float] = None,
        path_contains: Optional[str] = None,
        *,
        after: int = 0,
    ) -> None:
        """Answer the next ``n`` requests (whose path contains ``path_contains``) with ``status``.

        ``after``: let that many matching requests through first (e.g. fail the 4th chunk).
        """
        self._add(n, {"kind": "fail", "status": int(status), "retry_after": retry_after,
                      "path_contains": path_contains}, after)

    def drop_next(self, n: int = 1, path_contains: Optional[str] = None, *,
                  after: int = 0) -> None:
        """Close the connection of the next ``n`` matching requests without answering."""
        self._add(n, {"kind": "drop", "path_contains": path_contains}, after)

    def lose_answer_next(self, n: int = 1, path_contains: Optional[str] = None, *,
                         after: int = 0) -> None:
        """Carry out the next ``n`` matching requests, then close the connection unanswered."""
        self._add(n, {"kind": "lose", "path_contains": path_contains}, after)

    def slow_next(self, n: int = 1, seconds: float = 1.0, path_contains: Optional[str] = None,
                  *, after: int = 0) -> None:
        """Carry out the next ``n`` matching requests at once; answer them ``seconds`` later."""
        self._add(n, {"kind": "slow", "seconds": float(seconds), "path_contains": path_contains},
                  after)

    def at_random(self, rate: float, kinds: Iterable[Any] = (500, 502, 503, 429, "drop", "lose",
                                                            "slow"),
                  *, seed: int = 0, retry_after: Optional[float] = None,
                  slow_seconds: float = 1.0, path_contains: Optional[str] = None) -> None:
        """Fault each later matching request with probability ``rate``, of a kind drawn from
        ``kinds`` (a status, ``"drop"``, ``"lose"`` or ``"slow"``); ``seed`` makes the draws
        repeatable for the same order of requests. ``rate=0`` stops it."""
        import random  # noqa: PLC0415

        kinds = tuple(kinds)
        unknown = [k for k in kinds if not isinstance(k, int) and k not in ("drop", "lose", "slow")]
        if unknown or not kinds:
            raise ValueError(f"kinds: expected statuses and 'drop', 'lose', 'slow'; found {kinds}")
        with self._lock:
            self._random = None if rate <= 0 else {
                "rng": random.Random(seed), "rate": float(rate), "kinds": kinds,
                "retry_after": retry_after, "seconds": float(slow_seconds),
                "path_contains": path_contains}

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

    def _take(self, raw_path: str) -> Optional[dict[str, Any]]:
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
            if chosen is None and plan is not None and (
                    plan["path_contains"] is None or plan["path_contains"] in raw_path):
                if plan["rng"].random() < plan["rate"]:
                    kind = plan["rng"].choice(plan["kinds"])
                    chosen = ({"kind": kind, "seconds": plan["seconds"]} if isinstance(kind, str)
                              else {"kind": "fail", "status": kind,
                                    "retry_after": plan["retry_after"]})
            if chosen is not None:
                self.injected[str(chosen["status"]) if chosen["kind"] == "fail"
                              else chosen["kind"]] += 1
            return chosen

    def __repr__(self) -> str:
        return f"<Faults pending={self.pending} latency={self.latency}>"


# --------------------------------------------------------------------------------------------
# storage
# --------------------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE COLLATE NOCASE, password TEXT NOT NULL,
    first_name TEXT NOT NULL, last_name TEXT NOT NULL, is_active INTEGER NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS workspaces (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, is_private INTEGER NOT NULL, owner_id INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, role TEXT NOT NULL, name TEXT NOT NULL,
    prefix TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE, is_active INTEGER NOT NULL DEFAULT 1);
CREATE INDEX IF NOT EXISTS api_keys_prefix ON api_keys (prefix);
CREATE TABLE IF NOT EXISTS sessions (token TEXT PRIMARY KEY, user_id INTEGER NOT NULL, created REAL);
CREATE TABLE IF NOT EXISTS things (
    id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, name TEXT NOT NULL, description TEXT NOT NULL,
    is_private INTEGER NOT NULL, sampling_feature_code TEXT NOT NULL, site_type TEXT NOT NULL,
    latitude REAL NOT NULL, longitude REAL NOT NULL);
CREATE TABLE IF NOT EXISTS units (
    id TEXT PRIMARY KEY, workspace_id TEXT, name TEXT NOT NULL, symbol TEXT NOT NULL,
    definition TEXT NOT NULL, type TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS datastreams (
    pk INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, workspace_id TEXT NOT NULL,
    thing_id TEXT NOT NULL, unit_id TEXT NOT NULL, sensor_id TEXT NOT NULL,
    observed_property_id TEXT NOT NULL, processing_level_id TEXT NOT NULL,
    name TEXT NOT NULL, description TEXT NOT NULL, observation_type TEXT NOT NULL,
    sampled_medium TEXT NOT NULL, no_data_value REAL NOT NULL, aggregation_statistic TEXT NOT NULL,
    time_aggregation_interval REAL NOT NULL, time_aggregation_interval_unit TEXT NOT NULL,
    status TEXT, result_type TEXT NOT NULL, intended_time_spacing REAL,
    intended_time_spacing_unit TEXT, is_private INTEGER NOT NULL, is_visible INTEGER NOT NULL,
    value_count INTEGER, begin_us INTEGER, end_us INTEGER, result_begin_us INTEGER,
    result_end_us INTEGER, tags TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS observations (
    id INTEGER PRIMARY KEY, ds INTEGER NOT NULL, t INTEGER NOT NULL, result REAL NOT NULL,
    qualifiers TEXT, UNIQUE (ds, t));
CREATE TABLE IF NOT EXISTS data_connections (
    id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS etl_tasks (
    id TEXT PRIMARY KEY, data_connection_id TEXT NOT NULL, name TEXT NOT NULL, description TEXT,
    task_variables TEXT NOT NULL, schedule TEXT);
CREATE TABLE IF NOT EXISTS etl_mappings (
    pk INTEGER PRIMARY KEY, task_id TEXT NOT NULL, source_identifier TEXT NOT NULL,
    datastream_id TEXT NOT NULL);
"""


class _Store:
    """One SQLite connection guarded by a lock; every request's writes are one transaction."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.RLock()
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        if path != ":memory:":
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)

    @contextlib.contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed at the end, rolled back entirely on any exception."""
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            yield self.db

    def close(self) -> None:
        with self.lock:
            self.db.close()


# --------------------------------------------------------------------------------------------
# request parsing
# --------------------------------------------------------------------------------------------


class _Request:
    def __init__(self, method: str, raw_path: str, headers: dict[str, str], body: bytes, client: str):
        self.method = method
        self.raw_path = raw_path
        split = urlsplit(raw_path)
        self.path = split.path
        self.query = parse_qs(split.query, keep_blank_values=True)
        self.headers = headers  # lower-cased names
        self.body = body
        self.client = client
        self.params: dict[str, str] = {}
        self.principal: Optional[_Principal] = None

    def header(self, name: str) -> Optional[str]:
        return self.headers.get(name.lower())

    def json_body(self) -> Any:
        """The JSON body like django-ninja reads it (``None`` when the body is empty)."""
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            raise _HttpError(400, "Cannot parse request body") from None


_BOOL_TRUE = {"1", "true", "t", "yes", "y", "on"}
_BOOL_FALSE = {"0", "false", "f", "no", "n", "off"}


class _Params:
    """Validates path and query parameters; collects pydantic-style errors and raises one 422."""

    def __init__(self, req: _Request) -> None:
        self.req = req
        self.errors: list[dict] = []

    def _raw(self, name: str) -> list[str]:
        return [v.strip() for v in self.req.query.get(name, [])]

    def path_uuid(self, name: str) -> str:
        raw = self.req.params[name]
        value = _canonical_uuid(raw) if len(raw.replace("-", "")) == 32 else None
        if value is None:
            self.errors.append(
                {"type": "uuid_parsing", "loc": ["path", name],
                 "msg": "Input should be a valid UUID, invalid character or length", "input": raw}
            )
            return raw
        return value

    def integer(self, name: str, default: Optional[int], ge: Optional[int] = None,
                le: Optional[int] = None) -> Optional[int]:
        raw = self._raw(name)
        if not raw:
            return default
        text = raw[-1]
        if text.lower() == "null" or text == "":
            return default  # "null" means unset (HydroServer maps it to None, then to the default)
        try:
            value = int(text)
        except ValueError:
            self.errors.append(
                {"type": "int_parsing", "loc": ["query", name],
                 "msg": "Input should be a valid integer, unable to parse string as an integer",
                 "input": text}
            )
            return default
        if ge is not None and value < ge:
            self.errors.append(
                {"type": "greater_than_equal", "loc": ["query", name],
                 "msg": f"Input should be greater than or equal to {ge}", "input": text, "ctx": {"ge": ge}}
            )
        if le is not None and value > le:
            self.errors.append(
                {"type": "less_than_equal", "loc": ["query", name],
                 "msg": f"Input should be less than or equal to {le}", "input": text, "ctx": {"le": le}}
            )
        return value

    def boolean(self, name: str) -> Optional[bool]:
        raw = self._raw(name)
        if not raw:
            return None
        text = raw[-1].lower()
        if text in _BOOL_TRUE:
            return True
        if text in _BOOL_FALSE:
            return False
        if text == "null":
            return None
        self.errors.append(
            {"type": "bool_parsing", "loc": ["query", name],
             "msg": "Input should be a valid boolean, unable to interpret input", "input": raw[-1]}
        )
        return None

    def strings(self, name: str) -> Optional[list[Optional[str]]]:
        raw = self.req.query.get(name)
        if raw is None:
            return None
        return [None if v.strip().lower() == "null" else v.strip() for v in raw]

    def uuids(self, name: str) -> Optional[list[str]]:
        raw = self.req.query.get(name)
        if raw is None:
            return None
        values = []
        for i, text in enumerate(raw):
            value = _canonical_uuid(text.strip())
            if value is None:
                self.errors.append(
                    {"type": "uuid_parsing", "loc": ["query", name, i],
                     "msg": "Input should be a valid UUID, invalid character or length", "input": text}
                )
            else:
                values.append(value)
        return values

    def literal(self, name: str, allowed: Iterable[str]) -> Optional[str]:
        raw = self._raw(name)
        if not raw:
            return None
        allowed = tuple(allowed)
        if raw[-1].lower() == "null":
            return None
        if raw[-1] not in allowed:
            self.errors.append(self._literal_error(["query", name], raw[-1], allowed))
            return None
        return raw[-1]

    def literals(self, name: str, allowed: Iterable[str]) -> list[str]:
        allowed = tuple(allowed)
        values = []
        for i, text in enumerate(self._raw(name)):
            if text not in allowed:
                self.errors.append(self._literal_error(["query", name, i], text, allowed))
            else:
                values.append(text)
        return values

    def datetime_us(self, name: str) -> Optional[int]:
        raw = self._raw(name)
        if not raw or raw[-1].lower() == "null":
            return None
        try:
            return _to_us(raw[-1])
        except (TypeError, ValueError):
            self.errors.append(
                {"type": "value_error", "loc": ["query", name],
                 "msg": "Value error, Invalid ISO time format", "input": raw[-1],
                 "ctx": {"error": "Invalid ISO time format"}}
            )
            return None

    @staticmethod
    def _literal_error(loc: list, value: Any, allowed: tuple[str, ...]) -> dict:
        expected = " or ".join([", ".join(f"'{a}'" for a in allowed[:-1]), f"'{allowed[-1]}'"]) \
            if len(allowed) > 1 else f"'{allowed[0]}'"
        return {"type": "literal_error", "loc": loc, "msg": f"Input should be {expected}",
                "input": value, "ctx": {"expected": expected}}

    def done(self) -> None:
        if self.errors:
            raise _validation_error(self.errors)


def _missing(loc: list) -> dict:
    return {"type": "missing", "loc": loc, "msg": "Field required"}


def _type_error(loc: list, kind: str, value: Any) -> dict:
    messages = {
        "string_type": "Input should be a valid string",
        "list_type": "Input should be a valid list",
        "dict_type": "Input should be a valid dictionary",
        "model_type": "Input should be a valid dictionary or object to extract fields from",
        "bool_type": "Input should be a valid boolean",
        "int_type": "Input should be a valid integer",
        "float_parsing": "Input should be a valid number, unable to parse string as a number",
        "float_type": "Input should be a valid number",
        "uuid_parsing": "Input should be a valid UUID, invalid character or length",
        "datetime_type": "Input should be a valid datetime",
        "datetime_from_date_parsing": "Input should be a valid datetime or date, invalid character",
    }
    return {"type": kind, "loc": loc, "msg": messages[kind], "input": value}


def _paginate_headers(count: int, page: int, page_size: int) -> dict[str, str]:
    headers = {"X-Total-Count": str(count), "X-Page-Size": str(page_size)}
    if page_size > 0:
        headers["X-Page"] = str(page)
        headers["X-Total-Pages"] = str((count + page_size - 1) // page_size)
    return headers


def _order_sql(column: str, descending: bool) -> str:
    # PostgreSQL puts NULLs last when ascending and first when descending
    if descending:
        return f"({column} IS NULL) DESC, {column} DESC"
    return f"({column} IS NULL), {column}"


def _check_order_repeats(order_by: list[str]) -> None:
    stripped = [f.lstrip("-") for f in order_by]
    if len(stripped) != len(set(stripped)):
        raise _HttpError(400, "Fields cannot be repeated in order_by arguments")


# --------------------------------------------------------------------------------------------
# the HTTP plumbing
# --------------------------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "HydroServer-Local/1.11.2"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are closed after this many seconds

    def version_string(self) -> str:
        return self.server_version

    def _dispatch(self) -> None:
        app: LocalHydroServer = self.server.app  # type: ignore[attr-defined]
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        result = app._handle(self.command, self.path, headers, body, self.client_address[0])
        if result is _DROP:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        assert isinstance(result, _Response)
        self.send_response(result.status)
        if result.content_type and result.body:
            self.send_header("Content-Type", result.content_type)
        for name, value in (result.headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(result.body)))
        self.end_headers()
        if result.body and self.command != "HEAD":
            self.wfile.write(result.body)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        logger.debug("%s - %s", self.address_string(), format % args)


class _ThreadingServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: "LocalHydroServer") -> None:
        self.app = app
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request, client_address):  # type: ignore[override]
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):  # type: ignore[override]
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_open_connections(self) -> None:
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request, client_address) -> None:  # noqa: D102 - quiet broken pipes
        logger.debug("connection error from %s", client_address, exc_info=True)


# --------------------------------------------------------------------------------------------
# the server
# --------------------------------------------------------------------------------------------


class LocalHydroServer:
    """A HydroServer 1.11.2 look-alike on ``127.0.0.1`` for offline tests and demos.

    Use it as a context manager (or call :meth:`start` / :meth:`stop`)::

        with LocalHydroServer() as hs:
            hs.url, hs.api_key, hs.workspace_id, hs.email, hs.password

    On start it holds one user account (``email`` / ``password``, for session login), which owns
    one public workspace (:attr:`workspace_id`) with one site, and an Editor API key of that
    workspace (:attr:`api_key`). Datastreams are private by default; create them public with
    ``is_private=False`` to try anonymous reads.

    Args:
        host: interface to listen on.
        port: TCP port; 0 picks a free one.
        db_path: SQLite file to keep the data in (reused when it exists); ``None`` keeps everything
            in memory.
        api_key_cost: seconds slept for every request that presents a stored API key (the real
            server spends ~1 s hashing it). Slept outside any lock, so concurrent requests overlap.
        bearer_cost: seconds slept for every request with a Bearer token (~0.04 s on the server).
        row_cost: seconds slept per row of a bulk-create (~0.0001 s on the server).
        throttle: requests per second allowed per client IP (the real default is 20); ``None``
            disables throttling. Can be changed later through :attr:`throttle`.
        api_key: the default API key string (random when ``None``).
        email, password: the default account.
        workspace_name: name of the default workspace.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        db_path: Optional[str] = None,
        api_key_cost: float = 0.0,
        bearer_cost: float = 0.0,
        row_cost: float = 0.0,
        throttle: Optional[int] = None,
        api_key: Optional[str] = None,
        email: str = "hydro@example.org",
        password: str = "local-hydroserver",
        workspace_name: str = "Local Workspace",
    ) -> None:
        self.host = host
        self.port = port
        self.db_path = db_path
        self.api_key_cost = float(api_key_cost)
        self.bearer_cost = float(bearer_cost)
        self.row_cost = float(row_cost)
        self.throttle: Optional[int] = throttle
        self.faults = Faults()
        self._requested_key = api_key
        self._email = email
        self._password = password
        self._workspace_name = workspace_name
        self._store: Optional[_Store] = None
        self._server: Optional[_ThreadingServer] = None
        self._thread: Optional[threading.Thread] = None
        self._stats_lock = threading.Lock()
        self._counts: collections.Counter = collections.Counter()
        self._log: list[tuple[str, str, Optional[int]]] = []
        self._total = 0
        self._throttle_hits: dict[str, collections.deque] = {}
        self._errors: list[str] = []
        self._in_flight = 0
        self._peak_in_flight = 0
        self._user_id: Optional[int] = None
        self._workspace_id: Optional[str] = None
        self._api_key: Optional[str] = None
        self._lifecycle = threading.Lock()

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> "LocalHydroServer":
        """Open the database, seed the default account/workspace/key and start serving."""
        with self._lifecycle:
            if self._server is not None:
                return self
            self._store = _Store(self.db_path or ":memory:")
            self._seed_defaults()
            self._server = _ThreadingServer((self.host, self.port), self)
            self.port = self._server.server_address[1]
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                name=f"LocalHydroServer:{self.port}", daemon=True,
            )
            self._thread.start()
            logger.info("LocalHydroServer listening on %s", self.url)
            return self

    def stop(self) -> None:
        """Stop serving, close open connections and the database. Safe to call twice."""
        with self._lifecycle:
            server, self._server = self._server, None
            if server is None:
                return
            server.shutdown()
            server.server_close()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:  # let requests being answered finish
                with self._stats_lock:
                    if self._in_flight <= 0:
                        break
                time.sleep(0.01)
            server.close_open_connections()
            if self._thread is not None:
                self._thread.join(timeout=5)
                self._thread = None
            if self._store is not None:
                self._store.close()
                self._store = None

    def __enter__(self) -> "LocalHydroServer":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    def __repr__(self) -> str:
        if not self.running:
            return f"<LocalHydroServer (stopped) db={self.db_path or ':memory:'}>"
        return (
            f"<LocalHydroServer {self.url} workspace={self._workspace_id} "
            f"requests={self.total_requests} db={self.db_path or ':memory:'}>"
        )

    # ---------------------------------------------------------------- public properties

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:51234`` (no trailing slash)."""
        self._require_running()
        host = self.host if self.host not in ("0.0.0.0", "::") else "127.0.0.1"
        return f"http://{host}:{self.port}"

    @property
    def api_key(self) -> str:
        """An Editor API key of the default workspace."""
        self._require_running()
        assert self._api_key is not None
        return self._api_key

    @property
    def workspace_id(self) -> str:
        """The default workspace (public, owned by :attr:`email`)."""
        self._require_running()
        assert self._workspace_id is not None
        return self._workspace_id

    @property
    def email(self) -> str:
        return self._email

    @property
    def password(self) -> str:
        return self._password

    @property
    def request_counts(self) -> collections.Counter:
        """Requests per endpoint, keyed like ``"POST /api/data/datastreams/{id}/observations/bulk-create"``."""
        with self._stats_lock:
            return collections.Counter(self._counts)

    @property
    def total_requests(self) -> int:
        with self._stats_lock:
            return self._total

    @property
    def in_flight(self) -> int:
        """Requests being carried out right now (e.g. one a killed client left behind)."""
        with self._stats_lock:
            return self._in_flight

    @property
    def peak_in_flight(self) -> int:
        """The most requests carried out at the same time since the last :meth:`reset_counts`."""
        with self._stats_lock:
            return self._peak_in_flight

    @property
    def requests_log(self) -> list[tuple[str, str, Optional[int]]]:
        """Every request as ``(method, raw path with query, status)``; status is ``None`` if dropped."""
        with self._stats_lock:
            return list(self._log)

    @property
    def errors(self) -> list[str]:
        """Tracebacks of unexpected exceptions inside the local server (should stay empty)."""
        with self._stats_lock:
            return list(self._errors)

    def reset_counts(self) -> None:
        """Clear :attr:`request_counts`, :attr:`requests_log`, :attr:`total_requests` and
        :attr:`peak_in_flight`."""
        with self._stats_lock:
            self._counts.clear()
            self._log.clear()
            self._total = 0
            self._peak_in_flight = self._in_flight

    # ---------------------------------------------------------------- seeding helpers

    def create_user(self, email: str, password: str, first_name: str = "Local",
                    last_name: str = "User") -> int:
        """Add a user account (for session login); returns its id. Existing emails are reused."""
        with self._tx() as db:
            row = db.execute("SELECT id FROM users WHERE email = ?", (email,)).fetchone()
            if row:
                db.execute("UPDATE users SET password = ? WHERE id = ?", (password, row["id"]))
                return int(row["id"])
            cur = db.execute(
                "INSERT INTO users (email, password, first_name, last_name) VALUES (?, ?, ?, ?)",
                (email, password, first_name, last_name),
            )
            return int(cur.lastrowid)

    def create_workspace(self, name: str, is_private: bool = True,
                         owner_email: Optional[str] = None) -> str:
        """Add a workspace (with one site) owned by ``owner_email`` (default :attr:`email`)."""
        with self._tx() as db:
            if owner_email is None:
                owner_id = self._user_id
            else:
                row = db.execute("SELECT id FROM users WHERE email = ?", (owner_email,)).fetchone()
                if row is None:
                    raise ValueError(f"No user {owner_email!r}; create it with create_user() first")
                owner_id = row["id"]
            return self._insert_workspace(db, name, is_private, owner_id)

    def create_api_key(self, workspace_id: Optional[str] = None, role: str = "Editor",
                       name: Optional[str] = None, key: Optional[str] = None) -> str:
        """Add an API key with ``role`` (Editor, Viewer or Data Loader) to a workspace; returns the key."""
        if role not in ROLES:
            raise ValueError(f"Unknown role {role!r}; choose one of {sorted(ROLES)}")
        workspace_id = self._workspace_or_default(workspace_id)
        with self._tx() as db:
            self._require_row(db, "workspaces", workspace_id)
            return self._insert_api_key(db, workspace_id, role, name or f"{role} key", key)

    def create_thing(self, name: str, workspace_id: Optional[str] = None, is_private: bool = False,
                     latitude: float = 41.74, longitude: float = -111.83) -> str:
        """Add a site (HydroServer "thing") to a workspace; returns its id."""
        workspace_id = self._workspace_or_default(workspace_id)
        with self._tx() as db:
            self._require_row(db, "workspaces", workspace_id)
            return self._insert_thing(db, workspace_id, name, is_private, latitude, longitude)

    def create_unit(self, symbol: str, name: Optional[str] = None, definition: str = "",
                    unit_type: str = "Unknown", workspace_id: Optional[str] = None) -> str:
        """Add a unit (``workspace_id=None`` makes it a system unit visible to everyone)."""
        with self._tx() as db:
            return self._insert_unit(db, symbol, name, definition, unit_type, workspace_id)

    def create_datastream(
        self,
        name: str = "Temp",
        workspace_id: Optional[str] = None,
        unit: Any = "degC",
        no_data_value: float = -9999.0,
        is_private: bool = True,
        observations: Optional[Iterable[tuple[Any, float]]] = None,
        *,
        thing_id: Optional[str] = None,
        description: Optional[str] = None,
        tags: Optional[dict[str, str]] = None,
        datastream_id: Optional[str] = None,
        **fields: Any,
    ) -> str:
        """Add a datastream and return its id.

        Args:
            name: datastream name.
            workspace_id: workspace (default :attr:`workspace_id`).
            unit: a unit symbol (``"degC"``; reused when the workspace or the system has it), a
                unit id, or a dict ``{"symbol", "name", "definition", "type"}``.
            no_data_value: the value NaN results are stored as.
            is_private: private datastreams are only seen by members of the workspace.
            observations: optional ``(timestamp, value)`` rows to seed (see :meth:`add_observations`).
            thing_id: the site (default: the workspace's first site).
            description, tags: free text and ``{key: value}`` tags.
            datastream_id: a fixed id (a UUID) instead of a new one, so definition files that
                name datastream ids work unchanged (the demo's ``stations.yaml``).
            **fields: any other datastream field in camelCase or snake_case, e.g.
                ``observationType``, ``sampledMedium``, ``status``, ``intendedTimeSpacing``.
        """
        workspace_id = self._workspace_or_default(workspace_id)
        with self._tx() as db:
            self._require_row(db, "workspaces", workspace_id)
            if thing_id is None:
                row = db.execute(
                    "SELECT id FROM things WHERE workspace_id = ? ORDER BY rowid LIMIT 1", (workspace_id,)
                ).fetchone()
                thing_id = row["id"] if row else self._insert_thing(db, workspace_id, "Local site", False)
            else:
                thing = self._require_row(db, "things", thing_id)
                if thing["workspace_id"] != workspace_id:
                    raise ValueError("thing_id belongs to another workspace")
            unit_id = self._resolve_unit(db, unit, workspace_id)
            values = _datastream_defaults()
            for key, value in fields.items():
                column = _DATASTREAM_FIELD_COLUMNS.get(key, key)
                if column not in values:
                    raise TypeError(f"Unknown datastream field {key!r}")
                values[column] = value
            ds_id = _uuid7() if datastream_id is None else _canonical_uuid(datastream_id)
            if ds_id is None:
                raise ValueError(f"datastream_id: expected a UUID, found {datastream_id!r}")
            values.update(
                id=ds_id, workspace_id=workspace_id, thing_id=thing_id, unit_id=unit_id,
                sensor_id=_SENSOR_ID, observed_property_id=_OBSERVED_PROPERTY_ID,
                processing_level_id=_PROCESSING_LEVEL_ID, name=name,
                description=description if description is not None else f"{name} (local HydroServer)",
                no_data_value=float(no_data_value), is_private=int(bool(is_private)),
                tags=json.dumps(dict(tags or {})),
            )
            columns = ", ".join(values)
            db.execute(
                f"INSERT INTO datastreams ({columns}) VALUES ({', '.join('?' * len(values))})",
                tuple(values.values()),
            )
        if observations is not None:
            self.add_observations(ds_id, observations)
        return ds_id

    def add_observations(self, datastream_id: str, rows: Iterable[tuple[Any, float]]) -> int:
        """Store ``(timestamp, value)`` rows directly (no HTTP), then recompute the statistics.

        Timestamps may be datetimes (naive means UTC), ISO strings or epoch seconds. NaN values are
        stored as the datastream's ``noDataValue``, like the server does. A timestamp that is
        already stored (or repeated in ``rows``) raises ``ValueError`` and stores nothing.
        Returns the number of rows stored.
        """
        with self._tx() as db:
            ds = self._require_row(db, "datastreams", datastream_id)
            no_data = ds["no_data_value"]
            batch = []
            for t, value in rows:
                if value is None:
                    raise ValueError("Observation results cannot be None")
                value = float(value)
                if math.isnan(value):
                    value = no_data
                batch.append((ds["pk"], _to_us(t), value))
            try:
                db.executemany("INSERT INTO observations (ds, t, result) VALUES (?, ?, ?)", batch)
            except sqlite3.IntegrityError:
                raise ValueError("Duplicate phenomenonTime found on this datastream.") from None
            self._update_statistics(db, ds["pk"])
            return len(batch)

    def observations(self, datastream_id: str) -> list[tuple[datetime, float]]:
        """All stored observations of a datastream as ``(aware UTC datetime, value)``, by time."""
        with self._read() as db:
            ds = self._require_row(db, "datastreams", datastream_id)
            rows = db.execute(
                "SELECT t, result FROM observations WHERE ds = ? ORDER BY t", (ds["pk"],)
            ).fetchall()
        return [(_from_us(t), result) for t, result in rows]

    def datastream(self, datastream_id: str, expand_related: bool = False) -> dict:
        """The datastream JSON the API answers (``expand_related=True`` embeds unit, site, ...)."""
        with self._read() as db:
            ds = self._datastream_row(db, datastream_id)
            if ds is None:
                raise KeyError(f"Datastream {datastream_id} does not exist")
            return self._datastream_detail(db, ds) if expand_related else _datastream_summary(ds)

    def unit(self, unit_id: str) -> dict:
        """The unit JSON the API answers for ``GET /api/data/units/{id}``."""
        with self._read() as db:
            return _unit_json(self._require_row(db, "units", unit_id))

    def create_data_connection(self, body: dict) -> str:
        """Store an ETL data connection from a camelCase ``DataConnectionPostBody``; returns its id.

        ``workspaceId`` defaults to :attr:`workspace_id` and ``placeholderVariables`` to ``[]``.
        Invalid bodies raise ``ValueError`` with the validation errors.
        """
        body = dict(body)
        body.setdefault("workspaceId", self.workspace_id)
        body.setdefault("placeholderVariables", [])
        with self._tx() as db:
            try:
                return self._insert_data_connection(db, body, principal=None)
            except _HttpError as exc:
                raise ValueError(f"Invalid data connection ({exc.status}): {exc.detail}") from None

    def create_task(self, body: dict) -> str:
        """Store an ETL task from a camelCase ``EtlTaskPostBody``; returns its id.

        ``mappings`` is a list of ``{"sourceIdentifier", "targetDatastreamId"}``; ``schedule`` is
        ``{"enabled", "crontab" | "interval" + "intervalPeriod", "startTime"}``.
        """
        with self._tx() as db:
            try:
                return self._insert_task(db, dict(body), principal=None)
            except _HttpError as exc:
                raise ValueError(f"Invalid ETL task ({exc.status}): {exc.detail}") from None

    def data_connection(self, data_connection_id: str) -> dict:
        """The data connection JSON the API answers."""
        with self._read() as db:
            return self._data_connection_json(db, self._require_row(db, "data_connections", data_connection_id))

    def task(self, task_id: str, expand_related: bool = False) -> dict:
        """The ETL task JSON the API answers (summary, or detail with ``expand_related=True``)."""
        with self._read() as db:
            row = self._require_row(db, "etl_tasks", task_id)
            return self._task_detail(db, row) if expand_related else self._task_summary(db, row)

    def login(self, email: Optional[str] = None, password: Optional[str] = None) -> str:
        """Create a session directly (no HTTP) and return its token, for ``Authorization: Bearer``."""
        with self._tx() as db:
            user = self._check_credentials(db, email or self._email, password or self._password)
            if user is None:
                raise ValueError("Wrong email or password")
            return self._new_session(db, user["id"])

    def expire_sessions(self) -> int:
        """Invalidate every session token (the next Bearer call answers 401). Returns how many."""
        with self._tx() as db:
            return db.execute("DELETE FROM sessions").rowcount

    # ---------------------------------------------------------------- internals: seeding

    def _require_running(self) -> None:
        if self._server is None:
            raise RuntimeError("LocalHydroServer is not running; use start() or a `with` block")

    def _tx(self):
        if self._store is None:
            raise RuntimeError("LocalHydroServer is not running; use start() or a `with` block")
        return self._store.tx()

    def _read(self):
        if self._store is None:
            raise RuntimeError("LocalHydroServer is not running; use start() or a `with` block")
        return self._store.read()

    def _workspace_or_default(self, workspace_id: Optional[str]) -> str:
        if workspace_id is None:
            self._require_running()
            assert self._workspace_id is not None
            return self._workspace_id
        return str(workspace_id)

    @staticmethod
    def _require_row(db: sqlite3.Connection, table: str, row_id: str) -> sqlite3.Row:
        row = db.execute(f"SELECT * FROM {table} WHERE id = ?", (str(row_id),)).fetchone()
        if row is None:
            raise KeyError(f"No {table[:-1].replace('_', ' ')} with id {row_id}")
        return row

    def _seed_defaults(self) -> None:
        assert self._store is not None
        with self._store.tx() as db:
            meta = {r["key"]: r["value"] for r in db.execute("SELECT key, value FROM meta")}
            user = db.execute("SELECT id FROM users WHERE email = ?", (self._email,)).fetchone()
            if user is None:
                user_id = db.execute(
                    "INSERT INTO users (email, password, first_name, last_name) VALUES (?, ?, ?, ?)",
                    (self._email, self._password, "Local", "Hydrologist"),
                ).lastrowid
            else:
                user_id = user["id"]
                db.execute("UPDATE users SET password = ? WHERE id = ?", (self._password, user_id))
            self._user_id = int(user_id)
            workspace_id = meta.get("default_workspace_id")
            if workspace_id is None or db.execute(
                "SELECT 1 FROM workspaces WHERE id = ?", (workspace_id,)
            ).fetchone() is None:
                workspace_id = self._insert_workspace(db, self._workspace_name, False, self._user_id)
                db.execute("INSERT OR REPLACE INTO meta VALUES ('default_workspace_id', ?)", (workspace_id,))
            self._workspace_id = workspace_id
            key = self._requested_key or meta.get("default_api_key")
            if key is None or db.execute(
                "SELECT 1 FROM api_keys WHERE key_hash = ?", (_hash_key(key),)
            ).fetchone() is None:
                key = self._insert_api_key(db, workspace_id, "Editor", "Local default key", key)
            db.execute("INSERT OR REPLACE INTO meta VALUES ('default_api_key', ?)", (key,))
            self._api_key = key

    @staticmethod
    def _insert_workspace(db: sqlite3.Connection, name: str, is_private: bool, owner_id: int) -> str:
        ws_id = _uuid7()
        db.execute("INSERT INTO workspaces VALUES (?, ?, ?, ?)", (ws_id, name, int(bool(is_private)), owner_id))
        LocalHydroServer._insert_thing(db, ws_id, f"{name} site", False)
        return ws_id

    @staticmethod
    def _insert_thing(db: sqlite3.Connection, workspace_id: str, name: str, is_private: bool,
                      latitude: float = 41.74, longitude: float = -111.83) -> str:
        thing_id = _uuid7()
        code = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").upper()[:40] or "SITE"
        db.execute(
            "INSERT INTO things VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (thing_id, workspace_id, name, f"{name} (local HydroServer)", int(bool(is_private)),
             code, "Stream", float(latitude), float(longitude)),
        )
        return thing_id

    @staticmethod
    def _insert_api_key(db: sqlite3.Connection, workspace_id: str, role: str, name: str,
                        key: Optional[str]) -> str:
        key = key or secrets.token_urlsafe(32)
        if db.execute("SELECT 1 FROM api_keys WHERE key_hash = ?", (_hash_key(key),)).fetchone():
            raise ValueError("That API key already exists")
        db.execute(
            "INSERT INTO api_keys (id, workspace_id, role, name, prefix, key_hash) VALUES (?, ?, ?, ?, ?, ?)",
            (_uuid7(), workspace_id, role, name, key[:12], _hash_key(key)),
        )
        return key

    @staticmethod
    def _insert_unit(db: sqlite3.Connection, symbol: str, name: Optional[str], definition: str,
                     unit_type: str, workspace_id: Optional[str]) -> str:
        unit_id = _uuid7()
        db.execute(
            "INSERT INTO units VALUES (?, ?, ?, ?, ?, ?)",
            (unit_id, workspace_id, name or symbol, symbol, definition, unit_type),
        )
        return unit_id

    def _resolve_unit(self, db: sqlite3.Connection, unit: Any, workspace_id: str) -> str:
        if isinstance(unit, dict):
            symbol = unit.get("symbol") or unit.get("name") or "unknown"
            return self._insert_unit(
                db, symbol, unit.get("name"), unit.get("definition", ""),
                unit.get("type", "Unknown"), unit.get("workspaceId", workspace_id),
            )
        text = str(unit)
        if _canonical_uuid(text) and db.execute("SELECT 1 FROM units WHERE id = ?", (_canonical_uuid(text),)).fetchone():
            return _canonical_uuid(text)  # type: ignore[return-value]
        row = db.execute(
            "SELECT id FROM units WHERE symbol = ? AND (workspace_id = ? OR workspace_id IS NULL) "
            "ORDER BY workspace_id IS NULL LIMIT 1",
            (text, workspace_id),
        ).fetchone()
        if row:
            return row["id"]
        name, definition, unit_type = _KNOWN_UNITS.get(text, (text, "", "Unknown"))
        return self._insert_unit(db, text, name, definition, unit_type, workspace_id)

    @staticmethod
    def _update_statistics(db: sqlite3.Connection, ds_pk: int) -> None:
        """Recompute phenomenonBeginTime/EndTime and valueCount, like every write on the server."""
        begin, end, count = db.execute(
            "SELECT MIN(t), MAX(t), COUNT(*) FROM observations WHERE ds = ?", (ds_pk,)
        ).fetchone()
        db.execute(
            "UPDATE datastreams SET begin_us = ?, end_us = ?, value_count = ? WHERE pk = ?",
            (begin, end, count, ds_pk),
        )

    # ---------------------------------------------------------------- internals: request pipeline

    def _handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes,
                client: str) -> Any:
        req = _Request(method, raw_path, headers, body, client)
        with self._stats_lock:
            self._counts[f"{method} {_normalise_path(req.path)}"] += 1
            self._total += 1
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
        fault = None
        try:
            latency = self.faults.latency
            if latency > 0:
                time.sleep(latency)
            fault = self.faults._take(raw_path)
            if fault is not None and fault["kind"] == "drop":
                with self._stats_lock:
                    self._log.append((method, raw_path, None))
                return _DROP
            if fault is not None and fault["kind"] == "fail":
                response = _fault_response(fault["status"], fault["retry_after"])
            else:
                response = self._throttled(client) or self._route(req)
        except _HttpError as exc:
            response = _error_response(exc)
        except Exception:  # a bug in the local server: answer like Django and remember it
            tb = traceback.format_exc()
            logger.error("LocalHydroServer error on %s %s\n%s", method, raw_path, tb)
            with self._stats_lock:
                self._errors.append(tb)
            response = _error_response(_ServerError("unexpected"))
        finally:
            if fault is not None and fault["kind"] == "slow":
                time.sleep(fault["seconds"])  # done, answered late (still counted in flight)
            with self._stats_lock:
                self._in_flight -= 1
        status = response.status
        with self._stats_lock:
            self._log.append((method, raw_path, None if fault and fault["kind"] == "lose"
                              else status))
        return _DROP if fault is not None and fault["kind"] == "lose" else response

    def _throttled(self, client: str) -> Optional[_Response]:
        limit = self.throttle
        if not limit:
            return None
        now = time.monotonic()
        with self._stats_lock:
            hits = self._throttle_hits.setdefault(client, collections.deque())
            while hits and hits[0] <= now - 1.0:
                hits.popleft()
            if len(hits) >= limit:
                return _Response(429, _json_bytes({"detail": _THROTTLED_DETAIL}), headers={"Retry-After": "1"})
            hits.append(now)
        return None

    def _route(self, req: _Request) -> _Response:
        path_matched = False
        for methods, pattern, handler_name, auth in _ROUTES:
            match = pattern.fullmatch(req.path)
            if not match:
                continue
            path_matched = True
            if req.method not in methods:
                continue
            req.params = match.groupdict()
            if auth != "none":
                req.principal = self._authenticate(req, allow_anonymous=(auth == "anonymous"))
            return getattr(self, handler_name)(req)
        if path_matched:
            allowed = sorted({m for methods, pattern, _, _ in _ROUTES if pattern.fullmatch(req.path) for m in methods})
            return _Response(405, b"Method not allowed", "text/html; charset=utf-8", {"Allow": ", ".join(allowed)})
        raise _HttpError(404, "Not Found")

    def _authenticate(self, req: _Request, allow_anonymous: bool) -> Optional[_Principal]:
        """Bearer session token first, then X-Api-Key, then anonymous (on public GETs) - like ninja."""
        assert self._store is not None
        authorization = req.header("Authorization")
        if authorization:
            parts = authorization.split(" ")
            if parts[0].lower() == "bearer":
                token = " ".join(parts[1:])
                if self.bearer_cost > 0:
                    time.sleep(self.bearer_cost)
                with self._read() as db:
                    row = db.execute(
                        "SELECT u.id FROM sessions s JOIN users u ON u.id = s.user_id "
                        "WHERE s.token = ? AND u.is_active = 1", (token,),
                    ).fetchone()
                if row is not None:
                    return _Principal(kind="user", user_id=int(row["id"]))
                if token:
                    raise _HttpError(401, "Invalid token")
        key = req.header("X-Api-Key")
        if key and len(key) >= 12:
            with self._read() as db:
                candidates = db.execute(
                    "SELECT id, workspace_id, role, key_hash FROM api_keys WHERE prefix = ? AND is_active = 1",
                    (key[:12],),
                ).fetchall()
            if candidates:
                if self.api_key_cost > 0:  # the real server hashes the key only when the prefix matches
                    time.sleep(self.api_key_cost)
                digest = _hash_key(key)
                for cand in candidates:
                    if secrets.compare_digest(cand["key_hash"], digest):
                        return _Principal(kind="apikey", workspace_id=cand["workspace_id"],
                                          role=cand["role"], key_id=cand["id"])
        if allow_anonymous:
            return None
        raise _HttpError(401, "Unauthorized")

    # ---------------------------------------------------------------- internals: permissions

    def _member_workspaces(self, db: sqlite3.Connection, principal: Optional[_Principal]) -> list[str]:
        """Workspaces whose private content the principal may view."""
        if principal is None:
            return []
        if principal.kind == "apikey":
            return [principal.workspace_id]  # every role can view its workspace
        return [r["id"] for r in db.execute("SELECT id FROM workspaces WHERE owner_id = ?", (principal.user_id,))]

    @staticmethod
    def _permissions(db: sqlite3.Connection, principal: Optional[_Principal], workspace_id: str,
                     resource: str) -> set[str]:
        """What a principal may do with ``resource`` objects of a workspace (view/edit/delete/create)."""
        if principal is None:
            return set()
        if principal.kind == "user":
            owner = db.execute("SELECT owner_id FROM workspaces WHERE id = ?", (workspace_id,)).fetchone()
            return {"view", "edit", "delete", "create"} if owner and owner[0] == principal.user_id else set()
        if principal.workspace_id != workspace_id:
            return set()
        granted: set[str] = set()
        for res, perm in ROLES[principal.role or "Viewer"]:
            if res in ("*", resource):
                granted |= {"view", "edit", "delete", "create"} if perm == "*" else {perm}
        return granted

    def _datastream_row(self, db: sqlite3.Connection, ds_id: str) -> Optional[sqlite3.Row]:
        return db.execute(
            "SELECT d.*, w.is_private AS ws_private, th.is_private AS thing_private, w.name AS ws_name "
            "FROM datastreams d JOIN workspaces w ON w.id = d.workspace_id "
            "JOIN things th ON th.id = d.thing_id WHERE d.id = ?",
            (ds_id,),
        ).fetchone()

    def _datastream_for_action(self, db: sqlite3.Connection, principal: Optional[_Principal],
                               ds_id: str, action: str) -> sqlite3.Row:
        ds = self._datastream_row(db, ds_id)
        if ds is None:
            raise _HttpError(404, "Datastream does not exist")
        perms = self._permissions(db, principal, ds["workspace_id"], "Datastream") - {"create"}
        if not (ds["ws_private"] or ds["thing_private"] or ds["is_private"]):
            perms.add("view")
        if "view" not in perms:
            raise _HttpError(404, "Datastream does not exist")
        if action not in perms:
            raise _HttpError(403, f"You do not have permission to {action} this datastream")
        return ds

    # ---------------------------------------------------------------- handlers: session

    def _check_credentials(self, db: sqlite3.Connection, email: str, password: str) -> Optional[sqlite3.Row]:
        user = db.execute("SELECT * FROM users WHERE email = ? AND is_active = 1", (email,)).fetchone()
        if user is None or not secrets.compare_digest(str(user["password"]), str(password)):
            return None
        return user

    @staticmethod
    def _new_session(db: sqlite3.Connection, user_id: int) -> str:
        token = secrets.token_urlsafe(24)
        db.execute("INSERT INTO sessions VALUES (?, ?, ?)", (token, user_id, time.time()))
        return token

    def _session_payload(self, user: sqlite3.Row, status: int = 200) -> dict:
        return {
            "status": status,
            "data": {
                "user": {
                    "id": user["id"],
                    "display": f"{user['first_name']} {user['last_name']}",
                    "email": user["email"],
                    "has_usable_password": True,
                },
                "methods": [{"method": "password", "at": time.time(), "email": user["email"]}],
                "account": _account_json(user),
            },
            "meta": {"is_authenticated": True},
        }

    def h_session_create(self, req: _Request) -> _Response:
        params = _Params(req)
        client = req.params["client"]
        if client not in ("browser", "app"):
            params.errors.append(params._literal_error(["path", "client"], client, ("browser", "app")))
        body = req.json_body()
        if body is None:
            params.errors.append(_missing(["body", "data"]))
        elif not isinstance(body, dict):
            params.errors.append(_type_error(["body", "data"], "model_type", body))
        else:
            email, password = body.get("email"), body.get("password")
            if email is None:
                params.errors.append(_missing(["body", "data", "email"]))
            elif not isinstance(email, str) or not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
                params.errors.append(
                    {"type": "value_error", "loc": ["body", "data", "email"],
                     "msg": "value is not a valid email address: An email address must have an @-sign.",
                     "input": email}
                )
            if password is None:
                params.errors.append(_missing(["body", "data", "password"]))
            elif not isinstance(password, str):
                params.errors.append(_type_error(["body", "data", "password"], "string_type", password))
        params.done()
        with self._tx() as db:
            user = self._check_credentials(db, body["email"], body["password"])
            if user is None:
                return _json_response(400, {
                    "status": 400,
                    "errors": [{
                        "message": "The email address and/or password you specified are not correct.",
                        "code": "email_password_mismatch",
                        "param": "password",
                    }],
                })
            payload = self._session_payload(user)
            token = self._new_session(db, user["id"])
        if client == "app":
            payload["meta"]["session_token"] = token
        return _json_response(200, payload)

    def _session_token(self, req: _Request) -> Optional[str]:
        token = req.header("X-Session-Token")
        if token:
            return token
        authorization = req.header("Authorization") or ""
        if authorization.lower().startswith("bearer "):
            return authorization[7:].strip()
        return None

    def _unauthenticated_session(self, status: int) -> _Response:
        return _json_response(status, {
            "status": status,
            "data": {"flows": [{"id": "login"}, {"id": "signup"}]},
            "meta": {"is_authenticated": False},
        })

    def h_session_get(self, req: _Request) -> _Response:
        token = self._session_token(req)
        if not token:
            return self._unauthenticated_session(401)
        with self._read() as db:
            user = db.execute(
                "SELECT u.* FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token = ?", (token,)
            ).fetchone()
            if user is None:
                return self._unauthenticated_session(410)
            return _json_response(200, self._session_payload(user))

    def h_session_delete(self, req: _Request) -> _Response:
        token = self._session_token(req)
        if token:
            with self._tx() as db:
                db.execute("DELETE FROM sessions WHERE token = ?", (token,))
        return self._unauthenticated_session(401)

    # ---------------------------------------------------------------- handlers: workspaces, units, things

    def h_workspaces(self, req: _Request) -> _Response:
        params = _Params(req)
        page = params.integer("page", 1, ge=1)
        page_size = params.integer("page_size", 100, ge=0, le=100000)
        order_by = params.literals("order_by", ("name", "isPrivate", "-name", "-isPrivate"))
        is_private = params.boolean("is_private")
        is_associated = params.boolean("is_associated")
        expand = params.boolean("expand_related")
        params.done()
        _check_order_repeats(order_by)
        with self._read() as db:
            members = self._member_workspaces(db, req.principal)
            rows = [
                r for r in db.execute("SELECT w.*, u.email, u.first_name, u.last_name FROM workspaces w "
                                      "JOIN users u ON u.id = w.owner_id ORDER BY w.id")
                if not r["is_private"] or r["id"] in members
            ]
        if is_private is not None:
            rows = [r for r in rows if bool(r["is_private"]) == is_private]
        if is_associated is not None:
            rows = [r for r in rows if (r["id"] in members) == is_associated]
        for field in reversed(order_by):
            column = "is_private" if field.lstrip("-") == "isPrivate" else "name"
            rows.sort(key=lambda r: r[column], reverse=field.startswith("-"))
        page_rows = rows[(page - 1) * page_size: (page - 1) * page_size + page_size]
        detail = expand is not False
        body = [_workspace_detail(r) if detail else _workspace_summary(r) for r in page_rows]
        return _json_response(200, body, _paginate_headers(len(rows), page, page_size))

    def h_workspace(self, req: _Request) -> _Response:
        params = _Params(req)
        ws_id = params.path_uuid("workspace_id")
        expand = params.boolean("expand_related")
        params.done()
        with self._read() as db:
            row = db.execute("SELECT w.*, u.email, u.first_name, u.last_name FROM workspaces w "
                             "JOIN users u ON u.id = w.owner_id WHERE w.id = ?", (ws_id,)).fetchone()
            if row is None or (row["is_private"] and ws_id not in self._member_workspaces(db, req.principal)):
                raise _HttpError(404, "Workspace does not exist")
        return _json_response(200, _workspace_detail(row) if expand is not False else _workspace_summary(row))

    def h_units(self, req: _Request) -> _Response:
        params = _Params(req)
        page = params.integer("page", 1, ge=1)
        page_size = params.integer("page_size", 100, ge=0, le=100000)
        workspace_ids = params.uuids("workspace_id")
        datastream_ids = params.uuids("datastream_id")
        params.done()
        with self._read() as db:
            visible = self._visible_workspaces(db, req.principal)
            rows = [r for r in db.execute("SELECT * FROM units ORDER BY id")
                    if r["workspace_id"] is None or r["workspace_id"] in visible]
            if datastream_ids:  # the units of these datastreams
                used = {r["unit_id"] for r in db.execute(
                    f"SELECT unit_id FROM datastreams WHERE id IN "
                    f"({', '.join('?' * len(datastream_ids))})", datastream_ids)}
                rows = [r for r in rows if r["id"] in used]
        if workspace_ids:
            rows = [r for r in rows if r["workspace_id"] in workspace_ids]
        page_rows = rows[(page - 1) * page_size: (page - 1) * page_size + page_size]
        return _json_response(200, [_unit_json(r) for r in page_rows], _paginate_headers(len(rows), page, page_size))

    def h_unit(self, req: _Request) -> _Response:
        params = _Params(req)
        unit_id = params.path_uuid("unit_id")
        params.done()
        with self._read() as db:
            row = db.execute("SELECT * FROM units WHERE id = ?", (unit_id,)).fetchone()
            if row is None or (row["workspace_id"] is not None
                               and row["workspace_id"] not in self._visible_workspaces(db, req.principal)):
                raise _HttpError(404, "Unit does not exist")
        return _json_response(200, _unit_json(row))

    def _visible_workspaces(self, db: sqlite3.Connection, principal: Optional[_Principal]) -> set[str]:
        members = set(self._member_workspaces(db, principal))
        return members | {r["id"] for r in db.execute("SELECT id FROM workspaces WHERE is_private = 0")}

    def _visible_things(self, db: sqlite3.Connection, principal: Optional[_Principal]) -> list[sqlite3.Row]:
        members = set(self._member_workspaces(db, principal))
        return [
            r for r in db.execute(
                "SELECT th.*, w.is_private AS ws_private FROM things th "
                "JOIN workspaces w ON w.id = th.workspace_id ORDER BY th.id")
            if r["workspace_id"] in members or not (r["is_private"] or r["ws_private"])
        ]

    def h_things(self, req: _Request) -> _Response:
        params = _Params(req)
        page = params.integer("page", 1, ge=1)
        page_size = params.integer("page_size", 100, ge=0, le=100000)
        workspace_ids = params.uuids("workspace_id")
        params.done()
        with self._read() as db:
            rows = self._visible_things(db, req.principal)
        if workspace_ids:
            rows = [r for r in rows if r["workspace_id"] in workspace_ids]
        page_rows = rows[(page - 1) * page_size: (page - 1) * page_size + page_size]
        return _json_response(200, [_thing_json(r) for r in page_rows], _paginate_headers(len(rows), page, page_size))

    def h_thing(self, req: _Request) -> _Response:
        params = _Params(req)
        thing_id = params.path_uuid("thing_id")
        params.done()
        with self._read() as db:
            rows = [r for r in self._visible_things(db, req.principal) if r["id"] == thing_id]
        if not rows:
            raise _HttpError(404, "Thing does not exist")
        return _json_response(200, _thing_json(rows[0]))

    # ---------------------------------------------------------------- handlers: datastreams

    def h_datastreams(self, req: _Request) -> _Response:
        params = _Params(req)
        page = params.integer("page", 1, ge=1)
        page_size = params.integer("page_size", 100, ge=0, le=100000)
        expand = params.boolean("expand_related")
        order_by = params.literals("order_by", _DATASTREAM_ORDER_ALLOWED)
        where: list[str] = []
        args: list[Any] = []
        for name, column in (("workspace_id", "d.workspace_id"), ("thing_id", "d.thing_id"),
                             ("sensor_id", "d.sensor_id"), ("observed_property_id", "d.observed_property_id"),
                             ("processing_level_id", "d.processing_level_id"), ("unit_id", "d.unit_id")):
            values = params.uuids(name)
            if values:
                where.append(f"{column} IN ({', '.join('?' * len(values))})")
                args.extend(values)
        if params.uuids("result_qualifier_id"):
            where.append("0")  # HydroServer 1.11.2 answers nothing for this filter
        for name, column in (("observation_type", "d.observation_type"), ("sampled_medium", "d.sampled_medium"),
                             ("status", "d.status"), ("result_type", "d.result_type")):
            values = params.strings(name)
            if values:
                clause, clause_args = _in_or_null(column, values)
                where.append(clause)
                args.extend(clause_args)
        tags = params.strings("tag") or []
        is_private = params.boolean("is_private")
        if is_private is not None:
            where.append("d.is_private = ? AND th.is_private = ? AND w.is_private = ?")
            args.extend([int(is_private)] * 3)
        for name, column, op in (("value_count_max", "d.value_count", "<="), ("value_count_min", "d.value_count", ">=")):
            value = params.integer(name, None)
            if value is not None:
                where.append(f"{column} {op} ?")
                args.append(value)
        for prefix, column in (("phenomenon_begin_time", "d.begin_us"), ("phenomenon_end_time", "d.end_us"),
                               ("result_begin_time", "d.result_begin_us"), ("result_end_time", "d.result_end_us")):
            for suffix, op in (("max", "<="), ("min", ">=")):
                value = params.datetime_us(f"{prefix}_{suffix}")
                if value is not None:
                    where.append(f"{column} {op} ?")
                    args.append(value)
        params.done()
        for tag in tags:
            if tag is None or ":" not in tag:
                raise _HttpError(400, f"Invalid tag format: '{tag}'. Must be 'key:value'.")
            key, value = tag.split(":", 1)
            where.append("EXISTS (SELECT 1 FROM json_each(d.tags) j WHERE j.key = ? AND j.value = ?)")
            args.extend([key, value])
        _check_order_repeats(order_by)
        order = ", ".join(
            _order_sql(_DATASTREAM_ORDER_COLUMNS[f.lstrip("-")], f.startswith("-")) for f in order_by
        )
        order = f"{order}, d.id" if order else "d.id"
        with self._read() as db:
            members = self._member_workspaces(db, req.principal)
            visible = "(w.is_private = 0 AND th.is_private = 0 AND d.is_private = 0)"
            if members:
                visible = f"({visible} OR d.workspace_id IN ({', '.join('?' * len(members))}))"
            clauses = " AND ".join([visible, *where])
            base = (
                "FROM datastreams d JOIN workspaces w ON w.id = d.workspace_id "
                f"JOIN things th ON th.id = d.thing_id WHERE {clauses}"
            )
            all_args = [*members, *args]
            count = db.execute(f"SELECT COUNT(*) {base}", all_args).fetchone()[0]
            rows = db.execute(
                "SELECT d.*, w.is_private AS ws_private, th.is_private AS thing_private, w.name AS ws_name "
                f"{base} ORDER BY {order} LIMIT ? OFFSET ?",
                [*all_args, page_size, (page - 1) * page_size],
            ).fetchall()
            body = [self._datastream_detail(db, r) if expand else _datastream_summary(r) for r in rows]
        return _json_response(200, body, _paginate_headers(count, page, page_size))

    def h_datastream(self, req: _Request) -> _Response:
        params = _Params(req)
        ds_id = params.path_uuid("datastream_id")
        expand = params.boolean("expand_related")
        params.done()
        with self._read() as db:
            ds = self._datastream_for_action(db, req.principal, ds_id, "view")
            body = self._datastream_detail(db, ds) if expand else _datastream_summary(ds)
        return _json_response(200, body)

    def _datastream_detail(self, db: sqlite3.Connection, ds: sqlite3.Row) -> dict:
        body = _datastream_summary(ds)
        for key in ("thingId", "sensorId", "observedPropertyId", "processingLevelId", "unitId", "workspaceId"):
            body.pop(key)
        workspace = db.execute("SELECT * FROM workspaces WHERE id = ?", (ds["workspace_id"],)).fetchone()
        thing = db.execute("SELECT * FROM things WHERE id = ?", (ds["thing_id"],)).fetchone()
        unit = db.execute("SELECT * FROM units WHERE id = ?", (ds["unit_id"],)).fetchone()
        body.update(
            workspace=_workspace_summary(workspace),
            thing=_thing_json(thing),
            sensor=dict(_SENSOR),
            observedProperty=dict(_OBSERVED_PROPERTY),
            processingLevel=dict(_PROCESSING_LEVEL),
            unit=_unit_json(unit),
        )
        return body

    # ---------------------------------------------------------------- handlers: observations

    def h_observations(self, req: _Request) -> _Response:
        params = _Params(req)
        ds_id = params.path_uuid("datastream_id")
        page = params.integer("page", 1, ge=1)
        page_size = params.integer("page_size", 100, ge=0, le=100000)
        order_by = params.literals("order_by", ("phenomenonTime", "-phenomenonTime"))
        response_format = params.literal("format", ("record", "row", "column"))
        t_max = params.datetime_us("phenomenon_time_max")
        t_min = params.datetime_us("phenomenon_time_min")
        codes = [c for c in (params.strings("result_qualifier_code") or []) if c is not None]
        expand = params.boolean("expand_related")
        params.done()
        with self._read() as db:
            ds = self._datastream_for_action(db, req.principal, ds_id, "view")
            where, args = ["ds = ?"], [ds["pk"]]
            if t_max is not None:
                where.append("t <= ?")
                args.append(t_max)
            if t_min is not None:
                where.append("t >= ?")
                args.append(t_min)
            if codes:
                where.append(f"EXISTS (SELECT 1 FROM json_each(o.qualifiers) j "
                             f"WHERE j.value IN ({', '.join('?' * len(codes))}))")
                args.extend(codes)
            clause = " AND ".join(where)
            count, max_id = db.execute(f"SELECT COUNT(*), MAX(id) FROM observations o WHERE {clause}", args).fetchone()
            _check_order_repeats(order_by or ["phenomenonTime"])
            direction = "DESC" if order_by and order_by[0] == "-phenomenonTime" else "ASC"
            rows = db.execute(
                f"SELECT id, t, result, qualifiers FROM observations o WHERE {clause} "
                f"ORDER BY t {direction}, id LIMIT ? OFFSET ?",
                [*args, page_size, (page - 1) * page_size],
            ).fetchall()
            ds_json = _datastream_summary(ds) if expand and response_format in (None, "record") else None
            ws_json = None
            if ds_json is not None:
                ws_json = _workspace_summary(
                    db.execute("SELECT * FROM workspaces WHERE id = ?", (ds["workspace_id"],)).fetchone()
                )
        headers = _paginate_headers(count, page, page_size)
        headers["X-Checksum"] = _checksum(_observation_id(ds["id"], max_id) if max_id else None, count)
        if response_format == "row":
            body: Any = {
                "fields": list(_BULK_FIELDS),
                "data": [[_iso(t), r, _codes(q)] for _, t, r, q in rows],
            }
        elif response_format == "column":
            body = {
                "phenomenonTime": [_iso(t) for _, t, _, _ in rows],
                "result": [r for _, _, r, _ in rows],
                "resultQualifierCodes": [_codes(q) for _, _, _, q in rows],
            }
        elif expand:
            body = [
                {"phenomenonTime": _iso(t), "result": r, "resultQualifierCodes": _codes(q),
                 "id": _observation_id(ds["id"], oid), "workspace": ws_json, "datastream": ds_json}
                for oid, t, r, q in rows
            ]
        else:
            body = [
                {"phenomenonTime": _iso(t), "result": r, "resultQualifierCodes": _codes(q),
                 "id": _observation_id(ds["id"], oid), "workspaceId": ds["workspace_id"], "datastreamId": ds["id"]}
                for oid, t, r, q in rows
            ]
        return _json_response(200, body, headers)

    def h_bulk_create(self, req: _Request) -> _Response:
        params = _Params(req)
        ds_id = params.path_uuid("datastream_id")
        mode = params.literal("mode", ("insert", "append", "backfill", "replace")) or "append"
        body = req.json_body()
        parsed = _parse_bulk_body(body, params.errors)
        params.done()
        assert parsed is not None
        fields, times, results, codes = parsed
        with self._read() as db:  # permission errors answer before the (slow) write
            ds = self._datastream_for_action(db, req.principal, ds_id, "edit")
            if "create" not in self._permissions(db, req.principal, ds["workspace_id"], "Observation"):
                raise _HttpError(403, "You do not have permission to create these observations")
        if self.row_cost > 0 and times:
            time.sleep(self.row_cost * len(times))
        with self._tx() as db:
            ds = self._datastream_for_action(db, req.principal, ds_id, "edit")
            if not {"phenomenonTime", "result"}.issubset(fields):
                raise _HttpError(400, "Missing required observation fields")
            no_data = ds["no_data_value"]
            results = [no_data if isinstance(r, float) and math.isnan(r) else r for r in results]
            used_codes = {c for row in codes for c in row} if codes is not None else set()
            if used_codes:
                raise _HttpError(400, f"Invalid result qualifier codes: {', '.join(sorted(used_codes))}")
            if any(t is _NOT_A_TIME for t in times):
                raise _ServerError("phenomenonTime is not a timestamp")
            if mode == "append" and ds["end_us"] is not None:
                if not times:
                    raise _ServerError("min() of an empty batch")
                if min(times) <= ds["end_us"]:
                    raise _HttpError(400, "All observations must occur after the datastream's end time for append mode")
            elif mode == "backfill" and ds["begin_us"] is not None:
                if not times:
                    raise _ServerError("max() of an empty batch")
                if max(times) >= ds["begin_us"]:
                    raise _HttpError(400, "All observations must occur before the datastream's begin time for backfill mode")
            elif mode == "replace":
                if not times:
                    raise _ServerError("min() of an empty batch")
                if "delete" not in self._permissions(db, req.principal, ds["workspace_id"], "Observation"):
                    raise _HttpError(403, "You do not have permission to delete these observations")
                db.execute("DELETE FROM observations WHERE ds = ? AND t >= ? AND t <= ?",
                           (ds["pk"], min(times), max(times)))
            if any(r is None for r in results):
                raise _ServerError('null value in column "result" violates not-null constraint')
            pk = ds["pk"]
            try:
                db.executemany(
                    "INSERT INTO observations (ds, t, result) VALUES (?, ?, ?)",
                    zip([pk] * len(times), times, results),
                )
            except sqlite3.IntegrityError:
                raise _HttpError(409, "Duplicate phenomenonTime found on this datastream.") from None
            self._update_statistics(db, pk)
        return _Response(201, b"", None)

    def h_bulk_delete(self, req: _Request) -> _Response:
        params = _Params(req)
        ds_id = params.path_uuid("datastream_id")
        body = req.json_body()
        start = end = None
        if body is None:
            params.errors.append(_missing(["body", "data"]))
        elif not isinstance(body, dict):
            params.errors.append(_type_error(["body", "data"], "model_type", body))
        else:
            bounds = []
            for name in ("phenomenonTimeStart", "phenomenonTimeEnd"):
                value = body.get(name, body.get("phenomenon_time_" + name[len("phenomenonTime"):].lower()))
                if value in (None, ""):
                    bounds.append(None)
                    continue
                try:
                    if not isinstance(value, str):
                        raise TypeError
                    bounds.append(_to_us(value))
                except (TypeError, ValueError):
                    params.errors.append(
                        {"type": "value_error", "loc": ["body", "data", name],
                         "msg": "Value error, Invalid ISO time format", "input": value,
                         "ctx": {"error": "Invalid ISO time format"}}
                    )
                    bounds.append(None)
            start, end = bounds
        params.done()
        with self._tx() as db:
            ds = self._datastream_for_action(db, req.principal, ds_id, "edit")
            if "delete" not in self._permissions(db, req.principal, ds["workspace_id"], "Observation"):
                raise _HttpError(403, "You do not have permission to delete these observations")
            where, args = ["ds = ?"], [ds["pk"]]
            if start is not None:
                where.append("t >= ?")
                args.append(start)
            if end is not None:
                where.append("t <= ?")
                args.append(end)
            db.execute(f"DELETE FROM observations WHERE {' AND '.join(where)}", args)
            self._update_statistics(db, ds["pk"])
        return _Response(204, b"", None)

    # ---------------------------------------------------------------- handlers: ETL data connections

    def _etl_permissions(self, db: sqlite3.Connection, principal: Optional[_Principal], workspace_id: str) -> set[str]:
        return self._permissions(db, principal, workspace_id, "ETL")

    def _data_connection_json(self, db: sqlite3.Connection, row: sqlite3.Row) -> dict:
        body = json.loads(row["body"])
        workspace = db.execute("SELECT * FROM workspaces WHERE id = ?", (row["workspace_id"],)).fetchone()
        task_count = db.execute(
            "SELECT COUNT(*) FROM etl_tasks WHERE data_connection_id = ?", (row["id"],)
        ).fetchone()[0]
        return {
            "id": row["id"],
            "name": body["name"],
            "description": body.get("description"),
            "sourceUrl": body["sourceUrl"],
            "authHeaderName": body.get("authHeaderName"),
            "authHeaderValue": body.get("authHeaderValue"),
            "timezoneType": body.get("timezoneType"),
            "timezone": body.get("timezone"),
            "workspace": _workspace_summary(workspace),
            "payload": copy.deepcopy(body["payload"]),
            "placeholderVariables": copy.deepcopy(body["placeholderVariables"]),
            "notification": copy.deepcopy(body.get("notification")),
            "taskCount": task_count,
            "taskAttentionCount": 0,
        }

    def _visible_data_connections(self, db: sqlite3.Connection, principal: Optional[_Principal]) -> list[sqlite3.Row]:
        return [
            r for r in db.execute("SELECT * FROM data_connections ORDER BY id DESC")
            if "view" in self._etl_permissions(db, principal, r["workspace_id"])
        ]

    def h_data_connections(self, req: _Request) -> _Response:
        params = _Params(req)
        page = params.integer("page", 1, ge=1)
        page_size = params.integer("page_size", 100, ge=0, le=100000)
        order_by = params.literals("order_by", _DC_ORDER_ALLOWED)
        workspace_ids = params.uuids("workspace_id")
        payload_types = params.strings("payload_type")
        params.done()
        if page_size == 0:
            raise _HttpError(400, "page_size: Input should be greater than 0")
        with self._read() as db:
            items = [self._data_connection_json(db, r) for r in self._visible_data_connections(db, req.principal)]
        if workspace_ids is not None and "workspace_id" in req.query:
            items = [i for i in items if i["workspace"]["id"] in workspace_ids]
        if payload_types is not None:
            items = [i for i in items if i["payload"]["type"] in payload_types]
        items = _sort_items(items, order_by, _DC_ORDER_KEYS)
        page_items = items[(page - 1) * page_size: page * page_size]
        return _json_response(200, page_items, _paginate_headers(len(items), page, page_size))

    def h_data_connection(self, req: _Request) -> _Response:
        params = _Params(req)
        dc_id = params.path_uuid("data_connection_id")
        params.done()
        with self._read() as db:
            row = db.execute("SELECT * FROM data_connections WHERE id = ?", (dc_id,)).fetchone()
            if row is None or "view" not in self._etl_permissions(db, req.principal, row["workspace_id"]):
                raise _HttpError(404, f"Data connection with ID {dc_id} does not exist.")
            return _json_response(200, self._data_connection_json(db, row))

    def h_data_connection_create(self, req: _Request) -> _Response:
        body = req.json_body()
        with self._tx() as db:
            dc_id = self._insert_data_connection(db, body, principal=req.principal)
            row = db.execute("SELECT * FROM data_connections WHERE id = ?", (dc_id,)).fetchone()
            return _json_response(201, self._data_connection_json(db, row))

    def _insert_data_connection(self, db: sqlite3.Connection, body: Any, principal: Optional[_Principal]) -> str:
        normalised = _validate_data_connection(body)
        workspace_id = normalised.pop("workspaceId")
        if db.execute("SELECT 1 FROM workspaces WHERE id = ?", (workspace_id,)).fetchone() is None:
            raise _HttpError(404, "Workspace does not exist")
        if principal is not None and "create" not in self._etl_permissions(db, principal, workspace_id):
            raise _HttpError(403, "You do not have permission to create this data connection.")
        dc_id = normalised.pop("id", None) or _uuid7()
        if db.execute("SELECT 1 FROM data_connections WHERE id = ?", (dc_id,)).fetchone():
            raise _HttpError(409, "The operation could not be completed due to a resource conflict.")
        db.execute("INSERT INTO data_connections VALUES (?, ?, ?)", (dc_id, workspace_id, json.dumps(normalised)))
        return dc_id

    # ---------------------------------------------------------------- handlers: ETL tasks

    def _task_workspace(self, db: sqlite3.Connection, row: sqlite3.Row) -> str:
        return db.execute(
            "SELECT workspace_id FROM data_connections WHERE id = ?", (row["data_connection_id"],)
        ).fetchone()[0]

    def _task_summary(self, db: sqlite3.Connection, row: sqlite3.Row) -> dict:
        return {
            "id": row["id"],
            "name": row["name"],
            "description": row["description"],
            "workspaceId": self._task_workspace(db, row),
            "dataConnectionId": row["data_connection_id"],
            "taskVariables": json.loads(row["task_variables"]),
            "schedule": _schedule_response(json.loads(row["schedule"]) if row["schedule"] else None),
            "latestRun": None,
        }

    def _task_detail(self, db: sqlite3.Connection, row: sqlite3.Row) -> dict:
        dc = db.execute("SELECT * FROM data_connections WHERE id = ?", (row["data_connection_id"],)).fetchone()
        mappings = []
        for m in db.execute("SELECT * FROM etl_mappings WHERE task_id = ? ORDER BY pk", (row["id"],)):
            ds = self._datastream_row(db, m["datastream_id"])
            if ds is not None:
                mappings.append({"sourceIdentifier": m["source_identifier"], "targetDatastream": _datastream_summary(ds)})
        return {
            "id": row["id"],
            "name": row["name"],
            "description": row["description"],
            "taskVariables": json.loads(row["task_variables"]),
            "dataConnection": self._data_connection_json(db, dc),
            "schedule": _schedule_response(json.loads(row["schedule"]) if row["schedule"] else None),
            "latestRun": None,
            "mappings": mappings,
        }

    def _task_for_action(self, db: sqlite3.Connection, principal: Optional[_Principal], task_id: str,
                         action: str) -> sqlite3.Row:
        row = db.execute("SELECT * FROM etl_tasks WHERE id = ?", (task_id,)).fetchone()
        if row is None:
            raise _HttpError(404, f"Task with ID {task_id} does not exist.")
        perms = self._etl_permissions(db, principal, self._task_workspace(db, row))
        if "view" not in perms:
            raise _HttpError(404, f"Task with ID {task_id} does not exist.")
        if action not in perms:
            raise _HttpError(403, f"You do not have permission to {action} this task.")
        return row

    def h_tasks(self, req: _Request) -> _Response:
        params = _Params(req)
        page = params.integer("page", 1, ge=1)
        page_size = params.integer("page_size", 100, ge=0, le=100000)
        order_by = params.literals("order_by", _TASK_ORDER_ALLOWED)
        workspace_ids = params.uuids("workspace_id")
        dc_ids = params.uuids("data_connection_id")
        thing_ids = params.uuids("thing_id")
        statuses = params.strings("latest_run_status")
        expand = params.boolean("expand_related")
        params.done()
        if page_size == 0:
            raise _HttpError(400, "page_size: Input should be greater than 0")
        with self._read() as db:
            rows = [
                r for r in db.execute("SELECT * FROM etl_tasks ORDER BY id DESC")
                if "view" in self._etl_permissions(db, req.principal, self._task_workspace(db, r))
            ]
            if workspace_ids is not None:
                rows = [r for r in rows if self._task_workspace(db, r) in workspace_ids]
            if dc_ids is not None:
                rows = [r for r in rows if r["data_connection_id"] in dc_ids]
            if thing_ids is not None:
                rows = [r for r in rows if db.execute(
                    "SELECT 1 FROM etl_mappings m JOIN datastreams d ON d.id = m.datastream_id "
                    f"WHERE m.task_id = ? AND d.thing_id IN ({', '.join('?' * len(thing_ids)) or 'NULL'})",
                    (r["id"], *thing_ids)).fetchone()]
            if statuses is not None:
                rows = [r for r in rows if None in statuses]  # no task has run on the local server
            items = [(self._task_summary(db, r), r) for r in rows]
            items = [pair for pair in _sort_pairs(items, order_by, db)]
            page_items = items[(page - 1) * page_size: page * page_size]
            body = [self._task_detail(db, r) if expand else summary for summary, r in page_items]
        return _json_response(200, body, _paginate_headers(len(items), page, page_size))

    def h_task(self, req: _Request) -> _Response:
        params = _Params(req)
        task_id = params.path_uuid("task_id")
        expand = params.boolean("expand_related")
        params.done()
        with self._read() as db:
            row = self._task_for_action(db, req.principal, task_id, "view")
            return _json_response(200, self._task_detail(db, row) if expand else self._task_summary(db, row))

    def h_task_create(self, req: _Request) -> _Response:
        body = req.json_body()
        with self._tx() as db:
            task_id = self._insert_task(db, body, principal=req.principal)
            row = db.execute("SELECT * FROM etl_tasks WHERE id = ?", (task_id,)).fetchone()
            return _json_response(201, self._task_summary(db, row))

    def h_task_patch(self, req: _Request) -> _Response:
        params = _Params(req)
        task_id = params.path_uuid("task_id")
        body = req.json_body()
        patch = _validate_task_body(body, params.errors, partial=True)
        params.done()
        with self._tx() as db:
            row = self._task_for_action(db, req.principal, task_id, "edit")
            updates = {}
            if "name" in patch:
                updates["name"] = patch["name"]
            if "description" in patch:
                updates["description"] = patch["description"]
            if "taskVariables" in patch:
                updates["task_variables"] = json.dumps(patch["taskVariables"])
            if "schedule" in patch:
                current = json.loads(row["schedule"]) if row["schedule"] else None
                changes = patch["schedule"] if patch["schedule"] is not None else {"crontab": None, "interval": None}
                new = _apply_schedule(current, changes)
                updates["schedule"] = json.dumps(new) if new is not None else None
            if updates:
                db.execute(
                    f"UPDATE etl_tasks SET {', '.join(f'{k} = ?' for k in updates)} WHERE id = ?",
                    (*updates.values(), task_id),
                )
            if "mappings" in patch:
                self._apply_mappings(db, task_id, row["data_connection_id"], patch["mappings"], req.principal)
            row = db.execute("SELECT * FROM etl_tasks WHERE id = ?", (task_id,)).fetchone()
            return _json_response(200, self._task_summary(db, row))

    def h_task_runs(self, req: _Request) -> _Response:
        params = _Params(req)
        task_id = params.path_uuid("task_id")
        page = params.integer("page", 1, ge=1)
        page_size = params.integer("page_size", 100, ge=0, le=100000)
        params.done()
        with self._read() as db:
            self._task_for_action(db, req.principal, task_id, "view")
        return _json_response(200, [], _paginate_headers(0, page, page_size))

    def _insert_task(self, db: sqlite3.Connection, body: Any, principal: Optional[_Principal]) -> str:
        errors: list[dict] = []
        task = _validate_task_body(body, errors, partial=False)
        if errors:
            raise _validation_error(errors)
        dc = db.execute("SELECT * FROM data_connections WHERE id = ?", (task["dataConnectionId"],)).fetchone()
        if dc is None:
            raise _HttpError(404, f"Data connection with ID {task['dataConnectionId']} does not exist.")
        if principal is not None and "create" not in self._etl_permissions(db, principal, dc["workspace_id"]):
            raise _HttpError(403, "You do not have permission to create this task.")
        task_id = task.get("id") or _uuid7()
        if db.execute("SELECT 1 FROM etl_tasks WHERE id = ?", (task_id,)).fetchone():
            raise _HttpError(409, "The operation could not be completed due to a resource conflict.")
        schedule_in = task.get("schedule")
        schedule = _apply_schedule(None, {"enabled": True, **schedule_in}) if schedule_in else None
        db.execute(
            "INSERT INTO etl_tasks VALUES (?, ?, ?, ?, ?, ?)",
            (task_id, dc["id"], task["name"], task.get("description"),
             json.dumps(task.get("taskVariables", {})), json.dumps(schedule) if schedule else None),
        )
        self._apply_mappings(db, task_id, dc["id"], task.get("mappings", []), principal)
        return task_id

    def _apply_mappings(self, db: sqlite3.Connection, task_id: str, dc_id: str, mappings: list[dict],
                        principal: Optional[_Principal]) -> None:
        workspace_id = db.execute("SELECT workspace_id FROM data_connections WHERE id = ?", (dc_id,)).fetchone()[0]
        for m in mappings:
            target = m["targetDatastreamId"]
            if principal is not None:
                ds = self._datastream_for_action(db, principal, target, "edit")
            else:
                ds = self._datastream_row(db, target)
                if ds is None:
                    raise _HttpError(404, "Datastream does not exist")
            if ds["workspace_id"] != workspace_id:
                raise _HttpError(400, f"Datastream {target} does not belong to workspace {workspace_id}.")
        existing = {r["datastream_id"] for r in db.execute(
            "SELECT datastream_id FROM etl_mappings WHERE task_id = ?", (task_id,))}
        new_targets = [m["targetDatastreamId"] for m in mappings if m["targetDatastreamId"] not in existing]
        if new_targets:
            conflicts = [r[0] for r in db.execute(
                f"SELECT datastream_id FROM etl_mappings WHERE datastream_id IN ({', '.join('?' * len(new_targets))})",
                new_targets)]
            if conflicts:
                raise _HttpError(400, f"Datastream(s) {', '.join(conflicts)} are already mapped to by another task.")
        wanted = {(m["sourceIdentifier"], m["targetDatastreamId"]) for m in mappings}
        current = {(r["source_identifier"], r["datastream_id"]): r["pk"]
                   for r in db.execute("SELECT * FROM etl_mappings WHERE task_id = ?", (task_id,))}
        for key, pk in current.items():
            if key not in wanted:
                db.execute("DELETE FROM etl_mappings WHERE pk = ?", (pk,))
        for m in mappings:
            key = (m["sourceIdentifier"], m["targetDatastreamId"])
            if key not in current:
                current[key] = db.execute(
                    "INSERT INTO etl_mappings (task_id, source_identifier, datastream_id) VALUES (?, ?, ?)",
                    (task_id, *key),
                ).lastrowid


# --------------------------------------------------------------------------------------------
# routes
# --------------------------------------------------------------------------------------------

_ID = r"(?P<{}>[^/]+)"


def _route(methods: str, template: str, handler: str, auth: str) -> tuple:
    pattern = re.escape(template)
    for name in re.findall(r"\\\{(\w+)\\\}", pattern):
        pattern = pattern.replace(r"\{" + name + r"\}", _ID.format(name))
    return frozenset(methods.split()), re.compile(pattern), handler, auth


# auth: "anonymous" = key/session optional (public GETs), "required" = 401 without, "none" = not checked
_ROUTES = [
    _route("POST", "/api/auth/{client}/session", "h_session_create", "none"),
    _route("GET", "/api/auth/{client}/session", "h_session_get", "none"),
    _route("DELETE", "/api/auth/{client}/session", "h_session_delete", "none"),
    _route("GET", "/api/data/workspaces", "h_workspaces", "anonymous"),
    _route("GET", "/api/data/workspaces/{workspace_id}", "h_workspace", "anonymous"),
    _route("GET", "/api/data/units", "h_units", "anonymous"),
    _route("GET", "/api/data/units/{unit_id}", "h_unit", "anonymous"),
    _route("GET", "/api/data/things", "h_things", "anonymous"),
    _route("GET", "/api/data/things/{thing_id}", "h_thing", "anonymous"),
    _route("GET", "/api/data/datastreams", "h_datastreams", "anonymous"),
    _route("GET", "/api/data/datastreams/{datastream_id}", "h_datastream", "anonymous"),
    _route("GET", "/api/data/datastreams/{datastream_id}/observations", "h_observations", "anonymous"),
    _route("POST", "/api/data/datastreams/{datastream_id}/observations/bulk-create", "h_bulk_create", "required"),
    _route("POST", "/api/data/datastreams/{datastream_id}/observations/bulk-delete", "h_bulk_delete", "required"),
    _route("GET", "/api/data/etl/data-connections", "h_data_connections", "required"),
    _route("POST", "/api/data/etl/data-connections", "h_data_connection_create", "required"),
    _route("GET", "/api/data/etl/data-connections/{data_connection_id}", "h_data_connection", "required"),
    _route("GET", "/api/data/etl/tasks", "h_tasks", "required"),
    _route("POST", "/api/data/etl/tasks", "h_task_create", "required"),
    _route("GET", "/api/data/etl/tasks/{task_id}", "h_task", "required"),
    _route("PATCH", "/api/data/etl/tasks/{task_id}", "h_task_patch", "required"),
    _route("GET", "/api/data/etl/tasks/{task_id}/runs", "h_task_runs", "required"),
]


# --------------------------------------------------------------------------------------------
# JSON shapes
# --------------------------------------------------------------------------------------------

_KNOWN_UNITS = {
    "degC": ("Degree Celsius", "Degree Celsius", "Temperature"),
    "m": ("Meter", "Length in meters", "Length"),
    "ft": ("Foot", "Length in feet", "Length"),
    "cm": ("Centimeter", "Length in centimeters", "Length"),
    "mm": ("Millimeter", "Length in millimeters", "Length"),
    "m^3/s": ("Cubic meters per second", "Volumetric flow rate", "Flow"),
    "cfs": ("Cubic feet per second", "Volumetric flow rate", "Flow"),
    "ft^3/s": ("Cubic feet per second", "Volumetric flow rate", "Flow"),
    "%": ("Percent", "Percent", "Dimensionless"),
    "mg/L": ("Milligrams per liter", "Mass concentration", "Concentration"),
    "uS/cm": ("Microsiemens per centimeter", "Specific conductance", "Electrical Conductivity"),
    "V": ("Volt", "Electric potential", "Electric Potential"),
}

_DATASTREAM_FIELD_COLUMNS = {
    "observationType": "observation_type", "sampledMedium": "sampled_medium",
    "aggregationStatistic": "aggregation_statistic", "timeAggregationInterval": "time_aggregation_interval",
    "timeAggregationIntervalUnit": "time_aggregation_interval_unit", "resultType": "result_type",
    "intendedTimeSpacing": "intended_time_spacing", "intendedTimeSpacingUnit": "intended_time_spacing_unit",
    "isVisible": "is_visible",
}


def _datastream_defaults() -> dict[str, Any]:
    return {
        "observation_type": "OM_Measurement",
        "sampled_medium": "Surface Water",
        "aggregation_statistic": "Continuous",
        "time_aggregation_interval": 1.0,
        "time_aggregation_interval_unit": "minutes",
        "status": "Ongoing",
        "result_type": "Time Series Coverage",
        "intended_time_spacing": None,
        "intended_time_spacing_unit": None,
        "is_visible": 1,
    }


_DATASTREAM_ORDER_COLUMNS = {
    "name": "d.name", "observationType": "d.observation_type", "sampledMedium": "d.sampled_medium",
    "status": "d.status", "resultType": "d.result_type", "isPrivate": "d.is_private",
    "valueCount": "d.value_count", "phenomenonBeginTime": "d.begin_us", "phenomenonEndTime": "d.end_us",
    "resultBeginTime": "d.result_begin_us", "resultEndTime": "d.result_end_us",
}
_DATASTREAM_ORDER_ALLOWED = tuple(_DATASTREAM_ORDER_COLUMNS) + tuple(f"-{k}" for k in _DATASTREAM_ORDER_COLUMNS)

_DC_ORDER_KEYS = {
    "id": lambda i: i["id"], "name": lambda i: i["name"],
    "timestampKey": lambda i: i["payload"].get("timestampKey"),
    "timestampFormat": lambda i: i["payload"].get("timestampFormat"),
    "timezoneType": lambda i: i.get("timezoneType"), "timezone": lambda i: i.get("timezone"),
    "workspaceId": lambda i: i["workspace"]["id"], "workspaceName": lambda i: i["workspace"]["name"],
}
_DC_ORDER_ALLOWED = tuple(_DC_ORDER_KEYS) + tuple(f"-{k}" for k in _DC_ORDER_KEYS)
_TASK_ORDER_FIELDS = ("id", "name", "dataConnectionId", "dataConnectionName", "workspaceId", "workspaceName",
                      "latestRunStatus", "latestRunStartedAt", "latestRunFinishedAt")
_TASK_ORDER_ALLOWED = _TASK_ORDER_FIELDS + tuple(f"-{k}" for k in _TASK_ORDER_FIELDS)


def _sort_key(value: Any) -> tuple:
    return (value is None, value if value is not None else "")


def _sort_items(items: list[dict], order_by: list[str], keys: dict) -> list[dict]:
    items = sorted(items, key=lambda i: i["id"], reverse=True)  # the "-id" every ETL list ends with
    for field in reversed(order_by):
        getter = keys[field.lstrip("-")]
        items.sort(key=lambda i: _sort_key(getter(i)), reverse=field.startswith("-"))
    return items


def _sort_pairs(pairs: list[tuple[dict, sqlite3.Row]], order_by: list[str], db: sqlite3.Connection) -> list:
    def dc_name(summary: dict) -> str:
        row = db.execute("SELECT body FROM data_connections WHERE id = ?", (summary["dataConnectionId"],)).fetchone()
        return json.loads(row[0])["name"]

    def ws_name(summary: dict) -> str:
        return db.execute("SELECT name FROM workspaces WHERE id = ?", (summary["workspaceId"],)).fetchone()[0]

    keys = {
        "id": lambda s: s["id"], "name": lambda s: s["name"], "dataConnectionId": lambda s: s["dataConnectionId"],
        "dataConnectionName": dc_name, "workspaceId": lambda s: s["workspaceId"], "workspaceName": ws_name,
        "latestRunStatus": lambda s: None, "latestRunStartedAt": lambda s: None, "latestRunFinishedAt": lambda s: None,
    }
    pairs = sorted(pairs, key=lambda p: p[0]["id"], reverse=True)
    for field in reversed(order_by):
        getter = keys[field.lstrip("-")]
        pairs.sort(key=lambda p: _sort_key(getter(p[0])), reverse=field.startswith("-"))
    return pairs


def _in_or_null(column: str, values: list[Optional[str]]) -> tuple[str, list]:
    present = [v for v in values if v is not None]
    parts = []
    if present:
        parts.append(f"{column} IN ({', '.join('?' * len(present))})")
    if None in values:
        parts.append(f"{column} IS NULL")
    return f"({' OR '.join(parts)})", present


def _datastream_summary(r: sqlite3.Row) -> dict:
    return {
        "name": r["name"],
        "description": r["description"],
        "observationType": r["observation_type"],
        "sampledMedium": r["sampled_medium"],
        "noDataValue": r["no_data_value"],
        "aggregationStatistic": r["aggregation_statistic"],
        "timeAggregationInterval": r["time_aggregation_interval"],
        "status": r["status"],
        "resultType": r["result_type"],
        "valueCount": r["value_count"],
        "phenomenonBeginTime": _iso(r["begin_us"]),
        "phenomenonEndTime": _iso(r["end_us"]),
        "resultBeginTime": _iso(r["result_begin_us"]),
        "resultEndTime": _iso(r["result_end_us"]),
        "isPrivate": bool(r["is_private"]),
        "isVisible": bool(r["is_visible"]),
        "timeAggregationIntervalUnit": r["time_aggregation_interval_unit"],
        "intendedTimeSpacing": r["intended_time_spacing"],
        "intendedTimeSpacingUnit": r["intended_time_spacing_unit"],
        "thingId": r["thing_id"],
        "sensorId": r["sensor_id"],
        "observedPropertyId": r["observed_property_id"],
        "processingLevelId": r["processing_level_id"],
        "unitId": r["unit_id"],
        "id": r["id"],
        "workspaceId": r["workspace_id"],
        "tags": [{"key": k, "value": v} for k, v in json.loads(r["tags"]).items()],
        "fileAttachments": [],
    }


def _unit_json(r: sqlite3.Row) -> dict:
    return {"name": r["name"], "symbol": r["symbol"], "definition": r["definition"], "type": r["type"],
            "id": r["id"], "workspaceId": r["workspace_id"]}


def _thing_json(r: sqlite3.Row) -> dict:
    return {
        "name": r["name"],
        "description": r["description"],
        "samplingFeatureType": "Site",
        "samplingFeatureCode": r["sampling_feature_code"],
        "siteType": r["site_type"],
        "isPrivate": bool(r["is_private"]),
        "dataDisclaimer": None,
        "id": r["id"],
        "workspaceId": r["workspace_id"],
        "location": {
            "latitude": r["latitude"], "longitude": r["longitude"], "elevation_m": None,
            "elevationDatum": None, "adminArea1": None, "adminArea2": None, "country": None,
        },
        "tags": [],
        "fileAttachments": [],
    }


def _workspace_summary(r: sqlite3.Row) -> dict:
    return {"name": r["name"], "isPrivate": bool(r["is_private"]), "id": r["id"]}


def _workspace_detail(r: sqlite3.Row) -> dict:
    return {
        **_workspace_summary(r),
        "owner": {
            "phone": None, "address": None, "link": None, "type": "Other",
            "name": f"{r['first_name']} {r['last_name']}", "email": r["email"], "organizationName": None,
        },
        "collaboratorRole": None,
        "pendingTransferTo": None,
    }


def _account_json(user: sqlite3.Row) -> dict:
    return {
        "firstName": user["first_name"], "middleName": None, "lastName": user["last_name"],
        "phone": None, "address": None, "link": None, "type": "Other", "organization": None,
        "email": user["email"], "accountType": "standard",
    }


def _observation_id(ds_id: str, rowid: int) -> str:
    # stable per stored row: the datastream id's first 80 bits, the row number in the last 48
    return f"{ds_id[:24]}{rowid:012x}"


def _codes(raw: Optional[str]) -> list:
    return json.loads(raw) if raw else []


def _checksum(max_id: Optional[str], count: int) -> str:
    id_bytes = uuid.UUID(max_id).bytes if max_id else b"\x00" * 16
    count_bytes = count.to_bytes((count.bit_length() + 7) // 8 or 1, "big")
    return hashlib.sha256(id_bytes + count_bytes).hexdigest()[:16]


def _json_response(status: int, body: Any, headers: Optional[dict[str, str]] = None) -> _Response:
    return _Response(status, _json_bytes(body), "application/json; charset=utf-8", headers)


def _error_response(exc: _HttpError) -> _Response:
    if exc.body is not None:
        return _Response(exc.status, exc.body, exc.content_type, exc.headers)
    return _Response(exc.status, _json_bytes({"detail": exc.detail}), exc.content_type, exc.headers)


def _fault_response(status: int, retry_after: Optional[float]) -> _Response:
    headers = {"Retry-After": str(int(retry_after) if float(retry_after).is_integer() else retry_after)} \
        if retry_after is not None else {}
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    if status == 429:
        return _Response(429, _json_bytes({"detail": _THROTTLED_DETAIL}), headers=headers)
    if status == 500:
        return _Response(500, _DJANGO_500, "text/html; charset=utf-8", headers)
    if status >= 500:  # what a reverse proxy in front of Django answers
        body = (f"<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
                f"<center><h1>{status} {phrase}</h1></center>\r\n</body>\r\n</html>\r\n").encode()
        return _Response(status, body, "text/html", headers)
    return _Response(status, _json_bytes({"detail": phrase}), headers=headers)


# --------------------------------------------------------------------------------------------
# request bodies
# --------------------------------------------------------------------------------------------


def _parse_bulk_body(body: Any, errors: list[dict]) -> Optional[tuple[list[str], list, list, Optional[list]]]:
    """Validate a bulk-create body like ``ObservationBulkPostBody | ObservationBulkColumnarPostBody``.

    Returns ``(fields, times_us, results, qualifier_codes)``; on failure appends pydantic-style
    errors for both union members (as the real server lists them) and returns ``None``.
    """
    if body is None:
        errors.append(_missing(["body", "data"]))
        return None
    row_loc = ["body", "data", "ObservationBulkPostBody"]
    col_loc = ["body", "data", "ObservationBulkColumnarPostBody"]
    if not isinstance(body, dict):
        errors.append(_type_error(row_loc, "model_type", body))
        errors.append(_type_error(col_loc, "model_type", body))
        return None
    row_errors: list[dict] = []
    parsed = _parse_row_form(body, row_loc, row_errors)
    if parsed is not None:
        return parsed
    col_errors: list[dict] = []
    parsed = _parse_column_form(body, col_loc, col_errors)
    if parsed is not None:
        return parsed
    errors.extend(row_errors)
    errors.extend(col_errors)
    return None


def _parse_row_form(body: dict, loc: list, errors: list[dict]):
    fields, data = body.get("fields"), body.get("data")
    if "fields" not in body:
        errors.append(_missing([*loc, "fields"]))
    elif not isinstance(fields, list):
        errors.append(_type_error([*loc, "fields"], "list_type", fields))
    else:
        for i, field in enumerate(fields):
            if field not in _BULK_FIELDS:
                errors.append(_Params._literal_error([*loc, "fields", i], field, _BULK_FIELDS))
    if "data" not in body:
        errors.append(_missing([*loc, "data"]))
    elif not isinstance(data, list):
        errors.append(_type_error([*loc, "data"], "list_type", data))
    else:
        for i, row in enumerate(data):
            if not isinstance(row, list):
                errors.append(_type_error([*loc, "data", i], "list_type", row))
    if errors:
        return None
    index = {field: i for i, field in enumerate(fields)}
    i_time, i_result, i_codes = index.get("phenomenonTime"), index.get("result"), index.get("resultQualifierCodes")
    times: list = []
    results: list = []
    codes: Optional[list] = [] if i_codes is not None else None
    for row in data:
        try:
            if i_time is not None:
                value = row[i_time]
                times.append(_to_us(value) if isinstance(value, str) else _NOT_A_TIME)
            if i_result is not None:
                value = row[i_result]
                results.append(None if value is None else float(value))
            if codes is not None:
                codes.append(row[i_codes] or [])
        except IndexError:
            raise _ServerError("row shorter than fields") from None
        except TypeError:
            raise _ServerError("result cannot be read as a number") from None
        except ValueError as exc:
            message = "Invalid ISO time format" if "ISO" in str(exc) else str(exc)
            errors.append({"type": "value_error", "loc": loc, "msg": f"Value error, {message}",
                           "input": value, "ctx": {"error": message}})
            return None
    return list(fields), times, results, codes


def _parse_column_form(body: dict, loc: list, errors: list[dict]):
    times_in, results_in = body.get("phenomenonTime"), body.get("result")
    codes_in = body.get("resultQualifierCodes", [])
    times: list = []
    results: list = []
    for name, value in (("phenomenonTime", times_in), ("result", results_in)):
        if name not in body:
            errors.append(_missing([*loc, name]))
        elif not isinstance(value, list):
            errors.append(_type_error([*loc, name], "list_type", value))
    if isinstance(times_in, list):
        for i, value in enumerate(times_in):
            try:
                if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                    raise TypeError
                times.append(_to_us(value))
            except TypeError:
                errors.append(_type_error([*loc, "phenomenonTime", i], "datetime_type", value))
            except (ValueError, OverflowError):
                errors.append({"type": "value_error", "loc": [*loc, "phenomenonTime", i],
                               "msg": "Value error, Invalid ISO time format", "input": value,
                               "ctx": {"error": "Invalid ISO time format"}})
    if isinstance(results_in, list):
        for i, value in enumerate(results_in):
            if value is None:
                results.append(None)
            elif isinstance(value, (int, float)):
                results.append(float(value))
            elif isinstance(value, str):
                try:
                    results.append(float(value.strip()))
                except ValueError:
                    errors.append(_type_error([*loc, "result", i], "float_parsing", value))
            else:
                errors.append(_type_error([*loc, "result", i], "float_type", value))
    if not isinstance(codes_in, list) or any(
        not isinstance(c, list) or any(not isinstance(x, str) for x in c) for c in codes_in
    ):
        errors.append(_type_error([*loc, "resultQualifierCodes"], "list_type", codes_in))
    if errors:
        return None
    n = len(times)
    if len(results) != n:
        errors.append({"type": "value_error", "loc": loc,
                       "msg": "Value error, result must have the same length as phenomenonTime",
                       "input": None, "ctx": {"error": "result must have the same length as phenomenonTime"}})
        return None
    if codes_in and len(codes_in) != n:
        errors.append({"type": "value_error", "loc": loc,
                       "msg": "Value error, resultQualifierCodes must have the same length as phenomenonTime",
                       "input": None,
                       "ctx": {"error": "resultQualifierCodes must have the same length as phenomenonTime"}})
        return None
    codes = codes_in or [[] for _ in range(n)]
    return list(_BULK_FIELDS), times, results, codes


def _check_type(errors: list[dict], loc: list, value: Any, kind: str, nullable: bool = False) -> bool:
    if value is None and nullable:
        return True
    checks = {
        "string_type": lambda v: isinstance(v, str),
        "dict_type": lambda v: isinstance(v, dict),
        "list_type": lambda v: isinstance(v, list),
        "bool_type": lambda v: isinstance(v, bool),
        "int_type": lambda v: isinstance(v, int) and not isinstance(v, bool),
    }
    if not checks[kind](value):
        errors.append(_type_error(loc, kind, value))
        return False
    return True


def _check_enum(errors: list[dict], loc: list, value: Any, allowed: tuple, nullable: bool = True) -> None:
    if value is None and nullable:
        return
    if value not in allowed:
        errors.append(_Params._literal_error(loc, value, allowed))


def _check_datetime(errors: list[dict], loc: list, value: Any) -> Optional[str]:
    if value is None:
        return None
    try:
        if not isinstance(value, str):
            raise TypeError
        return _iso(_to_us(value))
    except (TypeError, ValueError):
        errors.append(_type_error(loc, "datetime_from_date_parsing", value))
        return None


def _validate_schedule_body(body: Any, loc: list, errors: list[dict]) -> dict:
    """Validate a SchedulePostBody/SchedulePatchBody; returns only the keys that were sent."""
    out: dict[str, Any] = {}
    if not _check_type(errors, loc, body, "dict_type"):
        return out
    if "enabled" in body and _check_type(errors, [*loc, "enabled"], body["enabled"], "bool_type"):
        out["enabled"] = body["enabled"]
    if "startTime" in body:
        out["startTime"] = _check_datetime(errors, [*loc, "startTime"], body["startTime"])
    if "crontab" in body and _check_type(errors, [*loc, "crontab"], body["crontab"], "string_type", nullable=True):
        out["crontab"] = body["crontab"] or None
    if "interval" in body and _check_type(errors, [*loc, "interval"], body["interval"], "int_type", nullable=True):
        if body["interval"] is not None and body["interval"] < 1:
            errors.append({"type": "greater_than_equal", "loc": [*loc, "interval"],
                           "msg": "Input should be greater than or equal to 1", "input": body["interval"],
                           "ctx": {"ge": 1}})
        out["interval"] = body["interval"]
    if "intervalPeriod" in body:
        _check_enum(errors, [*loc, "intervalPeriod"], body["intervalPeriod"], _INTERVAL_PERIODS)
        out["intervalPeriod"] = body["intervalPeriod"]
    return out


def _apply_schedule(current: Optional[dict], changes: dict) -> Optional[dict]:
    """HydroServer's schedule update rules (crontab XOR interval; clearing both removes the schedule)."""
    crontab = changes.get("crontab", ...)
    interval = changes.get("interval", ...)
    if crontab not in (None, ...) and interval not in (None, ...):
        raise _HttpError(400, "Only one of crontab or interval can be set on a schedule.")
    if crontab not in (None, ...):
        if len(crontab.split()) != 5:
            raise _HttpError(400, f"Invalid crontab schedule {crontab}.")
    if interval not in (None, ...) and "intervalPeriod" not in changes:
        raise _HttpError(400, "interval_period is required when setting an interval schedule.")
    has_new = crontab not in (None, ...) or interval not in (None, ...)
    touches_kind = crontab is not ... or interval is not ...
    now_iso = datetime.now(UTC).isoformat()
    if current is not None:
        if touches_kind and not has_new:
            return None
        schedule = dict(current)
        if touches_kind:
            schedule["crontab"] = crontab if crontab not in (None, ...) else None
            schedule["interval"] = interval if interval not in (None, ...) else None
            schedule["intervalPeriod"] = changes.get("intervalPeriod") if schedule["interval"] else None
        elif "intervalPeriod" in changes and schedule.get("interval"):
            schedule["intervalPeriod"] = changes["intervalPeriod"]
        if "enabled" in changes:
            schedule["enabled"] = changes["enabled"]
        if "startTime" in changes:
            schedule["startTime"] = changes["startTime"] or now_iso
        return schedule
    if not has_new:
        return None
    return {
        "enabled": changes.get("enabled", True),
        "startTime": changes.get("startTime") or now_iso,
        "crontab": crontab if crontab not in (None, ...) else None,
        "interval": interval if interval not in (None, ...) else None,
        "intervalPeriod": changes.get("intervalPeriod") if interval not in (None, ...) else None,
    }


def _schedule_response(schedule: Optional[dict]) -> Optional[dict]:
    if schedule is None:
        return None
    next_run = None
    if schedule.get("enabled") and schedule.get("interval") and schedule.get("intervalPeriod"):
        step = timedelta(**{schedule["intervalPeriod"]: schedule["interval"]})
        start = datetime.fromisoformat(schedule["startTime"])
        now = datetime.now(UTC)
        if start > now:
            next_run = start
        else:
            next_run = start + step * (int((now - start) / step) + 1)
    return {
        "enabled": bool(schedule.get("enabled", True)),
        "startTime": schedule.get("startTime"),
        "crontab": schedule.get("crontab"),
        "interval": schedule.get("interval"),
        "intervalPeriod": schedule.get("intervalPeriod"),
        "nextRunAt": _iso_dt(next_run),
    }


def _validate_data_connection(body: Any) -> dict:
    """Validate a DataConnectionPostBody and normalise it into the stored response shape."""
    errors: list[dict] = []
    loc = ["body", "data"]
    if body is None:
        raise _validation_error([_missing(loc)])
    if not isinstance(body, dict):
        raise _validation_error([_type_error(loc, "model_type", body)])
    for name in ("name", "sourceUrl", "workspaceId", "payload", "placeholderVariables"):
        if name not in body:
            errors.append(_missing([*loc, name]))
    for name in ("name", "sourceUrl"):
        if name in body:
            _check_type(errors, [*loc, name], body[name], "string_type")
    for name in ("description", "authHeaderName", "authHeaderValue", "timezone"):
        if name in body:
            _check_type(errors, [*loc, name], body[name], "string_type", nullable=True)
    workspace_id = _canonical_uuid(body.get("workspaceId"))
    if "workspaceId" in body and workspace_id is None:
        errors.append(_type_error([*loc, "workspaceId"], "uuid_parsing", body.get("workspaceId")))
    _check_enum(errors, [*loc, "timezoneType"], body.get("timezoneType"), ("offset", "iana"))
    payload = body.get("payload")
    normalised_payload: dict = {}
    if "payload" in body and _check_type(errors, [*loc, "payload"], payload, "dict_type"):
        p_loc = [*loc, "payload"]
        kind = payload.get("type")
        if kind not in _PAYLOAD_TYPES:
            errors.append(_Params._literal_error([*p_loc, "type"], kind, _PAYLOAD_TYPES))
        if "timestampKey" not in payload:
            errors.append(_missing([*p_loc, "timestampKey"]))
        else:
            _check_type(errors, [*p_loc, "timestampKey"], payload["timestampKey"], "string_type")
        normalised_payload = {"type": kind, "timestampKey": payload.get("timestampKey"),
                              "timestampFormat": payload.get("timestampFormat")}
        if kind == "CSV":
            for name in ("headerRow", "dataStartRow"):
                _check_type(errors, [*p_loc, name], payload.get(name), "int_type", nullable=True)
                normalised_payload[name] = payload.get(name)
            _check_enum(errors, [*p_loc, "delimiter"], payload.get("delimiter"), _DELIMITERS)
            normalised_payload["delimiter"] = payload.get("delimiter")
        else:
            _check_type(errors, [*p_loc, "jmespath"], payload.get("jmespath"), "string_type", nullable=True)
            normalised_payload["jmespath"] = payload.get("jmespath")
        normalised_payload["dataIngestionWindow"] = _normalise_window(
            payload.get("dataIngestionWindow"), [*p_loc, "dataIngestionWindow"], errors)
    variables = body.get("placeholderVariables")
    normalised_variables = []
    if "placeholderVariables" in body and _check_type(errors, [*loc, "placeholderVariables"], variables, "list_type"):
        for i, var in enumerate(variables):
            v_loc = [*loc, "placeholderVariables", i]
            if not _check_type(errors, v_loc, var, "dict_type"):
                continue
            if "name" not in var:
                errors.append(_missing([*v_loc, "name"]))
            _check_enum(errors, [*v_loc, "type"], var.get("type"), _PLACEHOLDER_TYPES, nullable=False)
            normalised_variables.append(
                {"name": var.get("name"), "type": var.get("type"), "timestampFormat": var.get("timestampFormat")}
            )
    notification = body.get("notification")
    normalised_notification = None
    if notification is not None and _check_type(errors, [*loc, "notification"], notification, "dict_type"):
        n_loc = [*loc, "notification"]
        emails = notification.get("recipientEmails")
        if "recipientEmails" not in notification:
            errors.append(_missing([*n_loc, "recipientEmails"]))
        elif _check_type(errors, [*n_loc, "recipientEmails"], emails, "list_type"):
            for i, email in enumerate(emails):
                if not isinstance(email, str) or "@" not in email:
                    errors.append({"type": "value_error", "loc": [*n_loc, "recipientEmails", i],
                                   "msg": "value is not a valid email address", "input": email})
        if "schedule" not in notification:
            errors.append(_missing([*n_loc, "schedule"]))
        schedule = _validate_schedule_body(notification.get("schedule", {}), [*n_loc, "schedule"], errors)
        if not errors:
            normalised_notification = {
                "schedule": _schedule_response(_apply_schedule(None, {"enabled": True, **schedule})),
                "recipientEmails": list(emails or []),
            }
            if normalised_notification["schedule"] is not None:
                normalised_notification["schedule"]["nextRunAt"] = None
    if "id" in body and _canonical_uuid(body["id"]) is None:
        errors.append(_type_error([*loc, "id"], "uuid_parsing", body["id"]))
    if errors:
        raise _validation_error(errors)
    return {
        "id": _canonical_uuid(body["id"]) if body.get("id") else None,
        "name": body["name"],
        "description": body.get("description") or None,
        "sourceUrl": body["sourceUrl"],
        "authHeaderName": body.get("authHeaderName") or None,
        "authHeaderValue": body.get("authHeaderValue") or None,
        "timezoneType": body.get("timezoneType"),
        "timezone": body.get("timezone") or None,
        "workspaceId": workspace_id,
        "payload": normalised_payload,
        "placeholderVariables": normalised_variables,
        "notification": normalised_notification,
    }


def _normalise_window(window: Any, loc: list, errors: list[dict]) -> Optional[dict]:
    if window is None:
        return None
    if not _check_type(errors, loc, window, "dict_type"):
        return None
    out: dict[str, Optional[dict]] = {"start": None, "end": None}
    for side in ("start", "end"):
        boundary = window.get(side)
        if boundary is None or not _check_type(errors, [*loc, side], boundary, "dict_type"):
            continue
        _check_enum(errors, [*loc, side, "anchor"], boundary.get("anchor"), _WINDOW_ANCHORS)
        _check_enum(errors, [*loc, side, "lookbackUnits"], boundary.get("lookbackUnits"), _INTERVAL_PERIODS)
        _check_type(errors, [*loc, side, "lookback"], boundary.get("lookback"), "int_type", nullable=True)
        if boundary.get("anchor"):
            out[side] = {
                "anchor": boundary.get("anchor"),
                "lookback": boundary.get("lookback"),
                "lookbackUnits": boundary.get("lookbackUnits"),
                "timestamp": _check_datetime(errors, [*loc, side, "timestamp"], boundary.get("timestamp")),
            }
    return out if out["start"] or out["end"] else None


def _validate_task_body(body: Any, errors: list[dict], partial: bool) -> dict:
    """Validate an EtlTaskPostBody (or, with ``partial``, an EtlTaskPatchBody); returns sent keys."""
    loc = ["body", "data"]
    out: dict[str, Any] = {}
    if body is None:
        errors.append(_missing(loc))
        return out
    if not isinstance(body, dict):
        errors.append(_type_error(loc, "model_type", body))
        return out
    if not partial:
        for name in ("name", "dataConnectionId"):
            if name not in body:
                errors.append(_missing([*loc, name]))
        if "dataConnectionId" in body:
            dc_id = _canonical_uuid(body["dataConnectionId"])
            if dc_id is None:
                errors.append(_type_error([*loc, "dataConnectionId"], "uuid_parsing", body["dataConnectionId"]))
            out["dataConnectionId"] = dc_id
        if body.get("id") is not None:
            out["id"] = _canonical_uuid(body["id"])
            if out["id"] is None:
                errors.append(_type_error([*loc, "id"], "uuid_parsing", body["id"]))
    if "name" in body and _check_type(errors, [*loc, "name"], body["name"], "string_type"):
        out["name"] = body["name"]
    if "description" in body and _check_type(errors, [*loc, "description"], body["description"], "string_type",
                                             nullable=True):
        out["description"] = body["description"] or None
    if "taskVariables" in body and _check_type(errors, [*loc, "taskVariables"], body["taskVariables"], "dict_type"):
        out["taskVariables"] = body["taskVariables"]
    if "schedule" in body:
        if body["schedule"] is None:
            out["schedule"] = None
        else:
            out["schedule"] = _validate_schedule_body(body["schedule"], [*loc, "schedule"], errors)
    if "mappings" in body and _check_type(errors, [*loc, "mappings"], body["mappings"], "list_type"):
        mappings = []
        for i, m in enumerate(body["mappings"]):
            m_loc = [*loc, "mappings", i]
            if not _check_type(errors, m_loc, m, "dict_type"):
                continue
            if "sourceIdentifier" not in m:
                errors.append(_missing([*m_loc, "sourceIdentifier"]))
            elif not isinstance(m["sourceIdentifier"], str):
                errors.append(_type_error([*m_loc, "sourceIdentifier"], "string_type", m["sourceIdentifier"]))
            target = _canonical_uuid(m.get("targetDatastreamId"))
            if "targetDatastreamId" not in m:
                errors.append(_missing([*m_loc, "targetDatastreamId"]))
            elif target is None:
                errors.append(_type_error([*m_loc, "targetDatastreamId"], "uuid_parsing", m["targetDatastreamId"]))
            mappings.append({"sourceIdentifier": m.get("sourceIdentifier"), "targetDatastreamId": target})
        out["mappings"] = mappings
    return out
