"""The local Hydrocron replay behaves like the real service (talked to with plain requests)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from hydroserver_provider.testing.hydrocron import LocalHydrocron, synthetic_passes

FIXTURES = (Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "hydrocron").resolve()
REACH = "feature=Reach&feature_id=18180900091"
WINDOW = "start_time=2024-01-01T00:00:00Z&end_time=2024-12-31T00:00:00Z"

pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"fixtures not found at {FIXTURES}")


@pytest.fixture(scope="module")
def hc():
    with LocalHydrocron(FIXTURES) as server:
        yield server


@pytest.fixture(autouse=True)
def _reset(hc):
    hc.clear_requests()
    hc.max_rows = None
    hc.max_window = None
    yield


def get(hc: LocalHydrocron, query: str, accept: str | None = None, **headers) -> requests.Response:
    if accept is not None:
        headers["Accept"] = accept
    return requests.get(f"{hc.url}/timeseries?{query}", headers=headers, timeout=10)


def rows_of(csv_text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(csv_text)))


def test_recorded_fixtures_are_indexed_by_feature_id_and_collection(hc):
    assert set(hc.features()) >= {
        ("Reach", "18180900091", "SWOT_L2_HR_RiverSP_2.0"),
        ("Reach", "18180900091", "SWOT_L2_HR_RiverSP_D"),
        ("Node", "45311101670065", "SWOT_L2_HR_RiverSP_2.0"),
        ("Node", "44404000150591", "SWOT_L2_HR_RiverSP_D"),
        ("PriorLake", "8510353162", "SWOT_L2_HR_LakeSP_2.0"),
        ("PriorLake", "7230381002", "SWOT_L2_HR_LakeSP_D"),
        ("PriorLake", "9120274662", "SWOT_L2_HR_LakeSP_2.0"),
    }


def test_json_envelope_with_csv_and_only_the_requested_fields(hc):
    answer = get(hc, f"{REACH}&{WINDOW}&output=csv&fields=time_str,wse,slope,area_total"
                     "&collection_name=SWOT_L2_HR_RiverSP_2.0", "application/json")
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
    body = answer.json()
    assert body["status"] == "200 OK" and body["hits"] == 5 and body["results"]["geojson"] == {}
    text = body["results"]["csv"]
    assert text.splitlines()[0] == "time_str,wse,slope,area_total,wse_units,slope_units,area_total_units"
    rows = rows_of(text)
    assert rows[0] == {"time_str": "2024-02-02T08:37:34Z", "wse": "1065.3532",
                       "slope": "0.02025204433", "area_total": "4123454.6", "wse_units": "m",
                       "slope_units": "m/m", "area_total_units": "m^2"}


def test_no_accept_header_and_no_output_gives_non_compact_geojson(hc):
    answer = requests.get(f"{hc.url}/timeseries?{REACH}&{WINDOW}&fields=time_str,wse",
                          headers={"Accept": None}, timeout=10)  # no Accept header at all
    assert "Accept" not in hc.requests[-1].headers
    body = answer.json()
    assert body["results"]["csv"] == ""
    features = body["results"]["geojson"]["features"]
    assert len(features) == 3  # version D is the default collection
    assert features[0]["properties"] == {"time_str": "2024-01-12T11:52:38Z", "wse": "1014.5819",
                                         "wse_units": "m"}
    assert features[0]["geometry"]["type"] == "LineString" and features[0]["geometry"]["coordinates"]


def test_envelope_compact_geojson(hc):
    body = get(hc, f"{REACH}&{WINDOW}&output=geojson&compact=true&fields=time_str,wse").json()
    (feature,) = body["results"]["geojson"]["features"]
    assert feature["properties"]["wse"] == ["1014.5819", "1015.6602", "1013.8288"]
    assert feature["properties"]["wse_units"] == ["m", "m", "m"]


def test_text_csv_is_raw_and_json_quoted(hc):
    answer = get(hc, f"{REACH}&{WINDOW}&fields=time_str,wse,geometry", "text/csv")
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "text/csv"
    assert answer.text.startswith('"time_str,wse,geometry,wse_units\\n')
    rows = rows_of(json.loads(answer.text))
    assert rows[0]["geometry"].startswith("LINESTRING (") and rows[0]["wse_units"] == "m"


def test_geo_json_is_bare_and_compact_by_default(hc):
    answer = get(hc, f"{REACH}&{WINDOW}&fields=time_str,wse", "application/geo+json")
    assert answer.headers["Content-Type"] == "application/geo+json"
    body = answer.json()
    assert body["type"] == "FeatureCollection" and len(body["features"]) == 1
    assert isinstance(body["features"][0]["properties"]["time_str"], list)
    loose = get(hc, f"{REACH}&{WINDOW}&compact=false&fields=time_str,wse",
                "application/geo+json").json()
    assert len(loose["features"]) == 3 and loose["features"][2]["id"] == "2"


@pytest.mark.parametrize("accept", ["text/csv", "application/geo+json"])
def test_output_with_raw_accept_is_a_400(hc, accept):
    answer = get(hc, f"{REACH}&{WINDOW}&output=csv&fields=time_str,wse", accept)
    assert answer.status_code == 400
    assert answer.json() == {
        "error": "400: Invalid combination of Accept header and output request parameter"}


def test_accept_negotiation(hc):
    bad = get(hc, f"{REACH}&{WINDOW}&fields=time_str,wse", "image/jpg")
    assert bad.status_code == 415
    assert bad.json()["error"] == "415: Unsupported media type in Accept request header: image/jpg."
    browser = get(hc, f"{REACH}&{WINDOW}&fields=time_str,wse", "image/webp,image/*,*/*;q=0.8")
    assert browser.status_code == 200 and "results" in browser.json()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (f"feature_id=18180900091&{WINDOW}&fields=wse",
         "400: This required parameter is missing: 'feature'"),
        (f"feature=Reach&{WINDOW}&fields=wse",
         "400: This required parameter is missing: 'feature_id'"),
        (f"feature=River&feature_id=1&{WINDOW}&fields=wse",
         "400: feature parameter should be Reach, Node, or PriorLake, not: River"),
        (f"feature=Reach&feature_id=7122ff4100223&{WINDOW}&fields=wse",
         "400: feature_id cannot contain letters: 7122ff4100223"),
        (f"{REACH}&start_time=2023/06/04T00:00:00Z&end_time=2024-01-01T00:00:00Z&fields=wse",
         "400: start_time and end_time parameters must conform to format: "
         "YYYY-MM-DDTHH:MM:SSZ or YYYY-MM-DDTHH:MM:SS-00:00"),
        # a literal '+' decodes as a space: the reason offsets must be sent as %2B
        (f"{REACH}&start_time=2024-01-01T00:00:00+00:00&end_time=2024-12-31T00:00:00Z&fields=wse",
         "400: start_time and end_time parameters must conform to format: "
         "YYYY-MM-DDTHH:MM:SSZ or YYYY-MM-DDTHH:MM:SS-00:00"),
        (f"{REACH}&{WINDOW}&output=txt&fields=wse",
         "400: output parameter should be csv or geojson, not: txt"),
        (f"{REACH}&{WINDOW}&fields=time_str,height",
         "400: fields parameter should contain valid SWOT fields"),
        (f"{REACH}&{WINDOW}&fields=time_str,wse_units",
         "400: fields parameter should contain valid SWOT fields"),
        (f"{REACH}&{WINDOW}&fields=time_str,%20wse",
         "400: fields parameter should contain valid SWOT fields"),
        ("feature=Reach&feature_id=71224100227&" + WINDOW + "&fields=wse",
         "400: Results with the specified Feature ID 71224100227 were not found"),
        (f"{REACH}&start_time=2020-01-01T00:00:00Z&end_time=2020-02-01T00:00:00Z&fields=wse",
         "400: Results with the specified Feature ID 18180900091 were not found"),
    ],
)
def test_validation_messages(hc, query, message):
    answer = get(hc, query)
    assert answer.status_code == 400
    assert answer.json() == {"error": message}


def test_start_after_end_is_a_500(hc):
    answer = get(hc, f"{REACH}&start_time=2024-02-01T00:00:00Z&end_time=2024-01-01T00:00:00Z"
                     "&fields=wse")
    assert answer.status_code == 500


def test_offsets_are_understood(hc):
    # 2024-01-12T04:52:38-07:00 == 11:52:38Z, the first D pass, and the window is inclusive
    answer = get(hc, f"{REACH}&start_time=2024-01-12T04:52:38-07:00"
                     "&end_time=2024-01-12T13:52:38%2B02:00&output=csv&fields=time_str,wse")
    assert [r["time_str"] for r in rows_of(answer.json()["results"]["csv"])] == [
        "2024-01-12T11:52:38Z"]
    assert hc.requests[-1].params["end_time"] == "2024-01-12T13:52:38+02:00"


def test_unobserved_lake_is_selected_on_range_start_time(hc):
    answer = get(hc, "feature=PriorLake&feature_id=9120274662&start_time=2024-07-13T00:00:00Z"
                     "&end_time=2024-07-14T00:00:00Z&collection_name=SWOT_L2_HR_LakeSP_2.0"
                     "&output=csv&fields=time_str,wse,area_total,quality_f")
    assert rows_of(answer.json()["results"]["csv"]) == [{
        "time_str": "no_data", "wse": "-999999999999.0", "area_total": "-999999999999.0",
        "quality_f": "-999", "wse_units": "m", "area_total_units": "km^2"}]


def test_413_above_max_rows_and_504_above_max_window(hc):
    hc.max_rows = 2
    assert get(hc, f"{REACH}&{WINDOW}&fields=wse").status_code == 413
    ok = get(hc, f"{REACH}&start_time=2024-01-01T00:00:00Z&end_time=2024-01-20T00:00:00Z"
                 "&fields=wse")
    assert ok.status_code == 200
    hc.max_rows = None
    hc.max_window = timedelta(days=30)
    timeout = get(hc, f"{REACH}&{WINDOW}&fields=wse")
    assert timeout.status_code == 504 and timeout.json() == {"message": "Endpoint request timed out"}


def test_injected_failures_request_log_and_key(hc):
    hc.fail_next(1, 429, retry_after=7)
    hc.fail_next(1, 504)
    first = get(hc, f"{REACH}&{WINDOW}&fields=wse", **{"x-hydrocron-key": "abc"})
    assert first.status_code == 429 and first.headers["Retry-After"] == "7"
    assert get(hc, f"{REACH}&{WINDOW}&fields=wse").status_code == 504
    assert get(hc, f"{REACH}&{WINDOW}&fields=wse").status_code == 200
    assert hc.request_count == 3
    assert [r.status for r in hc.requests] == [429, 504, 200]
    assert hc.requests[0].api_key == "abc" and hc.requests[1].api_key is None
    assert hc.requests[2].query == f"{REACH}&{WINDOW}&fields=wse"
    assert hc.requests[2].rows == 3


def test_wrong_path_is_api_gateway_403(hc):
    answer = requests.get(hc.url.replace("/v1", "/v2") + "/timeseries", timeout=10)
    assert answer.status_code == 403


def test_synthetic_features_for_benchmarks(hc):
    start = datetime(2023, 1, 1, tzinfo=UTC)
    for i in range(50):
        hc.add_feature("Reach", f"{70000000000 + i}", synthetic_passes(30, start=start, seed=i))
    hc.add_feature("PriorLake", "1234567890", synthetic_passes(5, feature="PriorLake"),
                   collection="2.0")
    for i in range(0, 50, 7):
        answer = get(hc, f"feature=Reach&feature_id={70000000000 + i}&start_time=2023-01-01T00:00:00Z"
                         "&end_time=2023-03-01T00:00:00Z&output=csv&fields=time_str,wse,reach_q")
        rows = rows_of(answer.json()["results"]["csv"])
        assert 5 <= len(rows) <= 6 and rows[0]["reach_q"] == "0" and rows[0]["wse_units"] == "m"
    lake = get(hc, "feature=PriorLake&feature_id=1234567890&start_time=2024-01-01T00:00:00Z"
                   "&end_time=2025-01-01T00:00:00Z&collection_name=SWOT_L2_HR_LakeSP_2.0"
                   "&output=csv&fields=time_str,area_total")
    assert rows_of(lake.json()["results"]["csv"])[0]["area_total_units"] == "km^2"
