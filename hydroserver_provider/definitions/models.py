"""A data connection and a task: the models the ingestion core runs.

Each accepts both vocabularies: hydroserverpy's guide (snake_case, ``payload_type`` beside flat
payload keys, flat schedule keys on a task) and HydroServer's camelCase export (``payload:`` and
``schedule:`` blocks, ``targetDatastream: {id}``, ``workspace: {id}``). The flat keys are moved
into their blocks before validation (``moved``); everything else is spelt by aliases.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AliasChoices,
    AliasPath,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from hydroserver_provider.definitions.airflow import AirflowSettings, Duration
from hydroserver_provider.definitions.base import (
    ID_SCHEMA,
    NOTHING,
    DefinitionModel,
    Shown,
    as_text,
    check,
    invalid,
    merge_key,
    not_blank,
)
from hydroserver_provider.definitions.checks import (
    HYDROCRON_ID_EXAMPLES,
    IDENTIFIER,
    check_timestamp_format,
    hydrocron_field_problem,
    hydrocron_id_problem,
    normalise_offset,
    placeholder_names,
    safe_url,
    timezone_problem,
)
from hydroserver_provider.definitions.parts import (
    Mapping,
    Notification,
    PlaceholderVariable,
    Schedule,
    SourceAuth,
)
from hydroserver_provider.definitions.payloads import PAYLOAD_MODELS, HydrocronPayload, Payload

__all__ = ["WINDOW_VARIABLE_TYPES", "DataConnection", "Task", "TimezoneType"]

TimezoneType = Literal["utc", "offset", "iana"]
WINDOW_VARIABLE_TYPES = frozenset({"window_start", "window_end"})

_BRACED = re.compile(r"\{([^{}]*)\}")
_JINJA = re.compile(r"\{\{\s*(.*?)\s*\}\}|\{%.*?%\}")
_URL_SCHEMES = ("http://", "https://", "file://")
_ZONE_EXPECTED = "an IANA time zone such as 'America/Denver'"
# every spelling of a payload field -> the field (a flat key of the guide's vocabulary)
_PAYLOAD_KEYS = {s: f for m in PAYLOAD_MODELS.values() for s, f in m.keys.items() if f != "type"}
_PAYLOAD_SPELLINGS = {f: tuple(s for s in _PAYLOAD_KEYS if _PAYLOAD_KEYS[s] == f)
                      for f in _PAYLOAD_KEYS.values()}
_WINDOW = ("data_ingestion_window", "dataIngestionWindow")
_HEADER = ("auth_header_name", "authHeaderName")


class DataConnection(DefinitionModel):
    """Where data comes from, its format, and how to read its timestamps."""

    what = "a data connection"
    read_only = frozenset({"taskCount", "taskAttentionCount", "task_count",
                           "task_attention_count", "createdAt", "updatedAt"})
    secrets = frozenset({"auth_header_value", "authHeaderValue", "api_key", "apiKey", "apikey",
                         "password", "token"})
    moved = {**{s: ("payload", f) for s, f in _PAYLOAD_KEYS.items()},
             "payload_type": ("payload", "type"), "payloadType": ("payload", "type"),
             **{s: ("auth", "header_name") for s in _HEADER}}
    lifted = {"timestamp_key": "payload", "timestamp_format": "payload"}

    name: str
    id: str | None = None  # HydroServer's id when imported; tasks may reference it
    description: str = ""
    # required, except for HYDROCRON (the Airflow connection's endpoint)
    source_url: str | None = Field(
        default=None, description="the URL to fetch, e.g. https://example.com/data.csv")
    payload: Payload
    timestamp_key: str = Field(
        default="timestamp", description="the column (CSV) or field (JSON) holding timestamps")
    timestamp_format: str | None = None  # strftime; None: detected ISO 8601 ("ISO8601" -> None)
    timezone_type: TimezoneType | None = None
    # "-0700" for offset (±HH:MM is normalised to ±HHMM), "America/Denver" for iana
    timezone: str | None = Field(default=None, validate_default=True)
    placeholder_variables: tuple[PlaceholderVariable, ...] = Field(default=(),
                                                                   validate_default=True)
    auth: SourceAuth | None = None
    workspace_id: Annotated[str | None, ID_SCHEMA] = Field(
        default=None, validation_alias=AliasChoices("workspace_id", "workspaceId",
                                                    AliasPath("workspace", "id"), "workspace"))
    notification: Notification | None = None
    # incremental loads: rows this far before a datastream's newest observation that are missing
    # or revised are loaded too (late data); None: only rows after it, like HydroServer's loader
    lookback: Duration | None = None

    @classmethod
    def _adjust(cls, data: dict) -> dict:
        block = data.get("payload")
        if not isinstance(block, (dict, str, type(None))):
            return data  # a payload model given directly, or a wrong type pydantic reports
        data = dict(data)
        payload = {"type": block} if isinstance(block, str) else dict(block or {})
        for key in ("payload_type", "payloadType"):
            if key in payload:
                merge_key(payload, key, payload, "type", ("type",))
        if not any(payload.get(k) for k in _WINDOW):  # HydroServer's export: null, unused
            payload = {k: v for k, v in payload.items() if k not in _WINDOW}
        auth = data.get("auth")
        if isinstance(auth, dict):
            data["auth"] = auth = dict(auth)
        for key in [k for k in data if k in cls.moved]:
            block_name, field = cls.moved[key]
            if block_name == "payload":
                merge_key(data, key, payload, "type" if field == "type" else key,
                          ("type",) if field == "type" else _PAYLOAD_SPELLINGS[field])
            elif data[key] in (None, ""):
                del data[key]  # an export without auth header
            elif isinstance(auth, dict):
                merge_key(data, key, auth, "header_name", SourceAuth.spellings["header_name"])
        for key in [k for k in payload if cls.keys.get(k) in cls.lifted]:
            merge_key(payload, key, data, key, cls.spellings[cls.keys[key]])
        kind = payload.get("type")
        if isinstance(kind, str) and kind.strip().upper() in PAYLOAD_MODELS:
            payload["type"] = kind.strip().upper()
        data["payload"] = payload
        return data

    _name = field_validator("name")(not_blank("a data connection needs a name",
                                              "a non-empty name"))
    _key = field_validator("timestamp_key")(not_blank(
        "the timestamp key is empty", "the column or field holding the timestamps"))

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
        jinja = _JINJA.search(value)
        if jinja:  # e.g. {{ data_interval_start }}, as in Airflow templates: never rendered here
            variable = "window_end" if "end" in (jinja.group(1) or "") else "window_start"
            problems.append(((), (
                f"the source URL is not a Jinja template: {jinja.group(0)!r} would never be "
                f"filled in. Write a placeholder such as {{start}} and describe it in "
                f"placeholder_variables: {{name: start, variable_type: {variable}}} "
                "(window_start / window_end are the run's data interval)"),
                "placeholders written as {name}", shown))
            check(problems)
        for inner in _BRACED.findall(value):
            if not IDENTIFIER.match(inner):
                problems.append(((), f"'{{{inner}}}' is not a valid placeholder",
                                 "{name} with letters, digits and '_'", shown))
        rest = _BRACED.sub("", value)
        if "{" in rest or "}" in rest:
            problems.append(((), "unbalanced '{' or '}' (encode literal braces as %7B and %7D)",
                             "placeholders written as {name}", shown))
        check(problems)
        return value

    @field_validator("timestamp_format")
    @classmethod
    def _format(cls, value: str | None) -> str | None:
        return check_timestamp_format(value)

    @field_validator("timezone_type", mode="before")
    @classmethod
    def _zone_type(cls, value: Any) -> Any:
        return (value.strip().lower() or None) if isinstance(value, str) else value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None, info: ValidationInfo) -> str | None:
        if "timezone_type" not in info.data:
            return value  # timezone_type itself is invalid: reported there
        kind = info.data["timezone_type"]
        value = value.strip() if isinstance(value, str) and value.strip() else None
        if kind is None:
            if value is not None:
                raise invalid("a timezone is set but timezone_type is not, so it would be "
                              "ignored", "timezone_type: offset or iana (or no timezone)", value)
            return None
        if kind == "utc":
            if value is not None and value.upper() not in ("UTC", "Z", "ETC/UTC", "+0000",
                                                            "+00:00", "-0000", "-00:00"):
                raise invalid("timezone_type utc conflicts with this timezone",
                              "no timezone (or UTC) with timezone_type utc", value)
            return None
        if kind == "offset":
            offset = normalise_offset(value) if value is not None else None
            if offset is None:
                raise invalid("timezone_type offset needs a fixed UTC offset",
                              "an offset like -0700 or +05:30", NOTHING if value is None else value)
            return offset
        if value is None:  # iana
            raise invalid("timezone_type iana needs a zone name", _ZONE_EXPECTED, NOTHING)
        problem = timezone_problem(value)
        if problem:
            raise invalid(f"the timezone {problem}", _ZONE_EXPECTED, value)
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
            problems += [((), f"the source URL has the placeholder {{{name}}} but no placeholder "
                              "variable describes it",
                          f"a placeholder_variables entry named '{name}'",
                          Shown(", ".join(f"'{n}'" for n in seen) or "no variables"))
                         for name in in_url if name not in seen]
            problems += [((i, "name"), f"the variable '{name}' has no {{{name}}} in the source "
                                       "URL", f"{{{name}}} in source_url", safe_url(url))
                         for name, i in seen.items() if name not in in_url]
        check(problems)
        return value

    _workspace = field_validator("workspace_id", mode="before")(as_text)

    @model_validator(mode="after")
    def _source_fits_payload(self) -> DataConnection:
        """CSV and JSON need a URL; Hydrocron's endpoint, key and time stamps are fixed."""
        if self.payload.type != "HYDROCRON":
            if self.source_url is None:
                raise invalid("is required", "the URL to fetch, e.g. https://example.com/data.csv",
                              NOTHING, at=("source_url",))
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
        check(problems)
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


