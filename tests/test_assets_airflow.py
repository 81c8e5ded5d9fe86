"""Assets and lineage on a real Airflow: ``dag.test()`` of a factory-built DAG in a fresh
``AIRFLOW_HOME``, beside consumer DAGs scheduled on one datastream's ``Asset(uri)`` each.

The ingest task maps two datastreams; one already holds the source's rows. In order:

1. a dry run: no asset event, no consumer queued;
2. a run that loads rows into one datastream: one event, on that datastream's asset
   (``hydroserver://<host>/datastreams/<id>``) with the rows and their span in its ``extra``;
   the scheduler's own query (``DagModel.dags_needing_dagruns``) finds that datastream's consumer
   ready to run and not the other's; the consumer, run, reads the event's ``extra``;
3. the same window again (a no-op): no new event, no consumer queued.

The OpenLineage provider is configured with a file transport (no network): its COMPLETE events
carry the source (secrets hidden) as input and the datastreams as outputs.

A second run fails its first try after loading one datastream and succeeds on retry: both
datastreams are announced, the first with the rows the failed try wrote. A Hydrocron fan-out
announces, from each mapped instance, only its own datastreams that got rows -- and only those
whose asset a DAG declares (Airflow creates no asset for the others).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hydroserver_provider.testing import stations
from hydroserver_provider.testing.hydroserver import LocalHydroServer
from hydroserver_provider.testing.sources import LocalSourceServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

REPO = Path(__file__).resolve().parents[1]
T0 = datetime(2025, 6, 1, tzinfo=UTC)
STATION_KEY = "stn-7RVQ2M-asset-test"  # a secret query value under a name Airflow ignores

DEFINITIONS = """
defaults: {{{defaults}}}
data_connections:
  - name: River API
    source_url: "{source}/api.json?from={{start}}&to={{end}}&site={{site}}&key={{station}}"
    payload_type: JSON
    jmespath: "data.records[*]"
    timestamp_key: time
    placeholder_variables:
      - {{name: start, variable_type: window_start}}
      - {{name: end, variable_type: window_end}}
      - {{name: site, variable_type: per_task}}
      - {{name: station, variable_type: per_task}}
tasks:
  - name: River
    data_connection: River API
    task_variables: {{site: "09380000", station: "{{{{ var.value.station }}}}"}}
    mappings:
      - {{source_identifier: values.discharge, target_datastream_id: {flow}}}
      - {{source_identifier: values.gage_height, target_datastream_id: {stage}}}
    interval: 1
    interval_period: hours
    start_time: 2025-01-01T00:00:00Z
"""

CONSUMERS = '''
"""Consumer DAGs (airflow dag): one per datastream asset."""
import json
from pathlib import Path

from airflow.sdk import DAG, Asset, task

OUT = Path({out!r})


def consumer(dag_id, uri):
    asset = Asset(uri)
    with DAG(dag_id, schedule=[asset], is_paused_upon_creation=False) as dag:
        @task(inlets=[asset])
        def report(*, inlet_events=None):
            events = inlet_events[asset]
            OUT.joinpath(dag_id + ".json").write_text(json.dumps(
                {{"count": len(events), "extra": events[-1].extra}}))
        report()
    return dag


for dag_id, uri in {consumers!r}.items():
    globals()[dag_id] = consumer(dag_id, uri)
'''

SCRIPT = textwrap.dedent("""
    import json, os, sys
    from datetime import datetime
    from airflow.utils.db import initdb
    initdb()
    from sqlalchemy import delete, text
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.asset import AssetDagRunQueue
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    def observe():
        with create_session() as session:
            events = [[uri, json.loads(extra) if isinstance(extra, str) else extra, dag, task,
                       map_index]
                      for uri, extra, dag, task, map_index in session.execute(text(
                          "select a.uri, e.extra, e.source_dag_id, e.source_task_id, "
                          "e.source_map_index from asset_event e join asset a "
                          "on a.id = e.asset_id order by e.id"))]
            ready = sorted(DagModel.dags_needing_dagruns(session)[1])
            session.execute(delete(AssetDagRunQueue))  # what the scheduler consumes
            assets = sorted(uri for (uri,) in session.execute(text("select uri from asset")))
        return {"events": events, "ready": ready, "assets": assets}

    steps = []
    for dag_id, when, conf in json.loads(sys.argv[1]):
        # a fresh DagBag each time: dag.test() renders the task's templates in place
        bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
        assert not bag.import_errors, bag.import_errors
        run = bag.dags[dag_id].test(logical_date=datetime.fromisoformat(when) if when else None,
                                    run_conf=conf)
        steps.append({"dag_id": dag_id, "state": str(run.state), **observe()})
    print("STEPS " + json.dumps(steps), flush=True)
