"""Definitions of data connections and tasks, in hydroserverpy's vocabulary: the public entry.

These models are the contract between a definition file (YAML/JSON, written by hand or exported
from HydroServer) and the ingestion core, and its one source of truth: pydantic models accept
hydroserverpy's snake_case (flat payload keys beside ``payload_type``, flat schedule keys) and
HydroServer's camelCase export through aliases; the published JSON Schema is generated from them
(``schema.py``). Building a model with wrong values raises pydantic's ``ValidationError``;
``parse_data_connection`` / ``parse_task`` and the definition loader (``files.py``) turn every
problem into a ``DefinitionError`` naming the definition, the key as the user wrote it, what was
expected and what was found, all problems of a definition together.

Modules: ``base`` (the model base, spellings, how validators report), ``checks`` (single values),
``payloads`` (the discriminated union), ``parts`` and ``models`` (the models), ``airflow`` (the
typed Airflow settings), ``errors`` (pydantic's errors -> ``DefinitionError``), ``files``
(reading files and folders, conflicts between definitions), ``build`` (one definition, its data
connection reference and the file's defaults), ``schema``.

Nothing here imports Airflow, pandas or requests; JMESPath and croniter are imported only when a
definition needs them, and compiled expressions are cached.
"""

from __future__ import annotations

from hydroserver_provider.definitions.airflow import (
    DURATION_EXPECTED,
    AirflowSettings,
    parse_duration,
)
from hydroserver_provider.definitions.base import HIDDEN, NOTHING, Shown
from hydroserver_provider.definitions.build import (
    connection_location,
    parse_data_connection,
    parse_task,
    task_location,
)
from hydroserver_provider.definitions.checks import (
    HYDROCRON_ID_DIGITS,
    compile_jmespath,
    crontab_problem,
    hydrocron_field_problem,
    hydrocron_id_problem,
    normalise_offset,
    placeholder_names,
    strftime_problem,
    timezone_problem,
)
from hydroserver_provider.definitions.files import (
    DefinitionFile,
    load_definition_file,
    load_definition_paths,
    load_definitions,
    parse_definitions,
)
from hydroserver_provider.definitions.models import (
    WINDOW_VARIABLE_TYPES,
    DataConnection,
    Task,
    TimezoneType,
)
from hydroserver_provider.definitions.parts import (
    IntervalPeriod,
    Mapping,
    Notification,
    PlaceholderVariable,
    Schedule,
    SourceAuth,
    VariableType,
)
from hydroserver_provider.definitions.payloads import (
    DELIMITERS,
    PAYLOAD_MODELS,
    PAYLOAD_TYPES,
    CSVPayload,
    HydrocronPayload,
    JSONPayload,
    Payload,
)

__all__ = [
    "DELIMITERS", "DURATION_EXPECTED", "HIDDEN", "HYDROCRON_ID_DIGITS", "NOTHING",
    "PAYLOAD_MODELS", "PAYLOAD_TYPES", "WINDOW_VARIABLE_TYPES", "AirflowSettings", "CSVPayload",
    "DataConnection", "DefinitionFile", "HydrocronPayload", "IntervalPeriod", "JSONPayload",
    "Mapping", "Notification", "Payload", "PlaceholderVariable", "Schedule", "Shown",
    "SourceAuth", "Task", "TimezoneType", "VariableType", "compile_jmespath",
    "connection_location", "crontab_problem", "hydrocron_field_problem", "hydrocron_id_problem",
    "load_definition_file", "load_definition_paths", "load_definitions", "normalise_offset",
    "parse_data_connection", "parse_definitions", "parse_duration", "parse_task",
    "placeholder_names", "strftime_problem", "task_location", "timezone_problem",
]
