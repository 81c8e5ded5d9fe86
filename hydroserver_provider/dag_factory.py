"""Definitions -> DAGs: one Airflow DAG per HydroServer task definition.

A definition file (YAML or JSON, hydroserverpy vocabulary, see ``etl/config.py``) holds data
connections and tasks. Every *valid* task becomes a DAG with one task, ``ingest``
(:class:`~hydroserver_provider.operators.ingest.HydroIngestOperator`):

* ``dag_id``: ``hydroserver_<slug of the task name>`` (``[a-z0-9_]``, accents folded), or the
  task's ``airflow: {dag_id: ...}``. Two tasks that would share an id are both rejected, each
  error naming the other, so no DAG ever silently changes the definition it runs.
* schedule: ``interval`` + ``interval_period`` -> ``DeltaDataIntervalTimetable``; ``crontab`` ->
  ``CronDataIntervalTimetable`` in ``schedule.timezone`` (UTC by default); neither -> manual only.
  These *data interval* timetables make ``window_start``/``window_end`` a real window (Airflow 3's
  plain cron/timedelta schedules give ``start == end``).
* ``start_date`` = the task's ``start_time``, else :data:`DEFAULT_START_DATE` (never "now", which
  would change at every parse); ``catchup`` off unless ``airflow: {catchup: true}`` (which needs a
  ``start_time``: that is where the backfill begins); ``max_active_runs`` 1;
  ``enabled: false`` -> created paused, enabled -> created unpaused (only applies when Airflow first
  sees the DAG; later the UI toggle rules).
* trigger-form params ``window_start``/``window_end`` (reload a period), ``dry_run``,
  ``chunk_rows``, validated with JSON schema.
* pools: ``default_pool`` unless the definition names a ``pool`` or sets
  ``pool_per_connection: true`` (pool ``hydroserver_<conn_id>``). Airflow 3.3 neither creates a
  missing pool nor fails the DAG: the scheduler logs "Tasks using non-existent pool ... will not be
  scheduled" and the task waits forever, so a pool a definition names must be created first
  (``airflow pools set hydroserver_hydroserver_default 4 "HydroServer writes"``).

Windows of a run (the placeholders ``window_start`` / ``window_end`` / ``run_time``)
    The operator's ``window_start`` / ``window_end`` are rendered from the trigger form first;
    a window given there (or a backfill run's data interval) is *owned* by the run, which reloads
    it even when the task is incremental (see the operator). For a task whose URL takes a window
    they come next from the run's data interval, then -- for a run without one (Airflow 3 allows
    ``logical_date=None``; a manual-only DAG's interval is empty) -- from the schedule: the last
    complete interval before the run (``now - interval`` -> ``now`` for an interval schedule, the
    last complete cron period for a crontab, like Airflow's own manual runs with a logical date).
    A manual-only task whose URL needs a window fails fast (no retries) asking for
    ``window_start`` and ``window_end``. The macro doing this is :class:`RunWindowMacro`; the
    "Rendered Template" tab shows the window each run used.

How broken definitions surface
    A broken definition must show as an Airflow *import error* naming the file, the task and the
    field, while every other definition keeps loading **and keeps being scheduled**. Airflow 3.3
    ties import errors to a *Python file*: ``DagBag.process_file`` records a DAG that fails
    ``validate()``/``bag_dag`` under the DAG file's path and keeps that file's other DAGs, which
    looks right in a ``DagBag`` -- but when the dag-processor stores the result,
    ``airflow.dag_processing.collection._update_import_errors`` marks every ``DagModel`` whose
    ``relative_fileloc`` is that file ``is_stale=True, has_import_errors=True``, and the scheduler
    (``DagModel.dags_needing_dagruns``) skips such DAGs (the UI hides them too). Measured with
    ``airflow dag-processor -n 1`` on 3.3.2: one broken DAG in a factory file stales all of them.
    3.3's pluggable ``DagImporterRegistry`` could give each YAML file its own import errors, but
    it has no configuration hook (only the built-in Python importer is registered).

    So the errors are reported from a *second, DAG-less* file: :func:`register_dags` (used by
    ``dags/hydroserver_ingestion.py``) builds every valid task and only logs the problems, and
    :func:`raise_definition_errors` (used by ``dags/hydroserver_definition_check.py``) raises one
    :class:`~hydroserver_provider.errors.DefinitionErrors` listing every problem as
    ``<file>: task '<name>': field '<field>': ...``. That file owns no DAG, so its import error
    stales nothing, and it clears itself once the definitions are fixed. ``tests`` prove both
    halves with a ``DagBag`` and with a real dag-processor run against SQLite.

Parse-time cost
    No pandas, requests, numpy or ingestion-pipeline import here; a definition's pydantic models
    are handed to the operator as they are (no copies). When Airflow runs one task it sets
    ``get_parsing_context().dag_id``: then only the definition files are read, and only the task
    with that DAG id (and the data connections of its file) is validated and built. The params
    are attached without Airflow's per-DAG JSON-schema self-check (see :func:`build_dag`), and
    the garbage collector pauses while a folder is processed (:func:`_gc_paused`). Measured on
    2 cores with 5,000 tasks in 50 files: about 3 s for the dag-processor's full parse (0.4 s
    reading YAML, 0.2 s validating, the rest building DAGs), 0.6 s for a worker's single DAG.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import logging
import os
import re
import unicodedata
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, MutableMapping

from .compat import (
    DAG,
    CronDataIntervalTimetable,
    DeltaDataIntervalTimetable,
    Param,
    get_parsing_context,
)
from .definitions.durations import parse_duration
from .errors import DefinitionError, DefinitionErrors
from .defaults import CHUNK_ROWS, HYDROSERVER_CONN_ID

if TYPE_CHECKING:
    from .definitions import Task
    from .definitions.files import DefinitionFile

__all__ = [
    "DAG_ID_PREFIX",
    "DEFAULT_CHUNK_ROWS",
    "DEFAULT_START_DATE",
    "DEFINITIONS_DIR_ENV",
    "INGEST_TASK_ID",
    "BuildResult",
    "RunWindowMacro",
    "build_dag",
    "build_dags",
    "build_loaded",
    "dag_id_for",
    "definitions_folder",
    "fan_out_features",
    "last_schedule_period",
    "raise_definition_errors",
    "register_dags",
    "schedule_timing",
    "slugify",
]

log = logging.getLogger(__name__)

DEFINITIONS_DIR_ENV = "HYDROSERVER_DEFINITIONS_DIR"
"""Environment variable naming the definitions folder (overrides ``<dag file dir>/definitions``)."""

DAG_ID_PREFIX = "hydroserver_"
INGEST_TASK_ID = "ingest"
DEFAULT_START_DATE = datetime(2024, 1, 1, tzinfo=timezone.utc)
"""``start_date`` of a task without ``start_time``: fixed, so parsing is deterministic."""

DEFAULT_CHUNK_ROWS = CHUNK_ROWS

_MAX_DAG_ID = 250  # Airflow's key length limit
_MAX_TAG = 100  # Airflow's tag length limit
_DAG_ID_OK = re.compile(r"[A-Za-z0-9_.-]+\Z")
_SLUG_RUN = re.compile(r"[^a-z0-9]+")

# An ISO 8601 date-time (the trigger form's date-time picker, or typed by hand). jsonschema checks
# ``format: date-time`` only when rfc3339-validator is installed, which Airflow does not require,
# so the pattern is what actually rejects a bad date.
ISO_DATETIME_PATTERN = (
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[T ]([01]\d|2[0-3]):[0-5]\d"
    r"(:[0-5]\d(\.\d{1,9})?)?(Z|z|[+-]([01]\d|2[0-3]):?[0-5]\d)?$"
)

# The settings this module turns into DAG / operator arguments. the definitions check the values
# of the keys it knows; a key it lets through that is not here is reported, not ignored.
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

WINDOW_START_TEMPLATE = "{{ params.window_start or hydroserver_run_window(dag_run).start }}"
WINDOW_END_TEMPLATE = "{{ params.window_end or hydroserver_run_window(dag_run).end }}"


# --------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------


def slugify(name: str) -> str:
    """``"Río Grande @ Station 42"`` -> ``"rio_grande_station_42"`` (``[a-z0-9_]``, may be empty)."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return _SLUG_RUN.sub("_", folded.lower()).strip("_")


