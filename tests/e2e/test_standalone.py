"""The whole product on a running Airflow: ``airflow standalone`` schedules and runs real DAGs.

Scheduler, dag-processor, api-server and triggerer (LocalExecutor, SQLite) in a temporary
AIRFLOW_HOME, with the shipped DAG files and definitions pointing at a local HydroServer, local
station sources and a local SMTP server. The test

* unpauses a catch-up DAG (created paused) and lets the scheduler run its 15-minute intervals
  since a start half an hour ago (real scheduled runs, each loading its window, the first one
  *at* the start time, loading the 15 minutes ending there);
* triggers a task with ``enabled: false``: its DAG shows "disabled (every hour)", has no next
  scheduled run, and its manual run starts at once and loads the schedule's last hour;
* triggers a manual-only task through the REST API with a trigger-form (Params) override of its
  window, using ``hydroserver-airflow trigger --wait``;
* triggers a task whose source answers 404 (no retries) and receives its failure e-mail;
* triggers the data connection's digest DAG and receives the digest of those runs;
* reads the run history back with ``hydroserver-airflow runs``;
* checks the scheduler starts a DAG scheduled on the river's datastream asset
  (``hydroserver://<host>/datastreams/<id>``) after the river run loaded rows, with the event's
  ``extra``, and none for the broken task's datastream;
* checks HydroServer holds exactly the observations of the loaded windows;

and ends every process it started (process group, then anything with its AIRFLOW_HOME).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hydroserver_provider.testing import stations
from hydroserver_provider.testing.airflow import LocalAirflow
from hydroserver_provider.testing.smtp import LocalSmtpServer
from hydroserver_provider.testing.sources import LocalSourceServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

UTC = UTC
REPO = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "hydroserver-airflow")
LOGGER_DAG = "hydroserver_e2e_logger"
RIVER_DAG = "hydroserver_e2e_river"
BROKEN_DAG = "hydroserver_e2e_broken"
DISABLED_DAG = "hydroserver_e2e_disabled_river"
DIGEST_DAG = "hydroserver_digest_e2e_logger_csv"
STEP = timedelta(minutes=15)
ON_DISCHARGE, ON_STAGE = "e2e_on_discharge", "e2e_on_stage"

CONSUMERS = '''
"""DAGs (airflow dag) scheduled on HydroServer datastream assets."""
import json
from pathlib import Path

from airflow.sdk import DAG, Asset, task


def consumer(dag_id, uri, out):
    asset = Asset(uri)
    with DAG(dag_id, schedule=[asset], is_paused_upon_creation=False) as dag:
        @task(inlets=[asset])
        def read(*, inlet_events=None):
            Path(out).write_text(json.dumps(inlet_events[asset][-1].extra))
        read()
    return dag


{on_discharge} = consumer({on_discharge!r}, {discharge!r}, {out!r})
{on_stage} = consumer({on_stage!r}, {stage!r}, {out!r} + ".stage")
'''

DEFINITIONS = """
defaults:
  retries: 0

data_connections:
  - name: E2E logger CSV
    source_url: {source}/stations/42/logger.csv?start={{start}}&end={{end}}
    payload_type: CSV
    timestamp_key: Date Time
    timestamp_format: "%Y-%m-%d %H:%M:%S"
    timezone_type: iana
    timezone: America/Denver
    header_row: 1
    data_start_row: 3
    placeholder_variables:
      - {{name: start, variable_type: window_start, timestamp_format: "%Y-%m-%dT%H:%M:%S"}}
      - {{name: end, variable_type: window_end, timestamp_format: "%Y-%m-%dT%H:%M:%S"}}
    notification:
      recipient_emails: [ops@example.org, hydro@example.org]
      schedule: {{interval: 1, interval_period: days}}

  - name: E2E river API
    source_url: {source}/api/sites/09380000/observations.json?from={{from}}&to={{to}}
    payload_type: JSON
    jmespath: "data.records[*]"
    timestamp_key: time
    placeholder_variables:
      - {{name: from, variable_type: window_start, timestamp_format: "%Y-%m-%dT%H:%M:%SZ"}}
      - {{name: to, variable_type: window_end, timestamp_format: "%Y-%m-%dT%H:%M:%SZ"}}

  - name: E2E broken feed
    source_url: {source}/retired/feed.csv
    payload_type: CSV
    timestamp_key: timestamp
    notification:
      recipient_emails: [alerts@example.org]

