"""Definitions of data connections and tasks, in hydroserverpy's vocabulary.

These models are the contract between a definition file (YAML/JSON, written by hand or exported
from HydroServer) and the ingestion core. Field names follow the seed guide (snake_case); the
camelCase spelling HydroServer's API exports is accepted as well.

Two layers:

* the models (``DataConnection``, ``Task``, ...) hold the *canonical* form and check it: building
  one directly with wrong values raises a pydantic ``ValidationError``;
* ``parse_data_connection`` / ``parse_task`` read a dict in either vocabulary (flat snake_case
  keys as in the seed guide, a nested ``payload:`` block, or HydroServer's camelCase export),
  normalise it and build the models, turning every problem into a ``DefinitionError`` that names
  the definition, the key as the user wrote it, what was expected and what was found. They raise
  all problems of one definition together as ``DefinitionErrors``.

Nothing here imports Airflow, pandas or requests; JMESPath and croniter are imported only when a
definition needs them, and compiled expressions are cached.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterable
from collections.abc import Mapping as AbcMapping
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal, Union, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .errors import DefinitionError, DefinitionErrors

__all__ = [
    "AIRFLOW_SETTINGS",
    "CSVPayload",
    "DataConnection",
    "DELIMITERS",
    "HIDDEN",
    "HydrocronPayload",
    "JSONPayload",
    "Mapping",
    "NOTHING",
    "Notification",
    "PAYLOAD_TYPES",
    "Payload",
    "PlaceholderVariable",
    "Schedule",
    "Shown",
    "SourceAuth",
    "Task",
    "ConnectionLookup",
    "build_data_connection",
    "build_task",
    "check_airflow_settings",
    "compile_jmespath",
    "connection_location",
    "task_location",
    "crontab_problem",
    "normalise_offset",
    "parse_data_connection",
    "parse_task",
    "placeholder_names",
    "strftime_problem",
    "timezone_problem",
]

VariableType = Literal[
    "window_start", "window_end", "run_time", "latest_observation_timestamp", "per_task"
]
TimezoneType = Literal["utc", "offset", "iana"]
IntervalPeriod = Literal["minutes", "hours", "days"]

WINDOW_VARIABLE_TYPES = frozenset({"window_start", "window_end"})
DATE_VARIABLE_TYPES = frozenset(
    {"window_start", "window_end", "run_time", "latest_observation_timestamp"}
)

# Accepted spellings of a CSV delimiter -> the character.
DELIMITERS: dict[str, str] = {
    ",": ",", "|": "|", "\t": "\t", ";": ";", " ": " ", "\\t": "\t",
    "comma": ",", "pipe": "|", "tab": "\t", "semicolon": ";", "space": " ",
}
_DELIMITER_EXPECTED = "one of ',' '|' '\\t' ';' ' ' or comma, pipe, tab, semicolon, space"

# ``{name}`` in a source URL (same rule as placeholders.py: an identifier between braces).
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_BRACED = re.compile(r"\{([^{}]*)\}")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_OFFSET = re.compile(r"([+-])(\d{2}):?(\d{2})\Z")
_HEADER_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+\Z")
_URL_SCHEMES = ("http://", "https://", "file://")
_UUID = re.compile(r"[0-9a-fA-F]{8}(-?[0-9a-fA-F]{4}){3}-?[0-9a-fA-F]{12}\Z")


# --------------------------------------------------------------------------------------------
# What an error shows as "found"
# --------------------------------------------------------------------------------------------


class Shown(str):
    """A ``found`` value printed as-is (no quotes) in a ``DefinitionError`` message.

    A ``str`` subclass, so errors stay JSON-serialisable and comparable with plain text.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return str.__str__(self)


NOTHING = Shown("nothing")
HIDDEN = Shown("a value written in the file (not shown)")


def _found(value: Any) -> Any:
    """A short, readable stand-in for ``value`` in an error message."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return value if len(value) <= 100 else Shown(repr(value[:97]) + "...")
    if isinstance(value, datetime):
        return Shown(f"the date-time {value.isoformat()}")
    text = repr(value)
    if len(text) > 100:
        text = text[:97] + "..."
    kinds = {dict: "a mapping", list: "a list", tuple: "a list"}
    kind = kinds.get(type(value), type(value).__name__)
    return Shown(f"{kind} {text}")


def _problem(message: str, *, expected: str | None = None, found: Any = NOTHING,
             field: tuple = (), relative_to: str = "field") -> PydanticCustomError:
    """One problem raised from a validator, carrying the parts of a ``DefinitionError``.

    ``field`` is relative to what the validator validates: the field for a field validator, the
    model for a model validator (``relative_to`` documents which).
    """
    return _problems([(field, message, expected, found)], relative_to=relative_to)


def _problems(problems: list[tuple], *, relative_to: str = "field") -> PydanticCustomError:
    return PydanticCustomError(
        "hydroserver_definition",
        "{message}",
        {"message": "; ".join(p[1] for p in problems), "problems": problems,
         "relative_to": relative_to},
    )


_SECRET_PARAM = re.compile(r"key|token|secret|password|passwd|pwd|signature|sig|auth", re.I)


def _safe_url(url: str) -> str:
    """``url`` for an error message: a password and secret-looking query values are masked."""
    scheme, sep, rest = url.partition("://")
    if sep:
        authority, slash, tail = rest.partition("/")
        if "@" in authority:
            userinfo, _, host = authority.rpartition("@")
            user = userinfo.partition(":")[0]
            authority = f"{user}:***@{host}" if ":" in userinfo else authority
        rest = authority + slash + tail
        url = scheme + sep + rest
    head, qmark, query = url.partition("?")
    if not qmark:
        return url
    fragment = ""
    if "#" in query:
        query, _, fragment = query.partition("#")
        fragment = "#" + fragment
    params = []
    for part in query.split("&"):
        name, eq, value = part.partition("=")
        if eq and value and _SECRET_PARAM.search(name) and not _PLACEHOLDER.fullmatch(value):
            value = "***"
        params.append(name + eq + value)
    return head + qmark + "&".join(params) + fragment


def _suggest(word: str, choices: Iterable[str]) -> str | None:
    """The choice closest to ``word`` (case-insensitive), if any is close enough."""
    choices = list(choices)
    folded = {c.casefold(): c for c in choices}
    if word.casefold() in folded:
        return folded[word.casefold()]
    match = difflib.get_close_matches(word.casefold(), list(folded), n=1, cutoff=0.6)
    return folded[match[0]] if match else None


# --------------------------------------------------------------------------------------------
# Cheap, cached checks shared with the rest of the core
# --------------------------------------------------------------------------------------------

_STRFTIME_DIRECTIVES = frozenset("aAwdbBmyYHIpMSfzZjUWcxXGuV%")
_DATE_DIRECTIVES = frozenset("YyGmbBdjUWVcx")


@functools.lru_cache(maxsize=4096)
def strftime_problem(fmt: str, *, needs_date: bool = True) -> str | None:
    """What is wrong with a strftime/strptime format, or None.

    Only Python's documented, portable directives are accepted (``%-d`` and ``%s`` depend on the
    platform). A format that reads timestamps must contain a date directive; one that writes a
    URL value (``needs_date=False``) needs at least one directive (``?time=%H:%M`` is fine).
    """
    directives: set[str] = set()
    i = fmt.find("%")
    while i != -1:
        if i + 1 >= len(fmt):
            return "ends with a lone '%' (write '%%' for a percent sign)"
        d = fmt[i + 1]
        if d in "-#":
            return (f"'%{d}' padding flags depend on the platform; use the zero-padded "
                    "directive (e.g. %d, %H)")
        if d not in _STRFTIME_DIRECTIVES:
            return f"'%{d}' is not a strftime directive"
        directives.add(d)
        i = fmt.find("%", i + 2)
    if needs_date and not directives & _DATE_DIRECTIVES:
        return "has no date directive (such as %Y, %m, %d)"
    if not directives - {"%"}:
        return "has no % directive"
    return None


@functools.lru_cache(maxsize=4096)
def compile_jmespath(expression: str) -> Any:
    """``jmespath.compile(expression)``, cached; raises jmespath's ParseError/LexerError."""
    import jmespath  # noqa: PLC0415  (only JSON connections pay for the import)

    return jmespath.compile(expression)


@functools.lru_cache(maxsize=4096)
def _jmespath_problem(expression: str) -> str | None:
    try:
        compile_jmespath(expression)
    except Exception as exc:  # jmespath.exceptions.JMESPathError (a ValueError)
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        first = re.sub(r"^invalid jmespath expression:\s*", "", first, flags=re.I).rstrip(":")
        position = getattr(exc, "lex_position", None)
        return first + (f" at character {position + 1}" if isinstance(position, int) else "")
    return None


