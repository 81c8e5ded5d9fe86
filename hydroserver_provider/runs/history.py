"""HydroServer's task runs, read from Airflow: status, message, result, started/finished times.

HydroServer records each run of a task as ``{id, status, message, result, started_at,
finished_at}`` with status PENDING, STARTED, SUCCESS or FAILURE. Here a task is an Airflow DAG
and a run is a DAG run, so the same record is built from Airflow's answers:

======================  ====================================================================
HydroServer             Airflow
======================  ====================================================================
``id``                  the DAG run id (``scheduled__...``, ``manual__...``)
``status``              DAG run state: queued -> PENDING, running -> STARTED (also while a
                        failed try waits for its retry), success -> SUCCESS, failed -> FAILURE
``message``             ``message`` of the run summary in XCom (``return_value`` of the
                        ``ingest`` task on success, ``summary`` on failure)
``result``              that whole summary (loaded, skipped, dropped per datastream, window...)
``started_at``          the DAG run's ``start_date``
``finished_at``         the DAG run's ``end_date``
======================  ====================================================================

A failure that happened before any summary existed (the source answered 404, a connection is
missing) still has one: the failure alert records the error message under ``summary``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hydroserver_provider.errors import HydroServerProviderError
from hydroserver_provider.runs.api import AirflowAPI, AirflowAPIError
from hydroserver_provider.timestamps import parse_instant

__all__ = [
    "INGEST_TASK_ID",
    "STATUSES",
    "STATUS_BY_STATE",
    "TaskRun",
    "airflow_states",
    "get_run",
    "list_runs",
    "read_summary",
    "resolve_dag_id",
    "task_run",
]

INGEST_TASK_ID = "ingest"
STATUSES = ("PENDING", "STARTED", "SUCCESS", "FAILURE")
STATUS_BY_STATE = {"queued": "PENDING", "running": "STARTED", "success": "SUCCESS",
                   "failed": "FAILURE"}
_DEFAULT_MESSAGES = {
    "PENDING": "Queued.",
    "STARTED": "Running.",
    "SUCCESS": "Succeeded.",
    "FAILURE": "Failed (no run summary was recorded; see the task log).",
}


def airflow_states(status: str) -> list[str]:
    """The Airflow DAG run states of a HydroServer status (``FAILURE`` -> ``["failed"]``)."""
    wanted = status.strip().upper()
    states = [state for state, mapped in STATUS_BY_STATE.items() if mapped == wanted]
    if not states:
        raise ValueError(f"unknown run status {status!r}: expected one of {', '.join(STATUSES)}")
    return states


@dataclass(frozen=True)
class TaskRun:
    """One run, as HydroServer describes it (plus the Airflow facts it came from)."""

    id: str
    dag_id: str
    status: str
    message: str
    result: dict | None
    started_at: datetime | None
    finished_at: datetime | None
    airflow_state: str
    run_type: str | None = None
    queued_at: datetime | None = None
    conf: dict | None = None

    def as_dict(self) -> dict[str, Any]:
        def when(moment: datetime | None) -> str | None:
            return moment.isoformat().replace("+00:00", "Z") if moment else None

        return {
            "id": self.id, "dag_id": self.dag_id, "status": self.status, "message": self.message,
            "result": self.result, "started_at": when(self.started_at),
            "finished_at": when(self.finished_at), "airflow_state": self.airflow_state,
            "run_type": self.run_type, "queued_at": when(self.queued_at), "conf": self.conf,
        }


def task_run(dag_run: dict, summary: dict | None, message: str | None = None) -> TaskRun:
    """The HydroServer run record of one Airflow DAG run and its summary (if any)."""
    state = str(dag_run.get("state") or "queued")
    status = STATUS_BY_STATE.get(state, "PENDING")
    if isinstance(summary, dict) and summary.get("message"):
        message = str(summary["message"])
    return TaskRun(
        id=dag_run["dag_run_id"], dag_id=dag_run["dag_id"], status=status,
        message=message or _DEFAULT_MESSAGES[status],
        result=summary if isinstance(summary, dict) else None,
        started_at=parse_instant(dag_run.get("start_date")),
        finished_at=parse_instant(dag_run.get("end_date")),
        airflow_state=state, run_type=dag_run.get("run_type"),
        queued_at=parse_instant(dag_run.get("queued_at")), conf=dag_run.get("conf") or None,
    )


def read_summary(api: AirflowAPI, dag_id: str, run_id: str, state: str,
                 task_id: str = INGEST_TASK_ID) -> tuple[dict | None, str | None]:
    """The run summary a finished run left in XCom, and for a running one a note on its
    current try (``(None, "Waiting to retry after try 1 failed: ...")``)."""
    if state == "success":
        return _as_summary(api.xcom(dag_id, run_id, task_id, "return_value")), None
    if state == "failed":
        return _as_summary(api.xcom(dag_id, run_id, task_id, "summary")), None
    if state == "running":
        ti = api.task_instance(dag_id, run_id, task_id)
        if ti and ti.get("state") == "up_for_retry":
            failed = _as_summary(api.xcom(dag_id, run_id, task_id, "summary"))
            reason = f": {failed['message']}" if failed and failed.get("message") else ""
            return None, f"Waiting to retry after try {ti.get('try_number')} failed{reason}"
    return None, None


def _as_summary(value: Any) -> dict | None:
    return value if isinstance(value, dict) else None


def list_runs(api: AirflowAPI, dag_id: str, *, status: str | None = None,
              since: datetime | None = None, until: datetime | None = None,
              limit: int | None = None, task_id: str = INGEST_TASK_ID) -> list[TaskRun]:
    """Runs of a task, newest first: ``status`` (PENDING/STARTED/SUCCESS/FAILURE), started at or
    after ``since`` and before ``until``, at most ``limit``. Runs still queued (not started)
    come first, as the newest."""
    states = airflow_states(status) if status else ()
    ranged = since is not None or until is not None
    pages = api.iter_dag_runs(dag_id, states=states, start_date_gte=since, start_date_lt=until,
                              order_by="-start_date", limit=None if ranged else limit)
    runs: list[TaskRun] = []
    for dag_run in pages:
        if limit is not None and len(runs) >= limit:
            break
        if ranged and not _started_within(dag_run, since, until):
            continue  # the API also lists runs that have not started
        summary, note = read_summary(api, dag_id, dag_run["dag_run_id"],
                                     str(dag_run.get("state")), task_id)
        runs.append(task_run(dag_run, summary, note))
    far_future = datetime.max.replace(tzinfo=UTC)
    runs.sort(key=lambda r: r.started_at or far_future, reverse=True)
    return runs


def _started_within(dag_run: dict, since: datetime | None, until: datetime | None) -> bool:
    started = parse_instant(dag_run.get("start_date"))
    return started is not None and (since is None or started >= since) and (
        until is None or started < until)


def get_run(api: AirflowAPI, dag_id: str, run_id: str,
            task_id: str = INGEST_TASK_ID) -> TaskRun | None:
    dag_run = api.dag_run(dag_id, run_id)
    if dag_run is None:
        return None
    summary, note = read_summary(api, dag_id, run_id, str(dag_run.get("state")), task_id)
    return task_run(dag_run, summary, note)


def resolve_dag_id(api: AirflowAPI, task: str) -> str:
    """The DAG id of a task given by DAG id or by the task's name (its DAG's display name).

    Asks Airflow rather than recomputing the id from the name, so a task with its own
    ``airflow.dag_id`` is found too (and the command line never imports Airflow itself).
    """
    if api.dag(task) is not None:
        return task
    try:
        named = [d for d in api.dags(display_name_pattern=task)
                 if d.get("dag_display_name") == task]
    except AirflowAPIError:
        named = []
    if len(named) == 1:
        return named[0]["dag_id"]
    if len(named) > 1:
        ids = ", ".join(sorted(d["dag_id"] for d in named))
        raise HydroServerProviderError(f"several DAGs are named '{task}' ({ids}): give the "
                                       "DAG id")
    raise HydroServerProviderError(
        f"no DAG for task '{task}' in Airflow at {api.url} (no DAG has this id or this name); "
        "is the definition deployed and its DAG file parsed?")
