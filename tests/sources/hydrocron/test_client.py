"""Hydrocron client and parsing, against the local Hydrocron replay over real HTTP.

The recorded Hydrocron answers are read in place from the shared fixtures directory.
"""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import requests

from hydroserver_provider.errors import DefinitionError, ParseError
from hydroserver_provider.retries import RetryPolicy
from hydroserver_provider.sources.hydrocron.client import (
    DEFAULT_URL,
    HydrocronClient,
    HydrocronError,
    HydrocronInternalError,
    HydrocronQuery,
    HydrocronRequestError,
    HydrocronWindowTooLarge,
    build_query_string,
    fetch_timeseries,
    format_time,
    normalize_base_url,
)
from hydroserver_provider.sources.hydrocron.parse import (
    QualityRule,
    decode_answer,
    default_quality_rules,
    is_flag_field,
    parse_answer,
    units_of,
)
from hydroserver_provider.sources.ratelimit import RateLimiter, shared_limiter
from hydroserver_provider.testing.hydrocron import LocalHydrocron

FIXTURES = (Path(__file__).resolve().parents[3] / ".." / "shared" / "fixtures" / "hydrocron").resolve()
FAST = RetryPolicy(tries=4, backoff=0.01, max_delay=0.05, max_retry_after=2.0)
UTC = UTC
REACH = "18180900091"
REACH_2_0 = "SWOT_L2_HR_RiverSP_2.0"

pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"fixtures not found at {FIXTURES}")


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def expected_reach(name: str = "ops/reach/reach_basic.csv") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """wse/slope/width of a recorded envelope, read independently of the code under test."""
    text = json.loads(fixture_bytes(name))["results"]["csv"]
    rows = list(csv.DictReader(io.StringIO(text)))
    times = np.array([r["time_str"].rstrip("Z") for r in rows], dtype="datetime64[us]")
    return {f: (times, np.array([float(r[f]) for r in rows])) for f in ("wse", "slope", "width")}


def assert_series_equal(result_series, expected) -> None:
    for name, (times, values) in expected.items():
        got = result_series[name]
        assert got.timestamps.dtype == np.dtype("datetime64[us]")
        np.testing.assert_array_equal(got.timestamps, times)
        np.testing.assert_array_equal(got.values, values)


@pytest.fixture
def hydrocron():
    with LocalHydrocron(FIXTURES) as server:
        yield server


@pytest.fixture
def client(hydrocron):
    with HydrocronClient(hydrocron.url, retry=FAST, min_window=timedelta(days=1)) as c:
        yield c


def reach_query(**kwargs) -> HydrocronQuery:
    kwargs.setdefault("collection_name", REACH_2_0)
    return HydrocronQuery("Reach", REACH, ("wse", "slope", "width"), **kwargs)


def windows_of(server: LocalHydrocron) -> list[tuple[str, str]]:
    return [r.window for r in server.requests]


def z(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------------
# Request building
# --------------------------------------------------------------------------------------------


def test_url_has_z_times_and_fields_without_spaces(hydrocron, client):
    client.fetch(reach_query(), datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 3, 16, tzinfo=UTC))
    (request,) = hydrocron.requests
    assert request.status == 200
    assert request.query == (
        "feature=Reach&feature_id=18180900091"
        "&start_time=2024-01-31T00:00:00Z&end_time=2024-03-17T00:00:00Z&output=csv"
        "&fields=time_str,wse,slope,width,reach_q,ice_clim_f,collection_shortname"
        "&collection_name=SWOT_L2_HR_RiverSP_2.0"
    )
    assert request.headers["Accept"] == "application/json"
    assert " " not in request.params["fields"]


def test_offsets_are_sent_as_percent_2b_exactly_once(hydrocron):
    with HydrocronClient(hydrocron.url, retry=FAST, utc_suffix="+00:00") as c:
        result = c.fetch(reach_query(overlap=timedelta(0)), "2024-02-01T00:00:00Z",
                         datetime(2024, 3, 16))
    (request,) = hydrocron.requests
    assert "start_time=2024-02-01T00:00:00%2B00:00" in request.query
    assert "end_time=2024-03-16T00:00:00%2B00:00" in request.query
    assert "%25" not in request.query and "+" not in request.query
    assert request.params["start_time"] == "2024-02-01T00:00:00+00:00"  # decoded by the server
    assert request.status == 200 and result.parse_result.rows_read == 5


