"""The Airflow side of the demo, run as ``python -m hydroserver_provider.demo_runner LOG_FILE``.

A separate process so that Airflow's configuration comes only from the environment the demo
gives it (a throwaway ``AIRFLOW_HOME``, the repository's ``dags/``, the local HydroServer's
connection), and so that all of Airflow's logging lands in ``LOG_FILE`` instead of the demo's
table. It migrates the SQLite metadata database, parses the DAG folder once, then runs one DAG
run per request with ``dag.test()`` -- the same DAG objects, operator and connection lookup a
scheduler-driven run uses, minus the scheduler. In one process only the first run pays for the
in-process execution API (about 5 s); later runs take well under a second, where
``airflow dags test`` pays the whole start-up (about 12 s) for every run.

Protocol (one JSON object per line): after start-up it writes ``{"ready": {"dag_ids": {task
name: DAG id}, "import_errors": {...}}}``; then for each ``{"dag_id": ..., "logical_date": ...}``
read from stdin it answers ``{"run": {...}}`` (state, data interval, the run summary from XCom).
It exits at the end of stdin. A problem it cannot go on from is answered ``{"error": ...}``.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from hydroserver_provider.timestamps import parse_instant


def _send(channel: IO[str], message: dict[str, Any]) -> None:
    channel.write(json.dumps(message, default=str) + "\n")
    channel.flush()


def _redirect_output(log_path: str) -> IO[str]:
    """Point file descriptors 1 and 2 at the log file; returns a private copy of the old stdout."""
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    return channel


def _start_airflow() -> Any:
    """Migrate the metadata database and parse the DAG folder; returns the DagBag."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils import db

    db.upgradedb()
    return DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])


def _dag_ids() -> dict[str, str]:
    """Task name -> the DAG id the factory gives it (an ``airflow: {dag_id}`` included)."""
    from hydroserver_provider.definitions.files import load_definitions
    from hydroserver_provider.factory import dag_id_for, definitions_folder

    dag_file = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / "hydroserver_ingestion.py"
    files, _ = load_definitions(definitions_folder(dag_file=dag_file))
    return {task.name: dag_id_for(task.name, task.airflow.dag_id)
            for loaded in files for task in loaded.tasks}


def _summaries(dag_id: str, run_id: str) -> dict[str, Any]:
    """The ingest task's XComs of one run: ``return_value``, or ``summary`` when it failed."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        # Airflow annotates get_many() as Select[tuple[XComModel]], SQLAlchemy 2.0's spelling,
        # which SQLAlchemy 2.1 reads as a select of tuples: the rows are XComModel objects.
        rows: Sequence[XComModel] = session.scalars(  # type: ignore[assignment]
            XComModel.get_many(run_id=run_id, dag_ids=dag_id)).all()
        return {row.key: XComModel.deserialize_value(row) for row in rows}


def _run(bag: Any, dag_id: str, logical_date: str) -> dict[str, Any]:

    dag = bag.get_dag(dag_id)
    if dag is None:
        problems = "; ".join(f"{path}: {error}" for path, error in bag.import_errors.items())
        return {"dag_id": dag_id, "state": "missing",
                "error": f"Airflow has no DAG '{dag_id}' (DAGs: {', '.join(sorted(bag.dag_ids))})"
                         + (f"; import errors: {problems}" if problems else "")}
    # The definitions retry after 60 s and more; a demo shows a failure at once instead.
    for task in dag.tasks:
        task.retries = 0
    run = dag.test(logical_date=parse_instant(logical_date))
    xcoms = _summaries(dag_id, run.run_id)
    tis = run.get_task_instances()
    return {
        "dag_id": dag_id,
        "run_id": run.run_id,
        "state": str(getattr(run.state, "value", run.state)),
        "data_interval": [run.data_interval_start, run.data_interval_end],
        "tasks": {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in tis},
        "summary": xcoms.get("return_value") or xcoms.get("summary"),
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m hydroserver_provider.demo_runner LOG_FILE", file=sys.stderr)
        return 2
    channel = _redirect_output(args[0])
    try:
        bag = _start_airflow()
        _send(channel, {"ready": {"dag_ids": _dag_ids(),
                                  "import_errors": {str(k): str(v)
                                                    for k, v in bag.import_errors.items()}}})
        for line in sys.stdin:
            if not line.strip():
                continue
            request = json.loads(line)
            try:
                result = _run(bag, request["dag_id"], request["logical_date"])
            except Exception:  # a broken run is reported; the next one may still work
                traceback.print_exc()
                result = {"state": "error", "error": traceback.format_exc(limit=3)}
            _send(channel, {"run": result})
    except Exception:
        traceback.print_exc()
        _send(channel, {"error": traceback.format_exc()})
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    return 0


if __name__ == "__main__":
    exit_code = main()
    # Everything is committed and reported; skip the interpreter's shutdown, where Airflow's
    # exit handlers and in-process API threads spend about 4 s for nothing.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_code)
