"""Loading stays exact while Airflow runs windows of one task at the same time.

On a real ``airflow standalone`` (LocalExecutor, SQLite, parallelism 4), with the shipped DAG
files, a local HydroServer that answers every request late and local sources that answer late:

* a windowed task (a logger CSV asked for ``?start=...&end=...``, hourly, ``catchup`` off) has a
  backfill of the 16 hours before its current interval, made by Airflow's own
  ``airflow backfill create`` with its default concurrency (up to 10 runs at once, ignoring the
  DAG's ``max_active_runs`` of 1). Once the DAG is unpaused the scheduler runs its current
  interval and the backfill's runs beside it. The logger answers with its end instant included,
  as many loggers do, so each run must also leave out the first row of the next run's window.
  Afterwards every run succeeded, at least two runs' tasks were executing at the same time, and
  HydroServer holds exactly the source's rows of the windows that ran: each instant once, with
  its value, nothing else;
* an incremental task (a JSON API asked for what is newer than ``{since}``) whose datastream holds
  a past window with stale values, a missing row and a row the source no longer has, is told to
  reload exactly that window with ``hydroserver-airflow trigger --start --end --wait`` while the
  backfill runs. Afterwards the window holds the source's rows and every row outside it is as it
  was (a stale row before it stays stale, newer source rows are not loaded).

Every process started is ended (``airflow.leftover_processes() == []``).
"""

from __future__ import annotations

import json
import shutil
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

# helpers of the test beside this one (pytest's default "prepend" import mode finds it)
from test_standalone import _cli, _cli_output, _wait

from hydroserver_provider.testing import stations
from hydroserver_provider.testing.airflow import LocalAirflow
from hydroserver_provider.testing.sources import LocalSourceServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

UTC = UTC
REPO = Path(__file__).resolve().parents[2]
LOGGER_DAG = "hydroserver_e2e_backfill_logger"
RIVER_DAG = "hydroserver_e2e_river_reload"
HOUR = timedelta(hours=1)
BACKFILL_WINDOWS = 16
SOURCE_DELAY = 0.5  # seconds each source request takes
HYDROSERVER_LATENCY = 0.1  # seconds added to every HydroServer request
BOUNDARY_MARGIN = timedelta(minutes=2)  # finish this far from an hour, when a run may start

DEFINITIONS = """
defaults:
  retries: 0

data_connections:
  - name: Backfill logger CSV
    source_url: {source}/stations/7/logger.csv?start={{start}}&end={{end}}
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

  - name: River API since
    source_url: {source}/api/sites/09380000/since.json?since={{since}}
    payload_type: JSON
    jmespath: "data.records[*]"
    timestamp_key: time
    placeholder_variables:
      - {{name: since, variable_type: latest_observation_timestamp,
          timestamp_format: "%Y-%m-%dT%H:%M:%SZ"}}

tasks:
  - name: E2E backfill logger
    data_connection: Backfill logger CSV
    mappings:
      - {{source_identifier: Water Level, target_datastream_id: {level}}}
      - {{source_identifier: Water Temp, target_datastream_id: {temperature}}}
    interval: 1
    interval_period: hours
    start_time: {start_time}
    airflow: {{is_paused_upon_creation: true}}

  - name: E2E river reload
    data_connection: River API since
    mappings:
      - {{source_identifier: values.discharge, target_datastream_id: {discharge}}}
"""