def test_query_string_encoding_rules():
    assert build_query_string([("t", "2024-01-01T00:00:00+00:00"), ("f", "a,b")]) == \
        "t=2024-01-01T00:00:00%2B00:00&f=a,b"
    assert build_query_string([("q", "x y&z=1")]) == "q=x%20y%26z%3D1"
    assert format_time(datetime(2024, 1, 2, 3, 4, 5, 678900)) == "2024-01-02T03:04:05Z"
    assert format_time(datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-7)))) == \
        "2024-01-02T10:04:05Z"
    assert normalize_base_url(None) == DEFAULT_URL
    assert normalize_base_url("soto.podaac.earthdatacloud.nasa.gov") == DEFAULT_URL
    assert normalize_base_url(DEFAULT_URL + "/timeseries/") == DEFAULT_URL


def test_api_key_goes_in_the_header_only(hydrocron):
    result = fetch_timeseries(reach_query(), datetime(2024, 2, 1), datetime(2024, 3, 1),
                              base_url=hydrocron.url, api_key="k-123-secret", retry=FAST)
    (request,) = hydrocron.requests
    assert request.api_key == "k-123-secret"
    assert "k-123-secret" not in request.query
    assert "k-123-secret" not in result.url + result.description + json.dumps(result.summary())


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"feature_id": "1818O900091"}, "feature_id"),
        ({"feature_id": "181809000"}, "feature_id"),
        ({"feature": "River"}, "feature"),
        ({"fields": ("wse_units",)}, "fields"),
        ({"fields": ("time_str",)}, "fields"),
        ({"fields": ("wse, slope",)}, "fields"),
        ({"fields": ()}, "fields"),
        ({"collection_name": "SWOT_L2_HR_LakeSP_D"}, "collection_name"),
        ({"quality_filter": ("reach_q is good",)}, "quality_filter"),
    ],
)
def test_query_validation_names_the_field(kwargs, field):
    base = {"feature": "Reach", "feature_id": REACH, "fields": ("wse",)}
    with pytest.raises(DefinitionError) as info:
        HydrocronQuery(**{**base, **kwargs})
    assert info.value.field == field


def test_query_normalizes_friendly_spellings():
    q = HydrocronQuery("lake", 7230381002, "wse,area_total", quality_filter="quality_f <= 0")
    assert (q.feature, q.feature_id, q.fields) == ("PriorLake", "7230381002", ("wse", "area_total"))
    assert q.quality_filter == (QualityRule("quality_f", "<=", 0.0),)
    assert q.request_fields == ("time_str", "wse", "area_total", "quality_f", "collection_shortname")
    assert q.id_field == "lake_id"


# --------------------------------------------------------------------------------------------
# Answer forms
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["csv", "geojson", "geojson-compact", "text/csv", "geo+json"])
def test_every_answer_form_gives_the_same_series(hydrocron, form):
    with HydrocronClient(hydrocron.url, retry=FAST, answer_form=form) as c:
        result = c.fetch(reach_query(), datetime(2024, 2, 1), datetime(2024, 3, 16))
    assert hydrocron.requests[-1].status == 200
    assert_series_equal(result.series, expected_reach())
    assert result.units == {"wse": "m", "slope": "m/m", "width": "m"}
    assert result.collection == REACH_2_0
    assert result.parse_result.dropped == {"wse": {}, "slope": {}, "width": {}}


def test_default_collection_is_version_d(client):
    result = client.fetch(reach_query(collection_name=None), datetime(2024, 1, 1),
                          datetime(2024, 2, 10))
    assert result.collection == "SWOT_L2_HR_RiverSP_D"
    assert_series_equal(result.series, expected_reach("ops/reach/reach_d_basic.csv"))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ops/reach/reach_basic.csv", "ops/reach/reach_basic.csv"),
        ("ops/reach/reach_basic.geojson", "ops/reach/reach_basic.csv"),
        ("ops/reach/reach_comprehensive.geojson", "ops/reach/reach_basic.csv"),
        ("ops/reach/reach_d_basic.csv", "ops/reach/reach_d_basic.csv"),
        ("ops/reach/reach_d_comprehensive.geojson", "ops/reach/reach_d_basic.csv"),
    ],
)
def test_recorded_answers_parse_in_place(name, expected):
    result = parse_answer(fixture_bytes(name), ["wse", "slope", "width"])
    assert_series_equal(result.series, expected_reach(expected))
    assert result.rows_read == len(expected_reach(expected)["wse"][0])