def dag_id_for(task_name: str, explicit: str | None = None) -> str:
    """The DAG id of a task: ``explicit`` (``airflow.dag_id``) as given, else
    ``hydroserver_<slug>``; a name with no ASCII letter or digit gets a short hash instead, and an
    id longer than Airflow's 250 characters is cut and suffixed with a hash (stable either way)."""
    if explicit:
        return explicit
    slug = slugify(task_name)
    digest = hashlib.sha1(task_name.encode("utf-8")).hexdigest()[:10]
    if not slug:
        slug = f"task_{digest}"
    dag_id = DAG_ID_PREFIX + slug
    if len(dag_id) > _MAX_DAG_ID:
        dag_id = f"{dag_id[:_MAX_DAG_ID - 11].rstrip('_')}_{digest}"
    return dag_id


def definitions_folder(folder: str | os.PathLike[str] | None = None,
                       dag_file: str | os.PathLike[str] | None = None) -> Path:
    """Where the definitions are: ``folder``, else ``$HYDROSERVER_DEFINITIONS_DIR``, else
    ``definitions/`` next to ``dag_file`` (the DAG file calling the factory)."""
    if folder:
        return Path(folder)
    env = os.environ.get(DEFINITIONS_DIR_ENV)
    if env:
        return Path(env)
    if dag_file:
        return Path(dag_file).resolve().parent / "definitions"
    raise ValueError(f"no definitions folder: pass one, set {DEFINITIONS_DIR_ENV}, or pass the "
                     "DAG file whose definitions/ folder to use")