""")


@pytest.fixture
def source():
    with LocalSourceServer() as server:
        server.add("/api.json", lambda q: stations.api_json(
            stations.parse_query_time(q["from"]), stations.parse_query_time(q["to"])),
            "application/json")
        yield server


def run_airflow(tmp_path: Path, hs: LocalHydroServer, source: LocalSourceServer, *,
                flow: str, stage: str, plan: list, defaults: str = "retries: 0",
                definitions: str | None = None, consumers: dict | None = None,
                env_extra: dict | None = None) -> list[dict]:
    """Write the DAG folder (the River task over ``flow`` and ``stage``, or ``definitions``,
    and a consumer DAG per datastream, or ``consumers``), then run ``plan`` ([dag_id, logical
    date, conf] each) with ``dag.test()`` in a fresh ``AIRFLOW_HOME``; per step: its state,
    every asset event so far ([uri, extra, dag, task, map index]) and the consumer DAGs the
    scheduler finds ready to run."""
    home, dags, out = tmp_path / "home", tmp_path / "dags", tmp_path / "out"
    (dags / "definitions").mkdir(parents=True)
    out.mkdir()
    (dags / "hydroserver_ingestion.py").write_text(
        (REPO / "dags" / "hydroserver_ingestion.py").read_text())
    (dags / "definitions" / "river.yaml").write_text(definitions or DEFINITIONS.format(
        source=source.url, flow=flow, stage=stage, defaults=defaults))
    (dags / "consumers.py").write_text(CONSUMERS.format(out=str(out), consumers=consumers or {
        "on_discharge": datastream_uri(hs, flow), "on_gage_height": datastream_uri(hs, stage)}))
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_"))}
    env.update({
        "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW_CONN_HYDROSERVER_DEFAULT": json.dumps(
            {"conn_type": "hydroserver", "host": hs.url,
             "extra": {"api_key": hs.api_key, "retries": 0}}),
        "AIRFLOW_VAR_STATION": STATION_KEY,
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(tmp_path / "openlineage.jsonl"),
             "append": True}),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "hydroserver-tests",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        **(env_extra or {}),
    })
    env.pop("HYDROSERVER_DEFINITIONS_DIR", None)
    done = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(plan)], env=env,
                          capture_output=True, text=True, timeout=360, cwd=tmp_path)
    output = done.stdout + done.stderr
    (tmp_path / "airflow-output.log").write_text(output)  # to read when a test fails
    assert done.returncode == 0, output[-6000:]
    steps = json.loads(output.split("STEPS ", 1)[1].splitlines()[0])
    assert [s["state"] for s in steps] == ["success"] * len(plan), output[-6000:]
    return steps


def datastream_uri(hs: LocalHydroServer, datastream_id: str) -> str:
    return f"hydroserver://{hs.url.split('://', 1)[1]}/datastreams/{datastream_id}"


WHEN = "2025-06-01T02:00:00+00:00"  # an hourly run: the window 01:00 -> 02:00, one row


def test_asset_events_trigger_the_consumer_of_each_loaded_datastream_only(tmp_path, source):
    out, lineage = tmp_path / "out", tmp_path / "openlineage.jsonl"
    with LocalHydroServer() as hs:
        host = hs.url.split("://", 1)[1]
        flow = hs.create_datastream(name="Discharge")
        stage = hs.create_datastream(name="Gage height", observations=[  # holds every row
            (T0 + timedelta(hours=h), stations.gage_height(T0 + timedelta(hours=h)))
            for h in range(-24, 48)])
        uri = {ds: datastream_uri(hs, ds) for ds in (flow, stage)}
        dry, loaded, consumer, again = run_airflow(
            tmp_path, hs, source, flow=flow, stage=stage,
            plan=[["hydroserver_river", WHEN, {"dry_run": True}],
                  ["hydroserver_river", WHEN, None],
                  ["on_discharge", None, None],
                  ["hydroserver_river", WHEN, None]])
        stored = hs.observations(flow)

    # 1. a dry run: nothing announced, nobody queued
    assert dry["events"] == [] and dry["ready"] == []
    # 2. rows loaded into one datastream: one event on its asset, its consumer (only) is ready
    assert len(stored) == 1
    ((event_uri, extra, source_dag, source_task, map_index),) = loaded["events"]
    assert (event_uri, source_dag, source_task, map_index) == (
        uri[flow], "hydroserver_river", "ingest", -1)
    assert extra["rows_loaded"] == 1 and extra["datastream_id"] == flow
    assert extra["first_timestamp"] == extra["last_timestamp"] == stored[0][0].strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    assert loaded["ready"] == ["on_discharge"]
    report = json.loads((out / "on_discharge.json").read_text())
    assert report == {"count": 1, "extra": extra}  # what the consumer's task read
    assert not (out / "on_gage_height.json").exists()
    # 3. the same window again: nothing new, nothing announced
    assert again["events"] == loaded["events"] and again["ready"] == []

    # OpenLineage: every producer run reported its input and outputs, no secret
    text = lineage.read_text()
    assert STATION_KEY not in text and STATION_KEY.split("-")[1] not in text
    complete = [json.loads(line) for line in text.splitlines()
                if '"eventType": "COMPLETE"' in line or '"eventType":"COMPLETE"' in line]
    ingest = [e for e in complete if e["job"]["name"] == "hydroserver_river.ingest"]
    assert len(ingest) == 3, [e["job"]["name"] for e in complete]
    for event, rows in zip(ingest, (None, 1, 0)):
        (source_ds,) = event["inputs"]
        assert source_ds["namespace"] == source.url
        assert source_ds["name"] == "/api.json?from={start}&to={end}&site=09380000&key=***"
        outputs = {o["name"]: o.get("outputFacets", {}) for o in event["outputs"]}
        if rows is None:  # the dry run wrote nothing
            assert outputs == {}
            continue
        assert {o["namespace"] for o in event["outputs"]} == {f"hydroserver://{host}"}
        assert outputs[f"datastreams/{flow}"]["outputStatistics"]["rowCount"] == rows
        assert outputs[f"datastreams/{stage}"]["outputStatistics"]["rowCount"] == 0


def test_rows_a_failed_try_wrote_are_announced_when_its_retry_succeeds(tmp_path, source):
    """Try 1 loads the discharge and fails on the gage height (HydroServer answers 503); its
    retry finds the discharge row stored and loads the gage height. Both datastreams are
    announced, with try 1's row, through Airflow's task state store: without it the discharge's
    consumer would never learn of that row."""
    with LocalHydroServer() as hs:
        flow = hs.create_datastream(name="Discharge")
        stage = hs.create_datastream(name="Gage height")
        hs.faults.fail_next(1, 503, path_contains=f"{stage}/observations")
        (run,) = run_airflow(tmp_path, hs, source, flow=flow, stage=stage,
                             defaults="retries: 1, retry_delay: 0s",
                             plan=[["hydroserver_river", WHEN, None]])
        assert hs.faults.injected and len(hs.observations(flow)) == len(
            hs.observations(stage)) == 1
        uris = (datastream_uri(hs, flow), datastream_uri(hs, stage))
    events = {uri: extra for uri, extra, *_ in run["events"]}
    assert {uri: extra["rows_loaded"] for uri, extra in events.items()} == dict.fromkeys(uris, 1)
    assert run["ready"] == ["on_discharge", "on_gage_height"]
    assert "Of them, rows written by an earlier try of this task" in (
        tmp_path / "airflow-output.log").read_text()


FAN_OUT = """
defaults: {{retries: 0}}
data_connections:
  - name: Basin reaches
    payload_type: HYDROCRON
    fields: [wse]
    hydrocron_conn_id: hydrocron_local
