"""A source at a URL: placeholders filled, the body fetched as a stream, parsed as CSV or JSON."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from hydroserver_provider.retries import RetryPolicy
from hydroserver_provider.sources import SourceRun
from hydroserver_provider.sources.fetch import SourceRequest, open_source
from hydroserver_provider.sources.parse import ParsedSeries, ParseResult, parse_payload
from hydroserver_provider.sources.placeholders import resolve_url

if TYPE_CHECKING:
    from hydroserver_provider.hydroserver.load import DatastreamOutcome

__all__ = ["UrlRead", "UrlSource"]

log = logging.getLogger(__name__)


@dataclass
class UrlRead:
    """What :class:`UrlSource` read for one run (a :class:`~.SourceRead`)."""

    parsed: ParseResult
    url: str
    values: dict[str, str] = field(default_factory=dict)
    windowed: bool = False
    load_window: tuple[datetime, datetime] | None = None
    lookback: timedelta | None = None
    secrets: tuple[str, ...] = ()

    def prepare(self, outcome: DatastreamOutcome, series: ParsedSeries) -> ParsedSeries | None:
        return series

    def describe(self) -> str:
        return ""

    def summary(self) -> dict[str, Any]:
        return {}


class UrlSource:
    """CSV and JSON payloads: the connection's ``source_url`` with its placeholders filled.

    The run owns its window when the URL takes one (``window_start``/``window_end``) or the run
    was given one; otherwise it loads incrementally, re-checking the connection's ``lookback``.
    """

    def read(self, run: SourceRun) -> UrlRead:
        connection, window, options = run.connection, run.window, run.options
        resolved = resolve_url(connection, window, task_variables=run.task_variables,
                               latest_observation=run.latest_observation,
                               secrets=options.secrets)
        log.info("Fetching %s", resolved.redacted_url)
        request = SourceRequest(
            url=resolved.url, headers=tuple(options.headers.items()),
            redacted_url=resolved.redacted_url, timeout=options.timeout,
            retry=options.retry or RetryPolicy(), max_bytes=options.max_bytes)
        identifiers = list(dict.fromkeys(m.source_identifier for m in run.mappings))
        with open_source(request) as stream:
            parsed = parse_payload(stream, connection, identifiers)
        windowed = window.bounded and (connection.uses_window or window.explicit)
        return UrlRead(parsed=parsed, url=resolved.redacted_url, values=resolved.values,
                       windowed=windowed,
                       load_window=(window.start, window.end) if windowed else None,  # type: ignore[arg-type]
                       lookback=connection.lookback, secrets=resolved.secrets)