# --------------------------------------------------------------------------------------------
# Settings -> DAG / operator arguments
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Settings:
    """A task's Airflow settings, split by destination."""

    dag: dict[str, Any]
    operator: dict[str, Any]
    hydroserver_conn_id: str
    chunk_rows: int
    asset_host: str | None
    extra_tags: tuple[str, ...]


def _settings(airflow: Mapping[str, Any], location: str) -> tuple[_Settings | None,
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
                                    and len(value) <= _MAX_DAG_ID):
            bad(key, "not a valid DAG id",
                "letters, digits, '_', '-' and '.' (at most 250 characters)", value)
            continue
        (dag if key in _DAG_SETTINGS else operator)[key] = value

    conn_id = airflow.get("hydroserver_conn_id") or HYDROSERVER_CONN_ID
    chunk_rows = airflow.get("chunk_rows")
    if chunk_rows is None:
        chunk_rows = DEFAULT_CHUNK_ROWS
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
    long_tags = [t for t in tags if len(t) > _MAX_TAG]
    if long_tags:
        bad("tags", f"a tag is longer than Airflow's {_MAX_TAG} characters",
            f"tags of at most {_MAX_TAG} characters", long_tags[0])
    if errors:
        return None, errors
    return _Settings(dag=dag, operator=operator, hydroserver_conn_id=conn_id,
                     chunk_rows=int(chunk_rows), asset_host=airflow.get("asset_host"),
                     extra_tags=tuple(tags)), []


# --------------------------------------------------------------------------------------------
# Schedules and run windows
# --------------------------------------------------------------------------------------------


def _timetable(schedule: Any) -> Any:
    delta = schedule.interval_delta
    if delta is not None:
        return DeltaDataIntervalTimetable(delta)
    if schedule.crontab:
        return CronDataIntervalTimetable(schedule.crontab, timezone=schedule.timezone or "UTC")
    return None


def schedule_timing(schedule: Any) -> dict[str, Any]:
    """``interval_seconds``, ``crontab`` and ``timezone`` of a schedule: all that the run-window
    macro, the digest task and ``preview`` keep of it to find a run's period
    (:func:`last_schedule_period`)."""
    delta = schedule.interval_delta
    return {"interval_seconds": delta.total_seconds() if delta is not None else None,
            "crontab": schedule.crontab if delta is None else None,
            "timezone": schedule.timezone or "UTC"}


def last_schedule_period(moment: datetime, *, interval_seconds: float | None,
                         crontab: str | None, timezone: str = "UTC",
                         ) -> tuple[datetime, datetime] | None:
    """The last complete period of a schedule (given as :func:`schedule_timing` describes it)
    ending at or before ``moment``: ``moment - interval`` -> ``moment``, or the last complete
    cron period, as Airflow gives a manual run; None for a manual-only schedule."""
    if interval_seconds is not None:
        return moment - timedelta(seconds=interval_seconds), moment
    if crontab:
        return last_cron_period(crontab, timezone, moment)
    return None


def _schedule_text(schedule: Any) -> str:
    if schedule.interval is not None and schedule.interval_period:
        period = schedule.interval_period
        if schedule.interval == 1:
            return f"every {period[:-1]}"
        return f"every {schedule.interval} {period}"
    if schedule.crontab:
        return f"cron `{schedule.crontab}` ({schedule.timezone or 'UTC'})"
    return "manual only"


@dataclass(frozen=True)
class _Window:
    start: str
    end: str