def test_compact_geojson_equals_non_compact():
    doc = json.loads(fixture_bytes("ops/reach/reach_basic.geojson"))
    props = [f["properties"] for f in doc["features"]]
    compact = {"type": "FeatureCollection", "features": [{
        "id": "0", "type": "Feature", "geometry": doc["features"][0]["geometry"],
        "properties": {k: [p[k] for p in props] for k in props[0]}}]}
    table = decode_answer(json.dumps(compact))
    assert table.form == "geojson-compact" and table.n_rows == 5
    assert_series_equal(parse_answer(json.dumps(compact), ["wse", "slope", "width"]).series,
                        expected_reach())


def test_raw_text_csv_with_wkt_geometry_plain_and_json_quoted():
    raw = fixture_bytes("raw_text_csv_response.csv")
    quoted = json.dumps(raw.decode())  # the observed text/csv shape: one JSON string
    for body in (raw, quoted):
        table = decode_answer(body, "text/csv")
        assert table.n_rows == 1 and table.columns["geometry"][0].startswith("LINESTRING (")
        result = parse_answer(body, ["wse"])
        assert result.series["wse"].values.tolist() == [286.2983]
        assert result.series["wse"].timestamps.tolist() == [datetime(2023, 6, 10, 19, 39, 43)]
        assert units_of(table) == {"wse": "m"}


def test_units_are_read_per_field_including_lakes_and_discharge():
    lake = decode_answer(fixture_bytes("ops/priorlake/lake_basic.csv"))
    assert units_of(lake) == {"wse": "m", "area_total": "km^2"}
    node = decode_answer(fixture_bytes("ops/node/node_d_basic.csv"))
    assert units_of(node)["wse_sm_u"] == "m" and units_of(node)["lat"] == "degrees_north"
    discharge = decode_answer(fixture_bytes("ops/reach/reach_discharge.csv"))
    assert units_of(discharge)["dschg_c"] == "m^3/s"


def test_html_or_garbage_is_a_parse_error():
    with pytest.raises(ParseError, match="HTML"):
        decode_answer(b"<html><body>Bad gateway</body></html>")
    with pytest.raises(ParseError, match="truncated"):
        decode_answer("time_str,wse\n2024-01-01T00:00:00Z,1,2\n")


# --------------------------------------------------------------------------------------------
# Status handling
# --------------------------------------------------------------------------------------------


def test_not_found_400_is_an_empty_success(hydrocron, client):
    q = HydrocronQuery("Reach", "71224100227", ("wse",))
    result = client.fetch(q, datetime(2024, 1, 1), datetime(2024, 2, 1))
    assert hydrocron.requests[-1].status == 400
    assert result.requests == 1 and result.parse_result.rows_read == 0
    assert len(result.series["wse"]) == 0 and result.parse_result.dropped == {"wse": {}}
    # a known reach with nothing in the window: the same answer
    empty = client.fetch(reach_query(), datetime(2020, 1, 1), datetime(2020, 2, 1))
    assert len(empty.series["wse"]) == 0


def test_other_400_is_a_definition_error_quoting_hydrocron(hydrocron, client):
    q = HydrocronQuery("Reach", REACH, ("wse", "height"))
    with pytest.raises(HydrocronRequestError) as info:
        client.fetch(q, datetime(2024, 1, 1), datetime(2024, 2, 1))
    assert isinstance(info.value, DefinitionError)
    assert "400: fields parameter should contain valid SWOT fields" in str(info.value)
    assert info.value.hydrocron_message == "400: fields parameter should contain valid SWOT fields"
    assert hydrocron.request_count == 1  # a 400 is never retried


