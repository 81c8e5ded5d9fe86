"""Hydrocron DAGs: one feature per DAG, and one DAG mapped over many features, run against the
local Hydrocron replay and the local HydroServer through the operator (Airflow connections from
the environment), without a scheduler: the mapped operator's instances are expanded and executed
the way a worker does."""

from __future__ import annotations

import json
import os
import tempfile
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="hydroserver-hydrocron-dags-"))

import pytest

from hydroserver_provider import factory
from hydroserver_provider.compat import AirflowFailException
from hydroserver_provider.operators.ingest import HydroIngestOperator
from hydroserver_provider.sources.ratelimit import shared_limiter
from hydroserver_provider.testing.hydrocron import LocalHydrocron, synthetic_passes

REPO = Path(__file__).resolve().parents[1]
FIXTURES = (REPO / ".." / "shared" / "fixtures" / "hydrocron").resolve()
UTC = UTC
REACH = "18180900091"
OTHERS = ("18180900101", "18180900111")
FAN_OUT = """
data_connections:
  - name: Basin reaches
    payload_type: HYDROCRON
    fields: [wse, width]
    overlap_hours: 12
    requests_per_second: 30
tasks:
  - name: Basin
    data_connection: Basin reaches
    mappings:
      - {{feature_id: "{reach}", source_identifier: wse, target_datastream_id: {ds0}}}
      - {{feature_id: "{reach}", source_identifier: width, target_datastream_id: {ds1}}}
      - {{feature_id: "{o0}", source_identifier: wse, target_datastream_id: {ds2}}}
      - {{feature_id: "{o0}", source_identifier: width, target_datastream_id: {ds3}}}
      - {{feature_id: "{o1}", source_identifier: wse, target_datastream_id: {ds4}}}
      - {{feature_id: "{o1}", source_identifier: width, target_datastream_id: {ds5}}}
    crontab: "0 6 * * *"
    start_time: 2024-01-01T00:00:00Z
    airflow: {{max_active_tasks: 3}}
"""
IDS = [f"0d000000-0000-4000-8000-00000000000{i}" for i in range(6)]

pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"fixtures not found at {FIXTURES}")


def build(folder: Path, text: str) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "defs.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    result = factory.build_dags(folder)
    assert result.errors == []
    return result.dags


def fan_out_dag(tmp_path: Path):
    text = FAN_OUT.format(reach=REACH, o0=OTHERS[0], o1=OTHERS[1],
                          **{f"ds{i}": d for i, d in enumerate(IDS)})
    return build(tmp_path / "defs", text)["hydroserver_basin"]


@pytest.fixture
def servers(local_hydroserver, monkeypatch):
    """The replay and the HydroServer, named by the default Airflow connections."""
    with LocalHydrocron(FIXTURES) as hydrocron:
        monkeypatch.setenv("AIRFLOW_CONN_HYDROSERVER_DEFAULT", json.dumps({
            "conn_type": "hydroserver", "host": local_hydroserver.url,
            "extra": {"api_key": local_hydroserver.api_key, "retries": 1,
                      "retry_backoff": 0.01}}))
        monkeypatch.setenv("AIRFLOW_CONN_HYDROCRON_DEFAULT", json.dumps({
            "conn_type": "hydrocron", "host": hydrocron.url,
            "extra": {"retries": 1, "retry_backoff": 0.01}}))
        yield local_hydroserver, hydrocron


def run_context(dag, task, map_index: int | None = None):
    """What a worker hands the task: rendered templates for a scheduled run at 2024-03-01 06:00."""
    from airflow.sdk.definitions.param import process_params

    dag_run = SimpleNamespace(data_interval_start=datetime(2024, 2, 29, 6, tzinfo=UTC),
                              data_interval_end=datetime(2024, 3, 1, 6, tzinfo=UTC),
                              run_after=datetime(2024, 3, 1, 6, tzinfo=UTC), conf={})
    from airflow.sdk.execution_time.context import OutletEventAccessors

    context = {"params": process_params(dag, task, {}, suppress_exception=False), "dag": dag,
               "outlet_events": OutletEventAccessors(),
               "dag_run": dag_run, "data_interval_start": dag_run.data_interval_start,
               "data_interval_end": dag_run.data_interval_end,
               "ti": SimpleNamespace(map_index=-1 if map_index is None else map_index)}
    task.render_template_fields(context, jinja_env=dag.get_template_env())
    return context


# --------------------------------------------------------------------------------------------
# The fan-out DAG
# --------------------------------------------------------------------------------------------


