"""A task's Airflow settings (``defaults:`` and ``airflow:``) -> DAG and operator arguments."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hydroserver_provider.defaults import CHUNK_ROWS, HYDROSERVER_CONN_ID
from hydroserver_provider.definitions.durations import parse_duration
from hydroserver_provider.errors import DefinitionError
from hydroserver_provider.factory.ids import MAX_DAG_ID

__all__ = ["KNOWN_SETTINGS", "MAX_TAG", "TaskSettings", "task_settings"]

MAX_TAG = 100  # Airflow's tag length limit
_DAG_ID_OK = re.compile(r"[A-Za-z0-9_.-]+\Z")

# The settings this module turns into DAG / operator arguments. The definitions check the values
# of the keys they know; a key they let through that is not here is reported, not ignored.
_DAG_SETTINGS = frozenset({
    "dag_id", "tags", "max_active_runs", "max_active_tasks", "catchup", "dagrun_timeout",
    "is_paused_upon_creation",
})
_OPERATOR_SETTINGS = frozenset({
    "owner", "retries", "retry_delay", "retry_exponential_backoff", "max_retry_delay",
    "execution_timeout", "pool", "pool_slots", "queue", "priority_weight", "email",
    "email_on_failure", "email_on_retry", "depends_on_past",
})
_PROVIDER_SETTINGS = frozenset({
    "hydroserver_conn_id", "hydrocron_conn_id", "chunk_rows", "asset_host", "pool_per_connection",
})
KNOWN_SETTINGS = _DAG_SETTINGS | _OPERATOR_SETTINGS | _PROVIDER_SETTINGS
_DURATIONS = frozenset({"retry_delay", "max_retry_delay", "execution_timeout", "dagrun_timeout"})


@dataclass(frozen=True)
class TaskSettings:
    """A task's Airflow settings, split by destination."""

    dag: dict[str, Any]
    operator: dict[str, Any]
    hydroserver_conn_id: str
    chunk_rows: int
    asset_host: str | None
    extra_tags: tuple[str, ...]


def task_settings(airflow: Mapping[str, Any], location: str) -> tuple[TaskSettings | None,
                                                                   list[DefinitionError]]:
    errors: list[DefinitionError] = []

    def bad(key: str, message: str, expected: str, found: Any) -> None:
        errors.append(DefinitionError(message, location=location, field=f"airflow.{key}",
                                      expected=expected, found=found))

    dag: dict[str, Any] = {}
    operator: dict[str, Any] = {}
    for key, value in airflow.items():
        if key not in KNOWN_SETTINGS:
            bad(key, "unknown Airflow setting", "one of " + ", ".join(sorted(KNOWN_SETTINGS)), key)
            continue
        if value is None or key in _PROVIDER_SETTINGS or key == "tags":
            continue
        if key in _DURATIONS:
            try:
                value = parse_duration(value)
            except ValueError:
                bad(key, "not a duration", "seconds (a number) or a text such as 30s, 5m, 2h, 1d",
                    value)
                continue
        if key == "retry_exponential_backoff":
            # Airflow 3.3 reads this as a *multiplier*: True would be 1 (no backoff at all).
            if isinstance(value, bool):
                value = 2.0 if value else 0.0
            elif not isinstance(value, (int, float)) or value < 0:
                bad(key, "not a backoff", "true, false or a multiplier such as 2", value)
                continue
        if key == "dag_id" and not (isinstance(value, str) and _DAG_ID_OK.match(value)
                                    and len(value) <= MAX_DAG_ID):
            bad(key, "not a valid DAG id",
                "letters, digits, '_', '-' and '.' (at most 250 characters)", value)
            continue
        (dag if key in _DAG_SETTINGS else operator)[key] = value

    conn_id = airflow.get("hydroserver_conn_id") or HYDROSERVER_CONN_ID
    chunk_rows = airflow.get("chunk_rows")
    if chunk_rows is None:
        chunk_rows = CHUNK_ROWS
    elif isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        bad("chunk_rows", "not a row count", "a whole number >= 1", chunk_rows)
    pool_per_connection = airflow.get("pool_per_connection")
    if pool_per_connection is not None and not isinstance(pool_per_connection, bool):
        bad("pool_per_connection", "wrong value", "true or false", pool_per_connection)
    elif pool_per_connection and "pool" not in operator:
        operator["pool"] = f"hydroserver_{conn_id}"
    tags = airflow.get("tags") or ()
    if not isinstance(tags, (list, tuple)) or not all(isinstance(t, str) and t.strip()
                                                      for t in tags):
        bad("tags", "wrong value", "a list of tags", tags)
        tags = ()
    long_tags = [t for t in tags if len(t) > MAX_TAG]
    if long_tags:
        bad("tags", f"a tag is longer than Airflow's {MAX_TAG} characters",
            f"tags of at most {MAX_TAG} characters", long_tags[0])
    if errors:
        return None, errors
    return TaskSettings(dag=dag, operator=operator, hydroserver_conn_id=conn_id,
                     chunk_rows=int(chunk_rows), asset_host=airflow.get("asset_host"),
                     extra_tags=tuple(tags)), []