tasks:
  - name: Basin
    data_connection: Basin reaches
    mappings:
{mappings}
    crontab: "0 6 * * *"
    start_time: 2024-01-01T00:00:00Z
"""
REACHES = ("18180900091", "18180900101", "18180900111", "18180900121")


def test_each_fan_out_instance_announces_only_its_own_datastreams(tmp_path, source):
    """A Hydrocron fan-out over four reaches: the mapped instances share the alias declared
    with the DAG, and each event comes from the instance (map index) of its reach. Reach 2's
    datastream already holds every pass: no event. Reach 3 gets rows but no DAG declares its
    datastream's asset: no event, and Airflow creates no asset for it."""
    from hydroserver_provider.testing.hydrocron import LocalHydrocron, synthetic_passes
    from hydroserver_provider.timestamps import parse_instant

    passes = {reach: synthetic_passes(3, start=datetime(2024, 1, 3 + n, tzinfo=UTC), seed=n)
              for n, reach in enumerate(REACHES)}
    with LocalHydroServer() as hs, LocalHydrocron(load_fixtures=False) as hydrocron:
        for reach, rows in passes.items():
            hydrocron.add_feature("Reach", reach, rows)
        ids = [hs.create_datastream(name=f"WSE {reach}", unit="m", observations=[
            (parse_instant(r["time_str"]), float(r["wse"])) for r in passes[reach]]
            if n == 2 else None) for n, reach in enumerate(REACHES)]
        mappings = "\n".join(
            f'      - {{feature_id: "{reach}", source_identifier: wse, '
            f"target_datastream_id: {ds}}}" for reach, ds in zip(REACHES, ids))
        uris = [datastream_uri(hs, ds) for ds in ids]
        (run,) = run_airflow(
            tmp_path, hs, source, flow=ids[0], stage=ids[2],
            definitions=FAN_OUT.format(mappings=mappings),
            consumers={f"on_reach_{n}": uris[n] for n in range(3)},
            env_extra={"AIRFLOW_CONN_HYDROCRON_LOCAL": json.dumps(
                {"conn_type": "hydrocron", "host": hydrocron.url,
                 "extra": {"requests_per_second": 0}})},
            plan=[["hydroserver_basin", "2024-03-01T06:00:00+00:00", None]])
        assert [len(hs.observations(ds)) for ds in ids] == [3, 3, 3, 3]
    events = {uri: (map_index, extra["rows_loaded"]) for uri, extra, _, _, map_index
              in run["events"]}
    assert events == {uris[0]: (0, 3), uris[1]: (1, 3)}
    assert run["ready"] == ["on_reach_0", "on_reach_1"]
    assert uris[3] not in run["assets"] and set(uris[:3]) <= set(run["assets"])
    assert f"No asset event for {uris[3]}: no DAG declares or schedules on it" in (
        tmp_path / "airflow-output.log").read_text()