def test_fan_out_is_one_dag_with_the_ingest_task_mapped_over_the_features(tmp_path):
    dag = fan_out_dag(tmp_path)
    task = dag.get_task("ingest")
    assert type(task).__name__ == "MappedOperator" and list(dag.task_dict) == ["ingest"]
    assert task.map_index_template == factory.MAP_INDEX_TEMPLATE == "{{ task.feature_id }}"
    assert task.max_active_tis_per_dag == 3 == task.partial_kwargs["hydrocron_rate_share"]
    per_feature = task.expand_input.value
    assert [kw["feature_id"] for kw in per_feature] == [REACH, *OTHERS]
    assert [[m["target_datastream_id"] for m in kw["mappings"]] for kw in per_feature] == [
        IDS[0:2], IDS[2:4], IDS[4:6]]
    (alias,) = task.partial_kwargs["outlets"]  # one alias; each instance adds its own assets
    assert alias.name == "hydroserver-datastreams:hydroserver_basin.ingest"
    assert "3 Reach features (one mapped instance each)" in dag.doc_md
    from airflow.serialization.serialized_objects import DagSerialization

    scheduled = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    assert type(scheduled.get_task("ingest")).__name__ == "SerializedMappedOperator"
    assert scheduled.get_task("ingest").max_active_tis_per_dag == 3


def test_fan_out_concurrency_defaults_and_is_capped_by_the_feature_count():
    assert factory.fan_out_concurrency(200, {}) == factory.FAN_OUT_CONCURRENCY == 4
    assert factory.fan_out_concurrency(2, {"max_active_tasks": 8}) == 2
    assert factory.fan_out_concurrency(50, {"max_active_tasks": 10}) == 10


def test_one_run_over_three_features_loads_each_into_its_own_datastreams(tmp_path, servers):
    hs, hydrocron = servers
    synthetic = {}
    for n, feature in enumerate(OTHERS):
        synthetic[feature] = synthetic_passes(4, start=datetime(2024, 1, 3 + n, tzinfo=UTC),
                                              seed=n)
        hydrocron.add_feature("Reach", feature, synthetic[feature])
    for i, ds_id in enumerate(IDS):
        hs.create_datastream(name=f"DS {i}", unit="m", datastream_id=ds_id)
    dag = fan_out_dag(tmp_path)
    mapped = dag.get_task("ingest")
    limiter = shared_limiter(f"hydrocron:{hydrocron.url}", 30 / 3)
    acquired = limiter.acquired
    labels, summaries = [], []
    for index in range(len(mapped.expand_input.value)):
        context = run_context(dag, mapped, index)
        instance = context["task"]  # the unmapped operator of this map index
        assert isinstance(instance, HydroIngestOperator)
        labels.append(dag.get_template_env().from_string(mapped.map_index_template)
                      .render(context))
        outlets = list(instance.outlets)
        summaries.append(instance.execute(context))
        assert instance.outlets == outlets == mapped.partial_kwargs["outlets"]  # unchanged
        events = [e for accessor in context["outlet_events"]._dict.values()
                  for e in accessor.asset_alias_events]
        assert {e.source_alias_name for e in events} == {outlets[0].name}
        assert {e.dest_asset_key.uri for e in events} == {  # its own datastreams only
            f"hydroserver://{hs.url.split('://')[1]}/datastreams/{m.target_datastream_id}"
            for m in instance.mappings}
        assert all(e.extra["rows_loaded"] > 0 for e in events)
        lineage = instance.get_openlineage_facets_on_complete(None)  # its own feature in, own
        (read,) = lineage.inputs  # datastreams out
        base = hydrocron.url.split("/hydrocron/")[0]
        assert read.namespace == base and read.name.startswith("/hydrocron/v1/timeseries?")
        assert read.name.endswith(f"feature=Reach&feature_id={instance.feature_id}")
        assert sorted(o.name for o in lineage.outputs) == sorted(
            f"datastreams/{m.target_datastream_id}" for m in instance.mappings)
    assert labels == [REACH, *OTHERS]
    assert [s["hydrocron"]["feature_id"] for s in summaries] == [REACH, *OTHERS]
    assert all(s["hydrocron"]["requests"] == 1 for s in summaries)
    assert [r.params["feature_id"] for r in hydrocron.requests] == [REACH, *OTHERS]
    # each instance used a third of the 30 requests/s: one request, then it held its slot
    assert limiter.acquired - acquired == 2 * 3
    d_rows = json.loads((FIXTURES / "ops/reach/reach_d_basic.csv").read_text())["results"]["csv"]
    reach_wse = [float(line.split(",")[2]) for line in d_rows.strip().splitlines()[1:]]
    assert [v for _, v in hs.observations(IDS[0])] == reach_wse
    for feature, (wse_id, width_id) in zip(OTHERS, (IDS[2:4], IDS[4:6])):
        rows = synthetic[feature]
        assert [(t.strftime("%Y-%m-%dT%H:%M:%SZ"), v) for t, v in hs.observations(wse_id)] == [
            (r["time_str"], float(r["wse"])) for r in rows]
        assert [v for _, v in hs.observations(width_id)] == [float(r["width"]) for r in rows]