@dataclass(frozen=True)
class RunWindowMacro:
    """The ``hydroserver_run_window(dag_run)`` macro: the window a run loads, as ISO strings.

    The run's data interval when it has a non-empty one; otherwise the last complete interval of
    the schedule before ``run_after`` (``run_after - interval`` -> ``run_after``, or the last
    complete cron period); for a manual-only task, empty strings -- or, when the URL needs a
    window, a failure without retries asking for ``window_start`` and ``window_end``.
    """

    task_name: str
    windowed: bool
    interval_seconds: float | None = None
    crontab: str | None = None
    timezone: str = "UTC"

    def __call__(self, dag_run: Any) -> _Window:
        if not self.windowed:  # incremental: only a window given to the run counts (operator)
            return _Window("", "")
        start = getattr(dag_run, "data_interval_start", None)
        end = getattr(dag_run, "data_interval_end", None)
        if start is not None and end is not None and start < end:
            return _Window(start.isoformat(), end.isoformat())
        run_after = getattr(dag_run, "run_after", None) or datetime.now(timezone.utc)
        if run_after.tzinfo is None:
            run_after = run_after.replace(tzinfo=timezone.utc)
        period = last_schedule_period(run_after, interval_seconds=self.interval_seconds,
                                      crontab=self.crontab, timezone=self.timezone)
        if period is not None:
            return _Window(period[0].isoformat(), period[1].isoformat())
        if self.windowed:
            from .compat import AirflowFailException  # noqa: PLC0415

            raise AirflowFailException(
                f"task '{self.task_name}' has no schedule and its source URL needs a window: "
                "trigger it with window_start and window_end (trigger form or run conf), e.g. "
                '{"window_start": "2025-01-01T00:00:00Z", "window_end": "2025-01-02T00:00:00Z"}'
            )
        return _Window("", "")


def last_cron_period(crontab: str, zone: str, moment: datetime) -> tuple[datetime, datetime]:
    """The last complete period of ``crontab`` (in time zone ``zone``) ending at or before
    ``moment``: what Airflow's ``infer_manual_data_interval`` gives a manual run."""
    from zoneinfo import ZoneInfo  # noqa: PLC0415

    from croniter import croniter  # noqa: PLC0415  (an Airflow dependency)

    local = moment.astimezone(ZoneInfo(zone))
    on_boundary = local.second == 0 and local.microsecond == 0 and croniter.match(crontab, local)
    end = local if on_boundary else croniter(crontab, local).get_prev(datetime)
    start = croniter(crontab, end).get_prev(datetime)
    return start.astimezone(timezone.utc), end.astimezone(timezone.utc)


# --------------------------------------------------------------------------------------------
# One task -> one DAG
# --------------------------------------------------------------------------------------------


def _params(chunk_rows: int, windowed: bool, manual: bool) -> dict[str, Param]:
    if not windowed:
        when = ("This task loads incrementally; give a window to reload that period instead "
                "(its stored rows are made equal to the source's). ")
    elif manual:
        when = "Required: this task has no schedule and its URL needs a window. "
    else:
        when = "Leave empty for the run's own data interval. "
    window = {"type": ["null", "string"], "format": "date-time", "pattern": ISO_DATETIME_PATTERN}
    return {
        "window_start": Param(None, title="Window start",
                              description=when + "Start of the period to (re)load, ISO 8601 "
                                                 "(UTC unless an offset is given).", **window),
        "window_end": Param(None, title="Window end",
                            description=when + "End of the period to (re)load, ISO 8601.",
                            **window),
        "dry_run": Param(False, type="boolean", title="Dry run",
                         description="Fetch, parse and compare, but write nothing to HydroServer."),
        "chunk_rows": Param(chunk_rows, type="integer", minimum=1, title="Rows per request",
                            description="Observations sent to HydroServer per request."),
    }