def _expected_splits(passes: list[datetime], start: datetime, end: datetime, max_rows: int,
                     min_window: timedelta) -> list[tuple[datetime, datetime]]:
    """Halve any window holding more than max_rows passes, depth first (what 413 splitting means)."""
    out: list[tuple[datetime, datetime]] = []

    def visit(s: datetime, e: datetime) -> None:
        out.append((s, e))
        if sum(s <= p <= e for p in passes) > max_rows and e - s >= 2 * min_window:
            m = s + timedelta(seconds=int((e - s).total_seconds()) // 2)
            visit(s, m)
            visit(m, e)

    visit(start, end)
    return out


def test_413_splits_the_window_in_halves_recursively(hydrocron):
    hydrocron.max_rows = 1
    start, end = datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 3, 16, tzinfo=UTC)
    with HydrocronClient(hydrocron.url, retry=FAST, min_window=timedelta(hours=6)) as c:
        result = c.fetch(reach_query(overlap=timedelta(0)), start, end)
    passes = [datetime.fromisoformat(t.astype(str)).replace(tzinfo=UTC)
              for t in expected_reach()["wse"][0]]
    expected = _expected_splits(passes, start, end, 1, timedelta(hours=6))
    assert windows_of(hydrocron) == [(z(s), z(e)) for s, e in expected]
    statuses = [r.status for r in hydrocron.requests]
    assert statuses.count(413) > 1 and set(statuses) <= {200, 400, 413}
    assert_series_equal(result.series, expected_reach())
    assert result.requests == len(expected)
    answered = result.windows  # contiguous, in order, covering the whole window
    assert answered[0][0] == start and answered[-1][1] == end
    assert all(a[1] == b[0] for a, b in zip(answered, answered[1:]))


def test_504_splits_long_windows(hydrocron):
    hydrocron.max_window = timedelta(days=12)
    start = datetime(2024, 2, 1, tzinfo=UTC)
    with HydrocronClient(hydrocron.url, retry=FAST, min_window=timedelta(days=1)) as c:
        result = c.fetch(reach_query(overlap=timedelta(0)), start, start + timedelta(days=48))
    d = lambda n: z(start + timedelta(days=n))  # noqa: E731
    assert windows_of(hydrocron) == [
        (d(0), d(48)), (d(0), d(24)), (d(0), d(12)), (d(12), d(24)),
        (d(24), d(48)), (d(24), d(36)), (d(36), d(48)),
    ]
    assert [r.status for r in hydrocron.requests] == [504, 504, 200, 200, 504, 200, 200]
    assert result.windows == [(start + timedelta(days=a), start + timedelta(days=b))
                              for a, b in ((0, 12), (12, 24), (24, 36), (36, 48))]
    assert_series_equal(result.series, expected_reach())


def test_413_at_the_minimum_window_fails_clearly(hydrocron):
    hydrocron.max_rows = 0
    with (
        HydrocronClient(hydrocron.url, retry=FAST, min_window=timedelta(days=4)) as c,
        pytest.raises(HydrocronWindowTooLarge) as info,
    ):
        c.fetch(reach_query(overlap=timedelta(0)), datetime(2024, 2, 1), datetime(2024, 2, 17))
    message = str(info.value)
    assert "413" in message and "min_window=4 days" in message and "2024-02-01T00:00:00Z" in message
    windows = windows_of(hydrocron)
    assert windows[:2] == [("2024-02-01T00:00:00Z", "2024-02-17T00:00:00Z"),
                           ("2024-02-01T00:00:00Z", "2024-02-09T00:00:00Z")]


def test_504_at_the_minimum_window_is_retried_then_fails(hydrocron):
    hydrocron.max_window = timedelta(hours=1)
    policy = RetryPolicy(tries=2, backoff=0.01, max_delay=0.02)
    with (
        HydrocronClient(hydrocron.url, retry=policy, min_window=timedelta(hours=12)) as c,
        pytest.raises(HydrocronWindowTooLarge, match="504"),
    ):
        c.fetch(reach_query(overlap=timedelta(0)), datetime(2024, 2, 1), datetime(2024, 2, 2))
    # 24 h -> split into 12 h (no retry while splittable); the first 12 h half is tried twice
    assert [r.status for r in hydrocron.requests] == [504, 504, 504]
    assert windows_of(hydrocron)[1:] == [("2024-02-01T00:00:00Z", "2024-02-01T12:00:00Z")] * 2


