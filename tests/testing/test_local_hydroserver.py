"""The local HydroServer answers like HydroServer 1.11.2: real HTTP, checked against the contract."""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from jsonschema import Draft202012Validator

from hydroserver_provider.testing import LocalHydroServer

CONTRACTS = Path(__file__).resolve().parents[2] / "../shared/contracts/hydroserver"
UTC = UTC
T0 = datetime(2024, 1, 1, tzinfo=UTC)
BULK = "/api/data/datastreams/{datastream_id}/observations/bulk-create"
APPEND_DETAIL = "All observations must occur after the datastream's end time for append mode"
DUPLICATE_DETAIL = "Duplicate phenomenonTime found on this datastream."


# ------------------------------------------------------------------------------------ helpers


@pytest.fixture(scope="module")
def data_contract() -> dict:
    path = CONTRACTS / "data.openapi.json"
    if not path.exists():
        pytest.skip(f"contract not found at {path}")
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def auth_contract() -> dict:
    path = CONTRACTS / "auth.openapi.json"
    if not path.exists():
        pytest.skip(f"contract not found at {path}")
    return json.loads(path.read_text())


class Contract:
    """Validates answers against the response schema the contract declares for path/method/status."""

    def __init__(self, spec: dict) -> None:
        self.spec = spec
        self.checked: set[tuple[str, str, int]] = set()

    def schema(self, path: str, method: str, status: int) -> dict:
        operation = self.spec["paths"][path][method.lower()]
        return operation["responses"][str(status)]["content"]["application/json"]["schema"]

    def validate_instance(self, instance, schema: dict) -> None:
        full = {**schema, "components": self.spec["components"]}
        Draft202012Validator(full, format_checker=Draft202012Validator.FORMAT_CHECKER).validate(instance)

    def check(self, response: requests.Response, path: str, status: int = 200):
        """Assert the status, validate the JSON body and return it."""
        assert response.status_code == status, (response.status_code, response.text[:500])
        assert response.headers["Content-Type"].startswith("application/json")
        body = response.json()
        self.validate_instance(body, self.schema(path, response.request.method, status))
        self.checked.add((path, response.request.method, status))
        return body


@pytest.fixture
def contract(data_contract) -> Contract:
    return Contract(data_contract)


def key(hs_or_key) -> dict:
    return {"X-Api-Key": hs_or_key if isinstance(hs_or_key, str) else hs_or_key.api_key}


def rows(start: datetime, n: int, step: timedelta = timedelta(minutes=15), value0: float = 0.0):
    return [[(start + i * step).isoformat().replace("+00:00", "Z"), value0 + i] for i in range(n)]


def bulk(hs, ds, body, mode=None, headers=None):
    url = f"{hs.url}/api/data/datastreams/{ds}/observations/bulk-create"
    return requests.post(url, json=body, params={"mode": mode} if mode else None,
                         headers=headers if headers is not None else key(hs), timeout=10)


def row_body(data):
    return {"fields": ["phenomenonTime", "result"], "data": data}


def login(hs, email=None, password=None) -> requests.Response:
    return requests.post(f"{hs.url}/api/auth/app/session",
                         json={"email": email or hs.email, "password": password or hs.password}, timeout=10)


# ------------------------------------------------------------------------------------ auth


def test_api_key_auth_and_401_bodies(local_hydroserver, contract):
    hs = local_hydroserver
    ds = hs.create_datastream(name="Private")
    url = f"{hs.url}/api/data/datastreams"

    body = contract.check(requests.get(url, headers={"x-api-key": hs.api_key}), "/api/data/datastreams")
    assert [d["id"] for d in body] == [ds]  # header names are case-insensitive

    for headers in ({}, {"X-Api-Key": "wrong-key-of-some-length"}):
        r = bulk(hs, ds, row_body(rows(T0, 1)), headers=headers)
        assert (r.status_code, r.json()) == (401, {"detail": "Unauthorized"})
        r = requests.get(f"{hs.url}/api/data/etl/tasks", headers=headers)
        assert (r.status_code, r.json()) == (401, {"detail": "Unauthorized"})

    r = requests.get(url, headers={"Authorization": "Bearer not-a-session"})
    assert (r.status_code, r.json()) == (401, {"detail": "Invalid token"})
    assert hs.observations(ds) == []


def test_anonymous_fallback_on_public_gets_and_404_for_private(local_hydroserver, contract):
    hs = local_hydroserver
    public = hs.create_datastream(name="Public", is_private=False)
    private = hs.create_datastream(name="Private", is_private=True)
    wrong = {"X-Api-Key": "this-key-does-not-exist"}

    r = requests.get(f"{hs.url}/api/data/datastreams/{public}", headers=wrong)
    assert contract.check(r, "/api/data/datastreams/{datastream_id}")["id"] == public
    r = requests.get(f"{hs.url}/api/data/datastreams/{private}", headers=wrong)
    assert (r.status_code, r.json()) == (404, {"detail": "Datastream does not exist"})
    r = requests.get(f"{hs.url}/api/data/datastreams/{private}/observations")
    assert (r.status_code, r.json()) == (404, {"detail": "Datastream does not exist"})
    listed = contract.check(requests.get(f"{hs.url}/api/data/datastreams", headers=wrong), "/api/data/datastreams")
    assert [d["id"] for d in listed] == [public]

    # a key of another workspace sees the public datastream only, and cannot write to it
    other_ws = hs.create_workspace("Other", is_private=True)
    other_key = hs.create_api_key(other_ws, role="Editor")
    assert requests.get(f"{hs.url}/api/data/datastreams/{private}", headers=key(other_key)).status_code == 404
    r = bulk(hs, public, row_body(rows(T0, 1)), headers=key(other_key))
    assert (r.status_code, r.json()) == (403, {"detail": "You do not have permission to edit this datastream"})
    r = bulk(hs, private, row_body(rows(T0, 1)), headers=key(other_key))
    assert (r.status_code, r.json()) == (404, {"detail": "Datastream does not exist"})