def _md(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _doc_md(task: Any, source: str | None, dag_id: str, conn_id: str) -> str:
    connection = task.data_connection
    payload = connection.payload.type
    lines = [f"### {task.name}", ""]
    if task.description:
        lines += [task.description, ""]
    lines += [
        f"- **Definition file:** `{source}`" if source else "- **Definition file:** (in code)",
        f"- **Data connection:** {connection.name} ({payload})",
        _source_line(task),
        f"- **Schedule:** {_schedule_text(task.schedule)}"
        + (f", from {task.schedule.start_time.isoformat()}" if task.schedule.start_time else ""),
        f"- **HydroServer connection:** `{conn_id}`",
    ]
    if connection.placeholder_variables:
        lines += ["", "| Placeholder | Type | Value |", "| --- | --- | --- |"]
        for variable in connection.placeholder_variables:
            if variable.variable_type == "per_task":
                value = f"`{_md(task.task_variables.get(variable.name, ''))}`"
            else:
                value = (f"format `{_md(variable.timestamp_format)}`"
                         if variable.timestamp_format else "ISO 8601 UTC")
            lines.append(f"| `{{{_md(variable.name)}}}` | {variable.variable_type} | {value} |")
    lines += ["", "| Source identifier | Target datastream |", "| --- | --- |"]
    lines += [f"| `{_md(m.source_identifier)}` | `{_md(m.target_datastream_id)}` |"
              for m in task.mappings]
    if connection.uses_window:
        lines += ["", "Each run loads its data interval; trigger with `window_start` and "
                      "`window_end` to reload another period."]
    else:
        lines += ["", "Each run loads what is newer than what HydroServer already holds; "
                      "trigger with `window_start` and `window_end` (or backfill) to reload a "
                      "period."]
    lines += ["", f"DAG id `{dag_id}`, task `{INGEST_TASK_ID}`."]
    return "\n".join(lines) + "\n"


def _tags(task: Any, settings: _Settings) -> list[str]:
    connection = task.data_connection
    tags = ["hydroserver", connection.payload.type, connection.name[:_MAX_TAG]]
    if connection.workspace_id:
        tags.append(f"workspace:{connection.workspace_id}"[:_MAX_TAG])
    tags.extend(settings.extra_tags)
    return list(dict.fromkeys(tags))


def _description(task: Any) -> str:
    if task.description:
        return task.description
    count = len(task.mappings)
    return (f"{task.data_connection.name} -> {count} datastream{'s' if count != 1 else ''}, "
            f"{_schedule_text(task.schedule).replace('`', '')}")


def _prepare(task: Task, source: str | None) -> tuple[_Settings | None, list[DefinitionError]]:
    """The task's settings, or None and every problem :func:`build_dag` would reject."""
    location = _location(source, task.name)
    settings, errors = _settings(task.airflow, location)
    if settings is not None and settings.dag.get("catchup") and task.schedule.start_time is None:
        errors.append(DefinitionError(
            "catchup needs the task's start_time, where the backfill begins", location=location,
            field="airflow.catchup", expected="a start_time with catchup: true", found=True))
    return (None, errors) if errors else (settings, [])


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
        import inspect  # noqa: PLC0415

        from .compat import airflow_conf  # noqa: PLC0415

        accepted = inspect.signature(DAG.__init__).parameters
        _config_defaults_cache = {
            name: getattr(airflow_conf, getter)(section, key)
            for name, (section, key, getter) in _CONFIG_DEFAULTS.items() if name in accepted}
    return _config_defaults_cache


def build_dag(task: Task, *, source: str | None = None, dag_id: str | None = None) -> DAG:
    """The DAG of one validated task; raises :class:`DefinitionErrors` for problems only this
    module can see (Airflow settings, catchup without start_time)."""
    settings, errors = _prepare(task, source)
    if settings is None:
        raise DefinitionErrors(errors)
    from .notifications.dags import add_failure_alert  # noqa: PLC0415
    from .operators.ingest import HydroIngestOperator  # noqa: PLC0415

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
        description=_description(task),
        schedule=_timetable(schedule),
        start_date=schedule.start_time or DEFAULT_START_DATE,
        catchup=dag_settings.get("catchup", False),
        max_active_runs=dag_settings.get("max_active_runs", 1),
        **configured,
        dagrun_timeout=dag_settings.get("dagrun_timeout"),
        is_paused_upon_creation=(not schedule.enabled) if paused is None else paused,
        tags=_tags(task, settings),
        doc_md=_doc_md(task, source, dag_id, settings.hydroserver_conn_id),
        user_defined_macros={"hydroserver_run_window": macro},
        auto_register=False,
    )
    operator_kwargs = settings.operator
    with warnings.catch_warnings():
        if "email" in operator_kwargs:  # 3.3 deprecates task e-mail; the definition asked for it
            warnings.filterwarnings("ignore", message="Setting email", category=Warning)
        _ingest_task(
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
            hydrocron_conn_id=task.airflow.get("hydrocron_conn_id") or None,
            **operator_kwargs,
        )
    # The trigger-form params go on the DAG last, through ParamsDict.__setitem__, on purpose:
    # * DAG(params=...) validates every default with jsonschema.validate(), which re-checks the
    #   schema against the JSON-schema meta-schema each time: most of the cost of a DAG
    #   (measured: 1.7 ms -> 0.3 ms per DAG). These defaults are constants, checked by the tests.
    # * an operator created after them would deep-copy them into task.params; at run time Airflow
    #   merges dag.params, task.params and the run's conf (process_params) and validates that.
    for name, param in _params(settings.chunk_rows, windowed, schedule.is_manual).items():
        dag.params[name] = param
    add_failure_alert(dag, task)
    return dag


# --------------------------------------------------------------------------------------------
# Hydrocron: one DAG fanning out over many features
# --------------------------------------------------------------------------------------------

FAN_OUT_CONCURRENCY = 4
"""Mapped Hydrocron instances running at once when the task sets no ``max_active_tasks``."""

MAP_INDEX_TEMPLATE = "{{ task.feature_id }}"
"""How a mapped instance is labelled in the UI: its feature id."""


