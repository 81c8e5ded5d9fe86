"""Airflow settings of a task: the ``defaults:`` of a definition file and a task's ``airflow:``.

One typed model checks them (no Airflow import): the DAG factory only turns a valid
``AirflowSettings`` into DAG and operator arguments. Durations are seconds or texts such as
"90", "30s", "5m", "1h30m", "2 days" (also a connection's ``lookback``).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, ClassVar

from pydantic import (
    BeforeValidator,
    Field,
    PlainSerializer,
    Strict,
    StringConstraints,
    WithJsonSchema,
)

from hydroserver_provider.definitions.base import DefinitionModel, invalid

__all__ = ["DURATION_EXPECTED", "AirflowSettings", "Duration", "parse_duration"]

DURATION_EXPECTED = "seconds (a number) or a text such as 30s, 5m, 2h, 1d"
_PART = re.compile(
    r"(\d+(?:\.\d+)?)(ms|seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|days?|d|weeks?|w)", re.I)
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> timedelta:
    """``value`` as a timedelta; raises ValueError naming what is expected."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(DURATION_EXPECTED)
    seconds = float(value) if not isinstance(value, str) else _text_seconds(value)
    if not seconds >= 0:  # also refuses NaN
        raise ValueError(DURATION_EXPECTED)
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(DURATION_EXPECTED) from None


def _text_seconds(text: str) -> float:
    compact = text.strip().replace(" ", "")
    try:
        return float(compact)
    except ValueError:
        pass
    total, pos = 0.0, 0
    for match in _PART.finditer(compact):
        if match.start() != pos:
            break
        unit = match.group(2).lower()
        key = "ms" if unit == "ms" else ("m" if unit.startswith("mi") or unit == "m" else unit[0])
        total += float(match.group(1)) * _UNIT_SECONDS[key]
        pos = match.end()
    if pos == 0 or pos != len(compact):
        raise ValueError(DURATION_EXPECTED)
    return total


def _duration(value: Any) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError:
        raise invalid("not a duration", DURATION_EXPECTED, value) from None


Duration = Annotated[
    timedelta, BeforeValidator(_duration),
    PlainSerializer(lambda d: d.total_seconds(), return_type=float, when_used="json"),
    WithJsonSchema({"anyOf": [{"type": "number", "minimum": 0},
                              {"type": "string", "minLength": 1}]})]
_Text = Annotated[str, Strict(), StringConstraints(strip_whitespace=True, min_length=1)]
_Bool = Annotated[bool, Strict()]
_Int = Annotated[int, Strict()]


def _setting(expected: str, **constraints: Any) -> Any:
    return Field(None, description=expected, **constraints)


class AirflowSettings(DefinitionModel):
    """Airflow settings of a task's DAG: the file's ``defaults:`` under the task's ``airflow:``.

    Every value is checked here; an error names the setting and what it takes (the field's
    description). Unset settings are None: Airflow's or the provider's default applies.
    """

    what = "the Airflow settings"
    unknown: ClassVar[str] = "unknown Airflow setting"
    value_message: ClassVar[str] = "wrong value for an Airflow setting"
    task_only: ClassVar[frozenset[str]] = frozenset({"dag_id"})  # not in a file's defaults
    model_config = {**DefinitionModel.model_config, "alias_generator": None}

    hydroserver_conn_id: _Text | None = _setting("an Airflow connection id")
    hydrocron_conn_id: _Text | None = _setting("an Airflow connection id")
    owner: _Text | None = _setting("a name")
    retries: _Int | None = _setting("a whole number >= 0", ge=0)
    retry_delay: Duration | None = _setting(DURATION_EXPECTED)
    # Airflow 3.3 reads it as a multiplier: the factory turns true into 2
    retry_exponential_backoff: _Bool | Annotated[float, Strict(), Field(ge=0)] | None = _setting(
        "true, false or a multiplier such as 2")
    max_retry_delay: Duration | None = _setting(DURATION_EXPECTED)
    execution_timeout: Duration | None = _setting(DURATION_EXPECTED)
    dagrun_timeout: Duration | None = _setting(DURATION_EXPECTED)
    pool: _Text | None = _setting("an Airflow pool name")
    pool_slots: _Int | None = _setting("a whole number >= 1", ge=1)
    queue: _Text | None = _setting("an executor queue name")
    priority_weight: _Int | None = _setting("a whole number")
    email: _Text | list[_Text] | None = _setting("an address or a list of addresses")
    email_on_failure: _Bool | None = _setting("true or false")
    email_on_retry: _Bool | None = _setting("true or false")
    tags: list[Annotated[_Text, Field(max_length=100)]] | None = _setting(
        "a list of tags of at most 100 characters (Airflow's limit)")
    max_active_runs: _Int | None = _setting("a whole number >= 1", ge=1)
    max_active_tasks: _Int | None = _setting("a whole number >= 1", ge=1)
    catchup: _Bool | None = _setting("true or false")
    depends_on_past: _Bool | None = _setting("true or false")
    is_paused_upon_creation: _Bool | None = _setting("true or false")
    dag_id: Annotated[str, Strict(), Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=250)] \
        | None = _setting("a DAG id: letters, digits, '_', '-' and '.' (at most 250 characters)")
    # provider settings
    chunk_rows: _Int | None = _setting("a whole number >= 1", ge=1)
    asset_host: _Text | None = _setting("a host name")
    pool_per_connection: _Bool | None = _setting("true or false")

    def given(self) -> dict[str, Any]:
        """The settings that are set, by name (what a file's defaults pass on to its tasks)."""
        return {k: v for k, v in self.__dict__.items() if v is not None}
