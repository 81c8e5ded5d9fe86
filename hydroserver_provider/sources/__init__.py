"""Where a run's rows come from: every source behind the same small interface.

A :class:`Source` reads one run's data. Given a :class:`SourceRun` -- the data connection, its
mappings, the run's window and the HydroServer metadata the run already has -- it returns a
:class:`SourceRead`: the parsed series per source identifier, what it asked for (the URL with
secrets redacted, the placeholder values), and how its rows are to be loaded (the window the run
owns, or incrementally with a look-back). :func:`source_for` picks the source of a data
connection: a URL fetched and parsed as CSV or JSON (:mod:`.url`), or NASA's Hydrocron
(:mod:`.hydrocron.source`). The pipeline knows only this interface.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from hydroserver_provider.definitions import DataConnection
    from hydroserver_provider.definitions import Mapping as MappingDef
    from hydroserver_provider.hydroserver.load import DatastreamOutcome
    from hydroserver_provider.retries import RetryPolicy
    from hydroserver_provider.sources.parse import ParsedSeries, ParseResult
    from hydroserver_provider.sources.placeholders import RunWindow

__all__ = ["DEFAULT_MAX_BYTES", "Source", "SourceOptions", "SourceRead", "SourceRun", "source_for"]

DEFAULT_MAX_BYTES = 2 * 1024**3
"""Largest source body read (2 GiB): a runaway or hostile source fails instead of eating memory."""


@dataclass(frozen=True)
class SourceOptions:
    """How to reach a source: auth headers (values read from Airflow), timeouts, retries."""

    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float | tuple[float, float] = (10.0, 300.0)
    retry: RetryPolicy | None = None  # None: the default policy
    max_bytes: int = DEFAULT_MAX_BYTES

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values never to show: the auth header values."""
        return tuple(v for v in self.headers.values() if v)


@dataclass(frozen=True)
class SourceRun:
    """What a source is told about the run it reads for."""

    connection: DataConnection
    mappings: Sequence[MappingDef]
    window: RunWindow
    task_variables: Mapping[str, str]
    latest_observation: Callable[[], datetime]  # costs nothing: the metadata is already read
    options: SourceOptions
    hydroserver: Any  # the run's HydroServer client, for sources that check units
    metadata: Mapping[str, Mapping[str, Any]]  # datastream id -> HydroServer's datastream


class SourceRead(Protocol):
    """What a source read for one run."""

    parsed: ParseResult
    url: str  # what was asked for, secrets redacted
    values: dict[str, str]  # the placeholder values shown in the summary (secrets redacted)
    windowed: bool
    load_window: tuple[datetime, datetime] | None  # the window the run owns, if windowed
    lookback: timedelta | None  # incremental runs: how far before the stored end to re-check
    secrets: tuple[str, ...]  # values the source was given that must never be shown

    def prepare(self, outcome: DatastreamOutcome, series: ParsedSeries) -> ParsedSeries | None:
        """The series to load into ``outcome``'s datastream, or None after recording in
        ``outcome`` why it must not be loaded."""
        ...

    def describe(self) -> str:
        """A prefix for the run's message ("" for none)."""
        ...

    def summary(self) -> dict[str, Any]:
        """Extra blocks for the run summary (JSON-safe, no secret)."""
        ...


class Source(Protocol):
    def read(self, run: SourceRun) -> SourceRead: ...


# payload type -> "module:class" of its source; others are URLs fetched and parsed
_SOURCES = {"HYDROCRON": "hydroserver_provider.sources.hydrocron.source:HydrocronSource"}


def source_for(connection: DataConnection) -> Source:
    """The default source of a data connection (a Hydrocron one reads the public endpoint
    anonymously; give the pipeline a configured :class:`HydrocronSource` instead)."""
    target = _SOURCES.get(connection.payload.type, "hydroserver_provider.sources.url:UrlSource")
    module, name = target.split(":")
    source_class = getattr(importlib.import_module(module), name)
    source: Source = source_class()
    return source
