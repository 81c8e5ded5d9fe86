"""The keys a definition accepts, in both vocabularies, and the canonical key each one means.

A key is accepted in hydroserverpy's snake_case and in the camelCase HydroServer's API exports,
plus a few aliases; read-only keys of an export are skipped; secret-looking keys are refused.
The payload keys are computed from the payload models, so a new payload field is accepted as soon
as a model has it.
"""

from __future__ import annotations

from typing import Any

from .payloads import PAYLOAD_MODELS


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _spellings(*names: str, **aliases: str) -> dict[str, str]:
    """Accepted key -> canonical key: each name in snake_case and camelCase, plus aliases."""
    out: dict[str, str] = {}
    for n in names:
        out[n] = n
        out[_camel(n)] = n
    for alias, canonical in aliases.items():
        out[alias] = canonical
        out[_camel(alias)] = canonical
    return out


def _payload_field_names() -> dict[str, tuple[str, ...]]:
    """Payload field -> the payload types having it (computed from the payload models)."""
    fields: dict[str, list[str]] = {}
    for kind, model in PAYLOAD_MODELS.items():
        for name in model.model_fields:
            if name != "type":
                fields.setdefault(name, []).append(kind)
    return {k: tuple(v) for k, v in fields.items()}


PAYLOAD_FIELDS = _payload_field_names()
TIMESTAMP_KEYS = ("timestamp_key", "timestamp_format")
PAYLOAD_NULLS = frozenset({"delimiter", "data_start_row", "jmespath"})
_KEEP_NULL = frozenset({"timestamp_format", "timezone", "crontab", "interval", "interval_period",
                        "start_time", "conn_id", "variable", "schedule"})

SECRET_KEYS = frozenset({"auth_header_value", "authHeaderValue", "api_key", "apiKey", "apikey",
                         "password", "token"})
AUTH_SECRET_KEYS = frozenset({"value", "header_value", "headerValue", "password", "token",
                               "api_key", "apiKey", "apikey", "secret"})

CONNECTION_KEYS = _spellings(
    "name", "id", "description", "source_url", "payload", "payload_type", "timezone_type",
    "timezone", "placeholder_variables", "auth", "auth_header_name", "workspace_id",
    "workspace", "notification", "lookback", *TIMESTAMP_KEYS, *PAYLOAD_FIELDS,
)
CONNECTION_READ_ONLY = frozenset({"taskCount", "taskAttentionCount", "task_count",
                                  "task_attention_count", "createdAt", "updatedAt"})
PAYLOAD_KEYS = _spellings("type", "data_ingestion_window", *TIMESTAMP_KEYS, *PAYLOAD_FIELDS,
                          payload_type="type")
PLACEHOLDER_KEYS = _spellings("name", "variable_type", "timestamp_format", type="variable_type")
AUTH_KEYS = _spellings("header_name", "conn_id", "variable", connection_id="conn_id")
NOTIFICATION_KEYS = _spellings("recipient_emails", "schedule")
SCHEDULE_KEYS = _spellings("interval", "interval_period", "crontab", "timezone", "start_time",
                           "enabled")
SCHEDULE_READ_ONLY = frozenset({"nextRunAt", "next_run_at", "paused"})
FLAT_SCHEDULE_KEYS = ("interval", "interval_period", "crontab", "start_time", "enabled")
TASK_KEYS = _spellings(
    "name", "id", "description", "data_connection", "data_connection_id", "mappings",
    "task_variables", "schedule", "airflow",
    *FLAT_SCHEDULE_KEYS,
)
TASK_READ_ONLY = frozenset({"latestRun", "latest_run", "workspaceId", "workspace_id",
                            "workspace", "createdAt", "updatedAt"})
MAPPING_KEYS = _spellings("source_identifier", "target_datastream_id", "target_datastream",
                          "feature_id")
MAPPING_READ_ONLY = frozenset({"id"})


def respell(data: Any, keys: dict[str, str], read_only: frozenset[str] = frozenset()) -> Any:
    """Rename camelCase / alias keys of a small block (lenient: pydantic reports the rest)."""
    if not isinstance(data, dict) or not data:
        return data
    return {keys.get(k, k): v for k, v in data.items()
            if k not in read_only and (v is not None or keys.get(k, k) in _KEEP_NULL)}
