"""HydroIngestOperator: Airflow context in, run summary out, over real local HTTP."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from hydroserver_provider.errors import IngestionFailed
from hydroserver_provider.operators.ingest import HydroIngestOperator
from hydroserver_provider.testing import stations
from hydroserver_provider.testing.sources import LocalSourceServer

UTC = UTC
T0 = datetime(2025, 6, 1, tzinfo=UTC)


class FakeTI:
    def __init__(self):
        self.pushed = {}

    def xcom_push(self, key, value):
        self.pushed[key] = value


@pytest.fixture
def env(local_hydroserver, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_HYDROSERVER_DEFAULT", json.dumps({
        "conn_type": "hydroserver", "host": local_hydroserver.url,
        "extra": {"api_key": local_hydroserver.api_key, "retries": 1, "retry_backoff": 0.01}}))
    with LocalSourceServer() as source:
        source.add("/api.json", lambda q: stations.api_json(
            stations.parse_query_time(q.get("from")) or T0,
            stations.parse_query_time(q.get("to")) or T0 + timedelta(hours=3)),
            "application/json")
        yield local_hydroserver, source


def connection(url: str, **extra) -> dict:
    return {"name": "Discharge API", "source_url": url, "payload_type": "JSON",
            "jmespath": "data.records[*]", "timestamp_key": "time", **extra}


WINDOWED = {"placeholder_variables": [
    {"name": "start", "variable_type": "window_start"},
    {"name": "end", "variable_type": "window_end"}]}


def test_execute_loads_the_data_interval_and_returns_the_summary(env):
    hs, source = env
    flow = hs.create_datastream(name="Discharge")
    op = HydroIngestOperator(
        task_id="ingest",
        data_connection=connection(source.url + "/api.json?from={start}&to={end}", **WINDOWED),
        mappings=[{"source_identifier": "values.discharge", "target_datastream_id": flow}],
    )
    summary = op.execute({"data_interval_start": T0, "data_interval_end": T0 + timedelta(hours=2)})
    assert summary["status"] == "SUCCESS" and summary["loaded"] == 2
    assert summary["window"] == {"start": "2025-06-01T00:00:00Z", "end": "2025-06-01T02:00:00Z",
                                 "shown": "2025-06-01 00:00 -> 02:00 UTC"}
    assert json.loads(json.dumps(summary)) == summary  # XCom-serialisable
    assert [t for t, _ in hs.observations(flow)] == [T0, T0 + timedelta(hours=1)]


def test_window_overrides_win_over_the_data_interval(env):
    hs, source = env
    flow = hs.create_datastream(name="Discharge")
    op = HydroIngestOperator(
        task_id="ingest",
        data_connection=connection(source.url + "/api.json?from={start}&to={end}", **WINDOWED),
        mappings=[{"source_identifier": "values.discharge", "target_datastream_id": flow}],
        window_start="2025-06-01T01:00:00+00:00", window_end="2025-06-01T03:00:00Z",
    )
    summary = op.execute({"data_interval_start": T0, "data_interval_end": T0 + timedelta(hours=1)})
    assert summary["window"]["start"] == "2025-06-01T01:00:00Z"
    assert [t.hour for t, _ in hs.observations(flow)] == [1, 2]


def test_templated_fields_render_from_the_context():
    op = HydroIngestOperator(
        task_id="ingest", data_connection=connection("https://x.org/{site}", placeholder_variables=[
            {"name": "site", "variable_type": "per_task"}]),
        mappings=[{"source_identifier": "v", "target_datastream_id": "a" * 8}],
        task_variables={"site": "{{ params.site }}"},
        window_start="{{ params.window_start or '' }}", dry_run="{{ params.dry_run }}",
    )
    assert set(op.template_fields) >= {"task_variables", "window_start", "window_end", "dry_run"}
    op.render_template_fields({"params": {"site": "09380000", "window_start": None, "dry_run": True}})
    assert op.task_variables == {"site": "09380000"}
    assert op.window_start == "" and op.dry_run == "True"


def test_dry_run_from_a_rendered_string(env):
    hs, source = env
    flow = hs.create_datastream(name="Discharge")
    op = HydroIngestOperator(
        task_id="ingest", data_connection=connection(source.url + "/api.json"),
        mappings=[{"source_identifier": "values.discharge", "target_datastream_id": flow}],
        dry_run="True",
    )
    summary = op.execute({})
    assert summary["dry_run"] and summary["loaded"] == 3
    assert hs.observations(flow) == []


def test_failure_pushes_the_summary_and_raises(env):
    hs, source = env
    flow = hs.create_datastream(name="Discharge")
    ghost = "11111111-2222-3333-4444-555555555555"
    op = HydroIngestOperator(
        task_id="ingest", data_connection=connection(source.url + "/api.json"),
        mappings=[{"source_identifier": "values.discharge", "target_datastream_id": flow},
                  {"source_identifier": "values.gage_height", "target_datastream_id": ghost}],
    )
    ti = FakeTI()
    with pytest.raises(IngestionFailed, match="1 of 2 datastreams failed"):
        op.execute({"ti": ti})
    assert ti.pushed["summary"]["status"] == "FAILURE"
    assert len(hs.observations(flow)) == 3


def test_source_auth_header_comes_from_an_airflow_connection(env, monkeypatch):
    hs, source = env
    secret = "src-token-0a1b2c3d4e5f"
    monkeypatch.setenv("AIRFLOW_CONN_STATION_API", json.dumps({"conn_type": "http",
                                                                "password": secret}))
    flow = hs.create_datastream(name="Discharge")
    op = HydroIngestOperator(
        task_id="ingest",
        data_connection=connection(source.url + "/api.json",
                                   auth={"header_name": "X-Token", "conn_id": "station_api"}),
        mappings=[{"source_identifier": "values.discharge", "target_datastream_id": flow}],
    )
    summary = op.execute({})
    assert source.requests_to("/api.json")[-1].headers["X-Token"] == secret
    assert secret not in json.dumps(summary)


def test_the_outlet_is_one_alias_declared_with_the_task():
    from hydroserver_provider.compat import DAG, AssetAlias

    with DAG("station_42", schedule=None):
        op = HydroIngestOperator(
            task_id="ingest", data_connection=connection("https://x.org/a.json"),
            mappings=[{"source_identifier": "a", "target_datastream_id": "ds-1"},
                      {"source_identifier": "b", "target_datastream_id": "ds-2"}])
    assert op.outlets == [AssetAlias(name="hydroserver-datastreams:station_42.ingest")]
    assert op.asset_host is None  # the connection's host, read at run time


def _events(context) -> dict[str, dict]:
    """The asset events a run added to its alias outlets: {asset uri: extra}."""
    found = {}
    for accessor in context["outlet_events"]._dict.values():
        for event in accessor.asset_alias_events:
            assert event.source_alias_name.startswith("hydroserver-datastreams:")
            assert event.dest_asset_key.name == event.dest_asset_key.uri  # Asset(uri) matches
            found[event.dest_asset_key.uri] = event.extra
    return found


def _run_context(**extra):
    from airflow.sdk.execution_time.context import OutletEventAccessors

    return {"data_interval_start": T0, "data_interval_end": T0 + timedelta(hours=2),
            "outlet_events": OutletEventAccessors(), **extra}


def test_asset_events_only_for_datastreams_that_received_rows_never_on_a_dry_run(env):
    """Two datastreams, one already holding the window: a run announces only the other, with
    the rows loaded and their span; running the window again (a no-op) or as a dry run
    announces nothing."""
    hs, source = env
    flow = hs.create_datastream(name="Discharge")
    stage = hs.create_datastream(name="Gage height", observations=[
        (T0 + timedelta(hours=h), stations.gage_height(T0 + timedelta(hours=h)))
        for h in range(2)])

    def operator(**kwargs):
        return HydroIngestOperator(
            task_id="ingest",
            data_connection=connection(source.url + "/api.json?from={start}&to={end}",
                                       **WINDOWED),
            mappings=[{"source_identifier": "values.discharge", "target_datastream_id": flow},
                      {"source_identifier": "values.gage_height", "target_datastream_id": stage}],
            **kwargs)

    host = hs.url.split("://", 1)[1]
    dry = _run_context()
    assert operator(dry_run="True").execute(dry)["loaded"] == 2
    assert _events(dry) == {} and hs.observations(flow) == []

    first = _run_context()
    summary = operator().execute(first)
    assert summary["loaded"] == 2
    assert _events(first) == {f"hydroserver://{host}/datastreams/{flow}": {
        "datastream_id": flow, "datastream_name": "Discharge",
        "source_identifier": "values.discharge", "rows_loaded": 2, "rows_revised": 0,
        "rows_removed": 0, "first_timestamp": "2025-06-01T00:00:00Z",
        "last_timestamp": "2025-06-01T01:00:00Z", "mode": "windowed",
        "window": {"start": "2025-06-01T00:00:00Z", "end": "2025-06-01T02:00:00Z"}}}
    assert "outlet" not in json.dumps(summary)  # the summary is unchanged

    again = _run_context()
    assert operator().execute(again)["loaded"] == 0
    assert _events(again) == {}

    named = _run_context()
    operator(asset_host="HydroServer.Example.org").execute(
        {**named, "data_interval_start": T0 + timedelta(hours=2),
         "data_interval_end": T0 + timedelta(hours=3)})
    assert set(_events(named)) == {f"hydroserver://hydroserver.example.org/datastreams/{d}"
                                   for d in (flow, stage)}


class FakeTaskStateStore:
    """Airflow's task state store (``context["task_state_store"]``): shared by the tries of one
    task instance."""

    def __init__(self):
        self.values = {}

    def get(self, key, default=None):
        return self.values.get(key, default)

    def set(self, key, value):
        assert value is not None
        self.values[key] = json.loads(json.dumps(value))  # stored as JSON

    def delete(self, key):
        self.values.pop(key, None)


def test_rows_a_failed_try_wrote_are_announced_by_the_try_that_succeeds(env):
    """Try 1 loads one datastream and fails on the other; try 2 finds the first one's rows
    stored (loads nothing there) and loads the other: both are announced, with try 1's rows."""
    hs, source = env
    flow = hs.create_datastream(name="Discharge")
    stage = hs.create_datastream(name="Gage height")
    op = HydroIngestOperator(
        task_id="ingest",
        data_connection=connection(source.url + "/api.json?from={start}&to={end}", **WINDOWED),
        mappings=[{"source_identifier": "values.discharge", "target_datastream_id": flow},
                  {"source_identifier": "values.gage_height", "target_datastream_id": stage}])
    store = FakeTaskStateStore()
    hs.faults.fail_next(2, 503, path_contains=f"{stage}/observations")  # both attempts
    first = _run_context(task_state_store=store, ti=FakeTI())
    with pytest.raises(IngestionFailed):
        op.execute(first)
    assert _events(first) == {} and len(hs.observations(flow)) == 2 and store.values

    second = _run_context(task_state_store=store)
    summary = op.execute(second)
    assert [d["loaded"] for d in summary["datastreams"]] == [0, 2]
    host = hs.url.split("://", 1)[1]
    events = _events(second)
    assert {uri: extra["rows_loaded"] for uri, extra in events.items()} == {
        f"hydroserver://{host}/datastreams/{flow}": 2,
        f"hydroserver://{host}/datastreams/{stage}": 2}
    assert store.values == {}  # announced once

    third = _run_context(task_state_store=store)  # a later run: nothing new, nothing kept
    op.execute(third)
    assert _events(third) == {}


