"""The small blocks of a definition: placeholder variables, source auth, schedule, notification
and mapping."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AliasChoices, AliasPath, Field, field_validator, model_validator

from hydroserver_provider.definitions.base import (
    ID_SCHEMA,
    NOTHING,
    DefinitionModel,
    Shown,
    as_text,
    check,
    invalid,
    not_blank,
)
from hydroserver_provider.definitions.checks import (
    IDENTIFIER,
    check_timestamp_format,
    crontab_problem,
    timezone_problem,
)

__all__ = ["IntervalPeriod", "Mapping", "Notification", "PlaceholderVariable", "Schedule",
           "SourceAuth", "VariableType"]

VariableType = Literal[
    "window_start", "window_end", "run_time", "latest_observation_timestamp", "per_task"
]
IntervalPeriod = Literal["minutes", "hours", "days"]

_HEADER_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+\Z")
_UUID = re.compile(r"[0-9a-fA-F]{8}(-?[0-9a-fA-F]{4}){3}-?[0-9a-fA-F]{12}\Z")
_ZONE_EXPECTED = "an IANA time zone such as 'America/Denver'"


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


class PlaceholderVariable(DefinitionModel):
    """One ``{name}`` in ``source_url`` and where its value comes from."""

    what = "a placeholder variable"
    name: str
    variable_type: VariableType = Field(
        validation_alias=AliasChoices("variable_type", "variableType", "type"),
        description="window_start, window_end, run_time, latest_observation_timestamp or "
                    "per_task")
    timestamp_format: str | None = None  # strftime for date variables; None: ISO 8601 UTC

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not IDENTIFIER.match(value):
            raise invalid("a placeholder name is letters, digits and '_' (not starting with a "
                          "digit)", "a name such as 'station_id'", value)
        return value

    _type = field_validator("variable_type", mode="before")(_lower)

    @field_validator("timestamp_format")
    @classmethod
    def _format(cls, value: str | None) -> str | None:
        return check_timestamp_format(value, for_url=True)


class SourceAuth(DefinitionModel):
    """An HTTP header sent to the source; the value lives in Airflow, never in the file.

    Exactly one of ``conn_id`` (the connection's password is the value) or ``variable`` (an Airflow
    Variable holding the value) is set.
    """

    what = "the auth block"
    secrets: ClassVar[frozenset[str]] = frozenset({
        "value", "header_value", "headerValue", "password", "token", "api_key", "apiKey",
        "apikey", "secret"})
    header_name: str = Field(description="the HTTP header name, e.g. X-Api-Key")
    conn_id: str | None = Field(default=None, validation_alias=AliasChoices(
        "conn_id", "connId", "connection_id", "connectionId"))
    variable: str | None = None

    @field_validator("header_name")
    @classmethod
    def _header(cls, value: str) -> str:
        value = value.strip()
        if not _HEADER_TOKEN.match(value):
            raise invalid("not a valid HTTP header name", "a header name such as 'X-Api-Key'",
                          value)
        return value

    @model_validator(mode="after")
    def _one_reference(self) -> SourceAuth:
        given = [n for n in ("conn_id", "variable") if getattr(self, n)]
        if len(given) != 1:
            raise invalid(
                "the header value must come from exactly one Airflow connection or Variable",
                "exactly one of conn_id (an Airflow connection whose password is the value) or "
                "variable (an Airflow Variable holding the value)",
                Shown(" and ".join(given) if given else "neither"),
                at=(given[-1] if given else "conn_id",))
        return self


class Schedule(DefinitionModel):
    """When a task (or a notification digest) runs; neither interval nor crontab: manual only.

    ``enabled`` is independent of the schedule: a disabled task keeps its schedule but does not
    run on it; it still runs at once when triggered (its DAG has no schedule, and is not paused).
    """

    what = "a schedule"
    read_only = frozenset({"nextRunAt", "next_run_at", "paused"})
    interval: int | None = None
    interval_period: IntervalPeriod | None = None
    crontab: str | None = Field(
        default=None, description="5 fields: minute hour day-of-month month day-of-week")
    timezone: str | None = Field(
        default=None, description="IANA zone of the crontab (UTC when unset)")
    start_time: datetime | None = None  # naive values are read as UTC
    enabled: bool = True

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise invalid("the interval must be positive", "a whole number >= 1", value)
        return value

    @field_validator("interval_period", mode="before")
    @classmethod
    def _period(cls, value: Any) -> Any:
        value = _lower(value)
        return value + "s" if value in ("minute", "hour", "day") else value

    @field_validator("crontab", mode="before")
    @classmethod
    def _crontab_blank(cls, value: Any) -> Any:
        return (" ".join(value.split()) or None) if isinstance(value, str) else value

    @field_validator("crontab")
    @classmethod
    def _crontab(cls, value: str | None) -> str | None:
        problem = crontab_problem(value) if value is not None else None
        if problem:
            raise invalid(f"the crontab {problem}", "5 cron fields, e.g. '0 * * * *'", value)
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        problem = timezone_problem(value) if value is not None else None
        if problem:
            raise invalid(f"the schedule's time zone {problem}", _ZONE_EXPECTED, value)
        return value

    @field_validator("start_time")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and (value.tzinfo is None or value.utcoffset() == timedelta(0)):
            value = value.replace(tzinfo=UTC)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Schedule:
        problems: list[tuple] = []
        if self.interval is not None and self.interval_period is None:
            problems.append((("interval_period",), "an interval needs its period",
                             "minutes, hours or days", NOTHING))
        if self.interval_period is not None and self.interval is None:
            problems.append((("interval",), "interval_period is set but interval is not",
                             "a whole number >= 1", NOTHING))
        if self.interval is not None and self.crontab is not None:
            problems.append((("crontab",), "a schedule is an interval or a crontab, not both",
                             "either interval + interval_period or crontab", self.crontab))
        check(problems)
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


class Notification(DefinitionModel):
    """Email digests of a data connection's runs."""

    what = "the notification"
    recipient_emails: tuple[str, ...] = ()
    schedule: Schedule | None = None

    @field_validator("recipient_emails")
    @classmethod
    def _emails(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        value = tuple(v.strip() for v in value)
        problems = [((i,), "not an email address", "an address such as ops@example.com", v)
                    for i, v in enumerate(value) if not _EMAIL.match(v)]
        check(problems)
        return value


class Mapping(DefinitionModel):
    """Which source field goes to which datastream."""

    what = "a mapping"
    read_only = frozenset({"id"})
    source_identifier: Annotated[str, ID_SCHEMA] = Field(
        description="the column (CSV) or field (JSON) holding the values")
    # HydroServer's answers nest the datastream: {targetDatastream: {id, name, ...}}
    target_datastream_id: str = Field(
        validation_alias=AliasChoices(
            "target_datastream_id", "targetDatastreamId", AliasPath("target_datastream", "id"),
            AliasPath("targetDatastream", "id"), "target_datastream", "targetDatastream"),
        description="the id of the HydroServer datastream to load")
    feature_id: Annotated[str | None, ID_SCHEMA] = None  # HYDROCRON fan-out: its feature

    _index = field_validator("source_identifier", mode="before")(as_text)
    _source = field_validator("source_identifier")(not_blank(
        "the source identifier is empty", "the column (CSV) or field (JSON) name"))

    @field_validator("target_datastream_id")
    @classmethod
    def _target(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise invalid("the target datastream id is empty",
                          "the id of a HydroServer datastream", value)
        return value.lower() if _UUID.match(value) else value

    @field_validator("feature_id", mode="before")
    @classmethod
    def _feature_text(cls, value: Any) -> Any:
        value = as_text(value)
        return (value.strip() or None) if isinstance(value, str) else value