def test_session_login_bearer_and_expiry(local_hydroserver, auth_contract, contract):
    hs = local_hydroserver
    ds = hs.create_datastream(name="Mine")

    request_schema = auth_contract["paths"]["/api/auth/{client}/session"]["post"]["requestBody"]
    request_schema = request_schema["content"]["application/json"]["schema"]
    Contract(auth_contract).validate_instance({"email": hs.email, "password": hs.password}, request_schema)
    # the exported contract declares the 200 answer as a plain string; the real body is allauth's
    declared = Contract(auth_contract).schema("/api/auth/{client}/session", "post", 200)
    assert declared["type"] == "string"

    r = login(hs)
    assert r.status_code == 200
    body = r.json()
    Contract(auth_contract).validate_instance(body, ALLAUTH_SESSION_SCHEMA)
    assert body["data"]["user"]["email"] == hs.email
    token = body["meta"]["session_token"]
    bearer = {"Authorization": f"Bearer {token}"}

    listed = contract.check(requests.get(f"{hs.url}/api/data/datastreams", headers=bearer), "/api/data/datastreams")
    assert [d["id"] for d in listed] == [ds]
    assert bulk(hs, ds, row_body(rows(T0, 2)), headers=bearer).status_code == 201
    r = requests.get(f"{hs.url}/api/auth/app/session", headers={"X-Session-Token": token})
    assert r.status_code == 200 and r.json()["meta"]["is_authenticated"] is True

    assert hs.expire_sessions() == 1
    r = requests.get(f"{hs.url}/api/data/datastreams/{ds}", headers=bearer)
    assert (r.status_code, r.json()) == (401, {"detail": "Invalid token"})
    assert login(hs).status_code == 200  # re-login works after expiry

    r = login(hs, password="wrong")
    assert r.status_code == 400
    assert r.json()["errors"][0]["code"] == "email_password_mismatch"
    r = login(hs, email="not-an-email")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "data", "email"]


ALLAUTH_SESSION_SCHEMA = {
    "type": "object",
    "required": ["status", "data", "meta"],
    "properties": {
        "status": {"const": 200},
        "data": {
            "type": "object",
            "required": ["user", "methods"],
            "properties": {
                "user": {"type": "object", "required": ["id", "display", "email", "has_usable_password"]},
                "methods": {"type": "array", "items": {"type": "object", "required": ["method", "at"]}},
            },
        },
        "meta": {
            "type": "object",
            "required": ["is_authenticated", "session_token"],
            "properties": {"is_authenticated": {"const": True}, "session_token": {"type": "string", "minLength": 16}},
        },
    },
}


def test_roles_viewer_and_data_loader(local_hydroserver):
    hs = local_hydroserver
    ds = hs.create_datastream(name="Roles", observations=[(T0, 1.0)])
    viewer = hs.create_api_key(role="Viewer")
    loader = hs.create_api_key(role="Data Loader")
    later = rows(T0 + timedelta(days=1), 2)

    assert requests.get(f"{hs.url}/api/data/datastreams/{ds}", headers=key(viewer)).status_code == 200
    r = bulk(hs, ds, row_body(later), headers=key(viewer))
    assert (r.status_code, r.json()) == (403, {"detail": "You do not have permission to edit this datastream"})
    assert bulk(hs, ds, row_body(later), headers=key(loader)).status_code == 201
    r = bulk(hs, ds, row_body(later), mode="replace", headers=key(loader))
    assert (r.status_code, r.json()) == (403, {"detail": "You do not have permission to delete these observations"})
    r = requests.post(f"{hs.url}/api/data/datastreams/{ds}/observations/bulk-delete", json={}, headers=key(loader))
    assert r.status_code == 403
    assert len(hs.observations(ds)) == 3
    with pytest.raises(ValueError):
        hs.create_api_key(role="Admin")


# ------------------------------------------------------------------------------------ lists