def test_429_backs_off_honouring_retry_after(hydrocron, client):
    hydrocron.fail_next(2, 429, retry_after="0.3")
    t0 = time.monotonic()
    result = client.fetch(reach_query(), datetime(2024, 2, 1), datetime(2024, 3, 16))
    elapsed = time.monotonic() - t0
    assert elapsed >= 0.9 * 0.6  # FAST's own backoff is 10-50 ms: the wait came from Retry-After
    assert [r.status for r in hydrocron.requests] == [429, 429, 200]
    assert result.requests == 3
    assert_series_equal(result.series, expected_reach())


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_retried(hydrocron, client, status):
    hydrocron.fail_next(1, status)
    result = client.fetch(reach_query(), datetime(2024, 2, 1), datetime(2024, 3, 16))
    assert [r.status for r in hydrocron.requests] == [status, 200]
    assert result.parse_result.rows_read == 5


def test_429_that_never_ends_fails_with_the_status(hydrocron, client):
    hydrocron.fail_next(10, 429, retry_after="0")
    with pytest.raises(HydrocronError) as info:
        client.fetch(reach_query(), datetime(2024, 2, 1), datetime(2024, 3, 16))
    assert info.value.status == 429 and "quota" in str(info.value)
    assert hydrocron.request_count == FAST.tries


def test_415_is_reported_as_our_bug(hydrocron):
    class WrongAccept(requests.Session):
        def request(self, method, url, **kwargs):  # simulates a bug in the client
            kwargs["headers"] = {**kwargs.get("headers", {}), "Accept": "image/jpg"}
            return super().request(method, url, **kwargs)

    with pytest.raises(HydrocronInternalError) as info:
        fetch_timeseries(reach_query(), datetime(2024, 2, 1), datetime(2024, 3, 1),
                         base_url=hydrocron.url, session=WrongAccept(), retry=FAST)
    message = str(info.value)
    assert "415: Unsupported media type in Accept request header: image/jpg." in message
    assert "bug in hydroserver_provider" in message


def test_unreachable_service_is_a_source_error():
    with (
        socket_closed_port() as port,
        pytest.raises(HydrocronError, match="could not be reached"),
    ):
        fetch_timeseries(reach_query(), datetime(2024, 2, 1), datetime(2024, 3, 1),
                         base_url=f"http://127.0.0.1:{port}/hydrocron/v1",
                         retry=RetryPolicy(tries=1))


class socket_closed_port:
    def __enter__(self) -> int:
        import socket

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        return port

    def __exit__(self, *exc) -> None:
        return None


# --------------------------------------------------------------------------------------------
# Hygiene
# --------------------------------------------------------------------------------------------


def test_discharge_fill_values_are_dropped_and_counted(client):
    q = HydrocronQuery("Reach", REACH, ("wse", "dschg_c", "dschg_c_u", "dschg_c_q"),
                       collection_name=REACH_2_0)
    result = client.fetch(q, datetime(2024, 2, 1), datetime(2024, 3, 16))
    assert len(result.series["wse"]) == 5
    for name in ("dschg_c", "dschg_c_u", "dschg_c_q"):
        assert len(result.series[name]) == 0
        assert result.parse_result.dropped[name] == {"fill_value": 5}
    assert result.units["dschg_c"] == "m^3/s"


def test_every_fill_spelling_is_dropped(hydrocron, client):
    t = [f"2024-05-{d:02d}T10:00:00Z" for d in range(1, 11)]
    wse = ["-999999999999", "-999999999999.0", "-1e12", "-1.0E+12", "no_data", "", "abc", "inf",
           "12.5", "-999"]
    flags = ["0"] * 9 + ["-999"]
    bits = ["-99999999", "0", "0", "0", "0", "0", "0", "0", "8", "0"]
    hydrocron.add_feature("Reach", "11111111111", [
        {"time_str": a, "wse": b, "n_good_nod": c, "reach_q_b": d}
        for a, b, c, d in zip(t, wse, flags, bits)])
    q = HydrocronQuery("Reach", "11111111111", ("wse", "n_good_nod", "reach_q_b"))
    result = client.fetch(q, datetime(2024, 5, 1), datetime(2024, 5, 11))
    dropped = result.parse_result.dropped
    assert dropped["wse"] == {"fill_value": 5, "empty": 1, "not_a_number": 1, "infinite": 1}
    # -999 is a real (if odd) water surface elevation, but a fill value in a flag field
    assert result.series["wse"].values.tolist() == [12.5, -999.0]
    assert dropped["n_good_nod"] == {"fill_value": 1}
    assert dropped["reach_q_b"] == {"fill_value": 1}
    assert result.series["reach_q_b"].values.tolist() == [0.0] * 7 + [8.0, 0.0]
    assert is_flag_field("dschg_gm_q") and is_flag_field("qual_f_b")
    assert not is_flag_field("dschg_b") and not is_flag_field("ds1_q")


