"""HYDROCRON data connections end to end: the local Hydrocron replay (recorded answers) into the
local HydroServer, both over real HTTP. Expected values are read from the fixture files here,
independently of the code under test."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hydroserver_provider.definitions import Mapping, parse_data_connection
from hydroserver_provider.definitions.files import load_definition_file
from hydroserver_provider.errors import DefinitionError, IngestionFailed
from hydroserver_provider.hydroserver.client import Credentials, HydroServerClient
from hydroserver_provider.pipeline import RunOptions, run_ingestion
from hydroserver_provider.retries import RetryPolicy
from hydroserver_provider.sources.hydrocron.client import HydrocronClient, HydrocronRequestError
from hydroserver_provider.sources.hydrocron.source import SWOT_FIRST_DATA, HydrocronSource
from hydroserver_provider.sources.hydrocron.units import check_units, conversion_factor, find_unit
from hydroserver_provider.sources.placeholders import RunWindow
from hydroserver_provider.testing.hydrocron import LocalHydrocron

REPO = Path(__file__).resolve().parents[3]
FIXTURES = (REPO / ".." / "shared" / "fixtures" / "hydrocron").resolve()
EXAMPLE = REPO / "dags" / "definitions" / "hydrocron.yaml"
UTC = UTC
FAST = RetryPolicy(tries=3, backoff=0.01, max_delay=0.02)
REACH = "18180900091"
WSE, SLOPE, WIDTH = (f"0b000000-0000-4000-8000-00000000000{i}" for i in (1, 2, 3))
FEET = 0.3048

pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"fixtures not found at {FIXTURES}")


# --------------------------------------------------------------------------------------------
# The fixtures, read independently
# --------------------------------------------------------------------------------------------


def fixture_rows(name: str) -> list[dict[str, str]]:
    """The rows of a recorded answer: the CSV inside an envelope, or GeoJSON properties."""
    doc = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    if "results" in doc:
        return list(csv.DictReader(io.StringIO(doc["results"]["csv"])))
    return [f["properties"] for f in doc["features"]]


def utc(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def expected(name: str, field: str, *, factor: float = 1.0,
             start: datetime | None = None, end: datetime | None = None) -> list[tuple]:
    """(time, value) of one field: observed passes without fill values, inside [start, end)."""
    rows = []
    for row in fixture_rows(name):
        if row["time_str"] == "no_data" or float(row[field]) <= -999999999999:
            continue
        moment = utc(row["time_str"])
        if (start is None or moment >= start) and (end is None or moment < end):
            rows.append((moment, float(row[field]) * factor))
    return sorted(rows)


def assert_stored(hs, datastream_id: str, rows: list[tuple]) -> None:
    stored = hs.observations(datastream_id)
    assert [t for t, _ in stored] == [t for t, _ in rows]
    assert all(t.tzinfo is not None and t.utcoffset() == timedelta(0) for t, _ in stored)
    assert [v for _, v in stored] == pytest.approx([v for _, v in rows], rel=1e-12)


# --------------------------------------------------------------------------------------------
# Servers and clients
# --------------------------------------------------------------------------------------------


@pytest.fixture
def hydrocron():
    with LocalHydrocron(FIXTURES) as server:
        yield server


@pytest.fixture
def hs(local_hydroserver):
    return local_hydroserver


@pytest.fixture
def client(hs):
    with HydroServerClient(hs.url, Credentials(api_key=hs.api_key), retry=FAST) as c:
        yield c


def hydrocron_client(server: LocalHydrocron, form: str = "csv") -> HydrocronClient:
    return HydrocronClient(server.url, retry=FAST, answer_form=form)


def example_task():
    loaded = load_definition_file(EXAMPLE)
    assert loaded.errors == ()
    (task,) = loaded.tasks
    return task


def reach_datastreams(hs, width_unit: str = "m") -> None:
    """The example's three datastreams, with their fixed ids and units."""
    for ds_id, name, unit in ((WSE, "WSE", "m"), (SLOPE, "Slope", "m/m"),
                              (WIDTH, "Width", width_unit)):
        hs.create_datastream(name=name, unit=unit, datastream_id=ds_id)


def with_payload(connection, **changes):
    payload = type(connection.payload).model_validate({**connection.payload.model_dump(),
                                                       **changes})
    return connection.model_copy(update={"payload": payload})


def connection(**payload):
    return parse_data_connection({"name": "SWOT", "payload_type": "HYDROCRON", **payload})


