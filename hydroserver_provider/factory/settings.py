"""A task's Airflow settings -> DAG and operator arguments.

The definitions check every value (``definitions.airflow.AirflowSettings``: types, ranges, DAG
id syntax, tag length); nothing here needs Airflow to check, so this only sorts the settings by
destination and fills the provider's defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hydroserver_provider.defaults import CHUNK_ROWS, HYDROSERVER_CONN_ID

if TYPE_CHECKING:
    from hydroserver_provider.definitions import AirflowSettings

__all__ = ["MAX_TAG", "TaskSettings", "task_settings"]

MAX_TAG = 100  # Airflow's tag length limit (the definitions refuse longer tags)
_DAG_SETTINGS = ("dag_id", "max_active_runs", "max_active_tasks", "catchup", "dagrun_timeout",
                 "is_paused_upon_creation")
_OPERATOR_SETTINGS = (
    "owner", "retries", "retry_delay", "retry_exponential_backoff", "max_retry_delay",
    "execution_timeout", "pool", "pool_slots", "queue", "priority_weight", "email",
    "email_on_failure", "email_on_retry", "depends_on_past",
)


@dataclass(frozen=True)
class TaskSettings:
    """A task's Airflow settings, split by destination."""

    dag: dict[str, Any]
    operator: dict[str, Any]
    hydroserver_conn_id: str
    chunk_rows: int
    asset_host: str | None
    extra_tags: tuple[str, ...]


def task_settings(airflow: AirflowSettings) -> TaskSettings:
    """The DAG and operator arguments of a task's (valid) Airflow settings."""
    given = airflow.given()
    dag = {k: given[k] for k in _DAG_SETTINGS if k in given}
    operator = {k: given[k] for k in _OPERATOR_SETTINGS if k in given}
    if isinstance(operator.get("retry_exponential_backoff"), bool):
        # Airflow 3.3 reads this as a *multiplier*: True would be 1 (no backoff at all).
        operator["retry_exponential_backoff"] = 2.0 if operator["retry_exponential_backoff"] \
            else 0.0
    conn_id = airflow.hydroserver_conn_id or HYDROSERVER_CONN_ID
    if airflow.pool_per_connection and "pool" not in operator:
        operator["pool"] = f"hydroserver_{conn_id}"
    return TaskSettings(dag=dag, operator=operator, hydroserver_conn_id=conn_id,
                        chunk_rows=airflow.chunk_rows or CHUNK_ROWS,
                        asset_host=airflow.asset_host, extra_tags=tuple(airflow.tags or ()))
