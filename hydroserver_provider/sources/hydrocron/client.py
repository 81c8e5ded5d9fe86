"""NASA Hydrocron client: SWOT time series for one river reach, river node or prior lake.

Plain Python (no Airflow): the hook, the CLI and the benchmarks share it. One call,
:func:`fetch_timeseries` (or :meth:`HydrocronClient.fetch`), returns the series of the requested
fields over a window, already cleaned (see :mod:`.hydrocron_parse` for the hygiene rules):

* the window is widened by ``query.overlap`` on both sides, because Hydrocron selects passes by
  their *start* time while the series is stamped with ``time_str``; the loader keeps only its
  exact window, and a pass returned twice is kept once;
* ``400 Results with the specified Feature ID ... were not found`` is an empty, successful answer;
  any other 400 is a configuration error quoting Hydrocron (:class:`HydrocronRequestError`);
* ``413`` (answer over 6 MB) and ``504`` (timeout on a long window) split the window in halves,
  recursively, down to ``min_window``; then :class:`HydrocronWindowTooLarge`;
* ``429`` and other 5xx are retried with backoff, honouring ``Retry-After`` (:class:`RetryPolicy`);
* ``415`` means this client sent a bad ``Accept`` header: :class:`HydrocronInternalError`;
* an optional :class:`~.ratelimit.RateLimiter` is acquired before every request (retries too), so
  threads fanning out over many features stay within a quota;
* the API key travels in the ``x-hydrocron-key`` header only, never in URLs, logs or results.

Requests ask for ``Accept: application/json`` and ``output=csv`` by default: the CSV text inside
the envelope keeps every value exactly as Hydrocron stores it. Every other form is understood too.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote

import orjson
import requests

from hydroserver_provider.errors import DefinitionError, HydroServerProviderError, SourceError
from hydroserver_provider.retries import RetriesExhausted, RetryPolicy, send_with_retries
from hydroserver_provider.sources.hydrocron.parse import (
    FEATURES,
    ID_FIELDS,
    HydrocronAssembler,
    HydrocronTable,
    QualityRule,
    decode_answer,
    parse_quality_rules,
)
from hydroserver_provider.sources.parse import ParsedSeries, ParseResult
from hydroserver_provider.sources.ratelimit import RateLimiter
from hydroserver_provider.timestamps import parse_instant

__all__ = [
    "API_KEY_HEADER",
    "DEFAULT_MIN_WINDOW",
    "DEFAULT_OVERLAP",
    "DEFAULT_URL",
    "HYDROCRON_RETRY",
    "HydrocronClient",
    "HydrocronError",
    "HydrocronInternalError",
    "HydrocronQuery",
    "HydrocronRequestError",
    "HydrocronResult",
    "HydrocronWindowTooLarge",
    "build_query_string",
    "fetch_timeseries",
    "format_time",
    "normalize_base_url",
]

log = logging.getLogger(__name__)

DEFAULT_URL = "https://soto.podaac.earthdatacloud.nasa.gov/hydrocron/v1"
API_KEY_HEADER = "x-hydrocron-key"
DEFAULT_OVERLAP = timedelta(days=1)
DEFAULT_MIN_WINDOW = timedelta(hours=6)
DEFAULT_TIMEOUT = (10.0, 120.0)
# Hydrocron's transient answers: over quota, and the 5xx family (504 is split first, see below).
HYDROCRON_RETRY = RetryPolicy(statuses=frozenset({429, 500, 502, 503, 504}))
_RETRY_STATUSES = frozenset({429, 500, 502, 503})

AnswerForm = Literal["csv", "geojson", "geojson-compact", "text/csv", "geo+json"]
# form -> (Accept header, extra query parameters). Never ``output`` with text/csv or geo+json.
_FORMS: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "csv": ("application/json", (("output", "csv"),)),
    "geojson": ("application/json", (("output", "geojson"), ("compact", "false"))),
    "geojson-compact": ("application/json", (("output", "geojson"), ("compact", "true"))),
    "text/csv": ("text/csv", ()),
    "geo+json": ("application/geo+json", ()),  # compact by default
}

_NOT_FOUND_RE = re.compile(r"Results with the specified Feature ID\b.*\bwere not found", re.I)
_ID_LENGTHS = {"Reach": 11, "Node": 14, "PriorLake": 10}
_ID_FORMATS = {
    "Reach": "CBBBBBRRRRT, e.g. 18180900091",
    "Node": "CBBBBBRRRRNNNT, e.g. 45311101670065",
    "PriorLake": "CBBNNNNNNT, e.g. 7230381002",
}
_FEATURE_ALIASES = {"reach": "Reach", "node": "Node", "priorlake": "PriorLake",
                    "prior_lake": "PriorLake", "lake": "PriorLake"}
_FIELD_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_COLLECTION_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")
# Characters left as they are in query values; everything else is percent-encoded exactly once.
_SAFE = ",:"


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class HydrocronRequestError(DefinitionError):
    """Hydrocron rejected the request as invalid (400): the definition needs fixing."""

    def __init__(self, message: str, *, hydrocron_message: str, url: str, status: int = 400):
        self.hydrocron_message = hydrocron_message
        self.url = url
        self.status = status
        super().__init__(message)


class HydrocronError(SourceError):
    """Hydrocron could not deliver (over quota, down, unexpected answer)."""


class HydrocronWindowTooLarge(HydrocronError):
    """413/504 even for a window of ``min_window``: the answer cannot be split any further."""


class HydrocronInternalError(HydroServerProviderError, RuntimeError):
    """Hydrocron refused what this client sent (415): a provider bug, not a definition error."""


# --------------------------------------------------------------------------------------------
# Query
# --------------------------------------------------------------------------------------------


def _normalize_feature(feature: Any) -> str:
    text = str(feature).strip()
    if text in FEATURES:
        return text
    alias = _FEATURE_ALIASES.get(text.replace(" ", "").lower())
    if alias is None:
        raise DefinitionError(
            "unknown Hydrocron feature type", field="feature",
            expected="Reach, Node or PriorLake", found=feature,
        )
    return alias


def _normalize_fields(fields: Any) -> tuple[str, ...]:
    if isinstance(fields, str):
        fields = fields.split(",")
    names = [str(name).strip() for name in (fields or ())]
    if not names or not all(names):
        raise DefinitionError(
            "Hydrocron fields are missing", field="fields",
            expected="one or more SWOT fields such as ['wse', 'width', 'slope']", found=fields,
        )
    for name in names:
        if not _FIELD_RE.match(name):
            raise DefinitionError(
                "Hydrocron field names are single words", field="fields",
                expected="letters, digits and '_' such as 'wse' or 'dschg_c'", found=name,
            )
        if name.endswith("_units"):
            raise DefinitionError(
                "units are returned automatically, ask for the field itself", field="fields",
                expected=f"'{name[:-6]}'", found=name,
            )
        if name in ("time_str", "geometry"):
            raise DefinitionError(
                f"'{name}' is not a numeric time series ('time_str' is the timestamp and is always "
                "requested)", field="fields", expected="value fields such as 'wse'", found=name,
            )
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class HydrocronQuery:
    """What to ask Hydrocron for: one feature, its value fields, one collection, a quality filter.

    ``fields`` become the series (source identifiers): ``wse``, ``width``, ``slope``,
    ``area_total``, ``dschg_c``... ``time_str``, the quality flags the filter needs and
    ``collection_shortname`` are added to the request. ``quality_filter``: ``None`` for the
    recommended default (:func:`~.hydrocron_parse.default_quality_rules`), ``()`` for none, or rules
    such as ``("reach_q <= 0", "ice_clim_f == 0")``. ``collection_name``: ``None`` for Hydrocron's
    default (version D); a series never mixes collections. ``overlap``: margin added on both sides
    of every window.
    """

    feature: str
    feature_id: str
    fields: tuple[str, ...]
    collection_name: str | None = None
    quality_filter: tuple[QualityRule, ...] | None = None
    overlap: timedelta = DEFAULT_OVERLAP

    def __post_init__(self) -> None:
        feature = _normalize_feature(self.feature)
        object.__setattr__(self, "feature", feature)
        feature_id = str(self.feature_id).strip() if self.feature_id is not None else ""
        if not feature_id.isdigit() or not feature_id.isascii():
            raise DefinitionError(
                f"Hydrocron {feature} ids are digits only", field="feature_id",
                expected=_ID_FORMATS[feature], found=self.feature_id,
            )
        if len(feature_id) != _ID_LENGTHS[feature]:
            raise DefinitionError(
                f"a Hydrocron {feature} id has {_ID_LENGTHS[feature]} digits", field="feature_id",
                expected=_ID_FORMATS[feature], found=feature_id,
            )
        object.__setattr__(self, "feature_id", feature_id)
        object.__setattr__(self, "fields", _normalize_fields(self.fields))
        collection = (self.collection_name or "").strip() or None
        if collection is not None:
            if not _COLLECTION_RE.match(collection):
                raise DefinitionError(
                    "Hydrocron collection names are single words", field="collection_name",
                    expected="e.g. SWOT_L2_HR_RiverSP_D", found=collection,
                )
            product = "LakeSP" if feature == "PriorLake" else "RiverSP"
            other = "RiverSP" if product == "LakeSP" else "LakeSP"
            if other.lower() in collection.lower():
                raise DefinitionError(
                    f"collection {collection!r} holds {other} data, not {feature}s",
                    field="collection_name", expected=f"a SWOT_L2_HR_{product} collection",
                    found=collection,
                )
        object.__setattr__(self, "collection_name", collection)
        if self.quality_filter is not None:
            object.__setattr__(self, "quality_filter",
                               parse_quality_rules(self.quality_filter, feature))
        overlap = self.overlap
        if isinstance(overlap, (int, float)):
            overlap = timedelta(hours=overlap)
        if not isinstance(overlap, timedelta) or overlap < timedelta(0):
            raise DefinitionError("the overlap margin must be a duration of zero or more",
                                  field="overlap", expected="e.g. timedelta(days=1)", found=overlap)
        object.__setattr__(self, "overlap", overlap)

    @classmethod
    def from_payload(cls, payload: Any, *, feature_id: str | None = None,
                     fields: Sequence[str] | None = None) -> HydrocronQuery:
        """From a ``HydrocronPayload``-like object (attributes read by name, missing = default)."""
        overlap = getattr(payload, "overlap", None)
        if overlap is None and getattr(payload, "overlap_hours", None) is not None:
            overlap = timedelta(hours=float(payload.overlap_hours))
        return cls(
            feature=getattr(payload, "feature", "Reach"),
            feature_id=feature_id if feature_id is not None else getattr(payload, "feature_id", ""),
            fields=tuple(fields) if fields else tuple(getattr(payload, "fields", ()) or ()),
            collection_name=getattr(payload, "collection_name", None),
            quality_filter=getattr(payload, "quality_filter", None),
            overlap=overlap if overlap is not None else DEFAULT_OVERLAP,
        )

    @property
    def rules(self) -> tuple[QualityRule, ...]:
        """The quality rules in force (the default filter when none was given)."""
        return parse_quality_rules(self.quality_filter, self.feature)

    @property
    def request_fields(self) -> tuple[str, ...]:
        """``time_str`` + value fields + quality flags + ``collection_shortname``, no duplicates."""
        return tuple(dict.fromkeys(
            ("time_str", *self.fields, *(rule.field for rule in self.rules), "collection_shortname")
        ))

    @property
    def id_field(self) -> str:
        return ID_FIELDS[self.feature]

    def describe(self) -> str:
        collection = self.collection_name or "default collection"
        return f"Hydrocron {self.feature} {self.feature_id} ({collection})"


# --------------------------------------------------------------------------------------------
# URL building
# --------------------------------------------------------------------------------------------


def normalize_base_url(url: str | None) -> str:
    """``None``/empty -> the public endpoint; a bare host gets ``/hydrocron/v1``; no trailing /."""
    url = (url or "").strip()
    if not url:
        return DEFAULT_URL
    if "://" not in url:
        url = f"https://{url}"
    url = url.rstrip("/")
    if url.endswith("/timeseries"):
        url = url[: -len("/timeseries")]
    scheme, _, rest = url.partition("://")
    if "/" not in rest:
        url = f"{url}/hydrocron/v1"
    return url


def _to_utc(moment: Any) -> datetime:
    try:
        instant = parse_instant(moment)
    except ValueError:
        instant = None
    if instant is None:
        raise DefinitionError("a Hydrocron window bound must be a date and time",
                              expected="datetime, numpy datetime64 or ISO text", found=moment)
    return instant.astimezone(UTC)


def format_time(moment: datetime, utc_suffix: str = "Z") -> str:
    """``2024-01-12T11:52:38Z`` (or ``+00:00`` suffix): UTC, whole seconds, as Hydrocron wants."""
    moment = _to_utc(moment)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + utc_suffix


def build_query_string(params: Iterable[tuple[str, str]]) -> str:
    """Percent-encode each value exactly once.

    ``+`` -> ``%2B``, space -> ``%20``; ``,`` and ``:`` are kept.

    The result is final: it goes into the URL as is, so nothing re-encodes ``%``.
    """
    return "&".join(f"{quote(str(k), safe='')}={quote(str(v), safe=_SAFE)}" for k, v in params)


def _floor_second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def _ceil_second(moment: datetime) -> datetime:
    if not moment.microsecond:
        return moment
    return moment.replace(microsecond=0) + timedelta(seconds=1)


# --------------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------------

Window = tuple[datetime, datetime]


@dataclass
class HydrocronResult:
    """The series of one query over one window, and how they were obtained.

    ``parse_result`` is keyed by field name (``wse``, ``width``...). It holds every pass fetched,
    including the ``overlap`` margins; the loader trims to ``window``. ``requests`` counts HTTP
    requests sent (retries and split windows included). ``url`` is the first request's URL (the
    API key is a header, never part of it).
    """

    query: HydrocronQuery
    parse_result: ParseResult
    units: dict[str, str]
    requests: int
    window: Window
    fetched_window: Window
    windows: list[Window]  # the (sub-)windows that answered, in request order
    url: str
    collection: str | None
    duplicate_passes: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def series(self) -> dict[str, ParsedSeries]:
        return self.parse_result.series

    @property
    def description(self) -> str:
        rows = self.parse_result.rows_read
        return (
            f"{self.query.describe()} {format_time(self.fetched_window[0])}.."
            f"{format_time(self.fetched_window[1])}: {rows} pass{'es' if rows != 1 else ''} "
            f"in {self.requests} request{'s' if self.requests != 1 else ''}"
        )

    def summary(self) -> dict[str, Any]:
        """JSON-safe summary for logs and XCom (no secrets)."""
        return {
            "feature": self.query.feature,
            "feature_id": self.query.feature_id,
            "collection": self.collection or self.query.collection_name,
            "window": [format_time(t) for t in self.window],
            "fetched_window": [format_time(t) for t in self.fetched_window],
            "requests": self.requests,
            "passes": self.parse_result.rows_read,
            "duplicate_passes": self.duplicate_passes,
            "quality_filter": [str(rule) for rule in self.query.rules],
            "units": dict(self.units),
            "loaded": {name: len(s) for name, s in self.series.items()},
            "dropped": self.parse_result.dropped,
            "notes": list(self.notes),
        }


# --------------------------------------------------------------------------------------------
# Client
# --------------------------------------------------------------------------------------------


class _MeteredSession:
    """What ``send_with_retries`` talks to: waits for the limiter and counts every attempt."""

    def __init__(self, session: requests.Session, limiter: RateLimiter | None) -> None:
        self.session = session
        self.limiter = limiter
        self.count = 0

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        if self.limiter is not None:
            self.limiter.acquire()
        self.count += 1
        return self.session.request(method, url, **kwargs)


def _error_text(response: requests.Response) -> str:
    """Hydrocron's own words: ``{"error": "400: ..."}`` / ``{"message": ...}`` / the text."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, Mapping):
        for key in ("error", "message", "Message", "detail"):
            if body.get(key):
                return str(body[key]).strip()
    if isinstance(body, str) and body.strip():
        return body.strip()
    text = response.text.strip()
    return text[:500] if text else f"HTTP {response.status_code} {response.reason or ''}".strip()