def fan_out_features(task: Task) -> tuple[str, ...]:
    """The features a Hydrocron task fans out over, one mapped instance each (its mappings name
    them); empty for a task that runs as one instance."""
    if task.data_connection.payload.type != "HYDROCRON":
        return ()
    return task.hydrocron_features


def _ingest_task(operator_class: Any, task: Task, dag_settings: Mapping[str, Any],
                 **kwargs: Any) -> Any:
    """The ingest task: one operator, or one operator mapped over :func:`fan_out_features`."""
    features = fan_out_features(task)
    if not features:
        return operator_class(**kwargs)
    return _hydrocron_fan_out(operator_class, task, features, dag_settings, kwargs)


def fan_out_concurrency(features: int, dag_settings: Mapping[str, Any]) -> int:
    """How many mapped instances run at once: ``max_active_tasks``, else
    :data:`FAN_OUT_CONCURRENCY`, never more than there are features."""
    return max(1, min(features, int(dag_settings.get("max_active_tasks")
                                    or FAN_OUT_CONCURRENCY)))


def _hydrocron_fan_out(operator_class: Any, task: Task, features: tuple[str, ...],
                       dag_settings: Mapping[str, Any], kwargs: dict[str, Any]) -> Any:
    """``ingest`` mapped over the features: each instance loads one feature into its datastreams.

    Hydrocron takes one feature per request, so a fan-out sends many requests; the task's rate
    (the payload's ``requests_per_second``, else the Hydrocron connection's) is for all of them
    together. Airflow runs each mapped instance in its own process, so a limiter cannot be
    shared: at most ``share`` instances run at once (``max_active_tis_per_dag``) and each paces
    itself at ``rate / share`` (``hydrocron_rate_share``, see the operator). Other DAGs using the
    same endpoint are not counted: give them a common pool if that matters.
    """
    from .operators.ingest import datastream_assets  # noqa: PLC0415

    share = fan_out_concurrency(len(features), dag_settings)
    mappings = kwargs.pop("mappings")
    host = kwargs.get("asset_host") or kwargs["hydroserver_conn_id"]
    outlets = kwargs.pop("outlets", None) or datastream_assets(
        host, [m.target_datastream_id for m in mappings])  # declared once, for every instance
    per_feature = [{"feature_id": feature,
                    "mappings": [m.model_dump() for m in mappings if m.feature_id == feature]}
                   for feature in features]
    return operator_class.partial(
        **kwargs, outlets=outlets, hydrocron_rate_share=share, max_active_tis_per_dag=share,
        map_index_template=MAP_INDEX_TEMPLATE,
    ).expand_kwargs(per_feature)


def _source_line(task: Any) -> str:
    connection = task.data_connection
    payload = connection.payload
    if payload.type != "HYDROCRON":
        return f"- **Source URL template:** `{connection.source_url}`"
    features = task.hydrocron_features
    which = (f"{len(features)} {payload.feature} features (one mapped instance each)"
             if features else
             f"{payload.feature} `{payload.feature_id or task.task_variables.get('feature_id')}`")
    return (f"- **Hydrocron:** {which}, fields "
            f"{', '.join(f'`{f}`' for f in payload.fields) or 'as mapped'}, "
            f"{payload.collection_name or 'default collection'}, {payload.mode}, connection "
            f"`{task.airflow.get('hydrocron_conn_id') or payload.hydrocron_conn_id}`")


# --------------------------------------------------------------------------------------------
# Notifications: digest DAGs (see notifications/dags.py)
# --------------------------------------------------------------------------------------------


def _is_digest_dag_id(dag_id: str) -> bool:
    from .notifications.dags import DIGEST_DAG_PREFIX  # noqa: PLC0415

    return dag_id.startswith(DIGEST_DAG_PREFIX)


def _add_digest_dags(result: BuildResult, claims: Mapping[str, list[tuple[Task, str]]],
                     only_dag_id: str | None, build: bool) -> None:
    """One digest DAG per data connection with an enabled ``notification.schedule``, over its
    tasks that got a DAG id of their own."""
    from .notifications.dags import build_digest_dags  # noqa: PLC0415

    tasks = [(claimants[0][0], dag_id, claimants[0][1]) for dag_id, claimants in claims.items()
             if len(claimants) == 1]
    dags, errors = build_digest_dags(tasks, taken=claims, only_dag_id=only_dag_id, build=build)
    result.dags.update(dags)
    result.errors.extend(errors)


# --------------------------------------------------------------------------------------------
# Folders of definition files -> DAGs
# --------------------------------------------------------------------------------------------


@dataclass
class BuildResult:
    """The DAGs built from a folder, by DAG id, and every problem found on the way."""

    dags: dict[str, DAG] = field(default_factory=dict)
    errors: list[DefinitionError] = field(default_factory=list)

    def raise_errors(self) -> None:
        """Raise one :class:`DefinitionErrors` listing every problem, if there is any."""
        if self.errors:
            raise DefinitionErrors(self.errors)


