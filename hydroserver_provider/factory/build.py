"""One validated task definition -> its DAG: schedule, settings, docs, params, the ingest task."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from hydroserver_provider.compat import DAG
from hydroserver_provider.factory.docs import dag_description, dag_doc_md, dag_tags
from hydroserver_provider.factory.fanout import ingest_task
from hydroserver_provider.factory.ids import INGEST_TASK_ID, dag_id_for
from hydroserver_provider.factory.params import trigger_params
from hydroserver_provider.factory.schedules import (
    WINDOW_END_TEMPLATE,
    WINDOW_START_TEMPLATE,
    RunWindowMacro,
    start_date_for,
    timetable_for,
)
from hydroserver_provider.factory.settings import task_settings
from hydroserver_provider.operators.ingest import HydroIngestOperator
from hydroserver_provider.periods import schedule_timing

if TYPE_CHECKING:
    from hydroserver_provider.definitions import Task

__all__ = ["build_dag", "location", "reset_config_cache"]


def location(source: str | None, name: str) -> str:
    return f"{source}: task '{name}'" if source else f"task '{name}'"


# DAG arguments whose default Airflow reads from its configuration for every DAG it creates:
# argument -> (section, key, getter). Three lookups cost about as much as the rest of DAG()
# (measured: 115 -> 55 us per DAG), so they are read once per folder and passed explicitly --
# the same values Airflow would have used.
_CONFIG_DEFAULTS = {
    "max_active_tasks": ("core", "max_active_tasks_per_dag", "getint"),
    "max_consecutive_failed_dag_runs": ("core", "max_consecutive_failed_dag_runs_per_dag",
                                        "getint"),
    "disable_bundle_versioning": ("dag_processor", "disable_bundle_versioning", "getboolean"),
}
_config_defaults_cache: dict[str, Any] | None = None


def _dag_config_defaults() -> dict[str, Any]:
    """The configured DAG defaults of :data:`_CONFIG_DEFAULTS` (those this Airflow's DAG takes),
    read once; :func:`build_dags` reads them again for every folder."""
    global _config_defaults_cache
    if _config_defaults_cache is None:
        import inspect

        from hydroserver_provider.compat import airflow_conf

        accepted = inspect.signature(DAG.__init__).parameters
        _config_defaults_cache = {
            name: getattr(airflow_conf, getter)(section, key)
            for name, (section, key, getter) in _CONFIG_DEFAULTS.items() if name in accepted}
    return _config_defaults_cache


def build_dag(task: Task, *, source: str | None = None, dag_id: str | None = None) -> DAG:
    """The DAG of one validated task (the definitions checked its Airflow settings too)."""
    settings = task_settings(task.airflow)
    schedule = task.schedule
    dag_settings = settings.dag
    dag_id = dag_id or dag_id_for(task.name, dag_settings.get("dag_id"))
    connection = task.data_connection
    windowed = connection.uses_window
    macro = RunWindowMacro(task_name=task.name, windowed=windowed, **schedule_timing(schedule))
    paused = dag_settings.get("is_paused_upon_creation")
    configured = dict(_dag_config_defaults())  # what Airflow would read per DAG (see there)
    if dag_settings.get("max_active_tasks"):
        configured["max_active_tasks"] = dag_settings["max_active_tasks"]
    dag = DAG(
        dag_id,
        dag_display_name=task.name,
        description=dag_description(task),
        schedule=timetable_for(schedule),  # enabled: false -> no scheduled runs (schedules.py)
        start_date=start_date_for(schedule),  # the first run is at start_time
        catchup=dag_settings.get("catchup", False),
        max_active_runs=dag_settings.get("max_active_runs", 1),
        **configured,
        dagrun_timeout=dag_settings.get("dagrun_timeout"),
        # unpaused, disabled or not: a disabled task has no schedule, and its manual runs start
        # at once; Airflow reads this only when it first sees the DAG
        is_paused_upon_creation=bool(paused),
        tags=dag_tags(task, settings),
        doc_md=dag_doc_md(task, source, dag_id, settings.hydroserver_conn_id),
        user_defined_macros={"hydroserver_run_window": macro},
        auto_register=False,
    )
    operator_kwargs = settings.operator
    with warnings.catch_warnings():
        if "email" in operator_kwargs:  # 3.3 deprecates task e-mail; the definition asked for it
            warnings.filterwarnings("ignore", message="Setting email", category=Warning)
        ingest_task(
            HydroIngestOperator, task, dag_settings,
            task_id=INGEST_TASK_ID,
            dag=dag,
            data_connection=connection,
            mappings=task.mappings,
            task_variables=task.task_variables,
            hydroserver_conn_id=settings.hydroserver_conn_id,
            window_start=WINDOW_START_TEMPLATE,
            window_end=WINDOW_END_TEMPLATE,
            start_time=schedule.start_time,
            chunk_rows="{{ params.chunk_rows }}",
            dry_run="{{ params.dry_run }}",
            asset_host=settings.asset_host,
            hydrocron_conn_id=task.airflow.hydrocron_conn_id,
            **operator_kwargs,
        )
    # The trigger-form params go on the DAG last, through ParamsDict.__setitem__, on purpose:
    # * DAG(params=...) validates every default with jsonschema.validate(), which re-checks the
    #   schema against the JSON-schema meta-schema each time: most of the cost of a DAG
    #   (measured: 1.7 ms -> 0.3 ms per DAG). These defaults are constants, checked by the tests.
    # * an operator created after them would deep-copy them into task.params; at run time Airflow
    #   merges dag.params, task.params and the run's conf (process_params) and validates that.
    for name, param in trigger_params(settings.chunk_rows, windowed, schedule.is_manual).items():
        dag.params[name] = param
    # imported here: notifications.dags builds digest DAGs with this package's schedules, so a
    # module-level import would make importing it first a circular import
    from hydroserver_provider.notifications.dags import add_failure_alert

    add_failure_alert(dag, task)
    return dag



def reset_config_cache() -> None:
    """Read Airflow's configured DAG defaults again (the configuration may have changed)."""
    global _config_defaults_cache
    _config_defaults_cache = None