def test_openlineage_facets_name_the_source_without_secrets_and_the_datastreams(env):
    from airflow.providers.openlineage.extractors import OperatorLineage

    hs, source = env
    flow = hs.create_datastream(name="Discharge")
    op = HydroIngestOperator(
        task_id="ingest",
        data_connection=connection(
            source.url + "/api.json?from={start}&to={end}&site={site}&key={station}",
            placeholder_variables=[*WINDOWED["placeholder_variables"],
                                   {"name": "site", "variable_type": "per_task"},
                                   {"name": "station", "variable_type": "per_task"}]),
        mappings=[{"source_identifier": "values.discharge", "target_datastream_id": flow}],
        task_variables={"site": "09380000", "station": "stn-secret-5Q8ZL"})
    op.execute(_run_context())
    lineage = op.get_openlineage_facets_on_complete(None)
    assert isinstance(lineage, OperatorLineage)
    (source_ds,) = lineage.inputs
    assert source_ds.namespace == source.url
    assert source_ds.name == "/api.json?from={start}&to={end}&site=09380000&key=***"
    (output,) = lineage.outputs
    host = hs.url.split("://", 1)[1]
    assert (output.namespace, output.name) == (f"hydroserver://{host}", f"datastreams/{flow}")
    assert output.outputFacets["outputStatistics"].rowCount == 2
    assert "stn-secret-5Q8ZL" not in repr(lineage)

    op.dry_run = "True"  # type: ignore[assignment]
    op.execute(_run_context())
    assert op.get_openlineage_facets_on_complete(None).outputs == []