def test_unobserved_lake_pass_is_dropped_as_no_observation(hydrocron, client):
    result = parse_answer(fixture_bytes("geojson_lakes_unobserved.json"),
                          ["wse", "area_total"], feature="PriorLake")
    assert result.rows_read == 1
    assert result.dropped == {"wse": {"no_observation": 1}, "area_total": {"no_observation": 1}}
    assert result.timestamps.unparsable == 0  # no_data is not a broken timestamp
    # the same pass served over HTTP (selected on its range_start_time)
    q = HydrocronQuery("PriorLake", "9120274662", ("wse", "area_total"),
                       collection_name="SWOT_L2_HR_LakeSP_2.0")
    served = client.fetch(q, datetime(2024, 7, 13), datetime(2024, 7, 14))
    assert served.parse_result.dropped["wse"] == {"no_observation": 1}
    assert served.units == {"wse": "m", "area_total": "km^2"}
    assert len(served.series["wse"]) == 0


def test_unparsable_time_str_is_counted():
    body = "time_str,wse\n2024-01-01T00:00:00Z,1.5\nyesterday,2.5\nno_data,-999999999999.0\n"
    result = parse_answer(body, ["wse"], quality=())
    assert result.dropped["wse"] == {"unparsable_timestamp": 1, "no_observation": 1}
    assert result.timestamps.unparsable == 1 and result.timestamps.unparsable_examples == ["yesterday"]


def _quality_reach(server: LocalHydrocron) -> str:
    rows = [  # (reach_q, ice_clim_f)
        ("0", "0"), ("1", "0"), ("2", "0"), ("3", "0"), ("0", "1"), ("1", "2"), ("-999", "0"),
        ("0", "-999"),
    ]
    server.add_feature("Reach", "22222222222", [
        {"time_str": f"2024-06-{i + 1:02d}T00:00:00Z", "wse": str(100 + i), "reach_q": q,
         "ice_clim_f": ice} for i, (q, ice) in enumerate(rows)])
    return "22222222222"


def test_default_quality_filter(hydrocron, client):
    reach = _quality_reach(hydrocron)
    result = client.fetch(HydrocronQuery("Reach", reach, ("wse",)), datetime(2024, 6, 1),
                          datetime(2024, 6, 9))
    assert result.series["wse"].values.tolist() == [100.0, 101.0]
    assert result.parse_result.dropped["wse"] == {"quality": 6}
    assert "reach_q <= 1" in str(default_quality_rules("Reach")[0])
    assert "reach_q" in hydrocron.requests[-1].params["fields"].split(",")
    assert "ice_clim_f" in hydrocron.requests[-1].params["fields"].split(",")


@pytest.mark.parametrize(
    ("rules", "kept"),
    [
        (("reach_q <= 0",), [100.0, 104.0, 107.0]),
        (("reach_q<=2", "ice_clim_f == 0"), [100.0, 101.0, 102.0]),
        ({"ice_clim_f": "<= 1"}, [100.0, 101.0, 102.0, 103.0, 104.0, 106.0]),
        ((), [100.0 + i for i in range(8)]),
    ],
)
def test_configurable_quality_filter(hydrocron, client, rules, kept):
    reach = _quality_reach(hydrocron)
    q = HydrocronQuery("Reach", reach, ("wse",), quality_filter=rules)
    result = client.fetch(q, datetime(2024, 6, 1), datetime(2024, 6, 9))
    assert result.series["wse"].values.tolist() == kept
    assert result.parse_result.dropped["wse"].get("quality", 0) == 8 - len(kept)