tasks:
  - name: E2E logger
    data_connection: E2E logger CSV
    mappings:
      - {{source_identifier: Water Level, target_datastream_id: {level}}}
      - {{source_identifier: Water Temp, target_datastream_id: {temperature}}}
    interval: 15
    interval_period: minutes
    start_time: {start_time}
    airflow: {{catchup: true, is_paused_upon_creation: true}}

  - name: E2E disabled river
    data_connection: E2E river API
    mappings:
      - {{source_identifier: values.discharge, target_datastream_id: {disabled_discharge}}}
    interval: 1
    interval_period: hours
    enabled: false

  - name: E2E river
    data_connection: E2E river API
    mappings:
      - {{source_identifier: values.discharge, target_datastream_id: {discharge}}}

  - name: E2E broken
    data_connection: E2E broken feed
    mappings:
      - {{source_identifier: stage, target_datastream_id: {stage}}}
"""


def _logger(query: dict[str, str]):
    start = stations.parse_query_time(query.get("start"), stations.DENVER)
    end = stations.parse_query_time(query.get("end"), stations.DENVER)
    if start is None or end is None:
        return 400, "start and end are required"
    return stations.logger_csv(start, end)


def _river(query: dict[str, str]):
    start, end = stations.parse_query_time(query.get("from")), stations.parse_query_time(
        query.get("to"))
    if start is None or end is None:
        return 400, '{"error": "from and to are required"}'
    return stations.api_json(start, end)


def _wait(what: str, check, timeout: float, airflow: LocalAirflow, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n"
                                 + airflow.log_tail(6000))
        time.sleep(every)


def _finished_runs(api, dag_id: str) -> list[dict]:
    return [r for r in api.dag_runs(dag_id, order_by="start_date")
            if r["state"] in ("success", "failed")]


def _cli(airflow: LocalAirflow, *args: str, **popen) -> subprocess.Popen:
    env = {**os.environ, "AIRFLOW_API_URL": airflow.url, "AIRFLOW_USERNAME": "admin",
           "AIRFLOW_PASSWORD": airflow.password}
    return subprocess.Popen([CLI, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)


def _cli_output(process: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def test_scheduled_manual_failed_runs_alerts_digest_and_history(tmp_path, local_hydroserver):
    began = time.monotonic()
    hs = local_hydroserver
    level = hs.create_datastream(name="Water Level", unit="ft")
    temperature = hs.create_datastream(name="Water Temp", unit="degC")
    discharge = hs.create_datastream(name="Discharge", unit="cfs")
    stage = hs.create_datastream(name="Stage", unit="ft")
    disabled_discharge = hs.create_datastream(name="Discharge (disabled task)", unit="cfs")
    now = datetime.now(UTC)
    first = datetime.fromtimestamp(now.timestamp() // STEP.total_seconds()
                                   * STEP.total_seconds(), UTC) - 2 * STEP
    river_end = now.replace(minute=0, second=0, microsecond=0)
    river_start = river_end - timedelta(hours=6)

    with LocalSourceServer() as source, LocalSmtpServer() as smtp:
        source.add("/stations/42/logger.csv", _logger, "text/csv")
        source.add("/api/sites/09380000/observations.json", _river, "application/json")
        dags = tmp_path / "dags"
        (dags / "definitions").mkdir(parents=True)
        for name in ("hydroserver_ingestion.py", "hydroserver_definition_check.py"):
            shutil.copy(REPO / "dags" / name, dags)
        host = hs.url.split("://", 1)[1]
        consumed = tmp_path / "consumed.json"
        (dags / "consumers.py").write_text(CONSUMERS.format(
            on_discharge=ON_DISCHARGE, on_stage=ON_STAGE, out=str(consumed),
            discharge=f"hydroserver://{host}/datastreams/{discharge}",
            stage=f"hydroserver://{host}/datastreams/{stage}"))
        (dags / "definitions" / "e2e.yaml").write_text(textwrap.dedent(DEFINITIONS).format(
            source=source.url, level=level, temperature=temperature, discharge=discharge,
            stage=stage, disabled_discharge=disabled_discharge, start_time=first.isoformat()))

        airflow = LocalAirflow(tmp_path / "home", dags, password="e2e-admin-pw")
        airflow.extra_env.update({
            "AIRFLOW_CONN_HYDROSERVER_DEFAULT": json.dumps({
                "conn_type": "hydroserver", "host": hs.url,
                "extra": {"api_key": hs.api_key, "retries": 1, "retry_backoff": 0.1}}),
            "AIRFLOW_CONN_SMTP_DEFAULT": smtp.airflow_connection("airflow-e2e@example.org"),
            "AIRFLOW_CONN_AIRFLOW_API_DEFAULT": airflow.api_connection(),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__CORE__PARALLELISM": "4",
        })
        try:
            airflow.start("standalone")
            airflow.wait_healthy(("metadatabase", "scheduler", "dag_processor"), timeout=180)
            started = time.monotonic() - began
            with airflow.api() as api:
                _wait("the DAGs to be parsed",
                      lambda: all(api.dag(d) for d in (LOGGER_DAG, RIVER_DAG, BROKEN_DAG,
                                                       DISABLED_DAG, DIGEST_DAG)), 90, airflow)
                assert api.dag(LOGGER_DAG)["is_paused"] is True  # is_paused_upon_creation
                assert api.dag(LOGGER_DAG)["timetable_summary"] == "every 15 minutes"
                assert api.dag(RIVER_DAG)["is_paused"] is False
                disabled = api.dag(DISABLED_DAG)
                assert (disabled["is_paused"], disabled["timetable_summary"],
                        disabled["next_dagrun_run_after"]) == (False, "disabled (every hour)", None)
                # 0. a disabled task's manual run starts at once (never waits for an unpause)
                disabled_run = api.trigger(DISABLED_DAG)["dag_run_id"]

                # 1. the scheduler runs the catch-up intervals once the DAG is unpaused
                api.set_paused(LOGGER_DAG, False)
                # 2. a manual run with a trigger-form override, through the REST API
                trigger = _cli(airflow, "trigger", "E2E river", "--start",
                               river_start.isoformat(), "--end", river_end.isoformat(),
                               "--wait", "--timeout", "180", "--poll", "1")
                # 3. a run that fails (the source answers 404; no retries)
                broken_run = api.trigger(BROKEN_DAG)["dag_run_id"]

                _wait("two scheduled logger runs",
                      lambda: len(_finished_runs(api, LOGGER_DAG)) >= 2, 180, airflow)
                # no more intervals (one more starts if a 15-minute boundary passed meanwhile):
                # pause, let a started run finish, and take the runs as they are
                api.set_paused(LOGGER_DAG, True)
                _wait("the logger's last run to finish", lambda: not api.dag_runs(
                    LOGGER_DAG, states=["running"]), 120, airflow)
                logger_runs = _finished_runs(api, LOGGER_DAG)
                code, out, err = _cli_output(trigger)
                assert code == 0, out + err
                assert "Status:   SUCCESS" in out and "Loaded 6 observations into 1 " in out
                # the river's rows reached the discharge datastream: its consumer runs
                consumer_runs = _wait("the discharge consumer's run", lambda: _finished_runs(
                    api, ON_DISCHARGE), 120, airflow)
                _wait("the broken run to fail", lambda: _finished_runs(api, BROKEN_DAG), 120,
                      airflow)
                _wait("the disabled task's manual run", lambda: _finished_runs(
                    api, DISABLED_DAG), 120, airflow)
                disabled_state = api.dag_run(DISABLED_DAG, disabled_run)["state"]
                disabled_runs = api.dag_runs(DISABLED_DAG)

                # 4. the digest of the logger's data connection, run now
                digest_run = api.trigger(DIGEST_DAG)["dag_run_id"]
                _wait("the digest run", lambda: (api.dag_run(DIGEST_DAG, digest_run)["state"]
                                                 in ("success", "failed")), 120, airflow)
                assert api.dag_run(DIGEST_DAG, digest_run)["state"] == "success", \
                    airflow.log_tail(6000)
                broken_state = api.dag_run(BROKEN_DAG, broken_run)["state"]
                stage_consumer_runs = api.dag_runs(ON_STAGE)

            # 5. run history through the command line
            code, out, err = _cli_output(_cli(airflow, "runs", "E2E logger", "--json"))
            assert code == 0, err
            history = json.loads(out)
            scheduled = [r for r in history if r["run_type"] == "scheduled"]
            code, out, err = _cli_output(_cli(airflow, "runs", "E2E broken"))
            assert code == 0, err
            broken_line = next(line for line in out.splitlines() if broken_run in line)
            code, out, err = _cli_output(_cli(airflow, "runs", RIVER_DAG, "--status",
                                              "SUCCESS"))
            assert code == 0 and "manual__" in out and "Loaded 6 observations" in out
            assert airflow.password not in out + err
        finally:
            airflow.stop()
            stopped = time.monotonic() - began
        assert airflow.leftover_processes() == []

        # scheduled runs: each loaded its own 15-minute window; the first one ran at the start
        # time, loading the 15 minutes ending there (the guide: start_time is "when a scheduled
        # task first runs")
        windows = sorted(datetime.fromisoformat(r["data_interval_start"].replace("Z", "+00:00"))
                         for r in logger_runs)
        assert windows[:2] == [first - STEP, first]
        assert min(datetime.fromisoformat(r["run_after"].replace("Z", "+00:00"))
                   for r in logger_runs) == first
        assert all(r["state"] == "success" for r in logger_runs), logger_runs
        assert [t for t, _ in hs.observations(level)] == windows
        assert hs.observations(level)[0][1] == stations.water_level(windows[0])
        assert [v for _, v in hs.observations(temperature)] == [
            stations.water_temperature(t) for t in windows]
        assert len(scheduled) == len(windows)
        assert {r["status"] for r in scheduled} == {"SUCCESS"}
        assert {r["message"] for r in scheduled} == {"Loaded 2 observations into 2 datastreams."}
        assert all(r["started_at"] and r["finished_at"] for r in scheduled)

        # the disabled task: only the manual run, which loaded its schedule's last hour
        assert disabled_state == "success" and len(disabled_runs) == 1
        assert len(hs.observations(disabled_discharge)) == 1

        # the manual run loaded exactly the window given in the trigger form
        hours = [river_start + timedelta(hours=h) for h in range(6)]
        assert hs.observations(discharge) == [(t, stations.discharge(t)) for t in hours]

        # the asset-triggered consumer read the river run's event; none for the failed task
        assert [(r["run_type"], r["state"]) for r in consumer_runs] == [
            ("asset_triggered", "success")]
        event = json.loads(consumed.read_text())
        assert (event["datastream_id"], event["rows_loaded"]) == (discharge, 6)
        assert (event["first_timestamp"], event["last_timestamp"]) == (
            hours[0].strftime("%Y-%m-%dT%H:%M:%SZ"), hours[-1].strftime("%Y-%m-%dT%H:%M:%SZ"))
        assert stage_consumer_runs == []

        # the failure: recorded in history and e-mailed
        assert broken_state == "failed"
        assert "FAILURE" in broken_line and "answered HTTP 404" in broken_line
        (alert,) = smtp.wait_for(1, subject_contains="Task 'E2E broken' failed", timeout=5)
        assert alert.recipients == ("alerts@example.org",)
        assert alert.mail_from == "airflow-e2e@example.org"
        assert "answered HTTP 404" in alert.text and "answered HTTP 404" in alert.html
        assert f"{airflow.url}/dags/{BROKEN_DAG}/runs/" in alert.text
        assert hs.observations(stage) == []

        # the digest lists the scheduled runs and what they loaded
        digests = [m for m in smtp.received if m.subject.startswith(
            "[HydroServer] Digest for E2E logger CSV") and scheduled[0]["id"] in m.text]
        assert digests, [m.subject for m in smtp.received]
        digest = digests[-1]
        assert digest.recipients == ("ops@example.org", "hydro@example.org")
        loaded = 2 * len(windows)
        assert f"{len(windows)} runs, 0 failed, {loaded} observations loaded" in digest.subject
        assert "Status: paused" in digest.text  # paused above, after its runs
        level_row = next(line for line in digest.text.splitlines() if level in line)
        assert level_row.split()[-5:-1] == [str(len(windows)), "0", "0", "0"]
        print(f"\ne2e: Airflow healthy after {started:.0f} s, done and stopped after "
              f"{stopped:.0f} s")