def test_datastream_list_pagination_filters_and_order(local_hydroserver, contract):
    hs = local_hydroserver
    ids = [hs.create_datastream(name=f"DS {i}") for i in range(5)]
    other_ws = hs.create_workspace("Second", is_private=False)
    other = hs.create_datastream(name="DS other", workspace_id=other_ws, is_private=False)
    hs.add_observations(ids[1], [(T0, 1.0)])
    url = f"{hs.url}/api/data/datastreams"

    seen = []
    for page in (1, 2, 3):
        r = requests.get(url, params={"page": page, "page_size": 2}, headers=key(hs))
        seen += [d["id"] for d in contract.check(r, "/api/data/datastreams")]
        assert (r.headers["X-Page"], r.headers["X-Page-Size"]) == (str(page), "2")
        assert (r.headers["X-Total-Pages"], r.headers["X-Total-Count"]) == ("3", "6")
    assert seen == [*ids, other]  # default order: by id (time-ordered, like uuid7)

    r = requests.get(url, params={"page_size": 0}, headers=key(hs))
    assert r.json() == [] and r.headers["X-Total-Count"] == "6" and "X-Page" not in r.headers
    r = requests.get(url, params={"order_by": "-name"}, headers=key(hs))
    assert [d["name"] for d in r.json()][:2] == ["DS other", "DS 4"]
    r = requests.get(url, params=[("workspace_id", hs.workspace_id), ("workspace_id", other_ws)], headers=key(hs))
    assert r.headers["X-Total-Count"] == "6"
    r = requests.get(url, params={"workspace_id": other_ws}, headers=key(hs))
    assert [d["id"] for d in r.json()] == [other]
    r = requests.get(url, params={"phenomenon_end_time_min": "2023-12-31T00:00:00Z"}, headers=key(hs))
    assert [d["id"] for d in r.json()] == [ids[1]]
    r = requests.get(url, params={"page_size": 100001}, headers=key(hs))
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "page_size"]
    r = requests.get(url, params={"order_by": "color"}, headers=key(hs))
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "literal_error"


def test_observation_pages_formats_and_filters(local_hydroserver, contract):
    hs = local_hydroserver
    ds = hs.create_datastream(name="Obs", is_private=False,
                              observations=[(T0 + timedelta(hours=i), float(i)) for i in range(250)])
    url = f"{hs.url}/api/data/datastreams/{ds}/observations"
    path = "/api/data/datastreams/{datastream_id}/observations"

    pages = []
    for page in (1, 2, 3):
        r = requests.get(url, params={"page": page, "page_size": 100})
        pages.append(contract.check(r, path))
        assert (r.headers["X-Total-Count"], r.headers["X-Total-Pages"]) == ("250", "3")
        assert len(r.headers["X-Checksum"]) == 16
    assert [len(p) for p in pages] == [100, 100, 50]
    assert pages[0][0] == {**pages[0][0], "phenomenonTime": "2024-01-01T00:00:00+00:00", "result": 0.0,
                           "datastreamId": ds, "resultQualifierCodes": []}

    r = requests.get(url, params={"order_by": "-phenomenonTime", "page_size": 1, "format": "row"})
    assert contract.check(r, path) == {"fields": ["phenomenonTime", "result", "resultQualifierCodes"],
                                       "data": [["2024-01-11T09:00:00+00:00", 249.0, []]]}
    r = requests.get(url, params={"format": "column", "page_size": 100000,
                                  "phenomenon_time_min": "2024-01-01T02:00:00Z",
                                  "phenomenon_time_max": "2024-01-01T04:00:00+00:00"})
    assert contract.check(r, path) == {
        "phenomenonTime": ["2024-01-01T02:00:00+00:00", "2024-01-01T03:00:00+00:00", "2024-01-01T04:00:00+00:00"],
        "result": [2.0, 3.0, 4.0],
        "resultQualifierCodes": [[], [], []],
    }
    r = requests.get(url, params={"expand_related": "true", "page_size": 1})
    assert contract.check(r, path)[0]["datastream"]["id"] == ds
    r = requests.get(url, params={"format": "csv"})
    assert r.status_code == 422


# ------------------------------------------------------------------------------------ bulk-create


def test_append_mode_and_its_rejection(local_hydroserver, contract):
    hs = local_hydroserver
    ds = hs.create_datastream(name="Append")
    assert hs.datastream(ds)["valueCount"] is None and hs.datastream(ds)["phenomenonEndTime"] is None

    r = bulk(hs, ds, row_body(rows(T0, 4)))
    assert (r.status_code, r.content) == (201, b"")
    stats = contract.check(requests.get(f"{hs.url}/api/data/datastreams/{ds}", headers=key(hs)),
                           "/api/data/datastreams/{datastream_id}")
    assert (stats["valueCount"], stats["phenomenonBeginTime"], stats["phenomenonEndTime"]) == (
        4, "2024-01-01T00:00:00+00:00", "2024-01-01T00:45:00+00:00")

    # one old row rejects the whole batch
    batch = rows(T0 + timedelta(hours=1), 3) + [[T0.isoformat(), 9.0]]
    r = bulk(hs, ds, row_body(batch))
    assert (r.status_code, r.json()) == (400, {"detail": APPEND_DETAIL})
    assert hs.datastream(ds) == stats and len(hs.observations(ds)) == 4
    # append is the default mode, and the column form is accepted too
    r = bulk(hs, ds, {"phenomenonTime": ["2024-01-02T00:00:00"], "result": [5]}, mode="append")
    assert r.status_code == 201
    assert hs.observations(ds)[-1] == (datetime(2024, 1, 2, tzinfo=UTC), 5.0)