def maps(**targets) -> list[Mapping]:
    return [Mapping(source_identifier=f, target_datastream_id=d) for f, d in targets.items()]


def run(client, hydrocron, conn, mappings, *, window=None, form="csv", feature_id=None,
        **kwargs):
    if window is None:
        window = RunWindow()
    with hydrocron_client(hydrocron, form) as hc:
        return run_ingestion(client, conn, mappings, window=window,
                             source=HydrocronSource(hc, feature_id=feature_id), **kwargs)


# --------------------------------------------------------------------------------------------
# The example definition
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("form, recording", [("csv", "ops/reach/reach_d_basic.csv"),
                                             ("geojson", "ops/reach/reach_d_basic.geojson")])
def test_example_loads_the_reach_into_its_three_datastreams(hs, client, hydrocron, form,
                                                            recording):
    task = example_task()
    reach_datastreams(hs)
    summary = run(client, hydrocron, task.data_connection, task.mappings, form=form,
                  task_variables=task.task_variables, start_time=task.schedule.start_time)
    for ds_id, field in ((WSE, "wse"), (SLOPE, "slope"), (WIDTH, "width")):
        assert_stored(hs, ds_id, expected(recording, field))
    assert summary["status"] == "SUCCESS" and summary["loaded"] == 9
    block = summary["hydrocron"]
    assert (block["feature"], block["feature_id"], block["collection"]) == (
        "Reach", REACH, "SWOT_L2_HR_RiverSP_D")
    assert block["requests"] == 1 == len(hydrocron.requests)
    assert block["mode"] == "incremental"
    assert block["units"] == {"wse": "m", "slope": "m/m", "width": "m"}
    assert summary["message"].startswith(
        f"Hydrocron Reach {REACH} (SWOT_L2_HR_RiverSP_D), 1 request: Loaded 9 observations")
    (request,) = hydrocron.requests
    # incremental from the task's start time minus the 48 h overlap, one collection only
    assert request.params["start_time"] == "2023-12-30T00:00:00Z"
    assert request.params["collection_name"] == "SWOT_L2_HR_RiverSP_D"
    assert json.loads(json.dumps(summary)) == summary