def test_secrets_are_masked_as_soon_as_the_templates_are_rendered(env, monkeypatch):
    """The per-task value of a secret placeholder (``key={station}``: a name Airflow does not
    mask by itself) and the source's auth value are known to the masker right after rendering,
    before Airflow serialises the rendered fields -- not only in execute()."""
    from airflow.sdk.execution_time.task_runner import _serialize_rendered_fields

    from hydroserver_provider.compat import redact

    hs, source = env
    station, header = "stn-4HB7QX-value", "hdr-8JW2RT-value"
    monkeypatch.setenv("AIRFLOW_VAR_SITE_HEADER", header)
    op = HydroIngestOperator(
        task_id="ingest",
        data_connection=connection(
            source.url + "/api.json?key={station}",
            auth={"header_name": "X-Site", "variable": "site_header"},
            placeholder_variables=[{"name": "station", "variable_type": "per_task"}]),
        mappings=[{"source_identifier": "values.discharge", "target_datastream_id": "a" * 8}],
        task_variables={"station": "{{ params.station }}"})
    assert redact(station) == station  # not known to the masker yet
    op.render_template_fields({"params": {"station": station}})
    assert op.task_variables == {"station": station}
    rendered = json.dumps(_serialize_rendered_fields(op))
    assert station not in rendered and "***" in rendered
    assert header not in str(redact(f"header {header}"))