def test_insert_mode_duplicates_answer_409_and_roll_back(local_hydroserver):
    hs = local_hydroserver
    ds = hs.create_datastream(name="Insert", observations=[(T0 + timedelta(hours=1), 1.0)])
    before = (hs.observations(ds), hs.datastream(ds))

    assert bulk(hs, ds, row_body(rows(T0 - timedelta(days=1), 2)), mode="insert").status_code == 201
    after_ok = (hs.observations(ds), hs.datastream(ds))
    assert after_ok[1]["valueCount"] == 3 and after_ok[1]["phenomenonBeginTime"] == "2023-12-31T00:00:00+00:00"

    for data in (
        [["2024-01-01T00:30:00Z", 1.0], ["2024-01-01T01:00:00Z", 2.0]],  # stored timestamp
        [["2024-02-01T00:00:00Z", 1.0], ["2024-02-01T00:00:00+00:00", 2.0]],  # repeated in the payload
    ):
        r = bulk(hs, ds, row_body(data), mode="insert")
        assert (r.status_code, r.json()) == (409, {"detail": DUPLICATE_DETAIL})
        assert (hs.observations(ds), hs.datastream(ds)) == after_ok
    assert before[0][0] in after_ok[0]


def test_backfill_mode(local_hydroserver):
    hs = local_hydroserver
    ds = hs.create_datastream(name="Backfill", observations=[(T0, 1.0)])
    assert bulk(hs, ds, row_body(rows(T0 - timedelta(hours=2), 2)), mode="backfill").status_code == 201
    assert hs.datastream(ds)["phenomenonBeginTime"] == "2023-12-31T22:00:00+00:00"
    r = bulk(hs, ds, row_body([["2023-12-31T21:00:00Z", 1.0], ["2024-01-02T00:00:00Z", 2.0]]), mode="backfill")
    assert r.status_code == 400
    assert r.json() == {"detail": "All observations must occur before the datastream's begin time for backfill mode"}
    assert len(hs.observations(ds)) == 3


def test_replace_mode(local_hydroserver):
    hs = local_hydroserver
    ds = hs.create_datastream(name="Replace", observations=[(T0 + timedelta(hours=h), float(h)) for h in range(6)])
    data = [["2024-01-01T01:30:00Z", 10.0], ["2024-01-01T03:00:00Z", 30.0]]
    assert bulk(hs, ds, row_body(data), mode="replace").status_code == 201
    assert [(t.hour, t.minute, v) for t, v in hs.observations(ds)] == [
        (0, 0, 0.0), (1, 0, 1.0), (1, 30, 10.0), (3, 0, 30.0), (4, 0, 4.0), (5, 0, 5.0)]
    snapshot = (hs.observations(ds), hs.datastream(ds))
    r = bulk(hs, ds, row_body([["2024-01-01T00:00:00Z", 1.0], ["2024-01-01T00:00:00Z", 2.0]]), mode="replace")
    assert (r.status_code, r.json()) == (409, {"detail": DUPLICATE_DETAIL})
    assert (hs.observations(ds), hs.datastream(ds)) == snapshot  # the delete was rolled back too


def test_timestamps_values_and_bad_payloads(local_hydroserver):
    hs = local_hydroserver
    ds = hs.create_datastream(name="Parse", no_data_value=-9999.0)
    url = f"{hs.url}/api/data/datastreams/{ds}/observations/bulk-create"

    payload = b'{"fields":["phenomenonTime","result"],"data":[["2024-01-01T00:00:00",NaN],' \
              b'["2024-01-01T02:00:00.250+01:00","7.5"]]}'
    r = requests.post(url, data=payload, headers={**key(hs), "Content-Type": "application/json"})
    assert r.status_code == 201
    assert hs.observations(ds) == [(T0, -9999.0), (T0 + timedelta(hours=1, milliseconds=250), 7.5)]
    snapshot = (hs.observations(ds), hs.datastream(ds))

    r = bulk(hs, ds, row_body([["2024-03-01T00:00:00Z", 1.0], ["yesterday", 2.0]]))
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert isinstance(detail, list) and detail[0]["loc"][:2] == ["body", "data"]
    assert {"type", "loc", "msg"} <= set(detail[0]) and detail[0]["input"] == "yesterday"
    r = bulk(hs, ds, {"phenomenonTime": ["2024-03-01T00:00:00Z", "13/01/2024"], "result": [1, 2]})
    assert r.status_code == 422 and any(e.get("input") == "13/01/2024" for e in r.json()["detail"])

    r = bulk(hs, ds, row_body([["2024-03-01T00:00:00Z", 1.0], ["2024-03-02T00:00:00Z", None]]))
    assert r.status_code == 500 and "Server Error (500)" in r.text
    r = bulk(hs, ds, {"phenomenonTime": ["2024-03-01T00:00:00Z"], "result": [None]})
    assert r.status_code == 500
    r = requests.post(url, data=b'{"fields": [', headers={**key(hs), "Content-Type": "application/json"})
    assert (r.status_code, r.json()) == (400, {"detail": "Cannot parse request body"})
    r = bulk(hs, ds, {"fields": ["result"], "data": [[1.0]]})
    assert (r.status_code, r.json()) == (400, {"detail": "Missing required observation fields"})
    r = bulk(hs, ds, row_body(rows(T0, 1)), mode="upsert")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "mode"]
    assert (hs.observations(ds), hs.datastream(ds)) == snapshot
    assert hs.errors == []