def test_lake_quality_filter_on_quality_f(client):
    q = HydrocronQuery("PriorLake", "8510353162", ("wse", "area_total"),
                       collection_name="SWOT_L2_HR_LakeSP_2.0")
    default = client.fetch(q, datetime(2024, 9, 1), datetime(2024, 9, 30))
    assert default.series["wse"].values.tolist() == [364.464, 361.658]
    strict = client.fetch(
        HydrocronQuery("PriorLake", "8510353162", ("wse",), quality_filter=("quality_f <= 0",),
                       collection_name="SWOT_L2_HR_LakeSP_2.0"),
        datetime(2024, 9, 1), datetime(2024, 9, 30))
    assert strict.series["wse"].values.tolist() == [361.658]
    assert strict.parse_result.dropped["wse"] == {"quality": 1}


def test_missing_flag_skips_a_default_rule_but_fails_a_required_one(client):
    result = client.fetch(reach_query(), datetime(2024, 2, 1), datetime(2024, 3, 16))
    assert any("reach_q" in note for note in result.notes)  # recorded answers lack reach_q
    with pytest.raises(ParseError, match="reach_q"):
        client.fetch(reach_query(quality_filter=("reach_q <= 1",)), datetime(2024, 2, 1),
                     datetime(2024, 3, 16))


def test_a_series_never_mixes_collections(hydrocron, client):
    hydrocron.add_feature("Reach", "33333333333", [
        {"time_str": "2024-01-01T00:00:00Z", "wse": "1", "collection_shortname": REACH_2_0}],
        collection="D")
    q = HydrocronQuery("Reach", "33333333333", ("wse",), collection_name="SWOT_L2_HR_RiverSP_D")
    with pytest.raises(HydrocronError, match="never mixes collections"):
        client.fetch(q, datetime(2023, 12, 31), datetime(2024, 1, 2))


# --------------------------------------------------------------------------------------------
# Windows
# --------------------------------------------------------------------------------------------


def test_window_is_widened_by_the_overlap_margin(hydrocron, client):
    # the pass of 2024-02-02T08:37:34Z lies 8.6 h before the window: the margin brings it in
    result = client.fetch(reach_query(), datetime(2024, 2, 2, 17), datetime(2024, 2, 15, 20))
    assert windows_of(hydrocron) == [("2024-02-01T17:00:00Z", "2024-02-16T20:00:00Z")]
    assert result.series["wse"].values.tolist() == [1065.3532, 1015.1029]
    assert result.window == (datetime(2024, 2, 2, 17, tzinfo=UTC),
                             datetime(2024, 2, 15, 20, tzinfo=UTC))
    assert result.fetched_window == (datetime(2024, 2, 1, 17, tzinfo=UTC),
                                     datetime(2024, 2, 16, 20, tzinfo=UTC))
    narrow = client.fetch(reach_query(overlap=timedelta(0)), datetime(2024, 2, 2, 17),
                          datetime(2024, 2, 15, 20))
    assert narrow.series["wse"].values.tolist() == [1015.1029]


def test_duplicate_passes_collapse_across_overlapping_windows(hydrocron, client):
    result = client.fetch_windows(reach_query(), [
        (datetime(2024, 2, 1), datetime(2024, 2, 24)),  # 3 passes (+1 day margins)
        (datetime(2024, 2, 15), datetime(2024, 3, 16)),  # 4 passes, 2 of them already seen
    ])
    assert [r.status for r in hydrocron.requests] == [200, 200]
    assert result.parse_result.rows_read == 7
    assert result.duplicate_passes == 2
    assert_series_equal(result.series, expected_reach())
    assert result.parse_result.dropped["wse"] == {}


def test_pass_on_a_split_boundary_is_kept_once(hydrocron, client):
    hydrocron.add_feature("Reach", "44444444444", [
        {"time_str": f"2024-01-0{d}T00:00:00Z", "wse": str(d)} for d in (1, 2, 3)])
    hydrocron.max_rows = 2
    result = client.fetch(HydrocronQuery("Reach", "44444444444", ("wse",), overlap=timedelta(0)),
                          datetime(2024, 1, 1), datetime(2024, 1, 3))
    assert windows_of(hydrocron) == [
        ("2024-01-01T00:00:00Z", "2024-01-03T00:00:00Z"),
        ("2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"),  # both halves hold the 01-02 pass
        ("2024-01-02T00:00:00Z", "2024-01-03T00:00:00Z"),
    ]
    assert result.series["wse"].values.tolist() == [1.0, 2.0, 3.0]
    assert result.duplicate_passes == 1 and result.parse_result.dropped["wse"] == {}