class HydrocronClient:
    """A Hydrocron client: one ``requests.Session``, a retry policy, an optional rate limiter.

    Safe to share between threads (each :meth:`fetch` keeps its own state; the limiter locks).
    ``answer_form`` picks the Accept header / ``output`` combination (default ``"csv"``: Accept
    application/json + output=csv). ``utc_suffix`` ``"Z"`` or ``"+00:00"`` (sent as ``%2B00:00``).
    """

    def __init__(
        self,
        base_url: str | None = DEFAULT_URL,
        *,
        api_key: str | None = None,
        session: requests.Session | None = None,
        retry: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        min_window: timedelta = DEFAULT_MIN_WINDOW,
        max_window: timedelta | None = None,
        answer_form: AnswerForm = "csv",
        utc_suffix: Literal["Z", "+00:00"] = "Z",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if answer_form not in _FORMS:
            raise ValueError(
                f"answer_form must be one of {', '.join(_FORMS)}, found {answer_form!r}"
            )
        if utc_suffix not in ("Z", "+00:00"):
            raise ValueError(f"utc_suffix must be 'Z' or '+00:00', found {utc_suffix!r}")
        if min_window <= timedelta(0):
            raise ValueError(f"min_window must be positive, found {min_window!r}")
        if max_window is not None and max_window < min_window:
            raise ValueError(f"max_window ({max_window}) is shorter than min_window ({min_window})")
        self.base_url = normalize_base_url(base_url)
        self._api_key = api_key or None
        self._own_session = session is None
        self.session = session or requests.Session()
        self.retry = retry or HYDROCRON_RETRY
        self.limiter = limiter
        self.timeout = timeout
        self.min_window = min_window
        self.max_window = max_window
        self.answer_form = answer_form
        self.utc_suffix = utc_suffix
        self._sleep = sleep

    # -- plumbing --------------------------------------------------------------------------------

    @property
    def has_api_key(self) -> bool:
        return self._api_key is not None

    def __repr__(self) -> str:
        key = "set" if self._api_key else "none"
        return f"HydrocronClient(base_url={self.base_url!r}, api_key={key})"

    def close(self) -> None:
        if self._own_session:
            self.session.close()

    def __enter__(self) -> HydrocronClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def headers(self) -> dict[str, str]:
        from hydroserver_provider import __version__

        headers = {"Accept": _FORMS[self.answer_form][0],
                   "User-Agent": f"airflow-provider-hydroserver/{__version__}"}
        if self._api_key:
            headers[API_KEY_HEADER] = self._api_key
        return headers

    def build_url(self, query: HydrocronQuery, start: Any, end: Any) -> str:
        """The exact URL for one window (values encoded once; no secret in it)."""
        params: list[tuple[str, str]] = [
            ("feature", query.feature),
            ("feature_id", query.feature_id),
            ("start_time", format_time(start, self.utc_suffix)),
            ("end_time", format_time(end, self.utc_suffix)),
            *_FORMS[self.answer_form][1],
            ("fields", ",".join(query.request_fields)),
        ]
        if query.collection_name:
            params.append(("collection_name", query.collection_name))
        return f"{self.base_url}/timeseries?{build_query_string(params)}"

    def _policy(self, splittable: bool) -> RetryPolicy:
        statuses = frozenset(self.retry.statuses) | _RETRY_STATUSES
        # A 504 on a window we can still halve is answered by splitting, not by waiting.
        statuses = statuses - {504} if splittable else statuses | {504}
        return dataclasses.replace(self.retry, statuses=statuses)

    def _splittable(self, start: datetime, end: datetime) -> bool:
        return end - start >= 2 * self.min_window and end - start >= timedelta(seconds=2)

    # -- fetching --------------------------------------------------------------------------------

    def fetch(self, query: HydrocronQuery, start: Any, end: Any) -> HydrocronResult:
        """The series of ``query`` for the window [start, end], widened by ``query.overlap``."""
        return self.fetch_windows(query, [(start, end)])

    def fetch_windows(
        self, query: HydrocronQuery, windows: Sequence[tuple[Any, Any]]
    ) -> HydrocronResult:
        """Several windows, e.g. the runs of a backfill, in one result (overlaps collapse).

        Each window is widened by ``query.overlap`` like in :meth:`fetch`.
        """
        if not windows:
            raise DefinitionError("no Hydrocron window given", expected="at least one (start, end)",
                                  found=windows)
        asked = [(_to_utc(start), _to_utc(end)) for start, end in windows]
        for s, e in asked:
            if s > e:
                raise DefinitionError("a Hydrocron window ends before it starts",
                                      expected="start <= end",
                                      found=f"{format_time(s)} > {format_time(e)}")
        spans = [(_floor_second(s - query.overlap), _ceil_second(e + query.overlap))
                 for s, e in asked]
        whole = (min(s for s, _ in spans), max(e for _, e in spans))
        return self._collect(query, spans, (min(s for s, _ in asked), max(e for _, e in asked)),
                             whole)

    def _chunks(self, start: datetime, end: datetime) -> list[Window]:
        if self.max_window is None or end - start <= self.max_window:
            return [(start, end)]
        chunks = []
        cursor = start
        while cursor < end:
            stop = min(cursor + self.max_window, end)
            chunks.append((cursor, stop))
            cursor = stop
        return chunks

    def _collect(self, query: HydrocronQuery, spans: list[Window], window: Window,
                 fetched: Window) -> HydrocronResult:
        assembler = HydrocronAssembler(query.fields, query.rules)
        metered = _MeteredSession(self.session, self.limiter)
        headers = self.headers()
        pending: list[Window] = []
        for s, e in spans:
            pending.extend(self._chunks(s, e))
        pending.reverse()  # a stack: earliest window first
        answered: list[Window] = []
        first_url: str | None = None
        while pending:
            start, end = pending.pop()
            url = self.build_url(query, start, end)
            first_url = first_url or url
            where = f"{query.describe()} {format_time(start)}..{format_time(end)}"
            splittable = self._splittable(start, end)
            try:
                response = send_with_retries(
                    metered, "GET", url, policy=self._policy(splittable), describe=where,
                    sleep=self._sleep, headers=headers, timeout=self.timeout,
                )
            except RetriesExhausted as exc:
                raise HydrocronError(
                    f"{where}: Hydrocron could not be reached at {self.base_url} ({exc})",
                    url=url,
                ) from exc
            with response:
                status = response.status_code
                if status == 200:
                    table = decode_answer(response.content, response.headers.get("Content-Type"))
                elif status == 400:
                    message = _error_text(response)
                    if not _NOT_FOUND_RE.search(message):
                        raise HydrocronRequestError(
                            f"{where}: Hydrocron rejected the request: {message}",
                            hydrocron_message=message, url=url,
                        )
                    table = HydrocronTable(form="empty")  # no pass in this window
                elif status in (413, 504):
                    message = _error_text(response)
                    if splittable:
                        middle = start + timedelta(seconds=int((end - start).total_seconds()) // 2)
                        log.info("%s: Hydrocron answered %d (%s); splitting at %s", where, status,
                                 message, format_time(middle))
                        pending.append((middle, end))
                        pending.append((start, middle))
                        continue
                    reason = "the answer is over 6 MB" if status == 413 else "the request timed out"
                    raise HydrocronWindowTooLarge(
                        f"{where}: Hydrocron answered {status} ({message}): {reason} even for a "
                        f"window of {end - start}, the smallest allowed (min_window="
                        f"{self.min_window}); ask for fewer fields or lower min_window",
                        url=url, status=status,
                    )
                elif status == 415:
                    raise HydrocronInternalError(
                        f"{where}: Hydrocron refused the Accept header "
                        f"{headers['Accept']!r} (415: {_error_text(response)}). This is a bug in "
                        "hydroserver_provider, not in your definition; please report it."
                    )
                elif status in _RETRY_STATUSES or status >= 500:
                    raise HydrocronError(
                        f"{where}: Hydrocron answered {status} ({_error_text(response)}) after "
                        f"{self._policy(splittable).tries} tries"
                        + ("; the shared quota is exhausted, try later or use an API key"
                           if status == 429 else ""),
                        url=url, status=status,
                    )
                else:
                    hint = (f"; check the Hydrocron URL (expected e.g. {DEFAULT_URL})"
                            if status in (403, 404) else "")
                    raise HydrocronError(
                        f"{where}: Hydrocron answered {status} ({_error_text(response)}){hint}",
                        url=url, status=status,
                    )
            assembler.add(table)
            self._check_collection(query, assembler, where, url)
            answered.append((start, end))
        parse_result = assembler.finish()
        collection = next(iter(assembler.collections), None) or query.collection_name
        return HydrocronResult(
            query=query,
            parse_result=parse_result,
            units={name: unit for name, unit in assembler.units.items() if name in query.fields},
            requests=metered.count,
            window=window,
            fetched_window=fetched,
            windows=answered,
            url=first_url or "",
            collection=collection,
            duplicate_passes=assembler.duplicate_passes,
            notes=assembler.notes,
        )

    @staticmethod
    def _check_collection(query: HydrocronQuery, assembler: HydrocronAssembler, where: str,
                          url: str) -> None:
        seen = assembler.collections
        if query.collection_name and seen - {query.collection_name}:
            raise HydrocronError(
                f"{where}: asked for collection {query.collection_name} but Hydrocron returned "
                f"{', '.join(sorted(seen))}; a series never mixes collections", url=url)
        if len(seen) > 1:
            raise HydrocronError(
                f"{where}: Hydrocron returned passes of several collections "
                f"({', '.join(sorted(seen))}); set collection_name so a series never mixes them",
                url=url)


def fetch_timeseries(
    query: HydrocronQuery,
    start: Any,
    end: Any,
    *,
    session: requests.Session | None = None,
    base_url: str = DEFAULT_URL,
    api_key: str | None = None,
    retry: RetryPolicy | None = None,
    limiter: RateLimiter | None = None,
    min_window: timedelta = DEFAULT_MIN_WINDOW,
    max_window: timedelta | None = None,
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
    answer_form: AnswerForm = "csv",
) -> HydrocronResult:
    """One-shot :meth:`HydrocronClient.fetch` (a session is opened and closed unless given)."""
    with HydrocronClient(base_url, api_key=api_key, session=session, retry=retry, limiter=limiter,
                         timeout=timeout, min_window=min_window, max_window=max_window,
                         answer_form=answer_form) as client:
        return client.fetch(query, start, end)