def test_bulk_delete_is_inclusive_and_updates_statistics(local_hydroserver):
    hs = local_hydroserver
    ds = hs.create_datastream(name="Delete", observations=[(T0 + timedelta(hours=h), float(h)) for h in range(10)])
    url = f"{hs.url}/api/data/datastreams/{ds}/observations/bulk-delete"

    r = requests.post(url, json={"phenomenonTimeStart": "2024-01-01T02:00:00Z",
                                 "phenomenonTimeEnd": "2024-01-01T04:00:00Z"}, headers=key(hs))
    assert (r.status_code, r.content) == (204, b"")
    assert [t.hour for t, _ in hs.observations(ds)] == [0, 1, 5, 6, 7, 8, 9]
    r = requests.post(url, json={"phenomenonTimeStart": None, "phenomenonTimeEnd": "2024-01-01T01:00:00Z"},
                      headers=key(hs))
    assert r.status_code == 204 and hs.datastream(ds)["phenomenonBeginTime"] == "2024-01-01T05:00:00+00:00"
    r = requests.post(url, json={"phenomenonTimeStart": "2024-01-01T09:00:00Z"}, headers=key(hs))
    assert r.status_code == 204 and hs.datastream(ds)["phenomenonEndTime"] == "2024-01-01T08:00:00+00:00"
    assert requests.post(url, json={}, headers=key(hs)).status_code == 204
    stats = hs.datastream(ds)
    assert (stats["valueCount"], stats["phenomenonBeginTime"], stats["phenomenonEndTime"]) == (0, None, None)
    r = requests.post(url, json={"phenomenonTimeStart": "soon"}, headers=key(hs))
    assert r.status_code == 422


# ------------------------------------------------------------------------------------ ETL


def make_etl(hs):
    ds1 = hs.create_datastream(name="Stage")
    ds2 = hs.create_datastream(name="Temp")
    dc = hs.create_data_connection({
        "name": "USGS feed",
        "sourceUrl": "https://example.org/data.csv?start={start}",
        "authHeaderName": "Authorization",
        "authHeaderValue": "Token s3cret",
        "timezoneType": "offset",
        "timezone": "-0700",
        "payload": {"type": "CSV", "timestampKey": "time", "headerRow": 1, "dataStartRow": 2, "delimiter": ",",
                    "dataIngestionWindow": {"start": {"anchor": "run_time", "lookback": 2, "lookbackUnits": "days"}}},
        "placeholderVariables": [{"name": "start", "type": "latest_observation_timestamp",
                                  "timestampFormat": "%Y-%m-%d"}],
        "notification": {"recipientEmails": ["ops@example.org"], "schedule": {"crontab": "0 6 * * *"}},
    })
    task = hs.create_task({
        "name": "Load USGS",
        "description": "hourly",
        "dataConnectionId": dc,
        "taskVariables": {"site": "10109000"},
        "schedule": {"interval": 1, "intervalPeriod": "hours"},
        "mappings": [{"sourceIdentifier": "stage", "targetDatastreamId": ds1}],
    })
    return ds1, ds2, dc, task