def test_a_definition_problem_fails_without_retries(env):
    from hydroserver_provider.compat import AirflowFailException

    hs, source = env
    flow = hs.create_datastream(name="Discharge")
    op = HydroIngestOperator(
        task_id="ingest",
        data_connection=connection(source.url + "/api.json?from={start}&to={end}", **WINDOWED),
        mappings=[{"source_identifier": "values.discharge", "target_datastream_id": flow}],
    )
    with pytest.raises(AirflowFailException, match="needs the run's data interval"):
        op.execute({})  # a windowed URL on a run without a window: retrying cannot help
    assert source.requests_to("/api.json") == []


INCREMENTAL_SINCE = {"placeholder_variables": [
    {"name": "since", "variable_type": "latest_observation_timestamp"}]}


class _Run:
    def __init__(self, run_type: str) -> None:
        self.run_type = run_type


def _incremental_op(source, flow, **kwargs) -> HydroIngestOperator:
    return HydroIngestOperator(
        task_id="ingest",
        data_connection=connection(source.url + "/api.json?from={since}", **INCREMENTAL_SINCE),
        mappings=[{"source_identifier": "values.discharge", "target_datastream_id": flow}],
        **kwargs)


def _stored_with_stale_values(hs):
    """Three hours stored, the middle one with a value the source has since revised."""
    rows = [(T0 + timedelta(hours=h), stations.discharge(T0 + timedelta(hours=h)))
            for h in range(3)]
    rows[1] = (rows[1][0], -1.0)
    return hs.create_datastream(name="Discharge", observations=rows)


@pytest.mark.parametrize("how", ["trigger form", "backfill"])
def test_a_window_given_to_an_incremental_task_reloads_it(env, how):
    """The trigger form's window (params) or a backfill's data interval makes an incremental
    task's run own the window: ``latest_observation_timestamp`` is filled from it and the
    window's rows are made equal to the source's (here: a revised value)."""
    hs, source = env
    flow = _stored_with_stale_values(hs)
    interval = (T0 + timedelta(hours=1), T0 + timedelta(hours=2))
    if how == "trigger form":
        op = _incremental_op(source, flow, window_start=interval[0].isoformat(),
                             window_end=interval[1].isoformat())
        context = {"params": {"window_start": interval[0].isoformat(),
                              "window_end": interval[1].isoformat()},
                   "dag_run": _Run("manual")}
    else:
        op = _incremental_op(source, flow)
        context = {"data_interval_start": interval[0], "data_interval_end": interval[1],
                   "dag_run": _Run("backfill")}
    summary = op.execute(context)
    assert summary["mode"] == "windowed"
    reason = ("the window given when the run was triggered" if how == "trigger form"
              else "a backfill run reloads its data interval")
    assert reason in summary["mode_reason"]
    assert source.requests_to("/api.json")[-1].query == {"from": "2025-06-01T01:00:00Z"}
    (outcome,) = summary["datastreams"]
    assert (outcome["loaded"], outcome["revised"]) == (1, 1)
    assert hs.observations(flow)[1] == (interval[0], stations.discharge(interval[0]))


def test_a_scheduled_run_of_an_incremental_task_stays_incremental(env):
    hs, source = env
    flow = _stored_with_stale_values(hs)
    summary = _incremental_op(source, flow).execute({
        "data_interval_start": T0 + timedelta(hours=1),
        "data_interval_end": T0 + timedelta(hours=2), "dag_run": _Run("scheduled")})
    assert summary["mode"] == "incremental"
    assert "no window placeholder" in summary["mode_reason"]
    assert source.requests_to("/api.json")[-1].query == {"from": "2025-06-01T02:00:00Z"}
    assert hs.observations(flow)[1][1] == -1.0  # older than the stored end: left alone
