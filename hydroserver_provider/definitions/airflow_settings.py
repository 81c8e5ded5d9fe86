"""Airflow settings of a task: the ``defaults:`` of a definition file and a task's ``airflow:``.

Only the values are checked here (no Airflow import): the DAG factory turns them into DAG and
operator arguments.
"""

from __future__ import annotations

from typing import Any

from .durations import DURATION_EXPECTED, parse_duration
from hydroserver_provider.errors import DefinitionError
from .error_values import describe_found, suggest

__all__ = ["AIRFLOW_SETTINGS", "check_airflow_settings"]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_seconds(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0


def _is_duration(v: Any) -> bool:
    try:
        parse_duration(v)
    except ValueError:
        return False
    return True


def _is_text(v: Any) -> bool:
    return isinstance(v, str) and bool(v.strip())


def _is_texts(v: Any) -> bool:
    return isinstance(v, list) and all(_is_text(x) for x in v)


# name -> (check, what is expected). The DAG factory turns durations into timedeltas and reports
# what only it can check (DAG id syntax, tag length).
AIRFLOW_SETTINGS: dict[str, tuple[Any, str]] = {
    "hydroserver_conn_id": (_is_text, "an Airflow connection id"),
    "hydrocron_conn_id": (_is_text, "an Airflow connection id"),
    "owner": (_is_text, "a name"),
    "retries": (lambda v: _is_int(v) and v >= 0, "a whole number >= 0"),
    "retry_delay": (_is_duration, DURATION_EXPECTED),
    "retry_exponential_backoff": (lambda v: isinstance(v, bool) or _is_seconds(v),
                                  "true, false or a multiplier such as 2"),
    "max_retry_delay": (_is_duration, DURATION_EXPECTED),
    "execution_timeout": (_is_duration, DURATION_EXPECTED),
    "dagrun_timeout": (_is_duration, DURATION_EXPECTED),
    "pool": (_is_text, "an Airflow pool name"),
    "pool_slots": (lambda v: _is_int(v) and v >= 1, "a whole number >= 1"),
    "queue": (_is_text, "an executor queue name"),
    "priority_weight": (_is_int, "a whole number"),
    "email": (lambda v: _is_text(v) or _is_texts(v), "an address or a list of addresses"),
    "email_on_failure": (lambda v: isinstance(v, bool), "true or false"),
    "email_on_retry": (lambda v: isinstance(v, bool), "true or false"),
    "tags": (_is_texts, "a list of tags"),
    "max_active_runs": (lambda v: _is_int(v) and v >= 1, "a whole number >= 1"),
    "max_active_tasks": (lambda v: _is_int(v) and v >= 1, "a whole number >= 1"),
    "catchup": (lambda v: isinstance(v, bool), "true or false"),
    "depends_on_past": (lambda v: isinstance(v, bool), "true or false"),
    "is_paused_upon_creation": (lambda v: isinstance(v, bool), "true or false"),
    "dag_id": (_is_text, "a DAG id"),
    # provider settings
    "chunk_rows": (lambda v: _is_int(v) and v >= 1, "a whole number >= 1"),
    "asset_host": (_is_text, "a host name"),
    "pool_per_connection": (lambda v: isinstance(v, bool), "true or false"),
}
_TASK_ONLY_SETTINGS = frozenset({"dag_id"})


def check_airflow_settings(settings: Any, *, location: str | None = None, field: str = "airflow",
                           defaults: bool = False) -> tuple[dict, list[DefinitionError]]:
    """Check a ``defaults:`` or ``airflow:`` block; returns the valid settings and the problems."""
    if settings is None:
        return {}, []
    if not isinstance(settings, dict):
        return {}, [DefinitionError("Airflow settings are a mapping", location=location,
                                    field=field, expected="a mapping such as {retries: 3}",
                                    found=describe_found(settings))]
    good: dict = {}
    errors: list[DefinitionError] = []
    for key, value in settings.items():
        spec = AIRFLOW_SETTINGS.get(key) if isinstance(key, str) else None
        if spec is None or (defaults and key in _TASK_ONLY_SETTINGS):
            if spec is not None:
                message = f"'{key}' must differ per task: set it in each task's airflow: block"
                expected = "a setting shared by every task"
            else:
                hint = suggest(str(key), AIRFLOW_SETTINGS)
                message = "unknown Airflow setting" + (f" (did you mean '{hint}'?)" if hint else "")
                expected = f"'{hint}'" if hint else "one of " + ", ".join(AIRFLOW_SETTINGS)
            errors.append(DefinitionError(message, location=location, field=f"{field}.{key}",
                                          expected=expected, found=describe_found(key)))
            continue
        check, expected = spec
        if value is None:
            continue
        if not check(value):
            errors.append(DefinitionError("wrong value for an Airflow setting", location=location,
                                          field=f"{field}.{key}", expected=expected,
                                          found=describe_found(value)))
            continue
        good[key] = value
    return good, errors