def test_etl_data_connections_and_tasks(local_hydroserver, contract):
    hs = local_hydroserver
    ds1, ds2, dc, task = make_etl(hs)
    other_dc = hs.create_data_connection({"name": "JSON feed", "sourceUrl": "https://example.org/x.json",
                                          "payload": {"type": "JSON", "timestampKey": "t", "jmespath": "data[*]"}})
    base = f"{hs.url}/api/data/etl"

    r = requests.get(f"{base}/data-connections", params={"page_size": 1}, headers=key(hs))
    assert contract.check(r, "/api/data/etl/data-connections")[0]["id"] == other_dc  # newest first
    assert (r.headers["X-Total-Count"], r.headers["X-Total-Pages"]) == ("2", "2")
    r = requests.get(f"{base}/data-connections/{dc}", headers=key(hs))
    connection = contract.check(r, "/api/data/etl/data-connections/{data_connection_id}")
    assert connection["authHeaderValue"] == "Token s3cret"  # stored and echoed like the real server
    assert connection["workspace"]["id"] == hs.workspace_id and connection["taskCount"] == 1
    assert connection["payload"]["dataIngestionWindow"]["start"]["lookback"] == 2
    r = requests.get(f"{base}/data-connections", params={"workspace_id": hs.create_workspace("Empty")},
                     headers=key(hs))
    assert r.json() == [] and r.headers["X-Total-Count"] == "0"

    r = requests.get(f"{base}/tasks", params={"data_connection_id": dc}, headers=key(hs))
    tasks = contract.check(r, "/api/data/etl/tasks")
    assert [t["id"] for t in tasks] == [task] and r.headers["X-Total-Count"] == "1"
    summary = contract.check(requests.get(f"{base}/tasks/{task}", headers=key(hs)), "/api/data/etl/tasks/{task_id}")
    assert summary["schedule"]["interval"] == 1 and summary["schedule"]["enabled"] is True
    assert summary["taskVariables"] == {"site": "10109000"} and summary["dataConnectionId"] == dc
    r = requests.get(f"{base}/tasks/{task}", params={"expand_related": "true"}, headers=key(hs))
    detail = contract.check(r, "/api/data/etl/tasks/{task_id}")
    assert detail["mappings"][0]["targetDatastream"]["id"] == ds1 and detail["dataConnection"]["id"] == dc
    r = requests.get(f"{base}/tasks", params={"workspace_id": hs.workspace_id, "expand_related": "true"},
                     headers=key(hs))
    assert contract.check(r, "/api/data/etl/tasks")[0]["mappings"][0]["sourceIdentifier"] == "stage"

    patch = requests.patch(f"{base}/tasks/{task}", json={"schedule": {"enabled": False}}, headers=key(hs))
    patched = contract.check(patch, "/api/data/etl/tasks/{task_id}")
    assert patched["schedule"] == {**summary["schedule"], "enabled": False, "nextRunAt": None}
    patch = requests.patch(f"{base}/tasks/{task}", headers=key(hs), json={
        "name": "Renamed", "description": None, "taskVariables": {"site": "X"},
        "mappings": [{"sourceIdentifier": "temp", "targetDatastreamId": ds2}]})
    patched = contract.check(patch, "/api/data/etl/tasks/{task_id}")
    assert (patched["name"], patched["description"], patched["taskVariables"]) == ("Renamed", None, {"site": "X"})
    assert hs.task(task, expand_related=True)["mappings"][0]["targetDatastream"]["id"] == ds2
    patched = requests.patch(f"{base}/tasks/{task}", json={"schedule": None}, headers=key(hs)).json()
    assert patched["schedule"] is None

    r = requests.patch(f"{base}/tasks/{task}", json={"schedule": {"crontab": "every hour"}}, headers=key(hs))
    assert (r.status_code, r.json()) == (400, {"detail": "Invalid crontab schedule every hour."})
    viewer = hs.create_api_key(role="Viewer")
    r = requests.patch(f"{base}/tasks/{task}", json={"name": "x"}, headers=key(viewer))
    assert (r.status_code, r.json()) == (403, {"detail": "You do not have permission to edit this task."})
    missing = "01900000-0000-7000-8000-000000000000"
    r = requests.get(f"{base}/tasks/{missing}", headers=key(hs))
    assert (r.status_code, r.json()) == (404, {"detail": f"Task with ID {missing} does not exist."})
    outsider = hs.create_api_key(hs.create_workspace("Outsider"), role="Editor")
    assert requests.get(f"{base}/tasks/{task}", headers=key(outsider)).status_code == 404
    assert requests.get(f"{base}/tasks", headers=key(outsider)).json() == []
    assert hs.task(task)["name"] == "Renamed"


def test_etl_posts_validate(local_hydroserver, contract):
    hs = local_hydroserver
    base = f"{hs.url}/api/data/etl"
    body = {"name": "Posted", "sourceUrl": "https://example.org/a.csv", "workspaceId": hs.workspace_id,
            "payload": {"type": "CSV", "timestampKey": "1"}, "placeholderVariables": []}
    r = requests.post(f"{base}/data-connections", json=body, headers=key(hs))
    dc = contract.check(r, "/api/data/etl/data-connections", 201)["id"]
    r = requests.post(f"{base}/tasks", json={"name": "T", "dataConnectionId": dc}, headers=key(hs))
    assert contract.check(r, "/api/data/etl/tasks", 201)["schedule"] is None
    r = requests.post(f"{base}/data-connections", json={"name": "x"}, headers=key(hs))
    assert r.status_code == 422 and {e["loc"][-1] for e in r.json()["detail"]} >= {"sourceUrl", "payload"}
    r = requests.get(f"{base}/tasks/{r.json()}", headers=key(hs))
    assert r.status_code == 422  # not a uuid


# ------------------------------------------------------------------------------------ contract coverage


def test_other_get_endpoints_match_the_contract(local_hydroserver, contract):
    hs = local_hydroserver
    ds = hs.create_datastream(name="Level", unit="m", tags={"river": "Logan"})
    _, _, _, task = make_etl(hs)
    h = key(hs)

    detail = contract.check(requests.get(f"{hs.url}/api/data/datastreams/{ds}?expand_related=true", headers=h),
                            "/api/data/datastreams/{datastream_id}")
    assert detail["unit"]["symbol"] == "m" and detail["unit"]["name"] == "Meter"
    assert hs.datastream(ds, expand_related=True) == detail
    unit_id = hs.datastream(ds)["unitId"]
    assert contract.check(requests.get(f"{hs.url}/api/data/units/{unit_id}", headers=h),
                          "/api/data/units/{unit_id}") == hs.unit(unit_id)
    contract.check(requests.get(f"{hs.url}/api/data/units", headers=h), "/api/data/units")
    r = requests.get(f"{hs.url}/api/data/datastreams", params={"expand_related": "true", "tag": "river:Logan"},
                     headers=h)
    assert [d["id"] for d in contract.check(r, "/api/data/datastreams")] == [ds]
    things = contract.check(requests.get(f"{hs.url}/api/data/things", headers=h), "/api/data/things")
    contract.check(requests.get(f"{hs.url}/api/data/things/{things[0]['id']}", headers=h),
                   "/api/data/things/{thing_id}")
    workspaces = contract.check(requests.get(f"{hs.url}/api/data/workspaces", headers=h), "/api/data/workspaces")
    assert [w["id"] for w in workspaces] == [hs.workspace_id]
    contract.check(requests.get(f"{hs.url}/api/data/workspaces/{hs.workspace_id}", headers=h),
                   "/api/data/workspaces/{workspace_id}")
    r = requests.get(f"{hs.url}/api/data/etl/tasks/{task}/runs", headers=h)
    assert contract.check(r, "/api/data/etl/tasks/{task_id}/runs") == [] and r.headers["X-Total-Count"] == "0"