# --------------------------------------------------------------------------------------------
# One feature per DAG: the example file
# --------------------------------------------------------------------------------------------


def test_the_example_is_a_plain_dag_that_loads_the_reach(servers):
    hs, hydrocron = servers
    for i, unit in ((1, "m"), (2, "m/m"), (3, "m")):
        hs.create_datastream(name=f"DS {i}", unit=unit,
                             datastream_id=f"0b000000-0000-4000-8000-00000000000{i}")
    result = factory.build_dags(REPO / "dags" / "definitions")
    dag = result.dags["hydroserver_swot_reach_18180900091"]
    task = dag.get_task("ingest")
    assert type(task) is HydroIngestOperator and task.feature_id is None
    assert task.task_variables == {"feature_id": REACH}
    assert "**Hydrocron:** Reach `18180900091`" in dag.doc_md
    context = run_context(dag, task)
    summary = task.execute(context)
    assert summary["loaded"] == 9 and summary["hydrocron"]["feature_id"] == REACH
    assert hydrocron.requests[0].params["collection_name"] == "SWOT_L2_HR_RiverSP_D"


def test_a_request_hydrocron_rejects_fails_without_retries(tmp_path, servers):
    hs, _ = servers
    ds = hs.create_datastream(name="X", unit="m")
    dag = build(tmp_path / "bad", f"""
        data_connections:
          - {{name: Reaches, payload_type: HYDROCRON, feature_id: "{REACH}"}}
        tasks:
          - name: Bad field
            data_connection: Reaches
            mappings: [{{source_identifier: wse_not_a_field, target_datastream_id: {ds}}}]
        """)["hydroserver_bad_field"]
    task = dag.get_task("ingest")
    with pytest.raises(AirflowFailException, match="fields parameter should contain valid SWOT"):
        task.execute(run_context(dag, task))


def test_the_operator_feature_id_is_templated_and_wins(servers):
    hs, hydrocron = servers
    ds = hs.create_datastream(name="X", unit="m")
    op = HydroIngestOperator(
        task_id="ingest",
        data_connection={"name": "Reaches", "payload_type": "HYDROCRON",
                         "feature_id": "18180900101"},
        mappings=[{"source_identifier": "wse", "target_datastream_id": ds}],
        feature_id="{{ params.reach }}", start_time=datetime(2024, 1, 1, tzinfo=UTC),
    )
    assert "feature_id" in op.template_fields
    op.render_template_fields({"params": {"reach": REACH}})
    summary = op.execute({"data_interval_start": datetime(2024, 3, 1, tzinfo=UTC),
                          "data_interval_end": datetime(2024, 3, 2, tzinfo=UTC)})
    assert summary["hydrocron"]["feature_id"] == REACH and summary["loaded"] == 3
    assert hydrocron.requests[0].params["feature_id"] == REACH
    assert hs.observations(ds)[0][0] == datetime(2024, 1, 12, 11, 52, 38, tzinfo=UTC)
    assert summary["hydrocron"]["asked"][0] == "2024-01-01T00:00:00Z"
    assert timedelta(hours=24) == (
        datetime(2024, 1, 1, tzinfo=UTC)
        - datetime.strptime(hydrocron.requests[0].params["start_time"],
                            "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC))


def test_a_fan_out_instance_registers_the_hydrocron_key_when_rendered(tmp_path, monkeypatch):
    """A mapped instance renders through the operator's own rendering hook too: the Hydrocron
    key is known to Airflow's masker before the rendered fields are stored."""
    from hydroserver_provider.compat import redact

    key = "hck-2WZP7N-fan-out-key"
    monkeypatch.setenv("AIRFLOW_CONN_HYDROCRON_DEFAULT", json.dumps(
        {"conn_type": "hydrocron", "host": "http://127.0.0.1:9", "password": key}))
    dag = fan_out_dag(tmp_path)
    assert redact(f"x-hydrocron-key: {key}") == f"x-hydrocron-key: {key}"  # not known yet
    context = run_context(dag, dag.get_task("ingest"), 1)
    assert isinstance(context["task"], HydroIngestOperator)  # the unmapped instance
    assert key not in str(redact(f"x-hydrocron-key: {key}"))
