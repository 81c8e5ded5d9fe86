"""Datastream assets: URIs keyed on the HydroServer host, registered with Airflow by the
provider (sanitiser, factory, OpenLineage converter), what a run announces, lineage names."""

from __future__ import annotations

import pytest

from hydroserver_provider import assets

DS = "0190a6c4-5f3e-7a4b-9c1d-2e3f4a5b6c7d"


@pytest.mark.parametrize(("url", "host"), [
    ("https://HydroServer.Example.org", "hydroserver.example.org"),
    ("https://hydroserver.example.org:443/", "hydroserver.example.org"),
    ("http://hydroserver.example.org:80/api", "hydroserver.example.org"),
    ("http://127.0.0.1:8123", "127.0.0.1:8123"),
    ("https://user:pw@hs.example.org:8443", "hs.example.org:8443"),
    ("hs.example.org", "hs.example.org"),
    ("http://[::1]:8000", "[::1]:8000"),
])
def test_the_host_of_a_hydroserver_url(url, host):
    assert assets.hydroserver_host(url) == host


def test_datastream_uri_and_alias_names():
    assert assets.datastream_uri("hs.example.org", DS) == f"hydroserver://hs.example.org/datastreams/{DS}"
    assert assets.alias_name("hydroserver_station_42", "ingest") == (
        "hydroserver-datastreams:hydroserver_station_42.ingest")


def test_the_provider_info_with_its_asset_uris_follows_airflows_schema():
    import json
    from pathlib import Path

    import airflow
    import jsonschema

    from hydroserver_provider import get_provider_info

    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    info = get_provider_info()
    jsonschema.validate(info, schema)
    assert info["asset-uris"][0]["schemes"] == ["hydroserver"]


def test_the_provider_registers_the_scheme_with_airflow():
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    runtime = ProvidersManagerTaskRuntime()
    assert runtime.asset_uri_handlers["hydroserver"] is assets.sanitize_uri
    assert runtime.asset_factories["hydroserver"] is assets.create_asset
    assert runtime.asset_to_openlineage_converters["hydroserver"] is (
        assets.convert_asset_to_openlineage)


def test_airflow_checks_every_hydroserver_uri_with_the_sanitiser():
    from airflow.sdk import Asset

    asset = Asset(f"hydroserver://HS.Example.org:8000/datastreams/{DS}/")
    assert asset.uri == f"hydroserver://hs.example.org:8000/datastreams/{DS}"
    for bad, why in [("hydroserver:///datastreams/x", "names no host"),
                     ("hydroserver://hs.example.org/things/x", "found the path '/things/x'"),
                     ("hydroserver://hs.example.org/datastreams/", "found the path"),
                     ("hydroserver://hs.example.org/datastreams/x?a=1", "found a query"),
                     ("hydroserver://me@hs.example.org/datastreams/x", "credentials")]:
        with pytest.raises(ValueError, match=why):
            Asset(bad)


def test_the_asset_a_run_emits_is_the_one_a_consumer_schedules_on():
    """Airflow identifies an asset by name and URI: the emitted asset is named by its URI, as
    ``Asset(uri)`` in a consumer DAG is."""
    from airflow.sdk import Asset

    uri = f"hydroserver://hs.example.org/datastreams/{DS}"
    assert assets.datastream_asset("hs.example.org", DS) == Asset(uri)
    made = assets.create_asset(host="hs.example.org", datastream_id=DS, extra={"a": 1})
    assert (made.name, made.uri, made.extra) == (uri, uri, {"a": 1})


def test_openlineage_names_a_datastream_asset():
    from airflow.providers.openlineage.utils.utils import translate_airflow_asset
    from airflow.sdk import Asset

    dataset = translate_airflow_asset(Asset(f"hydroserver://hs.example.org/datastreams/{DS}"),
                                      None)  # through the provider's registered converter
    assert (dataset.namespace, dataset.name) == ("hydroserver://hs.example.org",
                                                 f"datastreams/{DS}")


def _summary(**overrides):
    def outcome(ds, loaded=0, removed=0, status="SUCCESS"):
        return {"datastream_id": ds, "name": f"DS {ds}", "source_identifier": "v",
                "status": status, "mode": "windowed", "loaded": loaded, "revised": 0,
                "removed": removed, "first": "2025-06-01T00:00:00Z",
                "last": "2025-06-01T01:00:00Z"}
    summary = {"dry_run": False, "mode": "windowed",
               "window": {"start": "2025-06-01T00:00:00Z", "end": "2025-06-01T02:00:00Z"},
               "datastreams": [outcome("a", loaded=2), outcome("b"), outcome("c", removed=1),
                               outcome("d", loaded=3, status="FAILURE")]}
    summary.update(overrides)
    return summary


def test_a_run_announces_the_datastreams_whose_rows_it_changed():
    summary = _summary()
    # "d" failed after writing rows: they are stored (announced by the try that succeeds)
    assert [d["datastream_id"] for d in assets.changed_datastreams(summary)] == ["a", "c", "d"]
    assert assets.changed_datastreams(_summary(dry_run=True)) == []
    extra = assets.event_extra(summary["datastreams"][0], summary)
    assert extra == {"datastream_id": "a", "datastream_name": "DS a", "source_identifier": "v",
                     "rows_loaded": 2, "rows_revised": 0, "rows_removed": 0,
                     "first_timestamp": "2025-06-01T00:00:00Z",
                     "last_timestamp": "2025-06-01T01:00:00Z", "mode": "windowed",
                     "window": summary["window"]}


def test_two_tries_make_one_event():
    earlier = {"datastream_id": "a", "rows_loaded": 2, "rows_revised": 1, "rows_removed": 0,
               "first_timestamp": "2025-06-01T01:00:00Z", "last_timestamp": "2025-06-01T02:00:00Z",
               "mode": "windowed"}
    later = {**earlier, "rows_loaded": 3, "rows_revised": 0, "rows_removed": 1,
             "first_timestamp": "2025-06-01T00:00:00Z", "last_timestamp": "2025-06-01T01:30:00Z"}
    assert assets.merge_extra(earlier, later) == {
        **later, "rows_loaded": 5, "rows_revised": 1, "rows_removed": 1,
        "first_timestamp": "2025-06-01T00:00:00Z", "last_timestamp": "2025-06-01T02:00:00Z"}


def test_a_source_is_named_for_lineage_without_its_secrets():
    url = assets.source_lineage_url(
        "https://api.example.org/sites/{site}/obs.csv?from={start}&key={station}&token=abc123",
        {"site": "09380000", "station": "stn-secret"}, ["station"])
    assert url == "https://api.example.org/sites/09380000/obs.csv?from={start}&key=***&token=***"
    assert assets.source_dataset(url) == (
        "https://api.example.org", "/sites/09380000/obs.csv?from={start}&key=***&token=***")
    assert assets.source_dataset("https://me:***@API.example.org:8443/a.json") == (
        "https://api.example.org:8443", "/a.json")
    assert assets.source_dataset("file:///data/level.csv") == ("file", "/data/level.csv")


def test_a_hydrocron_feature_is_named_for_lineage():
    assert assets.hydrocron_dataset(
        "https://soto.podaac.earthdatacloud.nasa.gov/hydrocron/v1",
        {"feature": "Reach", "feature_id": "18180900091",
         "collection": "SWOT_L2_HR_RiverSP_2.0"}) == (
        "https://soto.podaac.earthdatacloud.nasa.gov",
        "/hydrocron/v1/timeseries?collection_name=SWOT_L2_HR_RiverSP_2.0&feature=Reach"
        "&feature_id=18180900091")