def test_unknown_routes_and_methods(local_hydroserver):
    hs = local_hydroserver
    r = requests.get(f"{hs.url}/api/data/nothing-here", headers=key(hs))
    assert (r.status_code, r.json()) == (404, {"detail": "Not Found"})
    r = requests.delete(f"{hs.url}/api/data/datastreams", headers=key(hs))
    assert r.status_code == 405
    r = requests.get(f"{hs.url}/api/data/datastreams/not-a-uuid", headers=key(hs))
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["path", "datastream_id"]


# ------------------------------------------------------------------------------------ faults, throttle, counters


def test_fail_next_drop_next_and_latency(local_hydroserver):
    hs = local_hydroserver
    ds = hs.create_datastream(name="Faults")
    url = f"{hs.url}/api/data/datastreams/{ds}"

    hs.faults.fail_next(2, status=503)
    assert [requests.get(url, headers=key(hs)).status_code for _ in range(3)] == [503, 503, 200]

    hs.faults.fail_next(1, status=429, retry_after=7, path_contains="bulk-create")
    assert requests.get(url, headers=key(hs)).status_code == 200  # does not match the path
    r = bulk(hs, ds, row_body(rows(T0, 3)))
    assert r.status_code == 429 and r.headers["Retry-After"] == "7"
    assert hs.observations(ds) == []  # faulted before any work

    hs.faults.drop_next(1, path_contains="/observations")
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/observations", headers=key(hs), timeout=5)
    assert hs.requests_log[-1] == ("GET", f"/api/data/datastreams/{ds}/observations", None)
    assert requests.get(f"{url}/observations", headers=key(hs)).status_code == 200

    hs.faults.latency = 0.2
    start = time.monotonic()
    assert requests.get(url, headers=key(hs)).status_code == 200
    assert time.monotonic() - start >= 0.2
    hs.faults.fail_next(5)
    hs.faults.clear()
    assert hs.faults.pending == 0 and hs.faults.latency == 0.0
    assert requests.get(url, headers=key(hs)).status_code == 200


def test_throttle_answers_429_with_retry_after(local_hydroserver):
    hs = local_hydroserver
    hs.throttle = 3
    url = f"{hs.url}/api/data/datastreams"
    with requests.Session() as s:
        codes = [s.get(url, headers=key(hs)) for _ in range(5)]
    assert [r.status_code for r in codes] == [200, 200, 200, 429, 429]
    assert codes[3].headers["Retry-After"] == "1"
    assert codes[3].json() == {"detail": "Request was throttled. Expected available in 1 second."}
    time.sleep(1.05)
    assert requests.get(url, headers=key(hs)).status_code == 200
    hs.throttle = None
    assert all(requests.get(url, headers=key(hs)).status_code == 200 for _ in range(6))


def test_request_counters_and_log(local_hydroserver):
    hs = local_hydroserver
    ds = hs.create_datastream(name="Counts")
    for i in range(3):
        bulk(hs, ds, row_body(rows(T0 + timedelta(days=i), 2)))
    requests.get(f"{hs.url}/api/data/datastreams/{ds}/observations?page_size=5&format=row", headers=key(hs))
    assert hs.request_counts == {
        "POST /api/data/datastreams/{id}/observations/bulk-create": 3,
        "GET /api/data/datastreams/{id}/observations": 1,
    }
    assert hs.total_requests == 4
    assert hs.requests_log[-1] == ("GET", f"/api/data/datastreams/{ds}/observations?page_size=5&format=row", 200)
    assert [status for _, _, status in hs.requests_log] == [201, 201, 201, 200]
    hs.reset_counts()
    assert (hs.request_counts, hs.total_requests, hs.requests_log) == ({}, 0, [])


def test_costs_are_slept_outside_the_lock(local_hydroserver):
    hs = local_hydroserver
    hs.api_key_cost = 0.3
    ds = hs.create_datastream(name="Costs")
    url = f"{hs.url}/api/data/datastreams/{ds}"
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(lambda _: requests.get(url, headers=key(hs)).status_code, range(4)))
    elapsed = time.monotonic() - start
    assert codes == [200] * 4 and 0.3 <= elapsed < 0.9  # four 0.3 s requests overlapped
    start = time.monotonic()
    requests.get(url, headers={"X-Api-Key": "unknown-key-cheap"})  # no stored prefix: no hashing
    assert time.monotonic() - start < 0.25


# ------------------------------------------------------------------------------------ python API, persistence, CLI


