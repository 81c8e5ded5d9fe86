"""Fill ``{name}`` placeholders of a source URL for one run.

Dates are formatted with the variable's ``timestamp_format`` in the connection's time zone (or as
ISO 8601 UTC) and URL-encoded, so ``+00:00`` arrives as ``%2B00:00`` instead of decoding to a
space. Values that look like secrets are redacted in the URL the logs and results show.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from urllib.parse import parse_qsl, quote, urlsplit

from hydroserver_provider.definitions import DataConnection, PlaceholderVariable
from hydroserver_provider.definitions.checks import PLACEHOLDER, SECRET_PARAM, placeholder_names
from hydroserver_provider.errors import DefinitionError
from hydroserver_provider.timestamps import zone_for

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
REDACTED = "***"


@dataclass(frozen=True)
class RunWindow:
    """The window of a run (both None for a manual run without one) and when the run started.

    ``explicit``: the window was given to this run (trigger form, ``trigger --start/--end``, a
    backfill, the operator's arguments) rather than being only its schedule's data interval.
    Such a run owns the window and reloads it, even when the source URL is incremental;
    ``reason`` says where the window came from, for the run summary.
    """

    start: datetime | None = None
    end: datetime | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    explicit: bool = False
    reason: str | None = None

    def __post_init__(self) -> None:
        if (self.start is None) != (self.end is None):
            raise ValueError("a run window needs both a start and an end, or neither")
        if self.start is not None and self.end is not None and self.start > self.end:
            raise ValueError(f"window start {self.start} is after its end {self.end}")

    @property
    def bounded(self) -> bool:
        return self.start is not None


@dataclass(frozen=True)
class ResolvedURL:
    url: str
    redacted_url: str
    values: dict[str, str]  # formatted, un-encoded values by placeholder name (secrets redacted)
    secrets: tuple[str, ...] = ()  # the secret values filled in, never to be shown


def secret_placeholder_names(source_url: str) -> list[str]:
    """Placeholders whose values are secrets: named like one (``api_key``, ``token``...), or
    filling a secret-looking query parameter (``?key={station}``) or the URL's password.

    Their values are redacted wherever the URL is shown, and Airflow is told to mask them.
    """
    parts = urlsplit(source_url.replace("{", "%7B").replace("}", "%7D"))
    filled = [value for key, value in parse_qsl(parts.query, keep_blank_values=True)
              if SECRET_PARAM.search(key)]
    if parts.password:
        filled.append(parts.password)
    secret = {name for text in filled for name in PLACEHOLDER.findall(
        text.replace("%7B", "{").replace("%7D", "}"))}
    return [name for name in placeholder_names(source_url)
            if SECRET_PARAM.search(name) or name in secret]


def connection_zone(connection: DataConnection) -> tzinfo:
    """The zone URL dates are written in: the one naive source timestamps are read in."""
    return zone_for(connection) or UTC


def format_moment(moment: datetime, variable: PlaceholderVariable, zone: tzinfo) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if variable.timestamp_format:
        return moment.astimezone(zone).strftime(variable.timestamp_format)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def resolve_url(
    connection: DataConnection,
    window: RunWindow,
    *,
    task_variables: Mapping[str, str] | None = None,
    latest_observation: Callable[[], datetime | None] | None = None,
    secrets: tuple[str, ...] = (),
) -> ResolvedURL:
    """The source URL of this run with every placeholder filled.

    ``latest_observation`` is called only when the URL needs it (it costs a HydroServer
    request); it returns the oldest ``phenomenonEndTime`` of the mapped datastreams, already
    falling back to the task's start time. A value that cannot be had fails here, before any
    request to the source, naming the placeholder.
    """
    source_url = connection.source_url
    # required for CSV and JSON payloads, the only ones with a URL to resolve
    assert source_url is not None, f"data connection '{connection.name}' has no source_url"
    task_variables = task_variables or {}
    variables = {v.name: v for v in connection.placeholder_variables}
    zone = connection_zone(connection)
    values: dict[str, str] = {}
    for name in placeholder_names(source_url):
        variable = variables.get(name)
        if variable is None:
            raise DefinitionError(
                "the URL has a placeholder with no placeholder variable",
                location=f"data connection '{connection.name}'", field="source_url",
                expected=f"a placeholder_variables entry named '{name}'",
                found=sorted(variables),
            )
        values[name] = _value(variable, window, task_variables, latest_observation, zone,
                              connection.name)
    secret_values = set(secrets) | {
        values[name] for name in secret_placeholder_names(source_url) if values[name]
    }
    url = PLACEHOLDER.sub(lambda m: quote(values[m.group(1)], safe="-_.~:"), source_url)
    return ResolvedURL(
        url=url,
        redacted_url=redact_url(url, secret_values),
        values={k: (REDACTED if v in secret_values else v) for k, v in values.items()},
        secrets=tuple(sorted(v for v in secret_values if v)),
    )


def _value(variable: PlaceholderVariable, window: RunWindow, task_variables: Mapping[str, str],
           latest_observation: Callable[[], datetime | None] | None, zone: tzinfo,
           connection_name: str) -> str:
    kind = variable.variable_type
    if kind == "per_task":
        if variable.name not in task_variables:
            raise DefinitionError(
                "a per_task placeholder has no value in the task's task_variables",
                location=f"data connection '{connection_name}'", field="task_variables",
                expected=f"a value for '{variable.name}'", found=sorted(task_variables),
            )
        return str(task_variables[variable.name])
    if kind in ("window_start", "window_end"):
        moment = window.start if kind == "window_start" else window.end
        if moment is None:
            raise DefinitionError(
                f"placeholder '{variable.name}' needs the run's data interval, and this run has "
                "none; trigger it with a window (start and end) or give the DAG a schedule",
                location=f"data connection '{connection_name}'", field="placeholder_variables",
            )
        return format_moment(moment, variable, zone)
    if kind == "run_time":  # the guide: "the time the task started running"
        return format_moment(window.started_at, variable, zone)
    if kind == "latest_observation_timestamp":
        moment = latest_observation() if latest_observation else None
        return format_moment(moment or EPOCH, variable, zone)
    raise DefinitionError("unknown placeholder variable type", field="variable_type",
                          expected="window_start, window_end, run_time, "
                                   "latest_observation_timestamp or per_task", found=kind)


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every known secret (as written or URL-encoded) replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(quote(secret, safe="-_.~:"), REDACTED).replace(secret, REDACTED)
    return text


def redact_url(url: str, secrets: set[str] | tuple[str, ...] = ()) -> str:
    """``url`` with credentials, secret-looking query values and known secrets replaced."""
    parts = urlsplit(url)
    shown = url
    if parts.password:
        shown = shown.replace(f":{parts.password}@", f":{REDACTED}@", 1)
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if value and SECRET_PARAM.search(key):
            shown = shown.replace(f"{quote(key, safe='')}={quote(value, safe='-_.~:')}",
                                  f"{quote(key, safe='')}={REDACTED}")
            shown = shown.replace(f"{key}={value}", f"{key}={REDACTED}")
    return redact_text(shown, secrets)