REFERENCE_KEYS = ("data_connection", "dataConnection", "data_connection_id", "dataConnectionId")
_FLAT_SCHEDULE = ("interval", "interval_period", "crontab", "start_time", "enabled")


class Task(DefinitionModel):
    """One data connection applied to a set of datastreams, on a schedule.

    ``data_connection`` is the model (or an inline one); a reference by name or id is resolved
    by the definition loader (``parse_task``, ``load_definitions``).
    """

    what = "a task"
    read_only = frozenset({"latestRun", "latest_run", "workspaceId", "workspace_id",
                           "workspace", "createdAt", "updatedAt"})
    moved: ClassVar[dict[str, tuple[str, str]]] = {
        s: ("schedule", f) for f in _FLAT_SCHEDULE for s in Schedule.spellings[f]}

    name: str
    id: str | None = None  # HydroServer's id when imported
    description: str = ""
    data_connection: DataConnection = Field(validation_alias=AliasChoices(*REFERENCE_KEYS),
                                            description="the name or id of a data connection")
    task_variables: dict[str, str] = Field(default_factory=dict, validate_default=True)
    mappings: tuple[Mapping, ...] = Field(
        description="a list of {source_identifier, target_datastream_id}")
    schedule: Schedule = Schedule()
    airflow: AirflowSettings = AirflowSettings()  # the file's defaults under the task's own

    @classmethod
    def _adjust(cls, data: dict) -> dict:
        block = data.get("schedule")
        flat = [k for k in data if k in cls.moved]
        if not flat or not isinstance(block, (dict, type(None))):
            return data
        data = dict(data)
        schedule = data["schedule"] = dict(block or {})
        for key in flat:  # in both places is an error, even with the same value
            merge_key(data, key, schedule, key, Schedule.spellings[cls.moved[key][1]],
                      equal_ok=False)
        return data

    _name = field_validator("name")(not_blank("a task needs a name", "a non-empty name"))

    @field_validator("data_connection", mode="before")
    @classmethod
    def _inline(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise invalid("a reference by name or id needs the definition loader (parse_task, "
                          "load_definitions)", "the data connection itself", value)
        return value

    @field_validator("task_variables", mode="before")
    @classmethod
    def _unset_variables(cls, value: Any) -> Any:
        if isinstance(value, dict) and None in value.values():
            return {k: v for k, v in value.items() if v is not None}
        return value

    @field_validator("task_variables")
    @classmethod
    def _per_task(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        connection = info.data.get("data_connection")
        if connection is None:
            return value  # no usable data connection: reported there
        problems = [((), f"the data connection '{connection.name}' has the per_task variable "
                         f"'{name}', which this task gives no value",
                     f"task_variables: {{{name}: ...}}",
                     Shown(", ".join(f"'{k}'" for k in value) or "no task variables"))
                    for name in connection.per_task_names() if name not in value]
        check(problems)
        return value

    @field_validator("mappings")
    @classmethod
    def _mappings(cls, value: tuple[Mapping, ...]) -> tuple[Mapping, ...]:
        if not value:
            raise invalid("a task needs at least one mapping",
                          "mappings: [{source_identifier: ..., target_datastream_id: ...}]",
                          Shown("no mappings"))
        first: dict[str, int] = {}
        problems = [((i, "target_datastream_id"), f"this datastream is already the target of "
                     f"mappings[{first[m.target_datastream_id]}]",
                     "each datastream targeted once per task", m.target_datastream_id)
                    for i, m in enumerate(value)
                    if first.setdefault(m.target_datastream_id, i) != i]
        check(problems)
        return value

    @model_validator(mode="after")
    def _fits(self) -> Task:
        """What depends on the data connection (Hydrocron features), and catchup's start."""
        payload = self.data_connection.payload
        if payload.type == "HYDROCRON":
            problems = _hydrocron_problems(self, payload)
        else:
            problems = [(("mappings", i, "feature_id"), "feature_id applies to HYDROCRON "
                         "mappings only", "no feature_id", m.feature_id)
                        for i, m in enumerate(self.mappings) if m.feature_id is not None]
        if self.airflow.catchup and self.schedule.start_time is None:
            problems.append((("airflow", "catchup"), "catchup needs the task's start_time, "
                             "where the backfill begins", "a start_time with catchup: true",
                             True))
        check(problems)
        return self

    @property
    def hydrocron_features(self) -> tuple[str, ...]:
        """The feature ids of a Hydrocron fan-out (``feature_id`` on the mappings), in order."""
        return tuple(dict.fromkeys(m.feature_id for m in self.mappings if m.feature_id))

    @property
    def target_datastream_ids(self) -> tuple[str, ...]:
        """The datastreams this task writes, in mapping order."""
        return tuple(m.target_datastream_id for m in self.mappings)


def _hydrocron_problems(task: Task, payload: HydrocronPayload) -> list[tuple]:
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
        problems += [(("mappings", i, "feature_id"), "some mappings name their feature and this "
                      "one does not", f"a feature_id ({example})", NOTHING)
                     for i, m in enumerate(task.mappings) if m.feature_id is None]
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
        field_problem = hydrocron_field_problem(m.source_identifier)
        if field_problem:
            problems.append((("mappings", i, "source_identifier"), field_problem,
                             "a SWOT field such as wse, width, slope, area_total",
                             m.source_identifier))
        elif payload.fields and m.source_identifier not in payload.fields:
            problems.append((("mappings", i, "source_identifier"), "this field is not among "
                             "the data connection's fields, so it is never requested",
                             "one of " + ", ".join(payload.fields), m.source_identifier))
    return problems