def test_python_api_helpers_and_repr(local_hydroserver):
    hs = local_hydroserver
    assert hs.url.startswith("http://127.0.0.1:") and not hs.url.endswith("/")
    assert hs.url in repr(hs) and "LocalHydroServer" in repr(hs)
    ds = hs.create_datastream(name="Helpers", observations=[("2024-01-01T01:00:00", 2.0), (T0, 1.0)])
    assert hs.observations(ds) == [(T0, 1.0), (T0 + timedelta(hours=1), 2.0)]
    with pytest.raises(ValueError):
        hs.add_observations(ds, [(T0, 5.0)])
    assert hs.datastream(ds)["valueCount"] == 2
    token = hs.login()
    r = requests.get(f"{hs.url}/api/data/datastreams/{ds}", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    with pytest.raises(KeyError):
        hs.datastream("01900000-0000-7000-8000-000000000000")


def test_db_file_persists_across_restarts(tmp_path):
    db = str(tmp_path / "hs.sqlite3")
    with LocalHydroServer(db_path=db) as hs:
        ds = hs.create_datastream(name="Kept", observations=[(T0, 1.5)])
        first = (hs.api_key, hs.workspace_id)
    assert not hs.running and "stopped" in repr(hs)
    with LocalHydroServer(db_path=db) as hs:
        assert (hs.api_key, hs.workspace_id) == first
        assert hs.observations(ds) == [(T0, 1.5)]
        assert requests.get(f"{hs.url}/api/data/datastreams/{ds}", headers=key(hs)).json()["valueCount"] == 1


def test_session_fixture_is_shared_and_reset(local_hydroserver_session):
    hs = local_hydroserver_session
    assert hs.running and hs.total_requests == 0 and hs.throttle is None
    assert requests.get(f"{hs.url}/api/data/datastreams", headers=key(hs)).status_code == 200


def test_cli_serves_and_prints_json(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hydroserver_provider.testing", "serve", "--api-key", "cli-test-key-123456",
         "--seed-demo"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        info = json.loads(proc.stdout.readline())
        assert set(info) >= {"url", "api_key", "workspace_id", "email", "password", "seed"}
        assert info["api_key"] == "cli-test-key-123456"
        r = requests.get(f"{info['url']}/api/data/datastreams", headers={"X-Api-Key": info["api_key"]}, timeout=5)
        assert r.status_code == 200 and len(r.json()) == 2
        r = requests.get(f"{info['url']}/api/data/etl/tasks/{info['seed']['task_id']}",
                         headers={"X-Api-Key": info["api_key"]}, timeout=5)
        assert r.status_code == 200
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def _serve(*args: str) -> tuple[subprocess.Popen, dict]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hydroserver_provider.testing", "serve", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=10)
        raise AssertionError(proc.stderr.read())
    return proc, json.loads(line)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    assert proc.wait(timeout=10) == 0


def test_cli_creates_datastreams_and_prints_their_ids(tmp_path):
    fixed = "5f2b0c1e-0000-4000-8000-000000000042"
    db = str(tmp_path / "hs.sqlite")
    args = ["--db", db, "--datastream", "Water level:ft", "--datastream",
            f"Discharge:ft^3/s={fixed}", "--datastream", "Notes"]
    proc, info = _serve(*args)
    try:
        ids = info["datastreams"]
        assert list(ids) == ["Water level", "Discharge", "Notes"] and ids["Discharge"] == fixed
        headers = {"X-Api-Key": info["api_key"]}
        for name, unit in (("Water level", "ft"), ("Discharge", "ft^3/s"), ("Notes", "Unknown")):
            ds = requests.get(f"{info['url']}/api/data/datastreams/{ids[name]}", headers=headers,
                              timeout=5).json()
            assert ds["name"] == name and ds["workspaceId"] == info["workspace_id"]
            symbol = requests.get(f"{info['url']}/api/data/units/{ds['unitId']}", headers=headers,
                                  timeout=5).json()["symbol"]
            assert symbol == unit
            # private: a wrong key is answered anonymously, and the datastream "does not exist"
            assert requests.get(f"{info['url']}/api/data/datastreams/{ids[name]}", timeout=5,
                                headers={"X-Api-Key": "wrong-key-0123456789"}).status_code == 404
    finally:
        _stop(proc)
    proc, again = _serve(*args)  # the same --db: the same datastreams, none added
    try:
        assert again["datastreams"] == ids
        listed = requests.get(f"{again['url']}/api/data/datastreams",
                              headers={"X-Api-Key": again["api_key"]}, timeout=5).json()
        assert len(listed) == 3
    finally:
        _stop(proc)


def test_cli_public_datastreams_and_bad_specs():
    proc, info = _serve("--datastream", "Stage:m", "--public")
    try:
        url = f"{info['url']}/api/data/datastreams/{info['datastreams']['Stage']}"
        assert requests.get(url, timeout=5).status_code == 200  # no credentials needed
    finally:
        _stop(proc)
    done = subprocess.run([sys.executable, "-m", "hydroserver_provider.testing", "serve",
                           "--datastream", "Stage:m=not-a-uuid"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert "the id after '=' must be a UUID" in done.stderr