def _hour_floor(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _logger(query: dict[str, str]):
    """The logger's rows from ``start`` to ``end`` *inclusive*, answered late."""
    time.sleep(SOURCE_DELAY)
    start = stations.parse_query_time(query.get("start"), stations.DENVER)
    end = stations.parse_query_time(query.get("end"), stations.DENVER)
    if start is None or end is None:
        return 400, "start and end are required"
    return stations.logger_csv(start, end + timedelta(seconds=1))


def _river_since(source_end: datetime):
    """The JSON API's hourly rows from ``since`` to ``source_end``, answered late."""
    def answer(query: dict[str, str]):
        time.sleep(SOURCE_DELAY)
        since = stations.parse_query_time(query.get("since"))
        if since is None:
            return 400, '{"error": "since is required"}'
        return stations.api_json(since, source_end)
    return answer


def _logger_rows(windows: list[tuple[datetime, datetime]], value) -> list[tuple[datetime, float]]:
    """The source's rows of the union of ``windows`` (each instant once), by time."""
    instants = {t for start, end in windows for t in stations.instants(start, end)}
    return [(t, value(t)) for t in sorted(instants)]


def _spans(items: list[dict]) -> list[tuple[datetime, datetime]]:
    return [(_when(i["start_date"]), _when(i["end_date"])) for i in items]


def _overlap(a: tuple[datetime, datetime], b: tuple[datetime, datetime]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _overlaps(spans: list[tuple[datetime, datetime]]) -> tuple[int, int]:
    """How many spans overlap another one, and the most spans open at one instant."""
    overlapping = sum(1 for i, a in enumerate(spans)
                      if any(_overlap(a, b) for j, b in enumerate(spans) if j != i))
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    peak = open_now = 0
    for _, step in events:  # an end sorts before a start at the same instant
        open_now += step
        peak = max(peak, open_now)
    return overlapping, peak


# ``airflow backfill create`` writes its runs straight into the metadata database. Beside a
# running ``airflow standalone`` on SQLite it sometimes fails (Airflow 3.3.2: once in five tries
# here) with "database is locked" part-way through creating the runs (Airflow then tries to
# remove the partial backfill) and has to be run again. So it runs once the DAG is parsed but
# before the scheduler starts: its runs wait, queued, for the DAG to be unpaused, and then start
# beside its scheduled run.
def _backfill(airflow: LocalAirflow, first: datetime, last: datetime) -> None:
    """``airflow backfill create`` of the logical dates ``first`` .. ``last`` (both included),
    with Airflow's default concurrency (no ``--max-active-runs``)."""
    airflow.airflow("backfill", "create", "--dag-id", LOGGER_DAG,
                    "--from-date", first.isoformat(), "--to-date", last.isoformat())


def _logger_settled(api, backfill_id: int) -> list[dict] | None:
    """The logger's runs once the backfill is complete and no run is queued or running."""
    backfill = api.request("GET", f"/backfills/{backfill_id}")
    runs = api.dag_runs(LOGGER_DAG)
    if backfill["completed_at"] is None or any(
            r["state"] not in ("success", "failed") for r in runs):
        return None
    return runs


def _settle_away_from_boundary(api, airflow: LocalAirflow, backfill_id: int) -> None:
    """Wait for every run to finish at a moment well before the next hour, when the scheduler
    would start the next interval; if an hour comes too close, let its run happen first."""
    while True:
        _wait("the backfill and every run of the logger to finish",
              lambda: _logger_settled(api, backfill_id), 600, airflow, every=2)
        boundary = _hour_floor(datetime.now(UTC)) + HOUR
        if boundary - datetime.now(UTC) > BOUNDARY_MARGIN:
            return
        time.sleep(max(0.0, (boundary - datetime.now(UTC)).total_seconds()) + 1)
        _wait(f"the scheduled run ending at {boundary:%H:%M}",
              lambda end=boundary: any(_when(r["data_interval_end"]) == end
                                       for r in api.dag_runs(LOGGER_DAG)), 180, airflow, every=2)


def test_backfill_beside_scheduled_run_and_window_reload(tmp_path, local_hydroserver):
    began = time.monotonic()
    hs = local_hydroserver
    level = hs.create_datastream(name="Water Level", unit="ft")
    temperature = hs.create_datastream(name="Water Temp", unit="degC")

    # windowed task: the scheduled run loads [current - 1 h, current), the backfill the 16 hours
    # before (logical dates first .. last, both included)
    current = _hour_floor(datetime.now(UTC))
    first = current - (BACKFILL_WINDOWS + 1) * HOUR
    last = current - 2 * HOUR

    # incremental task: 12 hourly rows stored; the window [reload_start, reload_end) is stale
    # (revised values, a missing hour, a row at :30 the source does not have). A stale row before
    # it must stay; the source has 3 hours newer than the stored end, which must not be loaded.
    stored_end = current - 3 * HOUR
    river_first = stored_end - 11 * HOUR
    reload_start, reload_end = river_first + 4 * HOUR, river_first + 8 * HOUR
    seeded = []
    for hour in range(12):
        t = river_first + hour * HOUR
        value = stations.discharge(t)
        if t == reload_start + HOUR:
            continue  # missing
        if t in (reload_start, reload_start + 2 * HOUR, reload_start + 3 * HOUR):
            value += 7.5  # revised at the source since
        if t == river_first + HOUR:
            value -= 3.0  # outside the window: stays as stored
        seeded.append((t, value))
    seeded.append((reload_start + 2.5 * HOUR, 111.0))  # gone from the source
    seeded.sort()
    discharge = hs.create_datastream(name="Discharge", unit="cfs", observations=seeded)
    hs.faults.latency = HYDROSERVER_LATENCY

    with LocalSourceServer() as source:
        source.add("/stations/7/logger.csv", _logger, "text/csv")
        source.add("/api/sites/09380000/since.json", _river_since(current), "application/json")
        dags = tmp_path / "dags"
        (dags / "definitions").mkdir(parents=True)
        for name in ("hydroserver_ingestion.py", "hydroserver_definition_check.py"):
            shutil.copy(REPO / "dags" / name, dags)
        (dags / "definitions" / "backfill.yaml").write_text(textwrap.dedent(DEFINITIONS).format(
            source=source.url, level=level, temperature=temperature, discharge=discharge,
            start_time=first.isoformat()))

        airflow = LocalAirflow(tmp_path / "home", dags, password="e2e-backfill-pw")
        airflow.extra_env.update({
            "AIRFLOW_CONN_HYDROSERVER_DEFAULT": json.dumps({
                "conn_type": "hydroserver", "host": hs.url,
                "extra": {"api_key": hs.api_key, "retries": 1, "retry_backoff": 0.1}}),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__CORE__PARALLELISM": "4",
        })
        reload = None
        try:
            airflow.migrate()  # the DAGs parsed and the backfill made before the scheduler starts
            airflow.reserialize()
            _backfill(airflow, first, last)
            airflow.start("standalone")
            airflow.wait_healthy(("metadatabase", "scheduler", "dag_processor"), timeout=300)
            started = time.monotonic() - began
            with airflow.api() as api:
                _wait("the DAGs to be parsed",
                      lambda: all(api.dag(d) for d in (LOGGER_DAG, RIVER_DAG)), 300, airflow)
                assert api.dag(LOGGER_DAG)["is_paused"] is True  # is_paused_upon_creation
                assert api.dag(RIVER_DAG)["is_paused"] is False

                (backfill,) = api.request("GET", "/backfills",
                                          params={"dag_id": LOGGER_DAG})["backfills"]
                assert len(api.dag_runs(LOGGER_DAG, states=["queued"])) == BACKFILL_WINDOWS
                # 1. unpaused: the scheduled run of the current interval and the backfill start
                api.set_paused(LOGGER_DAG, False)
                # 2. the incremental task reloads one window, while the backfill runs
                reload = _cli(airflow, "trigger", "E2E river reload",
                              "--start", reload_start.isoformat(), "--end", reload_end.isoformat(),
                              "--wait", "--json", "--timeout", "500", "--poll", "2")

                _settle_away_from_boundary(api, airflow, backfill["id"])
                api.set_paused(LOGGER_DAG, True)  # no new interval until Airflow stops
                runs = api.dag_runs(LOGGER_DAG, order_by="start_date")
                tis = api.request("GET", f"/dags/{LOGGER_DAG}/dagRuns/~/taskInstances",
                                  params={"limit": 100})["task_instances"]
                summaries = {r["dag_run_id"]: api.xcom(LOGGER_DAG, r["dag_run_id"], "ingest",
                                                       "return_value") for r in runs}
                code, out, err = _cli_output(reload, timeout=560)
        finally:
            if reload is not None and reload.poll() is None:  # the test failed before its end
                reload.kill()
                reload.wait()
            airflow.stop()
            stopped = time.monotonic() - began
        assert airflow.leftover_processes() == []
    assert hs.errors == []

    # every run of the windowed DAG succeeded: the backfill's 16 and the scheduled one(s)
    assert backfill["max_active_runs"] == 10  # Airflow's default: the command gave none
    assert all(r["state"] == "success" for r in runs), [(r["dag_run_id"], r["state"])
                                                       for r in runs]
    windows = sorted((_when(r["data_interval_start"]), _when(r["data_interval_end"]))
                     for r in runs)
    backfilled = sorted((_when(r["data_interval_start"]), _when(r["data_interval_end"]))
                        for r in runs if r["run_type"] == "backfill")
    assert backfilled == [(first + k * HOUR, first + (k + 1) * HOUR)
                          for k in range(BACKFILL_WINDOWS)]
    scheduled = [r for r in runs if r["run_type"] == "scheduled"]
    assert scheduled and len(scheduled) + len(backfilled) == len(runs)
    assert len(set(windows)) == len(windows)
    assert all(s["mode"] == "windowed" and s["status"] == "SUCCESS" for s in summaries.values())

    # the tasks really ran at the same time
    assert len(tis) == len(runs) and all(ti["state"] == "success" for ti in tis)
    ti_overlapping, ti_peak = _overlaps(_spans(tis))
    run_overlapping, run_peak = _overlaps(_spans(runs))
    scheduled_ids = {r["dag_run_id"] for r in scheduled}
    beside = any(_overlap(a, b)
                 for a in _spans([t for t in tis if t["dag_run_id"] in scheduled_ids])
                 for b in _spans([t for t in tis if t["dag_run_id"] not in scheduled_ids]))
    assert ti_peak >= 2, _spans(tis)

    # HydroServer holds exactly the source's rows of the windows that ran, each written once
    expected_level = _logger_rows(windows, stations.water_level)
    assert len(expected_level) == 4 * len(windows)
    assert hs.observations(level) == expected_level
    assert hs.observations(temperature) == _logger_rows(windows, stations.water_temperature)
    assert sum(s["loaded"] for s in summaries.values()) == 2 * len(expected_level)

    # the reload: the window now equals the source, everything outside it is as it was
    assert code == 0, out + err
    reloaded = json.loads(out)
    assert reloaded["status"] == "SUCCESS", reloaded
    (outcome,) = reloaded["result"]["datastreams"]
    assert reloaded["result"]["mode"] == "windowed"
    assert (outcome["loaded"], outcome["revised"], outcome["removed"]) == (4, 3, 1), outcome
    in_window = [(t, stations.discharge(t)) for t in stations.instants(reload_start, reload_end,
                                                                       HOUR)]
    outside = [(t, v) for t, v in seeded if not reload_start <= t < reload_end]
    assert hs.observations(discharge) == sorted(outside + in_window)

    print(f"\ne2e backfill: {len(windows)} windows ({len(backfilled)} backfilled, "
          f"{len(scheduled)} scheduled), {len(runs)} runs, {ti_overlapping} tasks overlapped "
          f"another (peak {ti_peak} at once; runs: {run_overlapping} overlapped, peak "
          f"{run_peak}; scheduled task beside a backfill task: {'yes' if beside else 'no'}), "
          f"HydroServer peak {hs.peak_in_flight} requests at once, "
          f"{len(expected_level)} rows x 2 datastreams, reload {outcome['loaded']} loaded / "
          f"{outcome['revised']} revised / {outcome['removed']} removed; Airflow healthy after "
          f"{started:.0f} s, done and stopped after {stopped:.0f} s")
