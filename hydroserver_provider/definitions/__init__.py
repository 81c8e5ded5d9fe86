"""Definitions of data connections and tasks, in hydroserverpy's vocabulary: the public entry.

These models are the contract between a definition file (YAML/JSON, written by hand or exported
from HydroServer) and the ingestion core. Field names follow the seed guide (snake_case); the
camelCase spelling HydroServer's API exports is accepted as well.

Two layers:

* the models (``DataConnection``, ``Task``, ...) hold the *canonical* form and check it: building
  one directly with wrong values raises a pydantic ``ValidationError``;
* ``parse_data_connection`` / ``parse_task`` read a dict in either vocabulary (flat snake_case
  keys as in the seed guide, a nested ``payload:`` block, or HydroServer's camelCase export),
  normalise it and build the models, turning every problem into a ``DefinitionError`` that names
  the definition, the key as the user wrote it, what was expected and what was found. They raise
  all problems of one definition together as ``DefinitionErrors``.

The work is done in small modules this one re-exports: ``definition_checks`` (checks of single
values), ``payload_models``, ``definition_parts`` and ``definition_models`` (the models),
``definition_keys`` and ``vocabulary`` (the two vocabularies -> canonical dicts),
``airflow_settings``, ``validation_errors`` and ``definition_builders``.

Nothing here imports Airflow, pandas or requests; JMESPath and croniter are imported only when a
definition needs them, and compiled expressions are cached.
"""

from __future__ import annotations

# Every name below stays importable from here; ``__all__`` lists the public API proper (the key
# tables and model-level constants are re-exported for the definition loader and the DAG factory).
from .airflow_settings import AIRFLOW_SETTINGS, check_airflow_settings
from .builders import (
    ConnectionLookup,
    build_data_connection,
    build_task,
    parse_data_connection,
    parse_task,
)
from .checks import (
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
from .keys import (
    AUTH_KEYS,
    CONNECTION_KEYS,
    CONNECTION_READ_ONLY,
    FLAT_SCHEDULE_KEYS,
    MAPPING_KEYS,
    MAPPING_READ_ONLY,
    NOTIFICATION_KEYS,
    PAYLOAD_FIELDS,
    PAYLOAD_KEYS,
    PLACEHOLDER_KEYS,
    SCHEDULE_KEYS,
    SCHEDULE_READ_ONLY,
    SECRET_KEYS,
    TASK_KEYS,
    TASK_READ_ONLY,
)
from .base import NORMALISED_CONTEXT
from .models import WINDOW_VARIABLE_TYPES, DataConnection, Task, TimezoneType
from .parts import (
    IntervalPeriod,
    Mapping,
    Notification,
    PlaceholderVariable,
    Schedule,
    SourceAuth,
    VariableType,
)
from .error_values import HIDDEN, NOTHING, Shown
from .payloads import (
    DELIMITERS,
    PAYLOAD_MODELS,
    PAYLOAD_TYPES,
    CSVPayload,
    HydrocronPayload,
    JSONPayload,
    Payload,
)
from .vocabulary import connection_location, task_location

__all__ = [
    "AIRFLOW_SETTINGS",
    "CSVPayload",
    "DataConnection",
    "DELIMITERS",
    "HIDDEN",
    "HydrocronPayload",
    "JSONPayload",
    "Mapping",
    "NOTHING",
    "Notification",
    "PAYLOAD_TYPES",
    "Payload",
    "PlaceholderVariable",
    "Schedule",
    "Shown",
    "SourceAuth",
    "Task",
    "ConnectionLookup",
    "build_data_connection",
    "build_task",
    "check_airflow_settings",
    "compile_jmespath",
    "connection_location",
    "task_location",
    "crontab_problem",
    "normalise_offset",
    "parse_data_connection",
    "parse_task",
    "placeholder_names",
    "strftime_problem",
    "timezone_problem",
]