def test_same_pass_twice_in_one_answer_keeps_the_last():
    body = ("time_str,wse\n2024-01-02T00:00:00Z,2\n2024-01-01T00:00:00Z,1\n"
            "2024-01-02T00:00:00Z,3\n")
    result = parse_answer(body, ["wse"], quality=())
    assert result.series["wse"].values.tolist() == [1.0, 3.0]
    assert result.dropped["wse"] == {"duplicate_timestamp": 1}


def test_max_window_chunks_up_front(hydrocron):
    with HydrocronClient(hydrocron.url, retry=FAST, max_window=timedelta(days=15)) as c:
        result = c.fetch(reach_query(overlap=timedelta(0)), datetime(2024, 2, 1),
                         datetime(2024, 3, 16))
    assert windows_of(hydrocron) == [
        ("2024-02-01T00:00:00Z", "2024-02-16T00:00:00Z"),
        ("2024-02-16T00:00:00Z", "2024-03-02T00:00:00Z"),
        ("2024-03-02T00:00:00Z", "2024-03-16T00:00:00Z"),
    ]
    assert_series_equal(result.series, expected_reach())


def test_start_after_end_is_refused_before_any_request(hydrocron, client):
    with pytest.raises(DefinitionError, match="ends before it starts"):
        client.fetch(reach_query(), datetime(2024, 3, 1), datetime(2024, 2, 1))
    assert hydrocron.request_count == 0


# --------------------------------------------------------------------------------------------
# Rate limiting
# --------------------------------------------------------------------------------------------


def test_rate_limiter_spaces_requests_over_http(hydrocron):
    rate, n = 20.0, 11
    limiter = RateLimiter(rate)
    q = HydrocronQuery("Reach", REACH, ("wse",))
    with HydrocronClient(hydrocron.url, retry=FAST, limiter=limiter) as c:
        t0 = time.monotonic()
        for _ in range(n):
            c.fetch(q, datetime(2024, 1, 1), datetime(2024, 1, 20))
        elapsed = time.monotonic() - t0
    assert hydrocron.request_count == n
    assert elapsed >= 0.9 * (n - 1) / rate


def test_rate_limiter_is_shared_by_threads(hydrocron):
    rate, threads, each = 25.0, 4, 4
    limiter = shared_limiter("test-hydrocron-threads", rate)
    assert shared_limiter("test-hydrocron-threads", rate) is limiter
    q = HydrocronQuery("Reach", REACH, ("wse",))
    errors: list[BaseException] = []
    with HydrocronClient(hydrocron.url, retry=FAST, limiter=limiter) as c:

        def work() -> None:
            try:
                for _ in range(each):
                    c.fetch(q, datetime(2024, 1, 1), datetime(2024, 1, 20))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        t0 = time.monotonic()
        pool = [threading.Thread(target=work) for _ in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        elapsed = time.monotonic() - t0
    assert not errors
    total = threads * each
    assert hydrocron.request_count == total
    assert elapsed >= 0.9 * (total - 1) / rate


def test_rate_limiter_counts_retries_too(hydrocron):
    limiter = RateLimiter(1000.0)
    hydrocron.fail_next(2, 503)
    with HydrocronClient(hydrocron.url, retry=FAST, limiter=limiter) as c:
        c.fetch(reach_query(), datetime(2024, 2, 1), datetime(2024, 3, 1))
    assert limiter.acquired == 3


def test_rate_limiter_burst_and_spacing_with_a_fake_clock():
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(2.0, burst=3, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        assert limiter.acquire() == 0.0  # the burst goes at once
    assert limiter.acquire() == pytest.approx(0.5)
    assert not limiter.try_acquire()
    now[0] += 10  # idle: the bucket refills, but never beyond the burst
    assert [limiter.try_acquire() for _ in range(4)] == [True, True, True, False]
    with pytest.raises(ValueError):
        RateLimiter(0)
    with pytest.raises(ValueError):
        RateLimiter(1, burst=0)