def test_an_incremental_rerun_adds_nothing_and_asks_from_the_last_pass(hs, client, hydrocron):
    task = example_task()
    reach_datastreams(hs)
    run(client, hydrocron, task.data_connection, task.mappings,
        task_variables=task.task_variables, start_time=task.schedule.start_time)
    before = {d: hs.observations(d) for d in (WSE, SLOPE, WIDTH)}
    hydrocron.clear_requests()
    summary = run(client, hydrocron, task.data_connection, task.mappings,
                  task_variables=task.task_variables, start_time=task.schedule.start_time)
    assert summary["loaded"] == 0 and summary["message"].endswith("Already up to date.")
    assert {d: hs.observations(d) for d in (WSE, SLOPE, WIDTH)} == before
    last = max(t for t, _ in before[WSE])
    assert hydrocron.requests[0].params["start_time"] == (
        (last - timedelta(hours=48)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    # the last pass lies inside the overlap the run asks for again: it is checked, found stored
    assert all(d["skipped_reasons"] == {"already_stored": 1} for d in summary["datastreams"])


def test_windowed_runs_load_exactly_their_window_and_reruns_add_nothing(hs, client, hydrocron):
    task = example_task()
    reach_datastreams(hs)
    conn = with_payload(task.data_connection, mode="windowed")
    window = RunWindow(datetime(2024, 1, 13, tzinfo=UTC), datetime(2024, 2, 2, 8, 37, 44,
                                                                   tzinfo=UTC))
    first = run(client, hydrocron, conn, task.mappings, window=window,
                task_variables=task.task_variables)
    # the 48 h overlap fetched the passes of 01-12 and 02-02 too; the window keeps only 01-25
    (request,) = hydrocron.requests
    assert (request.params["start_time"], request.params["end_time"]) == (
        "2024-01-11T00:00:00Z", "2024-02-04T08:37:44Z")
    assert first["hydrocron"]["passes"] == 3 and first["mode"] == "windowed"
    only = expected("ops/reach/reach_d_basic.csv", "wse", start=window.start, end=window.end)
    assert len(only) == 1
    assert_stored(hs, WSE, only)
    assert all(d["skipped_reasons"] == {"outside_window": 2} for d in first["datastreams"])
    again = run(client, hydrocron, conn, task.mappings, window=window,
                task_variables=task.task_variables)
    assert again["status"] == "SUCCESS"
    assert_stored(hs, WSE, only)
    assert len(hs.observations(SLOPE)) == len(hs.observations(WIDTH)) == 1


def test_a_windowed_connection_needs_a_window(hs, client, hydrocron):
    reach_datastreams(hs)
    conn = connection(feature_id=REACH, mode="windowed")
    with pytest.raises(DefinitionError, match="mode: windowed needs the run's data interval"):
        run(client, hydrocron, conn, maps(wse=WSE))
    assert hydrocron.requests == [] and hs.observations(WSE) == []


# --------------------------------------------------------------------------------------------
# Hygiene: filled passes, no data, rejected requests
# --------------------------------------------------------------------------------------------


def test_fill_values_are_never_loaded(hs, client, hydrocron):
    flow = hs.create_datastream(name="Discharge", unit="m^3/s")
    wse = hs.create_datastream(name="WSE", unit="m")
    conn = connection(feature_id=REACH, mode="windowed")
    window = RunWindow(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC))
    summary = run(client, hydrocron, conn, maps(dschg_c=flow, wse=wse), window=window)
    rows = fixture_rows("ops/reach/reach_d_discharge.csv")
    assert all(float(r["dschg_c"]) <= -999999999999 for r in rows)  # all filled in the record
    assert hs.observations(flow) == []
    assert_stored(hs, wse, expected("ops/reach/reach_d_discharge.csv", "wse"))
    by_id = {d["datastream_id"]: d for d in summary["datastreams"]}
    assert by_id[flow]["dropped"] == {"fill_value": len(rows)}
    assert by_id[flow]["status"] == "SUCCESS"


def test_an_unobserved_lake_pass_loads_nothing_and_succeeds(hs, client, hydrocron):
    wse = hs.create_datastream(name="Lake WSE", unit="m")
    conn = connection(feature="PriorLake", feature_id="9120274662",
                      collection_name="SWOT_L2_HR_LakeSP_2.0", mode="windowed")
    window = RunWindow(datetime(2024, 7, 1, tzinfo=UTC), datetime(2024, 8, 1, tzinfo=UTC))
    summary = run(client, hydrocron, conn, maps(wse=wse), window=window, form="geojson")
    assert fixture_rows("geojson_lakes_unobserved.json")[0]["time_str"] == "no_data"
    assert summary["status"] == "SUCCESS" and summary["loaded"] == 0
    assert summary["hydrocron"]["passes"] == 1
    assert summary["datastreams"][0]["dropped"] == {"no_observation": 1}
    assert hs.observations(wse) == []


def test_passes_failing_the_quality_filter_are_dropped(hs, client, hydrocron):
    feature = "18180900101"
    rows = [
        {"time_str": "2024-05-01T10:00:00Z", "wse": "1000.5", "reach_q": "0", "ice_clim_f": "0"},
        {"time_str": "2024-05-11T10:00:00Z", "wse": "1001.5", "reach_q": "3", "ice_clim_f": "0"},
        {"time_str": "2024-05-21T10:00:00Z", "wse": "1002.5", "reach_q": "1", "ice_clim_f": "2"},
        {"time_str": "no_data", "wse": "-999999999999.0", "reach_q": "-999", "ice_clim_f": "0",
         "range_start_time": "2024-05-25T10:00:00Z"},
        {"time_str": "2024-05-31T10:00:00Z", "wse": "-999999999999", "reach_q": "0",
         "ice_clim_f": "0"},
        {"time_str": "2024-06-10T10:00:00Z", "wse": "1003.5", "reach_q": "1", "ice_clim_f": "0"},
    ]
    hydrocron.add_feature("Reach", feature, rows)
    wse = hs.create_datastream(name="WSE", unit="m")
    summary = run(client, hydrocron, connection(feature_id=feature), maps(wse=wse),
                  start_time=datetime(2024, 5, 1, tzinfo=UTC))
    keep = [(utc(r["time_str"]), float(r["wse"])) for r in rows
            if r["time_str"] != "no_data" and float(r["wse"]) != -999999999999.0
            and int(r["reach_q"]) <= 1 and r["ice_clim_f"] == "0"]
    assert_stored(hs, wse, keep)
    assert summary["datastreams"][0]["dropped"] == {"quality": 2, "no_observation": 1,
                                                    "fill_value": 1}


def test_no_data_answer_is_a_successful_empty_run(hs, client, hydrocron):
    wse = hs.create_datastream(name="WSE", unit="m")
    summary = run(client, hydrocron, connection(feature_id="71224100227"), maps(wse=wse))
    assert hydrocron.requests[0].status == 400  # "Results with the specified Feature ID ..."
    assert summary["status"] == "SUCCESS" and summary["loaded"] == 0
    assert summary["hydrocron"]["passes"] == 0
    assert summary["message"].endswith("Already up to date.")
    assert hs.observations(wse) == []


def test_other_400s_are_configuration_errors_quoting_hydrocron(hs, client, hydrocron):
    wse = hs.create_datastream(name="WSE", unit="m")
    junk = hs.create_datastream(name="Junk", unit="m")
    with pytest.raises(HydrocronRequestError) as caught:
        run(client, hydrocron, connection(feature_id=REACH), maps(wse=wse, wse_sm_xyz=junk))
    assert "400: fields parameter should contain valid SWOT fields" in str(caught.value)
    assert caught.value.hydrocron_message == \
        "400: fields parameter should contain valid SWOT fields"
    assert isinstance(caught.value, DefinitionError)
    assert hs.observations(wse) == []


# --------------------------------------------------------------------------------------------
# Units
# --------------------------------------------------------------------------------------------


def test_a_unit_mismatch_fails_that_datastream_only(hs, client, hydrocron):
    task = example_task()
    reach_datastreams(hs, width_unit="ft")
    with pytest.raises(IngestionFailed) as caught:
        run(client, hydrocron, task.data_connection, task.mappings,
            task_variables=task.task_variables, start_time=task.schedule.start_time)
    summary = caught.value.summary
    by_id = {d["datastream_id"]: d for d in summary["datastreams"]}
    assert by_id[WIDTH]["status"] == "FAILURE" and by_id[WIDTH]["loaded"] == 0
    error = by_id[WIDTH]["error"]
    assert "width in 'm'" in error and "'Width' is in 'ft'" in error
    assert "conversions: {width: {from: m, to: ft}}" in error
    assert hs.observations(WIDTH) == []
    assert_stored(hs, WSE, expected("ops/reach/reach_d_basic.csv", "wse"))
    assert_stored(hs, SLOPE, expected("ops/reach/reach_d_basic.csv", "slope"))
    assert "Width: the source reports width" in summary["message"]


def test_a_configured_conversion_loads_converted_values(hs, client, hydrocron):
    task = example_task()
    reach_datastreams(hs, width_unit="feet")  # any known spelling
    conn = with_payload(task.data_connection, conversions={"width": {"from": "m", "to": "ft"}})
    summary = run(client, hydrocron, conn, task.mappings, task_variables=task.task_variables,
                  start_time=task.schedule.start_time)
    assert_stored(hs, WIDTH, expected("ops/reach/reach_d_basic.csv", "width", factor=1 / FEET))
    assert_stored(hs, WSE, expected("ops/reach/reach_d_basic.csv", "wse"))
    units = summary["hydrocron"]["datastream_units"][WIDTH]
    assert (units["source"], units["target"]) == ("m", "feet")
    assert units["factor"] == pytest.approx(1 / FEET)


def test_lake_area_in_km2_converts_to_a_datastream_in_m2(hs, client, hydrocron):
    area = hs.create_datastream(name="Lake area", unit="m^2")
    conn = connection(feature="PriorLake", feature_id="8510353162",
                      collection_name="SWOT_L2_HR_LakeSP_2.0",
                      conversions={"area_total": "m2"})  # from: what Hydrocron reports (km^2)
    run(client, hydrocron, conn, maps(area_total=area), start_time=datetime(2024, 9, 1, tzinfo=UTC))
    assert_stored(hs, area, expected("ops/priorlake/lake_basic.csv", "area_total", factor=1e6))


def test_a_conversion_that_does_not_reach_the_datastream_unit_is_refused(hs, client, hydrocron):
    task = example_task()
    reach_datastreams(hs)  # width in m
    conn = with_payload(task.data_connection, conversions={"width": "ft"})
    with pytest.raises(IngestionFailed) as caught:
        run(client, hydrocron, conn, task.mappings, task_variables=task.task_variables,
            start_time=task.schedule.start_time)
    (failed,) = [d for d in caught.value.summary["datastreams"] if d["status"] == "FAILURE"]
    assert failed["datastream_id"] == WIDTH and "goes to 'ft' but datastream 'Width'" in \
        failed["error"]


def test_units_are_read_in_one_request_per_run(hs, client, hydrocron):
    task = example_task()
    reach_datastreams(hs)
    hs.reset_counts()
    run(client, hydrocron, task.data_connection, task.mappings,
        task_variables=task.task_variables, start_time=task.schedule.start_time)
    counts = hs.request_counts
    assert counts["GET /api/data/units"] == 1  # m and m/m: one list filtered on the datastreams
    assert counts["GET /api/data/units/{id}"] == 0


def test_get_units_filters_on_datastreams_and_caches(hs, client):
    a = hs.create_datastream(name="A", unit="m")
    b = hs.create_datastream(name="B", unit="cfs")
    hs.create_datastream(name="C", unit="degC")
    ids = {d: hs.datastream(d)["unitId"] for d in (a, b)}
    units = client.get_units(list(ids.values()), datastream_ids=[a, b])
    assert {u["symbol"] for u in units.values()} == {"m", "cfs"}
    listed = client.list_all("/api/data/units", {"datastream_id": [a, b]})
    assert {u["symbol"] for u in listed} == {"m", "cfs"}  # the contract's filter
    hs.reset_counts()
    assert client.get_units([ids[a]]) == {ids[a]: units[ids[a]]}
    assert hs.total_requests == 0


def test_dry_run_checks_units_and_writes_nothing(hs, client, hydrocron):
    task = example_task()
    reach_datastreams(hs, width_unit="ft")
    with pytest.raises(IngestionFailed):
        run(client, hydrocron, task.data_connection, task.mappings,
            task_variables=task.task_variables, start_time=task.schedule.start_time,
            options=RunOptions(dry_run=True))
    assert all(hs.observations(d) == [] for d in (WSE, SLOPE, WIDTH))


@pytest.mark.parametrize("source, target, factor", [
    ("m", "ft", 1 / 0.3048), ("metre", "feet", 1 / 0.3048), ("m^3/s", "cfs", 35.3146667),
    ("cms", "ft³/s", 35.3146667), ("km^2", "m2", 1e6), ("m/m", "mm/km", 1e6),
    ("1", "%", 100), ("ft", "meter", 0.3048),
])
def test_unit_table_conversions(source, target, factor):
    assert conversion_factor(source, target) == pytest.approx(factor, rel=1e-6)


def test_unit_table_spellings_and_checks():
    assert find_unit("Meters").symbol == find_unit("m").symbol == "m"
    assert find_unit("m**2").symbol == "m^2" and find_unit("dimensionless").symbol == "1"
    assert find_unit("masl") is None
    same = check_units("slope", "m/m", {"symbol": "1", "name": "Dimensionless"})
    assert same.error is None and same.factor == 1.0 and same.note is None
    wrong_kind = check_units("wse", "m", {"symbol": "m^3/s"})
    assert "a length" in wrong_kind.error and "a flow rate" in wrong_kind.error
    unknown = check_units("wse", "m", {"symbol": "masl", "name": "Meters above sea level"})
    assert unknown.error is None and "not compared" in unknown.note


# --------------------------------------------------------------------------------------------
# Feature ids, first runs
# --------------------------------------------------------------------------------------------


def test_the_run_feature_wins_and_mappings_of_other_features_are_refused(hs, client, hydrocron):
    wse = hs.create_datastream(name="WSE", unit="m")
    conn = connection()
    fan = [Mapping(source_identifier="wse", target_datastream_id=wse, feature_id=REACH)]
    summary = run(client, hydrocron, conn, fan, start_time=datetime(2024, 1, 1, tzinfo=UTC))
    assert summary["variables"] == {"feature_id": REACH} and summary["loaded"] == 3
    with pytest.raises(DefinitionError, match="mappings of another feature"):
        run(client, hydrocron, conn, fan, feature_id="18180900101")
    with pytest.raises(DefinitionError, match="this Hydrocron run has no feature"):
        run(client, hydrocron, conn, maps(wse=wse))


def test_a_first_run_without_start_time_starts_at_swot_first_data(hs, client, hydrocron):
    wse = hs.create_datastream(name="WSE", unit="m")
    run(client, hydrocron, connection(feature_id=REACH, overlap_hours=0), maps(wse=wse))
    assert hydrocron.requests[0].params["start_time"] == SWOT_FIRST_DATA.strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    assert len(hs.observations(wse)) == 3


def test_a_window_longer_than_max_window_days_is_split_up_front(hs, client, hydrocron):
    wse = hs.create_datastream(name="WSE", unit="m")
    conn = connection(feature_id=REACH, mode="windowed", overlap_hours=0, max_window_days=10)
    window = RunWindow(datetime(2024, 1, 10, tzinfo=UTC), datetime(2024, 2, 9, tzinfo=UTC))
    summary = run(client, hydrocron, conn, maps(wse=wse), window=window)
    assert summary["hydrocron"]["requests"] == 3 == len(hydrocron.requests)
    assert_stored(hs, wse, expected("ops/reach/reach_d_basic.csv", "wse"))


# --------------------------------------------------------------------------------------------
# Late data: Hydrocron adds older passes after newer ones (missed or reprocessed granules)
# --------------------------------------------------------------------------------------------

LATE_REACH = "33129200271"


def _pass(moment: str, wse: str) -> dict[str, str]:
    return {"time_str": moment, "wse": wse, "reach_q": "0", "ice_clim_f": "0"}


def test_an_older_pass_arriving_after_a_newer_one_is_stored(hs, client, hydrocron):
    """Reach 33129200271: the 2025-06-05 22:41:29Z pass is loaded; the 15:40:52Z pass of the same
    day appears in Hydrocron afterwards. It lies in the overlap the next incremental run asks for
    again, so that run inserts it (and replaces a value Hydrocron revised there), instead of
    skipping it for being older than the newest stored pass."""
    hydrocron.add_feature("Reach", LATE_REACH, [
        _pass("2025-06-01T03:10:00Z", "101.5"), _pass("2025-06-05T22:41:29Z", "102.25")])
    wse = hs.create_datastream(name="WSE", unit="m")
    conn = connection(feature="Reach", feature_id=LATE_REACH, fields=["wse"])
    start = datetime(2025, 6, 1, tzinfo=UTC)

    first = run(client, hydrocron, conn, maps(wse=wse), start_time=start)
    assert first["loaded"] == 2
    hydrocron.add_feature("Reach", LATE_REACH, [
        _pass("2025-06-05T15:40:52Z", "102.0"),  # the late pass, before the stored end
        _pass("2025-06-05T22:41:29Z", "102.3")])  # the newest pass, reprocessed

    second = run(client, hydrocron, conn, maps(wse=wse), start_time=start)
    (outcome,) = second["datastreams"]
    assert second["status"] == "SUCCESS"
    assert (outcome["loaded"], outcome["revised"]) == (2, 1)
    assert "not_after_latest_observation" not in outcome["skipped_reasons"]
    assert hs.observations(wse) == [
        (utc("2025-06-01T03:10:00Z"), 101.5), (utc("2025-06-05T15:40:52Z"), 102.0),
        (utc("2025-06-05T22:41:29Z"), 102.3)]
    assert "missing or revised rows" in second["mode_reason"]

    third = run(client, hydrocron, conn, maps(wse=wse), start_time=start)
    assert third["loaded"] == 0
    assert third["datastreams"][0]["skipped_reasons"] == {"already_stored": 2}


def test_a_pass_older_than_the_overlap_is_skipped_and_counted(hs, client, hydrocron):
    hydrocron.add_feature("Reach", LATE_REACH, [_pass("2025-06-10T12:00:00Z", "100.0")])
    wse = hs.create_datastream(name="WSE", unit="m")
    conn = connection(feature="Reach", feature_id=LATE_REACH, fields=["wse"], overlap_hours=24)
    run(client, hydrocron, conn, maps(wse=wse), start_time=datetime(2025, 6, 1, tzinfo=UTC))
    hydrocron.add_feature("Reach", LATE_REACH, [_pass("2025-06-08T12:00:00Z", "99.0"),
                                                _pass("2025-06-09T18:00:00Z", "99.5")])
    summary = run(client, hydrocron, conn, maps(wse=wse),
                  start_time=datetime(2025, 6, 1, tzinfo=UTC))
    (outcome,) = summary["datastreams"]
    # the request asks from the end minus 24 h (the 06-09 pass); 06-08 is not even fetched
    assert outcome["loaded"] == 1 and outcome["skipped_reasons"] == {"already_stored": 1}
    assert [t for t, _ in hs.observations(wse)] == [utc("2025-06-09T18:00:00Z"),
                                                    utc("2025-06-10T12:00:00Z")]
