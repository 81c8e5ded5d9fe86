"""A data connection and a task: the models the ingestion core runs.

Building one from canonical values checks them (a wrong value raises pydantic's
``ValidationError``); a dict in either vocabulary is normalised first (``vocabulary.py``).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from .airflow_settings import check_airflow_settings
from .checks import (
    HYDROCRON_ID_EXAMPLES,
    IDENTIFIER,
    hydrocron_field_problem,
    hydrocron_id_problem,
    normalise_offset,
    placeholder_names,
    safe_url,
    timezone_problem,
)
from .base import (
    FIELD_HINTS,
    DefinitionModel,
    check_timestamp_format,
    invalid,
    invalid_all,
    is_canonical,
)
from .parts import Mapping, Notification, PlaceholderVariable, Schedule, SourceAuth
from .durations import DURATION_EXPECTED, parse_duration
from hydroserver_provider.errors import DefinitionErrors
from .error_values import NOTHING, Shown, describe_found
from .payloads import PAYLOAD_MODELS, HydrocronPayload, Payload
from .vocabulary import (
    DefinitionReader,
    connection_location,
    drop_nulls,
    normalise_connection,
    normalise_task,
    task_location,
)

__all__ = ["WINDOW_VARIABLE_TYPES", "DataConnection", "Task", "TimezoneType"]

TimezoneType = Literal["utc", "offset", "iana"]
WINDOW_VARIABLE_TYPES = frozenset({"window_start", "window_end"})

_BRACED = re.compile(r"\{([^{}]*)\}")
_URL_SCHEMES = ("http://", "https://", "file://")


def _canonical_connection(data: dict) -> bool:
    """Whether ``data`` already has the canonical shape (the models' own field names)."""
    if not data.keys() <= DataConnection.model_fields.keys():
        return False
    payload = data.get("payload")
    if isinstance(payload, BaseModel):
        return True
    model = PAYLOAD_MODELS.get(payload.get("type")) if isinstance(payload, dict) else None
    return model is not None and payload.keys() <= model.model_fields.keys()


class DataConnection(DefinitionModel):
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
    # incremental loads: rows this far before a datastream's newest observation that are missing
    # or revised are loaded too (late data); None: only rows after it, like HydroServer's loader
    lookback: timedelta | None = None

    @model_validator(mode="before")
    @classmethod
    def _vocabulary(cls, data: Any, info: ValidationInfo) -> Any:
        """Either vocabulary (seed guide, nested payload, HydroServer export) -> canonical."""
        if is_canonical(info) or not isinstance(data, dict) or _canonical_connection(data):
            return data
        r = DefinitionReader(connection_location(data))
        canonical = drop_nulls(DataConnection, normalise_connection(r, data))
        if r.errors:
            raise DefinitionErrors(r.errors)
        return canonical

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip():
            raise invalid("a data connection needs a name", expected="a non-empty name",
                          found=value)
        return value

    @field_validator("lookback", mode="before")
    @classmethod
    def _lookback(cls, value: Any) -> Any:
        if value is None:
            return None
        try:
            return parse_duration(value)
        except ValueError:
            raise invalid("not a duration", expected=DURATION_EXPECTED, found=value) from None

    @field_validator("source_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        shown = safe_url(value)
        problems: list[tuple] = []
        if not value.lower().startswith(_URL_SCHEMES):
            problems.append(((), "the source URL must be absolute",
                             "a URL starting with http://, https:// or file://", shown))
        for inner in _BRACED.findall(value):
            if not IDENTIFIER.match(inner):
                problems.append(((), f"'{{{inner}}}' is not a valid placeholder",
                                 "{name} with letters, digits and '_'", shown))
        rest = _BRACED.sub("", value)
        if "{" in rest or "}" in rest:
            problems.append(((), "unbalanced '{' or '}' (encode literal braces as %7B and %7D)",
                             "placeholders written as {name}", shown))
        if problems:
            raise invalid_all(problems)
        return value

    @field_validator("timestamp_key")
    @classmethod
    def _key(cls, value: str) -> str:
        if not value.strip():
            raise invalid("the timestamp key is empty",
                          expected="the column or field holding the timestamps", found=value)
        return value

    @field_validator("timestamp_format")
    @classmethod
    def _format(cls, value: str | None) -> str | None:
        return check_timestamp_format(value)

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
                raise invalid(
                    "a timezone is set but timezone_type is not, so it would be ignored",
                    expected="timezone_type: offset or iana (or no timezone)", found=value,
                )
            return None
        if kind == "utc":
            if value is not None and value.upper() not in ("UTC", "Z", "ETC/UTC", "+0000",
                                                            "+00:00", "-0000", "-00:00"):
                raise invalid("timezone_type utc conflicts with this timezone",
                              expected="no timezone (or UTC) with timezone_type utc",
                              found=value)
            return None
        if kind == "offset":
            offset = normalise_offset(value) if value is not None else None
            if offset is None:
                raise invalid("timezone_type offset needs a fixed UTC offset",
                              expected="an offset like -0700 or +05:30",
                              found=NOTHING if value is None else value)
            return offset
        if value is None:  # iana
            raise invalid("timezone_type iana needs a zone name",
                          expected="an IANA time zone such as 'America/Denver'", found=NOTHING)
        problem = timezone_problem(value)
        if problem:
            raise invalid(f"the timezone {problem}",
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
                         f"{{{name}}} in source_url", safe_url(url)))
        if problems:
            raise invalid_all(problems)
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
                raise invalid("is required", expected=FIELD_HINTS["source_url"],
                              found=NOTHING, field=("source_url",), relative_to="model")
            return self
        why = "Hydrocron's endpoint and API key come from the Airflow connection " \
              f"'{self.payload.hydrocron_conn_id}' (hydrocron_conn_id)"
        problems: list[tuple] = []
        if self.source_url and placeholder_names(self.source_url):
            problems.append((("source_url",), "a Hydrocron connection has no URL placeholders: "
                             "the window comes from the run and feature_id from the definition",
                             "no source_url (" + why + ")", safe_url(self.source_url)))
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
            raise invalid_all(problems, relative_to="model")
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


class Task(DefinitionModel):
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
        if is_canonical(info) or not isinstance(data, dict):
            return data
        r = DefinitionReader(task_location(data))
        fields, reference, airflow = normalise_task(r, data)
        canonical = drop_nulls(Task, fields)
        if isinstance(reference, (dict, DataConnection)):
            canonical["data_connection"] = reference
        elif reference is not NOTHING and reference is not None:
            r.error(("data_connection",), r.where(("data_connection",)),
                    "a reference by name or id needs the definition loader (parse_task, "
                    "load_definitions)", "the data connection itself", describe_found(reference))
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
            raise invalid("a task needs a name", expected="a non-empty name", found=value)
        return value

    @field_validator("mappings")
    @classmethod
    def _mappings(cls, value: tuple[Mapping, ...]) -> tuple[Mapping, ...]:
        if not value:
            raise invalid("a task needs at least one mapping",
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
            raise invalid_all(problems)
        return value

    @field_validator("task_variables")
    @classmethod
    def _per_task(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        connection = info.data.get("data_connection")
        if isinstance(connection, DataConnection):
            missing = [n for n in connection.per_task_names() if n not in value]
            if missing:
                raise invalid_all([
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
                raise invalid_all(problems, relative_to="model")
            return self
        problems = _hydrocron_task_problems(self, connection.payload)
        if problems:
            raise invalid_all(problems, relative_to="model")
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
    example = HYDROCRON_ID_EXAMPLES[payload.feature]
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
