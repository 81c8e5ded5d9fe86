"""The DAG factory: one Airflow DAG per HydroServer task definition.

A definition file (YAML or JSON, hydroserverpy vocabulary, see
:mod:`hydroserver_provider.definitions`) holds data connections and tasks. Every *valid* task
becomes a DAG with one task, ``ingest``
(:class:`~hydroserver_provider.operators.ingest.HydroIngestOperator`):

* ``dag_id``: ``hydroserver_<slug of the task name>`` (``[a-z0-9_]``, accents folded), or the
  task's ``airflow: {dag_id: ...}``. Two tasks that would share an id are both rejected, each
  error naming the other, so no DAG ever silently changes the definition it runs.
* schedule: ``interval`` + ``interval_period`` -> :class:`~.timetables.IntervalTimetable`;
  ``crontab`` -> :class:`~.timetables.CrontabTimetable` in ``schedule.timezone`` (UTC by
  default); neither, or ``enabled: false`` -> :class:`~.timetables.ManualTimetable` (no scheduled
  runs; manual runs start at once). These are Airflow's *data interval* timetables (so
  ``window_start``/``window_end`` are a real window; Airflow 3's plain cron/timedelta schedules
  give ``start == end``) with readable summaries ("every 6 hours", "disabled (every hour)"),
  registered through this package's ``airflow.plugins`` entry point.
* ``start_date``: one period before the task's ``start_time``, so the first run is *at*
  ``start_time`` (the guide's meaning) and loads the period ending there; without a
  ``start_time``, :data:`DEFAULT_START_DATE` (never "now", which would change at every parse).
  ``catchup`` off unless ``airflow: {catchup: true}`` (which needs a ``start_time``: the first
  caught-up period ends there); ``max_active_runs`` 1; created unpaused (``airflow:
  {is_paused_upon_creation: true}`` to create it paused; Airflow reads that only once).
* trigger-form params ``window_start``/``window_end`` (reload a period), ``dry_run``,
  ``chunk_rows``, validated with JSON schema.
* pools: ``default_pool`` unless the definition names a ``pool`` or sets
  ``pool_per_connection: true`` (pool ``hydroserver_<conn_id>``). Airflow 3.3 neither creates a
  missing pool nor fails the DAG: the scheduler logs "Tasks using non-existent pool ... will not be
  scheduled" and the task waits forever, so a pool a definition names must be created first
  (``airflow pools set hydroserver_hydroserver_default 4 "HydroServer writes"``).

Where each job lives: :mod:`.folder` (folders of files -> DAGs, broken definitions, the worker's
single DAG), :mod:`.build` (one task -> its DAG), :mod:`.ids`, :mod:`.settings` (Airflow
settings -> arguments), :mod:`.schedules` (timetables, the window of a run), :mod:`.params`
(trigger form), :mod:`.timetables` (schedules as Airflow shows them), :mod:`.docs` (Docs panel,
description, tags), :mod:`.fanout` (Hydrocron).
"""

from __future__ import annotations

from hydroserver_provider.factory.build import build_dag
from hydroserver_provider.factory.fanout import (
    FAN_OUT_CONCURRENCY,
    MAP_INDEX_TEMPLATE,
    fan_out_concurrency,
    fan_out_features,
)
from hydroserver_provider.factory.folder import (
    DEFINITIONS_DIR_ENV,
    BuildResult,
    build_dags,
    build_loaded,
    definitions_folder,
    raise_definition_errors,
    register_dags,
)
from hydroserver_provider.factory.ids import DAG_ID_PREFIX, INGEST_TASK_ID, dag_id_for, slugify
from hydroserver_provider.factory.schedules import DEFAULT_START_DATE, RunWindowMacro
from hydroserver_provider.periods import last_cron_period, last_schedule_period, schedule_timing

__all__ = [
    "DAG_ID_PREFIX",
    "DEFAULT_START_DATE",
    "DEFINITIONS_DIR_ENV",
    "FAN_OUT_CONCURRENCY",
    "INGEST_TASK_ID",
    "MAP_INDEX_TEMPLATE",
    "BuildResult",
    "RunWindowMacro",
    "build_dag",
    "build_dags",
    "build_loaded",
    "dag_id_for",
    "definitions_folder",
    "fan_out_concurrency",
    "fan_out_features",
    "last_cron_period",
    "last_schedule_period",
    "raise_definition_errors",
    "register_dags",
    "schedule_timing",
    "slugify",
]
