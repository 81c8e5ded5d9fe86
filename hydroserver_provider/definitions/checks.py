"""Cheap, cached checks of single definition values, shared with the rest of the core.

Each ``*_problem`` function says what is wrong with a value (or returns None), so that the models,
the definition loader and the CLI word the same mistake the same way; ``safe_url`` masks a source
URL's secrets for an error message. JMESPath and croniter are imported only when a value needs
them.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from hydroserver_provider.definitions.base import invalid, suggest

__all__ = ["HYDROCRON_ID_DIGITS", "HYDROCRON_ID_EXAMPLES", "IDENTIFIER", "PLACEHOLDER",
           "check_timestamp_format", "compile_jmespath", "crontab_problem",
           "hydrocron_field_problem", "hydrocron_id_problem", "jmespath_problem",
           "normalise_offset", "placeholder_names", "safe_url", "strftime_problem",
           "timezone_problem"]

# ``{name}`` in a source URL (same rule as placeholders.py: an identifier between braces).
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_OFFSET = re.compile(r"([+-])(\d{2}):?(\d{2})\Z")

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
    import jmespath

    return jmespath.compile(expression)


@functools.lru_cache(maxsize=4096)
def jmespath_problem(expression: str) -> str | None:
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


@functools.lru_cache(maxsize=4096)
def crontab_problem(expression: str) -> str | None:
    """What is wrong with a 5-field cron expression, or None (croniter, Airflow's, decides)."""
    preset = _CRON_PRESETS.get(expression.strip().lower())
    if preset:
        return f"presets are not accepted; write '{preset}'"
    fields = expression.split()
    if len(fields) != 5:
        return (f"has {len(fields)} field{'s' if len(fields) != 1 else ''}; a crontab has 5: "
                "minute hour day-of-month month day-of-week")
    from croniter import croniter

    return None if croniter.is_valid(expression) else "is not a valid cron expression"


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
    import zoneinfo

    return tuple(sorted(zoneinfo.available_timezones()))


@functools.lru_cache(maxsize=1024)
def timezone_problem(name: str) -> str | None:
    """What is wrong with an IANA zone name, or None (zoneinfo decides; results are cached)."""
    from zoneinfo import ZoneInfo

    try:
        ZoneInfo(name)
    except Exception:
        hint = suggest(name, _available_zones())
        return "is not a known IANA time zone" + (f" (did you mean '{hint}'?)" if hint else "")
    return None


def placeholder_names(url: str) -> list[str]:
    """The ``{name}`` placeholders of a URL, first occurrence order, without repeats."""
    return list(dict.fromkeys(PLACEHOLDER.findall(url)))


# query parameters and placeholders whose values are secrets, by their name
SECRET_PARAM = re.compile(r"key|token|secret|password|passwd|pwd|signature|sig|auth", re.I)


def safe_url(url: str) -> str:
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
        if eq and value and SECRET_PARAM.search(name) and not PLACEHOLDER.fullmatch(value):
            value = "***"
        params.append(name + eq + value)
    return head + qmark + "&".join(params) + fragment


HYDROCRON_ID_DIGITS = {"Reach": 11, "Node": 14, "PriorLake": 10}
HYDROCRON_ID_EXAMPLES = {"Reach": "11 digits such as '18180900091'",
                          "Node": "14 digits such as '45311101670065'",
                          "PriorLake": "10 digits such as '7230381002'"}
_HYDROCRON_FIELD = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
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
        return (f"not a Hydrocron {feature} id", HYDROCRON_ID_EXAMPLES[feature])
    return None


def check_timestamp_format(value: str | None, *, for_url: bool = False) -> str | None:
    """Normalise ``ISO8601`` (any case) to None and check a strftime format."""
    if value is None:
        return None
    if value.strip().replace("-", "").replace(" ", "").lower() in ("", "iso", "iso8601"):
        return None  # ISO 8601 (same spellings as timestamps.is_iso_format)
    problem = strftime_problem(value, needs_date=not for_url)
    if problem:
        raise invalid(f"the timestamp format {problem}",
                      "a strftime format, e.g. '%Y-%m-%dT%H:%M:%S'" if for_url else
                      "a strftime format with a date, e.g. '%Y-%m-%dT%H:%M:%S', or ISO8601",
                      value)
    return value
