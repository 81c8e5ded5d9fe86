"""The small blocks of a definition: placeholder variables, source auth, schedule, notification
and mapping."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from pydantic import ValidationInfo, field_validator, model_validator

from .checks import IDENTIFIER, crontab_problem, timezone_problem
from .keys import (
    AUTH_KEYS,
    MAPPING_KEYS,
    MAPPING_READ_ONLY,
    NOTIFICATION_KEYS,
    PLACEHOLDER_KEYS,
    SCHEDULE_KEYS,
    SCHEDULE_READ_ONLY,
    respell,
)
from .base import (
    DefinitionModel,
    check_timestamp_format,
    invalid,
    invalid_all,
    is_canonical,
)
from .error_values import NOTHING, Shown

__all__ = [
    "IntervalPeriod",
    "Mapping",
    "Notification",
    "PlaceholderVariable",
    "Schedule",
    "SourceAuth",
    "VariableType",
]

VariableType = Literal[
    "window_start", "window_end", "run_time", "latest_observation_timestamp", "per_task"
]
IntervalPeriod = Literal["minutes", "hours", "days"]

_HEADER_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+\Z")
_UUID = re.compile(r"[0-9a-fA-F]{8}(-?[0-9a-fA-F]{4}){3}-?[0-9a-fA-F]{12}\Z")


class PlaceholderVariable(DefinitionModel):
    """One ``{name}`` in ``source_url`` and where its value comes from."""

    name: str
    variable_type: VariableType
    timestamp_format: str | None = None  # strftime for date variables; None: ISO 8601 UTC

    @model_validator(mode="before")
    @classmethod
    def _vocabulary(cls, data: Any, info: ValidationInfo) -> Any:
        return data if is_canonical(info) else respell(data, PLACEHOLDER_KEYS)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not IDENTIFIER.match(value):
            raise invalid(
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
        return check_timestamp_format(value, for_url=True)


class SourceAuth(DefinitionModel):
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
        return data if is_canonical(info) else respell(data, AUTH_KEYS)

    @field_validator("header_name")
    @classmethod
    def _header(cls, value: str) -> str:
        value = value.strip()
        if not _HEADER_TOKEN.match(value):
            raise invalid("not a valid HTTP header name",
                          expected="a header name such as 'X-Api-Key'", found=value)
        return value

    @model_validator(mode="after")
    def _one_reference(self) -> SourceAuth:
        given = [n for n in ("conn_id", "variable") if getattr(self, n)]
        if len(given) != 1:
            raise invalid(
                "the header value must come from exactly one Airflow connection or Variable",
                expected="exactly one of conn_id (an Airflow connection whose password is the "
                        "value) or variable (an Airflow Variable holding the value)",
                found=Shown(" and ".join(given) if given else "neither"),
                field=("conn_id",) if not given else (given[-1],),
            )
        return self


class Schedule(DefinitionModel):
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
        if is_canonical(info):
            return data
        return respell(data, SCHEDULE_KEYS, SCHEDULE_READ_ONLY)

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise invalid("the interval must be positive", expected="a whole number >= 1",
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
                raise invalid(f"the crontab {problem}",
                              expected="5 cron fields, e.g. '0 * * * *'", found=value)
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            problem = timezone_problem(value)
            if problem:
                raise invalid(f"the schedule's time zone {problem}",
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
            raise invalid_all(problems, relative_to="model")
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
    recipient_emails: tuple[str, ...] = ()
    schedule: Schedule | None = None

    @model_validator(mode="before")
    @classmethod
    def _vocabulary(cls, data: Any, info: ValidationInfo) -> Any:
        return data if is_canonical(info) else respell(data, NOTIFICATION_KEYS)

    @field_validator("recipient_emails")
    @classmethod
    def _emails(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        value = tuple(v.strip() for v in value)
        problems = [((i,), "not an email address", "an address such as ops@example.com", v)
                    for i, v in enumerate(value) if not _EMAIL.match(v)]
        if problems:
            raise invalid_all(problems)
        return value


class Mapping(DefinitionModel):
    source_identifier: str
    target_datastream_id: str
    feature_id: str | None = None  # HYDROCRON fan-out: the feature whose field this is

    @model_validator(mode="before")
    @classmethod
    def _vocabulary(cls, data: Any, info: ValidationInfo) -> Any:
        if is_canonical(info) or not isinstance(data, dict):
            return data
        data = respell(data, MAPPING_KEYS, MAPPING_READ_ONLY)
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
            raise invalid("the source identifier is empty",
                          expected="the column (CSV) or field (JSON) name", found=value)
        return value

    @field_validator("target_datastream_id")
    @classmethod
    def _target(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise invalid("the target datastream id is empty",
                          expected="the id of a HydroServer datastream", found=value)
        return value.lower() if _UUID.match(value) else value

    @field_validator("feature_id", mode="before")
    @classmethod
    def _feature_text(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value.strip() or None if isinstance(value, str) else value
