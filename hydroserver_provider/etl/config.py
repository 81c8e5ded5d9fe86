"""Definitions of data connections and tasks, in hydroserverpy's vocabulary.

These models are the contract between a definition file (YAML/JSON, written by hand or exported
from HydroServer) and the ingestion core. Field names follow the seed guide (snake_case); the
camelCase spelling HydroServer's API exports is accepted as well.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

VariableType = Literal[
    "window_start", "window_end", "run_time", "latest_observation_timestamp", "per_task"
]
TimezoneType = Literal["utc", "offset", "iana"]
IntervalPeriod = Literal["minutes", "hours", "days"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class PlaceholderVariable(_Model):
    """One ``{name}`` in ``source_url`` and where its value comes from."""

    name: str
    variable_type: VariableType
    timestamp_format: str | None = None


class SourceAuth(_Model):
    """An HTTP header sent to the source; the value lives in Airflow, never in the file.

    Exactly one of ``conn_id`` (the connection's password is the value) or ``variable`` (an Airflow
    Variable holding the value) is set.
    """

    header_name: str
    conn_id: str | None = None
    variable: str | None = None


class CSVPayload(_Model):
    type: Literal["CSV"] = "CSV"
    header_row: int | None = 1  # 1-based; None: the file has no header, identifiers are indexes
    data_start_row: int = 2  # 1-based
    delimiter: str = ","


class JSONPayload(_Model):
    type: Literal["JSON"] = "JSON"
    jmespath: str


class HydrocronPayload(_Model):
    """NASA Hydrocron SWOT time series (details filled in by the Hydrocron support)."""

    type: Literal["HYDROCRON"] = "HYDROCRON"
    feature: Literal["Reach", "Node", "PriorLake"] = "Reach"
    collection_name: str | None = None
    fields: tuple[str, ...] = ()


Payload = Annotated[Union[CSVPayload, JSONPayload, HydrocronPayload], Field(discriminator="type")]


class Schedule(_Model):
    """When a task (or a notification digest) runs; neither interval nor crontab: manual only."""

    interval: int | None = None
    interval_period: IntervalPeriod | None = None
    crontab: str | None = None
    timezone: str | None = None  # crontab zone; UTC when unset
    start_time: datetime | None = None
    enabled: bool = True


class Notification(_Model):
    recipient_emails: tuple[str, ...] = ()
    schedule: Schedule | None = None


class DataConnection(_Model):
    """Where data comes from, its format, and how to read its timestamps."""

    name: str
    source_url: str
    payload: Payload
    timestamp_key: str = "timestamp"
    timestamp_format: str | None = None  # strftime; None or "ISO8601": detected ISO 8601
    timezone_type: TimezoneType | None = None
    timezone: str | None = None  # "-0700" for offset, "America/Denver" for iana
    placeholder_variables: tuple[PlaceholderVariable, ...] = ()
    auth: SourceAuth | None = None
    workspace_id: str | None = None
    description: str = ""
    notification: Notification | None = None


class Mapping(_Model):
    source_identifier: str
    target_datastream_id: str


class Task(_Model):
    """One data connection applied to a set of datastreams, on a schedule."""

    name: str
    data_connection: DataConnection
    mappings: tuple[Mapping, ...]
    task_variables: dict[str, str] = {}
    schedule: Schedule = Schedule()
    description: str = ""
    airflow: dict = {}  # Airflow settings (retries, pool, ...) after merging the file's defaults