def _location(source: str | None, name: str) -> str:
    return f"{source}: task '{name}'" if source else f"task '{name}'"


def _build_into(result: BuildResult, task: Task, source: str, dag_id: str) -> None:
    try:
        result.dags[dag_id] = build_dag(task, source=source, dag_id=dag_id)
    except DefinitionErrors as exc:
        result.errors.extend(exc.errors)
    except Exception as exc:  # Airflow refused the DAG: report it like a definition problem
        result.errors.append(DefinitionError(
            f"Airflow rejected the DAG: {type(exc).__name__}: {exc}",
            location=_location(source, task.name)))


@contextlib.contextmanager
def _gc_paused():
    """No cyclic garbage collection while a folder is read and its DAGs built.

    Reading YAML and building DAGs allocates millions of small, long-lived objects, and every
    collection of the oldest generation walks all of them again: with 5,000 definitions that is
    half the parse time (measured: 5.9 s -> 3.0 s; a worker's single DAG 1.9 s -> 0.6 s; same
    peak memory). Collection resumes, as before, when the work is done.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def build_dags(folder: str | os.PathLike[str], *, only_dag_id: str | None = None,
               build: bool = True) -> BuildResult:
    """Load every definition file under ``folder`` and build one DAG per valid task.

    Never raises for a definition problem: a broken file, task or setting lands in
    ``result.errors`` (naming file, task and field) and every other task still gets its DAG.
    ``only_dag_id``: build just that DAG (what a worker needs; see :func:`_build_only`).
    ``build=False``: only check -- every problem :func:`build_dag` would report, no DAG objects.
    """
    global _config_defaults_cache
    _config_defaults_cache = None  # the configuration may have changed since the last folder
    with _gc_paused():
        return _build_dags(Path(folder), only_dag_id, build)


def _build_dags(folder: Path, only_dag_id: str | None, build: bool) -> BuildResult:
    if only_dag_id and build and not _is_digest_dag_id(only_dag_id):
        fast = _build_only(folder, only_dag_id)
        if fast is not None:
            return fast
    from .definitions.files import load_definitions  # noqa: PLC0415

    files, errors = load_definitions(folder)
    return build_loaded(files, errors, only_dag_id=only_dag_id, build=build)


def build_loaded(files: list[DefinitionFile], errors: list[DefinitionError] | tuple = (), *,
                 only_dag_id: str | None = None, build: bool = True) -> BuildResult:
    """:func:`build_dags` for definition files already loaded (``load_definitions`` or
    ``load_definition_paths``, with their ``errors``): refuses tasks whose DAG ids collide, then
    builds the rest -- or, with ``build=False``, only collects what :func:`build_dag` would
    refuse (what ``hydroserver-airflow validate`` reports)."""
    result = BuildResult(errors=list(errors))
    claims: dict[str, list[tuple[Task, str]]] = {}
    for loaded in files:
        for task in loaded.tasks:
            dag_id = dag_id_for(task.name, task.airflow.get("dag_id"))
            claims.setdefault(dag_id, []).append((task, loaded.source))
    for dag_id, claimants in claims.items():
        if len(claimants) > 1:  # names differing only in punctuation, or an explicit dag_id
            for task, source in claimants:
                others = "; ".join(f"task '{t.name}' in {s}" for t, s in claimants
                                   if t is not task)
                result.errors.append(DefinitionError(
                    f"another task gets the same DAG id '{dag_id}' (also {others}); neither is "
                    "loaded", location=_location(source, task.name), field="name",
                    expected="a task name (or airflow.dag_id) giving a DAG id used once in the "
                             "folder", found=task.name))
            continue
        if only_dag_id and dag_id != only_dag_id:
            continue
        task, source = claimants[0]
        if build:
            _build_into(result, task, source, dag_id)
        else:
            result.errors.extend(_prepare(task, source)[1])
    _add_digest_dags(result, claims, only_dag_id, build)
    return result


def _raw_dag_id(raw_task: Mapping[str, Any]) -> str | None:
    block = raw_task.get("airflow")
    explicit = block.get("dag_id") if isinstance(block, dict) else None
    if isinstance(explicit, str) and explicit:
        return explicit
    name = raw_task.get("name")
    return dag_id_for(name) if isinstance(name, str) and name.strip() else None


def _raw_keys(raw_task: Mapping[str, Any]) -> set[tuple[str, str]]:
    """What a task could conflict on across the folder (name, id, target datastreams, DAG id),
    read from the raw document; a superset of what the loader compares, never less."""
    from .definitions import MAPPING_KEYS  # noqa: PLC0415

    keys: set[tuple[str, str]] = set()
    name = raw_task.get("name")
    if isinstance(name, str):
        keys.add(("name", " ".join(name.split()).casefold()))
    if raw_task.get("id") is not None:
        keys.add(("id", str(raw_task["id"]).strip().lower()))
    dag_id = _raw_dag_id(raw_task)
    if dag_id:
        keys.add(("dag_id", dag_id))
    mappings = raw_task.get("mappings")
    for mapping in mappings if isinstance(mappings, list) else ():
        if not isinstance(mapping, dict):
            continue
        for key, value in mapping.items():
            if MAPPING_KEYS.get(key) in ("target_datastream_id", "target_datastream"):
                value = value.get("id") if isinstance(value, dict) else value
                if value is not None:
                    keys.add(("target", str(value).strip().lower()))
    return keys


def _connection_subset(raw: Mapping[str, Any], raw_task: Mapping[str, Any]) -> dict:
    """The file reduced to one task and the data connection it names (all of them when the
    reference matches none, so the loader's message lists them)."""
    reduced = {**raw, "tasks": [raw_task]}
    reference = next((raw_task[k] for k in ("data_connection", "dataConnection",
                                            "data_connection_id", "dataConnectionId")
                      if k in raw_task), None)
    for key in ("data_connections", "dataConnections"):
        connections = raw.get(key)
        if not isinstance(reference, str) or not isinstance(connections, list):
            continue
        wanted = reference.strip().lower()
        named = [c for c in connections if isinstance(c, dict) and (
            c.get("name") == reference or str(c.get("id", "")).strip().lower() == wanted)]
        if named:
            reduced[key] = named
    return reduced


def _build_only(folder: Path, wanted: str) -> BuildResult | None:
    """A worker's fast path: read every definition file, but validate and build only the task
    whose DAG id is ``wanted`` (with its file's defaults and its data connection).

    Returns None -- the caller then does the full load -- unless exactly one task claims the id
    and nothing it could conflict on (name, HydroServer id, target datastream, DAG id) appears in
    any other task: then the full load would have accepted or refused it exactly like this.
    """
    from .definitions.files import _read_file, definition_paths, parse_definitions  # noqa: PLC0415

    if not folder.is_dir():
        return None
    documents = []
    for path in definition_paths(folder):
        data, error = _read_file(path)
        if error is None and data is not None:
            if not isinstance(data, dict) or not isinstance(data.get("tasks", []), list):
                return None
            documents.append((path, data))
    target = None
    seen: dict[tuple[str, str], int] = {}
    for path, data in documents:
        for raw_task in data.get("tasks") or ():
            if not isinstance(raw_task, dict):
                continue
            if _raw_dag_id(raw_task) == wanted:
                if target is not None:
                    return None
                target = (path, data, raw_task)
            for key in _raw_keys(raw_task):
                seen[key] = seen.get(key, 0) + 1
    result = BuildResult()
    if target is None:
        return result
    path, data, raw_task = target
    if any(seen[key] > 1 for key in _raw_keys(raw_task)):
        return None
    source = str(path)
    loaded = parse_definitions(_connection_subset(data, raw_task), source)
    result.errors.extend(loaded.errors)
    for task in loaded.tasks:
        _build_into(result, task, source, wanted)
    return result


def register_dags(namespace: MutableMapping[str, Any],
                  folder: str | os.PathLike[str] | None = None) -> BuildResult:
    """Build the DAGs of a definitions folder into a DAG file's ``globals()``.

    ``folder`` defaults to ``$HYDROSERVER_DEFINITIONS_DIR``, else ``definitions/`` next to the
    DAG file. Definition problems are logged, not raised (see the module docstring: a raised
    error would stop every DAG of the file); :func:`raise_definition_errors` reports them.
    """
    where = definitions_folder(folder, namespace.get("__file__"))
    result = build_dags(where, only_dag_id=get_parsing_context().dag_id)
    for error in result.errors:
        log.warning("HydroServer definition not loaded: %s", error)
    namespace.update(result.dags)
    return result


def raise_definition_errors(folder: str | os.PathLike[str] | None = None, *,
                            dag_file: str | os.PathLike[str] | None = None) -> None:
    """Raise one :class:`DefinitionErrors` naming every broken definition (file, task, field).

    Called from a DAG file that defines no DAG, so the dag-processor shows the problems as that
    file's import error without disturbing the DAGs built by :func:`register_dags`.
    """
    if get_parsing_context().dag_id:  # a worker loading some DAG: nothing to report from here
        return
    build_dags(definitions_folder(folder, dag_file), build=False).raise_errors()
