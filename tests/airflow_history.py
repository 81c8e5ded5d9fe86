"""Session fixture ``airflow_history``: a real Airflow API server with a known run history.

The ingestion DAG file and a definitions folder (three tasks of one data connection with a
digest) are parsed into a fresh SQLite database; runs with chosen states, start and end times and
summary XComs are written into it; ``airflow api-server`` then answers the REST API on
127.0.0.1. Used by the ``runs`` / ``trigger`` command tests and the digest tests. Times are
relative to the fixture's ``now`` so "behind schedule" is meaningful.
"""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

DEFINITIONS = """
data_connections:
  - name: River API
    source_url: http://127.0.0.1:9/api/{site}.json?from={start}&to={end}
    payload_type: JSON
    jmespath: "data.records[*]"
    timestamp_key: time
    placeholder_variables:
      - {name: site, variable_type: per_task}
      - {name: start, variable_type: window_start}
      - {name: end, variable_type: window_end}
    notification:
      recipient_emails: [ops@example.org, hydro@example.org]
      schedule: {interval: 6, interval_period: hours}
tasks:
  - name: River 1
    data_connection: River API
    task_variables: {site: "1"}
    mappings:
      - {source_identifier: values.discharge, target_datastream_id: 0e000000-0000-4000-8000-000000000001}
      - {source_identifier: values.gage_height, target_datastream_id: 0e000000-0000-4000-8000-000000000002}
    interval: 1
    interval_period: hours
  - name: River 2
    data_connection: River API
    task_variables: {site: "2"}
    mappings:
      - {source_identifier: values.discharge, target_datastream_id: 0e000000-0000-4000-8000-000000000003}
    crontab: "0 */6 * * *"
  - name: Manual reload
    data_connection: River API
    task_variables: {site: "3"}
    mappings:
      - {source_identifier: values.discharge, target_datastream_id: 0e000000-0000-4000-8000-000000000004}
"""

DISCHARGE = "0e000000-0000-4000-8000-000000000001"
GAGE = "0e000000-0000-4000-8000-000000000002"
RIVER2 = "0e000000-0000-4000-8000-000000000003"


def _ds(datastream_id: str, name: str, loaded: int, *, skipped: int = 0,
        dropped: dict | None = None, error: str | None = None) -> dict:
    dropped = dropped or {}
    return {"datastream_id": datastream_id, "name": name, "source_identifier": name,
            "status": "FAILURE" if error else "SUCCESS", "loaded": loaded, "skipped": skipped,
            "skipped_reasons": {"already_loaded": skipped} if skipped else {},
            "dropped": dropped, "dropped_total": sum(dropped.values()), "error": error}


def _summary(status: str, message: str, *datastreams: dict) -> dict:
    return {"status": status, "message": message, "mode": "windowed", "rows_read": 4,
            "loaded": sum(d["loaded"] for d in datastreams), "datastreams": list(datastreams)}


@dataclass
class History:
    """The running server, its credentials and the facts the seeded runs were made of."""

    airflow: object  # LocalAirflow
    now: datetime
    url: str
    password: str

    def api(self):
        return self.airflow.api()

    def at(self, hours: float) -> datetime:
        """``now`` minus ``hours``."""
        return self.now - timedelta(hours=hours)


def _runs(now: datetime) -> list[dict]:
    def iso(hours_ago: float | None) -> str | None:
        return None if hours_ago is None else (now - timedelta(hours=hours_ago)).isoformat()

    def run(dag_id: str, run_id: str, state: str, start: float | None, end: float | None,
            ti_state: str | None, xcom: dict | None = None, **extra) -> dict:
        return {"dag_id": dag_id, "run_id": run_id, "state": state, "start": iso(start),
                "end": iso(end), "task_id": "ingest", "ti_state": ti_state, "xcom": xcom or {},
                **extra}

    river1, river2, manual = ("hydroserver_river_1", "hydroserver_river_2",
                              "hydroserver_manual_reload")
    return [
        run(river1, "scheduled__r1", "success", 5.0, 4.95, "success", {"return_value": _summary(
            "SUCCESS", "Loaded 6 observations into 2 datastreams.",
            _ds(DISCHARGE, "Discharge", 3), _ds(GAGE, "Gage height", 3))},
            interval_start=iso(6.0), interval_end=iso(5.0)),
        run(river1, "scheduled__r2", "failed", 4.0, 3.9, "failed", {"summary": _summary(
            "FAILURE", "1 of 2 datastreams failed (Gage height: HydroServer answered 500). "
                       "Loaded 2 observations into 1 datastream.",
            _ds(DISCHARGE, "Discharge", 2),
            _ds(GAGE, "Gage height", 0, error="HydroServer answered 500"))},
            interval_start=iso(5.0), interval_end=iso(4.0)),
        run(river1, "scheduled__r3", "success", 3.0, 2.95, "success", {"return_value": _summary(
            "SUCCESS", "Loaded 8 observations into 2 datastreams.",
            _ds(DISCHARGE, "Discharge", 4, skipped=1, dropped={"not_a_number": 2}),
            _ds(GAGE, "Gage height", 4))},
            interval_start=iso(4.0), interval_end=iso(3.0)),
        run(river1, "scheduled__r4", "running", 0.2, None, "up_for_retry", {"summary": _summary(
            "FAILURE", "the source answered 503 Service Unavailable")}, try_number=1,
            interval_start=iso(1.2), interval_end=iso(0.2)),
        run(river1, "manual__r5", "queued", None, None, None, run_type="manual"),
        run(river2, "scheduled__s1", "success", 1.0, 0.9, "success", {"return_value": _summary(
            "SUCCESS", "Loaded 5 observations into 1 datastream.",
            _ds(RIVER2, "Discharge 2", 5))},
            interval_start=iso(7.0), interval_end=iso(1.0)),
        # its URL needs a window and it has no schedule: Airflow refuses a run without one
        run(manual, "manual__m1", "failed", 2.0, 1.99, "failed", None, run_type="manual",
            conf={"window_start": iso(30.0), "window_end": iso(6.0)}),
    ]


@pytest.fixture(scope="session")
def airflow_history(tmp_path_factory) -> Iterator[History]:
    from hydroserver_provider.testing.airflow import LocalAirflow, seed_runs

    root = tmp_path_factory.mktemp("airflow-history")
    dags = root / "dags"
    (dags / "definitions").mkdir(parents=True)
    shutil.copy(REPO / "dags" / "hydroserver_ingestion.py", dags)
    (dags / "definitions" / "history.yaml").write_text(textwrap.dedent(DEFINITIONS))
    now = datetime.now(UTC).replace(microsecond=0)
    airflow = LocalAirflow(root / "home", dags, password="history-secret-pw",
                           env={"HYDROSERVER_DEFINITIONS_DIR": str(dags / "definitions")})
    airflow.migrate()
    try:
        airflow.start("api-server")
        seed_runs(airflow, _runs(now))
        airflow.wait_healthy()
        yield History(airflow, now, airflow.url, airflow.password)
    finally:
        airflow.stop()
        assert airflow.leftover_processes() == []