_CRON_PRESETS = {
    "@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_CRON_ITEM = r"(\*|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/[0-9]+)?"
_CRON_FIELD = re.compile(rf"{_CRON_ITEM}(,{_CRON_ITEM})*\Z")


@functools.lru_cache(maxsize=4096)
def crontab_problem(expression: str) -> str | None:
    """What is wrong with a 5-field cron expression, or None (croniter decides when installed)."""
    preset = _CRON_PRESETS.get(expression.strip().lower())
    if preset:
        return f"presets are not accepted; write '{preset}'"
    fields = expression.split()
    if len(fields) != 5:
        return (f"has {len(fields)} field{'s' if len(fields) != 1 else ''}; a crontab has 5: "
                "minute hour day-of-month month day-of-week")
    try:
        from croniter import croniter  # noqa: PLC0415  (Airflow depends on croniter)
    except ImportError:  # pragma: no cover - Airflow installs croniter
        bad = [f for f in fields if not _CRON_FIELD.match(f)]
        return f"field '{bad[0]}' is not a cron field" if bad else None
    try:
        valid = croniter.is_valid(expression)
    except Exception:  # pragma: no cover - defensive: is_valid should not raise
        valid = False
    return None if valid else "is not a valid cron expression"


def normalise_offset(value: str) -> str | None:
    """``"-07:00"`` / ``"-0700"`` -> ``"-0700"``; None when ``value`` is not a ±HHMM offset."""
    m = _OFFSET.match(value.strip()) if isinstance(value, str) else None
    if not m:
        return None
    sign, hours, minutes = m.groups()
    if int(hours) > 14 or int(minutes) > 59:
        return None
    return f"{sign}{hours}{minutes}"


@functools.lru_cache(maxsize=1)
def _available_zones() -> tuple[str, ...]:
    import zoneinfo  # noqa: PLC0415

    return tuple(sorted(zoneinfo.available_timezones()))


@functools.lru_cache(maxsize=1024)
def timezone_problem(name: str) -> str | None:
    """What is wrong with an IANA zone name, or None (zoneinfo decides; results are cached)."""
    from zoneinfo import ZoneInfo  # noqa: PLC0415

    try:
        ZoneInfo(name)
    except Exception:
        hint = _suggest(name, _available_zones())
        return "is not a known IANA time zone" + (f" (did you mean '{hint}'?)" if hint else "")
    return None


def placeholder_names(url: str) -> list[str]:
    """The ``{name}`` placeholders of a URL, first occurrence order, without repeats."""
    return list(dict.fromkeys(_PLACEHOLDER.findall(url)))


def _check_timestamp_format(value: str | None, *, for_url: bool = False) -> str | None:
    """Normalise ``ISO8601`` (any case) to None and check a strftime format."""
    if value is None:
        return None
    if value.strip().replace("-", "").replace(" ", "").lower() in ("", "iso", "iso8601"):
        return None  # ISO 8601 (same spellings as timestamps.is_iso_format)
    problem = strftime_problem(value, needs_date=not for_url)
    if problem:
        raise _problem(
            f"the timestamp format {problem}",
            expected=("a strftime format, e.g. '%Y-%m-%dT%H:%M:%S'" if for_url else
                      "a strftime format with a date, e.g. '%Y-%m-%dT%H:%M:%S', or ISO8601"),
            found=value,
        )
    return value


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------

# model_validate(..., context=NORMALISED): the input is already canonical (built by this module)
_NORMALISED = "hydroserver_definition_normalised"
NORMALISED_CONTEXT = {_NORMALISED: True}


def _is_canonical(info: ValidationInfo) -> bool:
    return bool(info.context) and bool(info.context.get(_NORMALISED))


def _respell(data: Any, keys_name: str, read_only_name: str | None = None) -> Any:
    """Rename camelCase / alias keys of a small block (lenient: pydantic reports the rest)."""
    if not isinstance(data, dict) or not data:
        return data
    keys = globals()[keys_name]  # the tables are defined below the models
    read_only = globals()[read_only_name] if read_only_name else frozenset()
    return {keys.get(k, k): v for k, v in data.items()
            if k not in read_only and (v is not None or keys.get(k, k) in _KEEP_NULL)}



class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class PlaceholderVariable(_Model):
    """One ``{name}`` in ``source_url`` and where its value comes from."""

    name: str
    variable_type: VariableType
    timestamp_format: str | None = None  # strftime for date variables; None: ISO 8601 UTC

    @model_validator(mode="before")
    @classmethod
    def _vocabulary(cls, data: Any, info: ValidationInfo) -> Any:
        return data if _is_canonical(info) else _respell(data, "PLACEHOLDER_KEYS")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _IDENTIFIER.match(value):
            raise _problem(
                "a placeholder name is letters, digits and '_' (not starting with a digit)",
                expected="a name such as 'station_id'", found=value,
            )
        return value

    @field_validator("variable_type", mode="before")
    @classmethod
    def _type(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("timestamp_format")
    @classmethod
    def _format(cls, value: str | None) -> str | None:
        return _check_timestamp_format(value, for_url=True)


class SourceAuth(_Model):
    """An HTTP header sent to the source; the value lives in Airflow, never in the file.

    Exactly one of ``conn_id`` (the connection's password is the value) or ``variable`` (an Airflow
    Variable holding the value) is set.
    """

    header_name: str
    conn_id: str | None = None
    variable: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _vocabulary(cls, data: Any, info: ValidationInfo) -> Any:
        return data if _is_canonical(info) else _respell(data, "AUTH_KEYS")

    @field_validator("header_name")
    @classmethod
    def _header(cls, value: str) -> str:
        value = value.strip()
        if not _HEADER_TOKEN.match(value):
            raise _problem("not a valid HTTP header name",
                           expected="a header name such as 'X-Api-Key'", found=value)
        return value

    @model_validator(mode="after")
    def _one_reference(self) -> SourceAuth:
        given = [n for n in ("conn_id", "variable") if getattr(self, n)]
        if len(given) != 1:
            raise _problem(
                "the header value must come from exactly one Airflow connection or Variable",
                expected="exactly one of conn_id (an Airflow connection whose password is the "
                         "value) or variable (an Airflow Variable holding the value)",
                found=Shown(" and ".join(given) if given else "neither"),
                field=("conn_id",) if not given else (given[-1],),
            )
        return self


class CSVPayload(_Model):
    type: Literal["CSV"] = "CSV"
    header_row: int | None = 1  # 1-based; None: the file has no header, identifiers are indexes
    data_start_row: int = 2  # 1-based
    delimiter: str = ","

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        # HydroServer exports null for unset rows/delimiter; the first data row follows the header.
        if isinstance(data, dict):
            if data.get("delimiter", ",") is None:
                data = {**data, "delimiter": ","}
            if data.get("data_start_row") is None:
                header = data.get("header_row", 1)
                if header is None or (isinstance(header, int) and not isinstance(header, bool)):
                    data = {**data, "data_start_row": (header or 0) + 1}
        return data

    @field_validator("header_row")
    @classmethod
    def _header_row(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise _problem("rows are counted from 1",
                           expected="a row number >= 1, or null for a file without header",
                           found=value)
        return value

    @field_validator("data_start_row")
    @classmethod
    def _data_start_row(cls, value: int, info: ValidationInfo) -> int:
        if value < 1:
            raise _problem("rows are counted from 1", expected="a row number >= 1", found=value)
        header = info.data.get("header_row")
        if header is not None and value <= header:
            raise _problem("the data must start after the header row",
                           expected=f"a row number > header_row ({header})", found=value)
        return value

    @field_validator("delimiter")
    @classmethod
    def _delimiter(cls, value: str) -> str:
        char = DELIMITERS.get(value) or DELIMITERS.get(value.strip().lower())
        if char is None:
            raise _problem("unknown delimiter", expected=_DELIMITER_EXPECTED, found=value)
        return char


class JSONPayload(_Model):
    type: Literal["JSON"] = "JSON"
    jmespath: str  # selects the list of records; "@" when the document itself is the list

    @field_validator("jmespath", mode="before")
    @classmethod
    def _root(cls, value: Any) -> Any:
        return "@" if value is None else value

    @field_validator("jmespath")
    @classmethod
    def _compile(cls, value: str) -> str:
        problem = _jmespath_problem(value)
        if problem:
            raise _problem(f"invalid JMESPath expression: {problem}",
                           expected="a JMESPath expression such as 'data[*]'", found=value)
        return value


HYDROCRON_ID_DIGITS = {"Reach": 11, "Node": 14, "PriorLake": 10}
_HYDROCRON_ID_EXAMPLES = {"Reach": "11 digits such as '18180900091'",
                          "Node": "14 digits such as '45311101670065'",
                          "PriorLake": "10 digits such as '7230381002'"}
_HYDROCRON_FEATURES = {"reach": "Reach", "node": "Node", "priorlake": "PriorLake",
                       "prior_lake": "PriorLake", "lake": "PriorLake"}
_HYDROCRON_FIELD = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_HYDROCRON_RULE = re.compile(
    r"\s*[A-Za-z_][A-Za-z0-9_]*\s*(<=|>=|==|!=|<|>|=)\s*[-+]?\d+(\.\d+)?\s*\Z")
_HYDROCRON_NOT_VALUES = frozenset({"time_str", "geometry", "collection_shortname"})


def hydrocron_field_problem(name: str) -> str | None:
    """Why ``name`` cannot be a Hydrocron value field (a series to load), or None."""
    if not _HYDROCRON_FIELD.match(name):
        return "a Hydrocron field is one word of letters, digits and '_'"
    if name.endswith("_units"):
        return "units come with every field automatically; name the field itself"
    if name in _HYDROCRON_NOT_VALUES:
        return f"'{name}' is not a value series ('time_str' is always the timestamp)"
    return None


def hydrocron_id_problem(feature_id: str, feature: str) -> tuple[str, str] | None:
    """(message, expected) when ``feature_id`` is not a ``feature`` id, else None."""
    digits = HYDROCRON_ID_DIGITS.get(feature)
    if digits is None:
        return None
    if not (feature_id.isascii() and feature_id.isdigit()) or len(feature_id) != digits:
        return (f"not a Hydrocron {feature} id", _HYDROCRON_ID_EXAMPLES[feature])
    return None


class HydrocronPayload(_Model):
    """NASA Hydrocron SWOT time series of one river reach, river node or prior lake.

    The values are Hydrocron *fields* (``wse``, ``width``, ``slope``, ``area_total``,
    ``dschg_c``...): mappings name them as source identifiers; ``time_str`` is the timestamp.
    ``feature_id`` is fixed here, or comes from the task (``task_variables: {feature_id: ...}``),
    or from each mapping (``feature_id`` on every mapping: one DAG fanning out over the features).
    ``fields``: what to request (default: the mapped fields). ``quality_filter``: None for the
    recommended filter (``reach_q``/``node_q``/``quality_f`` <= 1 and ``ice_clim_f == 0`` where
    present), ``[]`` for none, or rules such as ``["reach_q <= 0"]``. ``mode``: ``incremental``
    (each run asks from the newest stored observation minus ``overlap_hours`` until now: SWOT
    passes reach Hydrocron days after the overpass) or ``windowed`` (each run owns its data
    interval, widened by ``overlap_hours`` for the request and trimmed exactly when loading).
    ``conversions``: ``{wse: {from: m, to: ft}}`` or ``{wse: ft}`` (from what Hydrocron reports).
    ``requests_per_second``: the request rate of the whole task, fan-out included.
    """

    type: Literal["HYDROCRON"] = "HYDROCRON"
    feature: Literal["Reach", "Node", "PriorLake"] = "Reach"
    feature_id: str | None = None
    collection_name: str | None = None
    fields: tuple[str, ...] = ()
    quality_filter: Union[str, tuple[str, ...], None] = None
    overlap_hours: float = 24.0
    mode: Literal["incremental", "windowed"] = "incremental"
    hydrocron_conn_id: str = "hydrocron_default"
    min_window_hours: float | None = None
    max_window_days: float | None = None
    conversions: dict[str, Union[str, dict[str, str]]] = Field(default_factory=dict)
    requests_per_second: float | None = None

    @field_validator("feature", mode="before")
    @classmethod
    def _feature(cls, value: Any) -> Any:
        if isinstance(value, str):
            return _HYDROCRON_FEATURES.get(value.strip().replace(" ", "").lower(), value)
        return value

    @field_validator("feature_id", mode="before")
    @classmethod
    def _feature_id_text(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value.strip() or None if isinstance(value, str) else value

    @field_validator("feature_id")
    @classmethod
    def _feature_id(cls, value: str | None, info: ValidationInfo) -> str | None:
        feature = info.data.get("feature")
        problem = hydrocron_id_problem(value, feature) if value and feature else None
        if problem:
            raise _problem(problem[0], expected=problem[1], found=value)
        return value

    @field_validator("collection_name")
    @classmethod
    def _collection(cls, value: str | None) -> str | None:
        value = value.strip() if value else None
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_.\-]+", value):
            raise _problem("a Hydrocron collection name is one word",
                           expected="e.g. SWOT_L2_HR_RiverSP_D", found=value)
        return value

    @field_validator("fields", mode="before")
    @classmethod
    def _fields_text(cls, value: Any) -> Any:
        return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) \
            else value

    @field_validator("fields")
    @classmethod
    def _fields(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        problems = [((i,), problem, "a SWOT field such as wse, width, slope, area_total", name)
                    for i, name in enumerate(value)
                    if (problem := hydrocron_field_problem(name))]
        if problems:
            raise _problems(problems)
        return tuple(dict.fromkeys(value))

    @field_validator("quality_filter")
    @classmethod
    def _quality(cls, value: str | tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = tuple(p.strip() for p in re.split(r"\s*(?:,|;|\band\b)\s*", value)
                          if p.strip())
        problems = [((i,), "a quality rule is '<field> <comparison> <number>'",
                     "e.g. 'reach_q <= 1' or 'ice_clim_f == 0'", rule)
                    for i, rule in enumerate(value) if not _HYDROCRON_RULE.match(rule)]
        if problems:
            raise _problems(problems)
        return tuple(value)

    @field_validator("overlap_hours")
    @classmethod
    def _overlap(cls, value: float) -> float:
        if not 0 <= value < float("inf"):
            raise _problem("the overlap is a number of hours >= 0",
                           expected="e.g. 24 (Hydrocron selects passes by their start time)",
                           found=value)
        return value

    @field_validator("mode", mode="before")
    @classmethod
    def _mode(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
            return "windowed" if value in ("window", "interval", "data_interval") else value
        return value

    @field_validator("hydrocron_conn_id")
    @classmethod
    def _conn_id(cls, value: str) -> str:
        if not value.strip():
            raise _problem("the Airflow connection id is empty",
                           expected="an Airflow connection id such as hydrocron_default",
                           found=value)
        return value.strip()

    @field_validator("min_window_hours", "max_window_days", "requests_per_second")
    @classmethod
    def _positive(cls, value: float | None) -> float | None:
        if value is not None and not 0 < value < float("inf"):
            raise _problem("must be a positive number", expected="a number > 0", found=value)
        return value

    @field_validator("conversions")
    @classmethod
    def _conversions(cls, value: dict) -> dict:
        from .units import UnitError, conversion_factor, describe_known_units  # noqa: PLC0415

        problems: list[tuple] = []
        out: dict[str, dict[str, str]] = {}
        for name, spec in value.items():
            problem = hydrocron_field_problem(name)
            if problem:
                problems.append(((name,), problem, "a SWOT field such as wse", name))
                continue
            if isinstance(spec, str):
                spec = {"to": spec}
            unknown = sorted(set(spec) - {"from", "to"})
            if unknown or not spec.get("to"):
                problems.append(((name,), "a conversion names the unit to convert to",
                                 "{to: ft} or {from: m, to: ft}", _found(spec)))
                continue
            try:
                conversion_factor(spec.get("from") or spec["to"], spec["to"])
                if spec.get("from"):
                    conversion_factor(spec["from"], spec["to"])
            except UnitError as exc:
                problems.append(((name,), f"cannot convert: {exc}",
                                 f"units of one kind among {describe_known_units()}",
                                 _found(spec)))
                continue
            out[name] = {k: spec[k] for k in ("from", "to") if spec.get(k)}
        if problems:
            raise _problems(problems)
        return out

    @model_validator(mode="after")
    def _windows(self) -> HydrocronPayload:
        if (self.min_window_hours is not None and self.max_window_days is not None
                and self.max_window_days * 24 < self.min_window_hours):
            raise _problem("the longest window is shorter than the smallest one",
                           expected=f"max_window_days >= min_window_hours / 24 "
                                    f"({self.min_window_hours / 24:g})",
                           found=self.max_window_days, field=("max_window_days",),
                           relative_to="model")
        return self


Payload = Annotated[Union[CSVPayload, JSONPayload, HydrocronPayload], Field(discriminator="type")]
PAYLOAD_MODELS: dict[str, type[_Model]] = {
    "CSV": CSVPayload, "JSON": JSONPayload, "HYDROCRON": HydrocronPayload,
}
PAYLOAD_TYPES = tuple(PAYLOAD_MODELS)


class Schedule(_Model):
    """When a task (or a notification digest) runs; neither interval nor crontab: manual only.

    ``enabled`` is independent of the schedule: a disabled task keeps its schedule but does not
    run on it (its DAG is created paused).
    """

    interval: int | None = None
    interval_period: IntervalPeriod | None = None
    crontab: str | None = None
    timezone: str | None = None  # crontab zone; UTC when unset
    start_time: datetime | None = None  # naive values are read as UTC
    enabled: bool = True

    @model_validator(mode="before")
    @classmethod
    def _vocabulary(cls, data: Any, info: ValidationInfo) -> Any:
        if _is_canonical(info):
            return data
        return _respell(data, "SCHEDULE_KEYS", "SCHEDULE_READ_ONLY")

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise _problem("the interval must be positive", expected="a whole number >= 1",
                           found=value)
        return value

    @field_validator("interval_period", mode="before")
    @classmethod
    def _period(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
            if value in ("minute", "hour", "day"):
                value += "s"
        return value

    @field_validator("crontab", mode="before")
    @classmethod
    def _crontab_blank(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = " ".join(value.split())
            return value or None
        return value

    @field_validator("crontab")
    @classmethod
    def _crontab(cls, value: str | None) -> str | None:
        if value is not None:
            problem = crontab_problem(value)
            if problem:
                raise _problem(f"the crontab {problem}",
                               expected="5 cron fields, e.g. '0 * * * *'", found=value)
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            problem = timezone_problem(value)
            if problem:
                raise _problem(f"the schedule's time zone {problem}",
                               expected="an IANA time zone such as 'America/Denver'", found=value)
        return value

    @field_validator("start_time")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and (value.tzinfo is None or value.utcoffset() == timedelta(0)):
            value = value.replace(tzinfo=timezone.utc)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Schedule:
        problems = []
        if self.interval is not None and self.interval_period is None:
            problems.append((("interval_period",), "an interval needs its period",
                             "minutes, hours or days", NOTHING))
        if self.interval_period is not None and self.interval is None:
            problems.append((("interval",), "interval_period is set but interval is not",
                             "a whole number >= 1", NOTHING))
        if self.interval is not None and self.crontab is not None:
            problems.append((("crontab",), "a schedule is an interval or a crontab, not both",
                             "either interval + interval_period or crontab", self.crontab))
        if problems:
            raise _problems(problems, relative_to="model")
        return self

    @property
    def is_manual(self) -> bool:
        """Neither interval nor crontab: runs only when triggered."""
        return self.interval is None and self.crontab is None

    @property
    def interval_delta(self) -> timedelta | None:
        """The interval as a timedelta (None for crontab or manual schedules)."""
        if self.interval is None or self.interval_period is None:
            return None
        return timedelta(**{self.interval_period: self.interval})


class Notification(_Model):
    recipient_emails: tuple[str, ...] = ()
    schedule: Schedule | None = None

    @model_validator(mode="before")
    @classmethod
    def _vocabulary(cls, data: Any, info: ValidationInfo) -> Any:
        return data if _is_canonical(info) else _respell(data, "NOTIFICATION_KEYS")

    @field_validator("recipient_emails")
    @classmethod
    def _emails(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        value = tuple(v.strip() for v in value)
        problems = [((i,), "not an email address", "an address such as ops@example.com", v)
                    for i, v in enumerate(value) if not _EMAIL.match(v)]
        if problems:
            raise _problems(problems)
        return value


def _canonical_connection(data: dict) -> bool:
    """Whether ``data`` already has the canonical shape (the models' own field names)."""
    if not data.keys() <= DataConnection.model_fields.keys():
        return False
    payload = data.get("payload")
    if isinstance(payload, BaseModel):
        return True
    model = PAYLOAD_MODELS.get(payload.get("type")) if isinstance(payload, dict) else None
    return model is not None and payload.keys() <= model.model_fields.keys()


class DataConnection(_Model):
    """Where data comes from, its format, and how to read its timestamps."""

    name: str
    source_url: str | None = None  # required, except for HYDROCRON (the Airflow connection's)
    payload: Payload
    timestamp_key: str = "timestamp"
    timestamp_format: str | None = None  # strftime; None: detected ISO 8601 ("ISO8601" -> None)
    timezone_type: TimezoneType | None = None
    # "-0700" for offset (±HH:MM is normalised to ±HHMM), "America/Denver" for iana
    timezone: str | None = Field(default=None, validate_default=True)
    placeholder_variables: tuple[PlaceholderVariable, ...] = Field(
        default=(), validate_default=True
    )
    auth: SourceAuth | None = None
    workspace_id: str | None = None
    description: str = ""
    notification: Notification | None = None
    id: str | None = None  # HydroServer's id when imported; tasks may reference it

    @model_validator(mode="before")
    @classmethod
    def _vocabulary(cls, data: Any, info: ValidationInfo) -> Any:
        """Either vocabulary (seed guide, nested payload, HydroServer export) -> canonical."""
        if _is_canonical(info) or not isinstance(data, dict) or _canonical_connection(data):
            return data
        r = _Reader(connection_location(data))
        canonical = _normalise_connection(r, data)
        if r.errors:
            raise DefinitionErrors(r.errors)
        return canonical

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip():
            raise _problem("a data connection needs a name", expected="a non-empty name",
                           found=value)
        return value

    @field_validator("source_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        shown = _safe_url(value)
        problems: list[tuple] = []
        if not value.lower().startswith(_URL_SCHEMES):
            problems.append(((), "the source URL must be absolute",
                             "a URL starting with http://, https:// or file://", shown))
        for inner in _BRACED.findall(value):
            if not _IDENTIFIER.match(inner):
                problems.append(((), f"'{{{inner}}}' is not a valid placeholder",
                                 "{name} with letters, digits and '_'", shown))
        rest = _BRACED.sub("", value)
        if "{" in rest or "}" in rest:
            problems.append(((), "unbalanced '{' or '}' (encode literal braces as %7B and %7D)",
                             "placeholders written as {name}", shown))
        if problems:
            raise _problems(problems)
        return value

    @field_validator("timestamp_key")
    @classmethod
    def _key(cls, value: str) -> str:
        if not value.strip():
            raise _problem("the timestamp key is empty",
                           expected="the column or field holding the timestamps", found=value)
        return value

    @field_validator("timestamp_format")
    @classmethod
    def _format(cls, value: str | None) -> str | None:
        return _check_timestamp_format(value)

    @field_validator("timezone_type", mode="before")
    @classmethod
    def _zone_type(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
            return value or None
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None, info: ValidationInfo) -> str | None:
        if "timezone_type" not in info.data:
            return value  # timezone_type itself is invalid: reported there
        kind = info.data["timezone_type"]
        value = value.strip() if isinstance(value, str) and value.strip() else None
        if kind is None:
            if value is not None:
                raise _problem(
                    "a timezone is set but timezone_type is not, so it would be ignored",
                    expected="timezone_type: offset or iana (or no timezone)", found=value,
                )
            return None
        if kind == "utc":
            if value is not None and value.upper() not in ("UTC", "Z", "ETC/UTC", "+0000",
                                                            "+00:00", "-0000", "-00:00"):
                raise _problem("timezone_type utc conflicts with this timezone",
                               expected="no timezone (or UTC) with timezone_type utc",
                               found=value)
            return None
        if kind == "offset":
            offset = normalise_offset(value) if value is not None else None
            if offset is None:
                raise _problem("timezone_type offset needs a fixed UTC offset",
                               expected="an offset like -0700 or +05:30",
                               found=NOTHING if value is None else value)
            return offset
        if value is None:  # iana
            raise _problem("timezone_type iana needs a zone name",
                           expected="an IANA time zone such as 'America/Denver'", found=NOTHING)
        problem = timezone_problem(value)
        if problem:
            raise _problem(f"the timezone {problem}",
                           expected="an IANA time zone such as 'America/Denver'", found=value)
        return value

    @field_validator("placeholder_variables")
    @classmethod
    def _variables(cls, value: tuple[PlaceholderVariable, ...],
                   info: ValidationInfo) -> tuple[PlaceholderVariable, ...]:
        problems: list[tuple] = []
        seen: dict[str, int] = {}
        for i, variable in enumerate(value):
            if variable.name in seen:
                problems.append(((i, "name"), "two placeholder variables have this name",
                                 "unique names", variable.name))
            seen.setdefault(variable.name, i)
        url = info.data.get("source_url")
        if url is not None:
            in_url = placeholder_names(url)
            for name in in_url:
                if name not in seen:
                    problems.append(
                        ((), f"the source URL has the placeholder {{{name}}} but no placeholder "
                             "variable describes it",
                         f"a placeholder_variables entry named '{name}'",
                         Shown(", ".join(f"'{n}'" for n in seen) or "no variables")))
            for name, i in seen.items():
                if name not in in_url:
                    problems.append(
                        ((i, "name"), f"the variable '{name}' has no {{{name}}} in the source URL",
                         f"{{{name}}} in source_url", _safe_url(url)))
        if problems:
            raise _problems(problems)
        return value

    @field_validator("description", mode="before")
    @classmethod
    def _description(cls, value: Any) -> Any:
        return "" if value is None else value

    @model_validator(mode="after")
    def _source_fits_payload(self) -> DataConnection:
        """CSV and JSON need a URL; Hydrocron's endpoint, key and time stamps are fixed."""
        if self.payload.type != "HYDROCRON":
            if self.source_url is None:
                raise _problem("is required", expected=_FIELD_HINTS["source_url"],
                               found=NOTHING, field=("source_url",), relative_to="model")
            return self
        why = "Hydrocron's endpoint and API key come from the Airflow connection " \
              f"'{self.payload.hydrocron_conn_id}' (hydrocron_conn_id)"
        problems: list[tuple] = []
        if self.source_url and placeholder_names(self.source_url):
            problems.append((("source_url",), "a Hydrocron connection has no URL placeholders: "
                             "the window comes from the run and feature_id from the definition",
                             "no source_url (" + why + ")", _safe_url(self.source_url)))
        if self.placeholder_variables:
            problems.append((("placeholder_variables",), "a Hydrocron connection has no "
                             "placeholders: feature_id is set in the payload, the task's "
                             "task_variables or each mapping", "no placeholder_variables",
                             Shown(", ".join(v.name for v in self.placeholder_variables))))
        if self.timestamp_key not in ("timestamp", "time_str"):
            problems.append((("timestamp_key",), "Hydrocron's timestamp is always time_str",
                             "time_str (or no timestamp_key)", self.timestamp_key))
        if self.timestamp_format is not None:
            problems.append((("timestamp_format",), "Hydrocron's time_str is ISO 8601 in UTC",
                             "no timestamp_format", self.timestamp_format))
        if self.timezone_type not in (None, "utc"):
            problems.append((("timezone_type",), "Hydrocron's time_str is in UTC",
                             "no timezone_type (or utc)", self.timezone_type))
        if self.auth is not None:
            problems.append((("auth",), "a Hydrocron API key is not sent by auth: " + why
                             + ", whose password is the key", "no auth",
                             Shown(f"auth with header {self.auth.header_name}")))
        if problems:
            raise _problems(problems, relative_to="model")
        return self

    def placeholder_names(self) -> list[str]:
        """The ``{name}``s of ``source_url``, in order of first appearance."""
        return placeholder_names(self.source_url or "")

    @property
    def uses_window(self) -> bool:
        """Whether each run owns its window: the URL asks for it (a window_start/window_end
        variable), or a Hydrocron payload says ``mode: windowed``."""
        if self.payload.type == "HYDROCRON":
            return self.payload.mode == "windowed"
        return any(v.variable_type in WINDOW_VARIABLE_TYPES for v in self.placeholder_variables)

    def per_task_names(self) -> list[str]:
        """The names of the per_task variables, which every task must give a value."""
        return [v.name for v in self.placeholder_variables if v.variable_type == "per_task"]


class Mapping(_Model):
    source_identifier: str
    target_datastream_id: str
    feature_id: str | None = None  # HYDROCRON fan-out: the feature whose field this is

    @model_validator(mode="before")
    @classmethod
    def _vocabulary(cls, data: Any, info: ValidationInfo) -> Any:
        if _is_canonical(info) or not isinstance(data, dict):
            return data
        data = _respell(data, "MAPPING_KEYS", "MAPPING_READ_ONLY")
        target = data.pop("target_datastream", None)
        if target is not None:  # HydroServer's {targetDatastream: {id, ...}}
            data.setdefault("target_datastream_id",
                            target.get("id") if isinstance(target, dict) else target)
        return data

    @field_validator("source_identifier", mode="before")
    @classmethod
    def _index(cls, value: Any) -> Any:
        # CSV without header: identifiers are column indexes, often written as numbers.
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("source_identifier")
    @classmethod
    def _source(cls, value: str) -> str:
        if not value.strip():
            raise _problem("the source identifier is empty",
                           expected="the column (CSV) or field (JSON) name", found=value)
        return value

    @field_validator("target_datastream_id")
    @classmethod
    def _target(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise _problem("the target datastream id is empty",
                           expected="the id of a HydroServer datastream", found=value)
        return value.lower() if _UUID.match(value) else value

    @field_validator("feature_id", mode="before")
    @classmethod
    def _feature_text(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value.strip() or None if isinstance(value, str) else value


class Task(_Model):
    """One data connection applied to a set of datastreams, on a schedule."""

    name: str
    data_connection: DataConnection
    mappings: tuple[Mapping, ...]
    task_variables: dict[str, str] = Field(default_factory=dict, validate_default=True)
    schedule: Schedule = Schedule()
    description: str = ""
    airflow: dict = {}  # Airflow settings (retries, pool, ...) after merging the file's defaults
    id: str | None = None  # HydroServer's id when imported

    @model_validator(mode="before")
    @classmethod
    def _vocabulary(cls, data: Any, info: ValidationInfo) -> Any:
        """Either vocabulary; the data connection must be inline (a dict or a model) here:
        use ``parse_task`` or the definition loader to resolve a name or id."""
        if _is_canonical(info) or not isinstance(data, dict):
            return data
        r = _Reader(task_location(data))
        canonical, reference, airflow = _normalise_task(r, data)
        if isinstance(reference, (dict, DataConnection)):
            canonical["data_connection"] = reference
        elif reference is not NOTHING and reference is not None:
            r.error(("data_connection",), r.where(("data_connection",)),
                    "a reference by name or id needs the definition loader (parse_task, "
                    "load_definitions)", "the data connection itself", _found(reference))
        if airflow is not None:
            settings, errors = check_airflow_settings(airflow, location=r.location)
            r.errors.extend(errors)
            canonical["airflow"] = settings
        if r.errors:
            raise DefinitionErrors(r.errors)
        return canonical

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip():
            raise _problem("a task needs a name", expected="a non-empty name", found=value)
        return value

    @field_validator("mappings")
    @classmethod
    def _mappings(cls, value: tuple[Mapping, ...]) -> tuple[Mapping, ...]:
        if not value:
            raise _problem("a task needs at least one mapping",
                           expected="mappings: [{source_identifier: ..., "
                                    "target_datastream_id: ...}]",
                           found=Shown("no mappings"))
        problems = []
        first: dict[str, int] = {}
        for i, mapping in enumerate(value):
            j = first.setdefault(mapping.target_datastream_id, i)
            if j != i:
                problems.append(((i, "target_datastream_id"),
                                 f"this datastream is already the target of mappings[{j}]",
                                 "each datastream targeted once per task",
                                 mapping.target_datastream_id))
        if problems:
            raise _problems(problems)
        return value

    @field_validator("task_variables")
    @classmethod
    def _per_task(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        connection = info.data.get("data_connection")
        if isinstance(connection, DataConnection):
            missing = [n for n in connection.per_task_names() if n not in value]
            if missing:
                raise _problems([
                    ((), f"the data connection '{connection.name}' has the per_task variable "
                         f"'{name}', which this task gives no value",
                     f"task_variables: {{{name}: ...}}",
                     Shown(", ".join(f"'{k}'" for k in value) or "no task variables"))
                    for name in missing
                ])
        return value

    @field_validator("description", mode="before")
    @classmethod
    def _description(cls, value: Any) -> Any:
        return "" if value is None else value

    @model_validator(mode="after")
    def _hydrocron(self) -> Task:
        connection = self.data_connection
        if not isinstance(connection, DataConnection):
            return self  # _TaskFields without a usable connection
        if connection.payload.type != "HYDROCRON":
            problems = [(("mappings", i, "feature_id"), "feature_id applies to HYDROCRON "
                         "mappings only", "no feature_id", m.feature_id)
                        for i, m in enumerate(self.mappings) if m.feature_id is not None]
            if problems:
                raise _problems(problems, relative_to="model")
            return self
        problems = _hydrocron_task_problems(self, connection.payload)
        if problems:
            raise _problems(problems, relative_to="model")
        return self

    @property
    def hydrocron_features(self) -> tuple[str, ...]:
        """The feature ids of a Hydrocron fan-out (``feature_id`` on the mappings), in order."""
        return tuple(dict.fromkeys(m.feature_id for m in self.mappings if m.feature_id))

    @property
    def target_datastream_ids(self) -> tuple[str, ...]:
        """The datastreams this task writes, in mapping order."""
        return tuple(m.target_datastream_id for m in self.mappings)


def _hydrocron_task_problems(task: Task, payload: HydrocronPayload) -> list[tuple]:
    """Where a Hydrocron task's feature ids come from, and whether its fields can be asked for.

    The feature id comes from exactly one place: the payload, the task's ``task_variables``, or a
    ``feature_id`` on every mapping (the fan-out). A templated task variable (``{{ ... }}``) is
    checked when it is rendered.
    """
    problems: list[tuple] = []
    example = _HYDROCRON_ID_EXAMPLES[payload.feature]
    given = [i for i, m in enumerate(task.mappings) if m.feature_id is not None]
    variable = task.task_variables.get("feature_id")
    if given and len(given) != len(task.mappings):
        for i, m in enumerate(task.mappings):
            if m.feature_id is None:
                problems.append((("mappings", i, "feature_id"), "some mappings name their "
                                 "feature and this one does not", f"a feature_id ({example})",
                                 NOTHING))
    if given and (payload.feature_id or variable):
        where = ("task_variables", "feature_id") if variable else ("mappings", given[0],
                                                                   "feature_id")
        problems.append((where, "the feature is set for the whole task and on the mappings",
                         "feature_id on every mapping (one DAG over many features) or one "
                         "feature_id for the task, not both",
                         variable or Shown(f"feature_id {payload.feature_id} in the data "
                                           "connection")))
    if not given:
        if payload.feature_id and variable and variable != payload.feature_id:
            problems.append((("task_variables", "feature_id"), "the data connection already "
                             f"fixes feature_id {payload.feature_id}", "no feature_id in "
                             "task_variables, or no feature_id in the data connection",
                             variable))
        elif not payload.feature_id and not variable:
            problems.append((("task_variables",), f"no Hydrocron {payload.feature} to load",
                             f"task_variables: {{feature_id: ...}} ({example}), feature_id in "
                             "the data connection, or feature_id on every mapping",
                             Shown(", ".join(f"'{k}'" for k in task.task_variables)
                                   or "no task variables")))
    if variable and "{{" not in variable:
        problem = hydrocron_id_problem(variable, payload.feature)
        if problem:
            problems.append((("task_variables", "feature_id"), *problem, variable))
    for i in given:
        problem = hydrocron_id_problem(task.mappings[i].feature_id or "", payload.feature)
        if problem:
            problems.append((("mappings", i, "feature_id"), *problem,
                             task.mappings[i].feature_id))
    for i, m in enumerate(task.mappings):
        problem = hydrocron_field_problem(m.source_identifier)
        if problem:
            problems.append((("mappings", i, "source_identifier"), problem,
                             "a SWOT field such as wse, width, slope, area_total",
                             m.source_identifier))
        elif payload.fields and m.source_identifier not in payload.fields:
            problems.append((("mappings", i, "source_identifier"), "this field is not among "
                             "the data connection's fields, so it is never requested",
                             "one of " + ", ".join(payload.fields), m.source_identifier))
    return problems


# --------------------------------------------------------------------------------------------
# Airflow settings of a task (``defaults:`` of a file and a task's ``airflow:`` block)
# --------------------------------------------------------------------------------------------


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_seconds(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0


_DURATION = re.compile(
    r"((\d+(\.\d+)?)(ms|seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|days?|d|weeks?|w))+\Z",
    re.I)


def _is_duration(v: Any) -> bool:
    """Seconds as a number, or a text such as "90", "30s", "5m", "1h30m", "2 days"."""
    if isinstance(v, str):
        text = v.strip().replace(" ", "")
        try:
            return float(text) >= 0
        except ValueError:
            return bool(_DURATION.match(text))
    return _is_seconds(v)


def _is_text(v: Any) -> bool:
    return isinstance(v, str) and bool(v.strip())


def _is_texts(v: Any) -> bool:
    return isinstance(v, list) and all(_is_text(x) for x in v)


_DURATION_EXPECTED = "seconds (a number) or a text such as 30s, 5m, 2h, 1d"

# name -> (check, what is expected). The DAG factory turns durations into timedeltas and reports
# what only it can check (DAG id syntax, tag length).
AIRFLOW_SETTINGS: dict[str, tuple[Any, str]] = {
    "hydroserver_conn_id": (_is_text, "an Airflow connection id"),
    "hydrocron_conn_id": (_is_text, "an Airflow connection id"),
    "owner": (_is_text, "a name"),
    "retries": (lambda v: _is_int(v) and v >= 0, "a whole number >= 0"),
    "retry_delay": (_is_duration, _DURATION_EXPECTED),
    "retry_exponential_backoff": (lambda v: isinstance(v, bool) or _is_seconds(v),
                                  "true, false or a multiplier such as 2"),
    "max_retry_delay": (_is_duration, _DURATION_EXPECTED),
    "execution_timeout": (_is_duration, _DURATION_EXPECTED),
    "dagrun_timeout": (_is_duration, _DURATION_EXPECTED),
    "pool": (_is_text, "an Airflow pool name"),
    "pool_slots": (lambda v: _is_int(v) and v >= 1, "a whole number >= 1"),
    "queue": (_is_text, "an executor queue name"),
    "priority_weight": (_is_int, "a whole number"),
    "email": (lambda v: _is_text(v) or _is_texts(v), "an address or a list of addresses"),
    "email_on_failure": (lambda v: isinstance(v, bool), "true or false"),
    "email_on_retry": (lambda v: isinstance(v, bool), "true or false"),
    "tags": (_is_texts, "a list of tags"),
    "max_active_runs": (lambda v: _is_int(v) and v >= 1, "a whole number >= 1"),
    "max_active_tasks": (lambda v: _is_int(v) and v >= 1, "a whole number >= 1"),
    "catchup": (lambda v: isinstance(v, bool), "true or false"),
    "depends_on_past": (lambda v: isinstance(v, bool), "true or false"),
    "is_paused_upon_creation": (lambda v: isinstance(v, bool), "true or false"),
    "dag_id": (_is_text, "a DAG id"),
    # provider settings
    "chunk_rows": (lambda v: _is_int(v) and v >= 1, "a whole number >= 1"),
    "asset_host": (_is_text, "a host name"),
    "pool_per_connection": (lambda v: isinstance(v, bool), "true or false"),
}
_TASK_ONLY_SETTINGS = frozenset({"dag_id"})


def check_airflow_settings(settings: Any, *, location: str | None = None, field: str = "airflow",
                           defaults: bool = False) -> tuple[dict, list[DefinitionError]]:
    """Check a ``defaults:`` or ``airflow:`` block; returns the valid settings and the problems."""
    if settings is None:
        return {}, []
    if not isinstance(settings, dict):
        return {}, [DefinitionError("Airflow settings are a mapping", location=location,
                                    field=field, expected="a mapping such as {retries: 3}",
                                    found=_found(settings))]
    good: dict = {}
    errors: list[DefinitionError] = []
    for key, value in settings.items():
        spec = AIRFLOW_SETTINGS.get(key) if isinstance(key, str) else None
        if spec is None or (defaults and key in _TASK_ONLY_SETTINGS):
            if spec is not None:
                message = f"'{key}' must differ per task: set it in each task's airflow: block"
                expected = "a setting shared by every task"
            else:
                hint = _suggest(str(key), AIRFLOW_SETTINGS)
                message = "unknown Airflow setting" + (f" (did you mean '{hint}'?)" if hint else "")
                expected = f"'{hint}'" if hint else "one of " + ", ".join(AIRFLOW_SETTINGS)
            errors.append(DefinitionError(message, location=location, field=f"{field}.{key}",
                                          expected=expected, found=_found(key)))
            continue
        check, expected = spec
        if value is None:
            continue
        if not check(value):
            errors.append(DefinitionError("wrong value for an Airflow setting", location=location,
                                          field=f"{field}.{key}", expected=expected,
                                          found=_found(value)))
            continue
        good[key] = value
    return good, errors


# --------------------------------------------------------------------------------------------
# The two vocabularies -> canonical dicts
# --------------------------------------------------------------------------------------------


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _spellings(*names: str, **aliases: str) -> dict[str, str]:
    """Accepted key -> canonical key: each name in snake_case and camelCase, plus aliases."""
    out: dict[str, str] = {}
    for n in names:
        out[n] = n
        out[_camel(n)] = n
    for alias, canonical in aliases.items():
        out[alias] = canonical
        out[_camel(alias)] = canonical
    return out


def _payload_field_names() -> dict[str, tuple[str, ...]]:
    """Payload field -> the payload types having it (computed from the payload models)."""
    fields: dict[str, list[str]] = {}
    for kind, model in PAYLOAD_MODELS.items():
        for name in model.model_fields:
            if name != "type":
                fields.setdefault(name, []).append(kind)
    return {k: tuple(v) for k, v in fields.items()}


PAYLOAD_FIELDS = _payload_field_names()
_TIMESTAMP_KEYS = ("timestamp_key", "timestamp_format")
_PAYLOAD_NULLS = frozenset({"delimiter", "data_start_row", "jmespath"})
_KEEP_NULL = frozenset({"timestamp_format", "timezone", "crontab", "interval", "interval_period",
                        "start_time", "conn_id", "variable", "schedule"})

SECRET_KEYS = frozenset({"auth_header_value", "authHeaderValue", "api_key", "apiKey", "apikey",
                         "password", "token"})
_AUTH_SECRET_KEYS = frozenset({"value", "header_value", "headerValue", "password", "token",
                               "api_key", "apiKey", "apikey", "secret"})

CONNECTION_KEYS = _spellings(
    "name", "id", "description", "source_url", "payload", "payload_type", "timezone_type",
    "timezone", "placeholder_variables", "auth", "auth_header_name", "workspace_id",
    "workspace", "notification", *_TIMESTAMP_KEYS, *PAYLOAD_FIELDS,
)
CONNECTION_READ_ONLY = frozenset({"taskCount", "taskAttentionCount", "task_count",
                                  "task_attention_count", "createdAt", "updatedAt"})
PAYLOAD_KEYS = _spellings("type", "data_ingestion_window", *_TIMESTAMP_KEYS, *PAYLOAD_FIELDS,
                          payload_type="type")
PLACEHOLDER_KEYS = _spellings("name", "variable_type", "timestamp_format", type="variable_type")
AUTH_KEYS = _spellings("header_name", "conn_id", "variable", connection_id="conn_id")
NOTIFICATION_KEYS = _spellings("recipient_emails", "schedule")
SCHEDULE_KEYS = _spellings("interval", "interval_period", "crontab", "timezone", "start_time",
                           "enabled")
SCHEDULE_READ_ONLY = frozenset({"nextRunAt", "next_run_at", "paused"})
FLAT_SCHEDULE_KEYS = ("interval", "interval_period", "crontab", "start_time", "enabled")
TASK_KEYS = _spellings(
    "name", "id", "description", "data_connection", "data_connection_id", "mappings",
    "task_variables", "schedule", "airflow",
    *(k for k in FLAT_SCHEDULE_KEYS),
)
TASK_READ_ONLY = frozenset({"latestRun", "latest_run", "workspaceId", "workspace_id",
                            "workspace", "createdAt", "updatedAt"})
MAPPING_KEYS = _spellings("source_identifier", "target_datastream_id", "target_datastream",
                          "feature_id")
MAPPING_READ_ONLY = frozenset({"id"})

_SECRET_MESSAGE = (
    "secret values are not accepted in definition files: store the value in an Airflow connection "
    "(as its password) or an Airflow Variable and reference it"
)
_SECRET_EXPECTED = "auth: {header_name: <header>, conn_id: <Airflow connection>} or auth: " \
                   "{header_name: <header>, variable: <Airflow Variable>}"


def _join(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _nullable_fields(model: type[BaseModel]) -> frozenset[str]:
    out = set()
    for name, info in model.model_fields.items():
        if info.annotation is None or type(None) in get_args(info.annotation):
            out.add(name)
    return frozenset(out)


_NULLABLE: dict[type, frozenset[str]] = {}


def _drop_nulls(model: type[BaseModel], data: dict, keep: frozenset = frozenset()) -> dict:
    """``null`` means "not set": drop it unless the field itself takes None (or is in keep)."""
    nullable = _NULLABLE.get(model)
    if nullable is None:
        nullable = _NULLABLE[model] = _nullable_fields(model)
    return {k: v for k, v in data.items() if v is not None or k in nullable or k in keep}


class _Reader:
    """Normalises one definition: collects problems and remembers how each key was spelt."""

    __slots__ = ("location", "errors", "origin", "reported")

    def __init__(self, location: str | None) -> None:
        self.location = location
        self.errors: list[DefinitionError] = []
        self.origin: dict[tuple, str] = {}  # canonical path -> the key path as written
        self.reported: set[tuple] = set()  # canonical paths already reported (no pydantic dupes)

    def error(self, cpath: tuple, field: str | None, message: str, expected: str | None = None,
              found: Any = NOTHING) -> None:
        self.errors.append(DefinitionError(message, location=self.location, field=field or None,
                                           expected=expected, found=found))
        self.reported.add(cpath)

    def where(self, cpath: tuple) -> str:
        """The field path as the user wrote it."""
        for i in range(len(cpath), 0, -1):
            spelt = self.origin.get(cpath[:i])
            if spelt is not None:
                text = spelt
                for part in cpath[i:]:
                    text = _join(text, part)
                return text
        text = ""
        for part in cpath:
            text = _join(text, part)
        return text

    def mapping(self, raw: Any, keys: dict[str, str], path: str, cpath: tuple, what: str, *,
                read_only: frozenset = frozenset(), secrets: frozenset = frozenset()) -> dict:
        """Rename the keys of ``raw`` to canonical ones; report unknown, doubled, secret keys."""
        if isinstance(raw, BaseModel):  # a model given directly: already canonical
            raw = raw.model_dump()
        if not isinstance(raw, dict):
            self.error(cpath, path, f"{what} must be a mapping of keys to values",
                       "a mapping (key: value)", _found(raw))
            return {}
        out: dict = {}
        for key, value in raw.items():
            if not isinstance(key, str):
                self.error(cpath, path, "keys are text", "a text key", _found(key))
                continue
            canonical = keys.get(key)
            if canonical is None:
                if key in read_only:
                    continue
                if key in secrets:
                    if value is None or value == "":
                        continue  # an export with no secret set
                    self.error(cpath + (key,), _join(path, key), _SECRET_MESSAGE,
                               _SECRET_EXPECTED, HIDDEN)
                    self.reported.add(("auth",))  # says it all: no "missing reference" too
                    continue
                hint = _suggest(key, keys)
                known = ", ".join(dict.fromkeys(keys.values()))
                self.error(cpath + (key,), _join(path, key),
                           f"unknown key in {what}"
                           + (f" (did you mean '{hint}'?)" if hint else ""),
                           f"'{hint}'" if hint else f"one of {known}", key)
                continue
            if canonical in out:
                self.error(cpath + (canonical,), _join(path, key),
                           f"'{key}' repeats '{self.origin[cpath + (canonical,)]}'",
                           "the setting given once", _found(value))
                continue
            out[canonical] = value
            self.origin[cpath + (canonical,)] = _join(path, key)
        return out

    def take(self, dest: tuple, *sources: tuple[dict, tuple, str]) -> Any:
        """Pop one setting that may be written in several places; report conflicting values."""
        found: list[tuple[Any, str]] = []
        nulls: list[str] = []
        for data, cpath, key in sources:
            if key in data:
                value = data.pop(key)
                if value is None:  # null: not set
                    nulls.append(self.where(cpath + (key,)))
                else:
                    found.append((value, self.where(cpath + (key,))))
        if not found:
            if nulls:
                self.origin[dest] = nulls[0]
                return None
            return NOTHING
        value, spelt = found[0]
        for other, other_spelt in found[1:]:
            if other != value:
                self.error(dest, other_spelt,
                           f"set twice with different values (also as '{spelt}')",
                           f"the value of '{spelt}' ({value!r}) or only one of them",
                           _found(other))
        self.origin[dest] = spelt
        return value

    def items(self, raw: Any, path: str, cpath: tuple, what: str) -> list:
        if raw is None:
            return []
        if isinstance(raw, tuple):
            return list(raw)
        if not isinstance(raw, list):
            self.error(cpath, path, f"{what} must be a list", "a list", _found(raw))
            return []
        return raw


def _normalise_schedule(r: _Reader, raw: Any, path: str, cpath: tuple) -> dict:
    s = r.mapping(raw, SCHEDULE_KEYS, path, cpath, "a schedule", read_only=SCHEDULE_READ_ONLY)
    return _drop_nulls(Schedule, s)


def _normalise_connection(r: _Reader, raw: Any, path: str = "", cpath: tuple = ()) -> dict:
    c = r.mapping(raw, CONNECTION_KEYS, path, cpath, "a data connection",
                  read_only=CONNECTION_READ_ONLY, secrets=SECRET_KEYS)

    # payload: `payload_type` + flat keys (seed guide) or a `payload:` block (either spelling)
    block = c.pop("payload", None)
    block_path = r.where(cpath + ("payload",))
    if isinstance(block, str):
        p: dict = {"type": block}
        r.origin[cpath + ("payload", "type")] = block_path
    elif block is None:
        p = {}
    else:
        p = r.mapping(block, PAYLOAD_KEYS, block_path, cpath + ("payload",), "the payload",
                      secrets=SECRET_KEYS)
    ptype = r.take(cpath + ("payload", "type"), (c, cpath, "payload_type"),
                   (p, cpath + ("payload",), "type"))
    where_type = r.where(cpath + ("payload", "type"))
    kind: str | None = None
    if ptype is NOTHING or ptype is None:
        r.error(cpath + ("payload",),
                "payload_type" if not p and block is None else _join(block_path, "type"),
                "the payload type is required", "CSV, JSON or HYDROCRON", NOTHING)
    elif not isinstance(ptype, str) or ptype.strip().upper() not in PAYLOAD_MODELS:
        hint = _suggest(str(ptype).upper(), PAYLOAD_MODELS) if isinstance(ptype, str) else None
        r.error(cpath + ("payload",), where_type,
                "unknown payload type" + (f" (did you mean '{hint}'?)" if hint else ""),
                "CSV, JSON or HYDROCRON", _found(ptype))
    else:
        kind = ptype.strip().upper()

    for key in _TIMESTAMP_KEYS:
        value = r.take(cpath + (key,), (c, cpath, key), (p, cpath + ("payload",), key))
        if value is not NOTHING:
            c[key] = value
    window = p.pop("data_ingestion_window", None)
    if window:
        r.error(cpath + ("payload", "data_ingestion_window"),
                r.where(cpath + ("payload", "data_ingestion_window")),
                "HydroServer's data ingestion window is not used by the Airflow provider: a "
                "scheduled DAG's data interval is the window; put {start}/{end} placeholders "
                "of type window_start/window_end in source_url",
                "no dataIngestionWindow", _found(window))

    payload: dict = {}
    for field, kinds in PAYLOAD_FIELDS.items():
        value = r.take(cpath + ("payload", field), (c, cpath, field),
                       (p, cpath + ("payload",), field))
        if value is NOTHING:
            continue
        if kind is not None and kind not in kinds:
            r.error(cpath + ("payload", field), r.where(cpath + ("payload", field)),
                    f"this setting applies to {' and '.join(kinds)} payloads, not {kind}",
                    f"no {field} for a {kind} payload", _found(value))
            continue
        payload[field] = value
    if kind is not None:
        # the payload models turn null delimiter/data_start_row/jmespath into their defaults
        c["payload"] = {"type": kind, **_drop_nulls(PAYLOAD_MODELS[kind], payload,
                                                     _PAYLOAD_NULLS)}
        r.origin.setdefault(cpath + ("payload",), block_path)

    # placeholder variables (`variable_type` or `type`)
    pv_path = r.where(cpath + ("placeholder_variables",))
    variables = []
    for i, item in enumerate(r.items(c.pop("placeholder_variables", None), pv_path,
                                     cpath + ("placeholder_variables",),
                                     "placeholder_variables")):
        variables.append(_drop_nulls(PlaceholderVariable, r.mapping(
            item, PLACEHOLDER_KEYS, _join(pv_path, i), cpath + ("placeholder_variables", i),
            "a placeholder variable")))
    c["placeholder_variables"] = variables

    # source auth: a header name plus a reference to an Airflow connection or Variable
    flat_header = c.pop("auth_header_name", None)
    block = c.pop("auth", None)
    if block is not None:
        a = r.mapping(block, AUTH_KEYS, r.where(cpath + ("auth",)), cpath + ("auth",),
                      "the auth block", secrets=_AUTH_SECRET_KEYS)
        if flat_header not in (None, ""):
            if a.get("header_name") not in (None, flat_header):
                r.error(cpath + ("auth", "header_name"), r.where(cpath + ("auth_header_name",)),
                        "the header name is set twice with different values",
                        f"the same name as auth.header_name ({a['header_name']!r})",
                        _found(flat_header))
            a.setdefault("header_name", flat_header)
            r.origin.setdefault(cpath + ("auth", "header_name"),
                                r.where(cpath + ("auth_header_name",)))
        c["auth"] = _drop_nulls(SourceAuth, a)
    elif flat_header not in (None, "") and cpath + ("auth",) not in r.reported:
        r.error(cpath + ("auth",), r.where(cpath + ("auth_header_name",)),
                "the header's value is not referenced; " + _SECRET_MESSAGE,
                f"auth: {{header_name: {flat_header}, conn_id: <Airflow connection>}} or "
                f"auth: {{header_name: {flat_header}, variable: <Airflow Variable>}}",
                Shown("a header name without a value reference"))

    # workspace: `workspace_id`, or `workspace` as an id or as HydroServer's {id, name, ...}
    workspace = c.pop("workspace", None)
    if isinstance(workspace, dict):
        workspace = workspace.get("id")
    if workspace is not None:
        if c.get("workspace_id") not in (None, workspace):
            r.error(cpath + ("workspace_id",), r.where(cpath + ("workspace",)),
                    "the workspace is set twice with different values",
                    f"the same id as workspace_id ({c['workspace_id']!r})", _found(workspace))
        c.setdefault("workspace_id", workspace)
        r.origin.setdefault(cpath + ("workspace_id",), r.where(cpath + ("workspace",)))
    if c.get("workspace_id") is not None and not isinstance(c["workspace_id"], str):
        c["workspace_id"] = str(c["workspace_id"])

    notification = c.pop("notification", None)
    if notification is not None:
        n_path = r.where(cpath + ("notification",))
        n = r.mapping(notification, NOTIFICATION_KEYS, n_path, cpath + ("notification",),
                      "the notification")
        if n.get("schedule") is not None:
            n["schedule"] = _normalise_schedule(r, n["schedule"],
                                                r.where(cpath + ("notification", "schedule")),
                                                cpath + ("notification", "schedule"))
        if n.get("recipient_emails") is None:
            n.pop("recipient_emails", None)
        c["notification"] = n
    return _drop_nulls(DataConnection, c)


def _normalise_task(r: _Reader, raw: Any) -> tuple[dict, Any, Any]:
    """The canonical task dict (without data_connection and airflow), the reference, airflow."""
    t = r.mapping(raw, TASK_KEYS, "", (), "a task", read_only=TASK_READ_ONLY)
    reference = r.take(("data_connection",), (t, (), "data_connection"),
                       (t, (), "data_connection_id"))

    block = t.pop("schedule", None)
    if block is None:
        schedule: dict = {}
        r.origin[("schedule",)] = ""  # flat keys: name them without a "schedule." prefix
    else:
        schedule = _normalise_schedule(r, block, r.where(("schedule",)), ("schedule",))
    for key in FLAT_SCHEDULE_KEYS:
        if key in t:
            value = t.pop(key)
            spelt = r.where((key,))
            if value is None:
                continue  # null: not set
            if key in schedule:
                r.error(("schedule", key), spelt,
                        f"set both at task level and in schedule ('{r.where(('schedule', key))}')",
                        "the setting in one place", _found(value))
            else:
                schedule[key] = value
                r.origin[("schedule", key)] = spelt
    t["schedule"] = schedule

    m_path = r.where(("mappings",))
    mappings = []
    for i, item in enumerate(r.items(t.pop("mappings", None), m_path, ("mappings",),
                                     "mappings")):
        m = r.mapping(item, MAPPING_KEYS, _join(m_path, i), ("mappings", i), "a mapping",
                      read_only=MAPPING_READ_ONLY)
        target = m.pop("target_datastream", None)
        if target is not None:  # HydroServer's detail answer: {targetDatastream: {id, ...}}
            target_id = target.get("id") if isinstance(target, dict) else target
            spelt = r.where(("mappings", i, "target_datastream"))
            if m.get("target_datastream_id") not in (None, target_id):
                r.error(("mappings", i, "target_datastream_id"), spelt,
                        "the target datastream is set twice with different values",
                        f"the same id as target_datastream_id ({m['target_datastream_id']!r})",
                        _found(target_id))
            m.setdefault("target_datastream_id", target_id)
            r.origin.setdefault(("mappings", i, "target_datastream_id"), spelt)
        mappings.append(_drop_nulls(Mapping, m))
    t["mappings"] = mappings

    variables = t.pop("task_variables", None)
    if variables is not None:
        if isinstance(variables, dict):
            for key, value in variables.items():
                if not isinstance(value, str) and value is not None:
                    hint = (" (write it in quotes so that YAML keeps it as text, e.g. "
                            f"{key}: \"{value}\")" if isinstance(value, (int, float)) else "")
                    r.error(("task_variables", key), _join(r.where(("task_variables",)), key),
                            "task variable values are text" + hint, "a text value",
                            _found(value))
            # reported above; as text, they do not also count as missing per_task values
            variables = {k: v if isinstance(v, str) else str(v)
                         for k, v in variables.items() if v is not None}
        t["task_variables"] = variables
    airflow = t.pop("airflow", None)
    return _drop_nulls(Task, t), reference, airflow


# --------------------------------------------------------------------------------------------
# pydantic errors -> DefinitionError
# --------------------------------------------------------------------------------------------

_TYPE_EXPECTED = {
    "string_type": "text", "string_sub_type": "text",
    "int_type": "a whole number", "int_parsing": "a whole number",
    "int_from_float": "a whole number", "float_type": "a number", "float_parsing": "a number",
    "bool_type": "true or false", "bool_parsing": "true or false",
    "list_type": "a list", "tuple_type": "a list", "dict_type": "a mapping (key: value)",
    "model_type": "a mapping (key: value)", "model_attributes_type": "a mapping (key: value)",
    "datetime_type": "a date-time such as 2025-01-01T00:00:00Z",
    "datetime_parsing": "a date-time such as 2025-01-01T00:00:00Z",
    "datetime_from_date_parsing": "a date-time such as 2025-01-01T00:00:00Z",
    "timezone_aware": "a date-time with a time zone",
}
_FIELD_HINTS = {
    "name": "a name",
    "source_url": "the URL to fetch, e.g. https://example.com/data.csv",
    "source_identifier": "the column (CSV) or field (JSON) holding the values",
    "target_datastream_id": "the id of the HydroServer datastream to load",
    "mappings": "a list of {source_identifier, target_datastream_id}",
    "variable_type": "window_start, window_end, run_time, latest_observation_timestamp or per_task",
    "header_name": "the HTTP header name, e.g. X-Api-Key",
    "jmespath": "a JMESPath expression such as 'data[*]'",
    "data_connection": "the name or id of a data connection",
}


def _clean_loc(loc: tuple) -> tuple:
    out: list = []
    for part in loc:
        if out and out[-1] == "payload" and part in PAYLOAD_MODELS:
            continue  # the discriminated union's tag
        if isinstance(part, str) and part.startswith("function-"):
            continue
        out.append(part)
    return tuple(out)


def _convert(exc: ValidationError, r: _Reader, base: tuple = ()) -> None:
    """Append a DefinitionError to ``r.errors`` for every error of ``exc``."""
    for e in exc.errors(include_url=False):
        loc = base + _clean_loc(tuple(e["loc"]))
        if any(loc[:i] in r.reported for i in range(1, len(loc) + 1)):
            continue
        ctx = e.get("ctx") or {}
        kind = e["type"]
        if kind == "hydroserver_definition":
            anchor = loc  # the validated field, or the model for a model validator
            for field, message, expected, found in ctx["problems"]:
                path = anchor + tuple(field)
                r.errors.append(DefinitionError(message, location=r.location,
                                                field=r.where(path) or None,
                                                expected=expected, found=found))
            continue
        field = r.where(loc) or None
        last = next((p for p in reversed(loc) if isinstance(p, str)), "")
        if kind == "missing":
            message, expected, found = "is required", _FIELD_HINTS.get(last, "a value"), NOTHING
        elif kind == "extra_forbidden":
            message, expected, found = "unknown key", None, NOTHING
        elif kind == "literal_error":
            message, expected, found = "not an accepted value", ctx.get("expected"), \
                _found(e.get("input"))
        elif kind == "union_tag_invalid":
            message, expected, found = "unknown payload type", "CSV, JSON or HYDROCRON", \
                _found(ctx.get("tag"))
        elif kind in _TYPE_EXPECTED:
            value = e.get("input")
            message = "wrong type"
            if kind.startswith("string") and isinstance(value, (int, float)):
                message += " (write it in quotes so that YAML keeps it as text)"
            expected, found = _TYPE_EXPECTED[kind], _found(value)
        elif kind == "too_short":
            message, expected, found = "is empty", _FIELD_HINTS.get(last, "at least one item"), \
                _found(e.get("input"))
        else:
            message, expected, found = e["msg"], None, NOTHING
        r.errors.append(DefinitionError(message, location=r.location, field=field,
                                        expected=expected, found=found))


# --------------------------------------------------------------------------------------------
# Building models from dicts in either vocabulary
# --------------------------------------------------------------------------------------------


def _name_of(raw: Any, fallback: str) -> str:
    name = raw.get("name") if isinstance(raw, dict) else None
    return name if isinstance(name, str) and name.strip() else fallback


def connection_location(raw: Any, source: str | None = None, index: int | None = None) -> str:
    name = _name_of(raw, f"#{index + 1}" if index is not None else "(unnamed)")
    what = f"data connection '{name}'" if not name.startswith("#") else f"data connection {name}"
    return f"{source}: {what}" if source else what


def task_location(raw: Any, source: str | None = None, index: int | None = None) -> str:
    name = _name_of(raw, f"#{index + 1}" if index is not None else "(unnamed)")
    what = f"task '{name}'" if not name.startswith("#") else f"task {name}"
    return f"{source}: {what}" if source else what


def build_data_connection(raw: Any, location: str) -> tuple[DataConnection | None,
                                                            list[DefinitionError]]:
    """Normalise and validate one data connection; never raises for definition problems."""
    r = _Reader(location)
    canonical = _normalise_connection(r, raw)
    try:
        connection = DataConnection.model_validate(canonical, context=NORMALISED_CONTEXT)
    except ValidationError as exc:
        _convert(exc, r)
        return None, r.errors
    return (None, r.errors) if r.errors else (connection, [])


class ConnectionLookup:
    """Data connections by name, then by HydroServer id.

    An entry is a ``DataConnection``, or a text saying why the name or id cannot be used (the
    connection has errors, two connections share the name, ...).
    """

    def __init__(self) -> None:
        self.by_name: dict[str, DataConnection | str] = {}
        self.by_id: dict[str, DataConnection | str] = {}

    def add(self, name: Any, connection: DataConnection | str, id: Any = None) -> None:
        if isinstance(name, str) and name:
            self.by_name[name] = connection
        if id is not None and str(id).strip():
            self.by_id[str(id).strip().lower()] = connection

    def get(self, reference: str) -> DataConnection | str | None:
        """The connection, why it is unusable, or None when nothing has this name or id."""
        if reference in self.by_name:
            return self.by_name[reference]
        return self.by_id.get(reference.strip().lower())


def build_task(raw: Any, location: str, connections: ConnectionLookup | None = None,
               defaults: dict | None = None) -> tuple[Task | None, list[DefinitionError]]:
    """Normalise and validate one task, resolving its data connection; never raises."""
    r = _Reader(location)
    canonical, reference, airflow = _normalise_task(r, raw)
    connection: DataConnection | None = None
    if isinstance(reference, DataConnection):
        connection = reference
    elif isinstance(reference, dict):  # an inline data connection (HydroServer's task detail)
        connection, errors = build_data_connection(
            reference, f"{location}, data connection '{_name_of(reference, '(inline)')}'")
        r.errors.extend(errors)
        if connection is None:
            r.reported.add(("data_connection",))
    elif isinstance(reference, str) and reference.strip():
        lookup = connections or ConnectionLookup()
        found = lookup.get(reference)
        spelt = r.where(("data_connection",))
        if found is None:
            names = list(lookup.by_name)
            hint = _suggest(reference, names)
            if len(names) > 10:
                names = [*names[:10], "..."]
            r.error(("data_connection",), spelt,
                    "no data connection with this name or id in this file"
                    + (f" (did you mean '{hint}'?)" if hint else ""),
                    f"'{hint}'" if hint else ("one of " + ", ".join(f"'{n}'" for n in names)
                                              if names else "a data connection defined in the "
                                                            "file's data_connections"),
                    reference)
        elif isinstance(found, str):
            r.error(("data_connection",), spelt, f"this data connection cannot be used: {found}",
                    "a valid data connection", reference)
        else:
            connection = found
    elif reference is NOTHING or reference is None:
        r.error(("data_connection",), "data_connection", "a task needs a data connection",
                "data_connection: <name or id of a data connection>", NOTHING)
    else:
        r.error(("data_connection",), r.where(("data_connection",)),
                "wrong type", "the name or id of a data connection, or a data connection",
                _found(reference))

    settings, errors = check_airflow_settings(airflow, location=location,
                                              field=r.where(("airflow",)) or "airflow")
    r.errors.extend(errors)
    canonical["airflow"] = {**(defaults or {}), **settings}

    if connection is not None:
        canonical["data_connection"] = connection
        try:
            task = Task.model_validate(canonical, context=NORMALISED_CONTEXT)
        except ValidationError as exc:
            _convert(exc, r)
            return None, r.errors
        return (None, r.errors) if r.errors else (task, [])
    # Without a connection, still check the task's own fields so all problems show at once.
    try:
        _TaskFields.model_validate(canonical, context=NORMALISED_CONTEXT)
    except ValidationError as exc:
        _convert(exc, r)
    return None, r.errors


class _TaskFields(Task):
    """Task without its data connection: checks the rest when the connection is unusable."""

    data_connection: DataConnection | None = None  # type: ignore[assignment]


def parse_data_connection(data: AbcMapping, *, location: str | None = None) -> DataConnection:
    """A ``DataConnection`` from a dict in either vocabulary; raises ``DefinitionErrors``."""
    connection, errors = build_data_connection(dict(data) if isinstance(data, AbcMapping)
                                               else data, location or connection_location(data))
    if errors:
        raise DefinitionErrors(errors)
    assert connection is not None
    return connection


def parse_task(data: AbcMapping, data_connections: Iterable[DataConnection] = (), *,
               location: str | None = None, defaults: AbcMapping | None = None) -> Task:
    """A ``Task`` from a dict in either vocabulary; raises ``DefinitionErrors``.

    ``data_connection`` (or ``dataConnectionId``) is looked up by name, then by id, among
    ``data_connections``; an inline data connection dict is accepted too. ``defaults`` are
    Airflow settings the task's ``airflow:`` block overrides.
    """
    lookup = ConnectionLookup()
    for connection in data_connections:
        lookup.add(connection.name, connection, connection.id)
    errors: list[DefinitionError] = []
    settings: dict = {}
    if defaults:
        settings, errors = check_airflow_settings(dict(defaults), field="defaults", defaults=True)
    task, task_errors = build_task(dict(data) if isinstance(data, AbcMapping) else data,
                                   location or task_location(data), lookup, settings)
    errors += task_errors
    if errors:
        raise DefinitionErrors(errors)
    assert task is not None
    return task
