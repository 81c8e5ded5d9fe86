"""The Test button of Airflow 3.3's connection list: the API-server middleware that gets around
its ``port: 0`` bug, in-process and against a real Airflow API server."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from fastapi import FastAPI, Request

from hydroserver_provider.hooks.connection_test import (
    ConnectionTestMiddleware,
    rewrite_test_body,
    tested_connection_id,
)


def ui_test_body(stored: dict) -> dict:
    """What the Test button of Airflow 3.3.2's connection list posts: the connection as the list
    API returned it, with ``port: Number(port)`` -- ``Number(null)`` is ``0`` (ui/dist, the
    ``TestConnectionButton``: ``port: Number(n.port)``, ``password: n.password ?? ""``)."""
    extra = stored.get("extra")
    return {"conn_type": stored["conn_type"], "connection_id": stored["connection_id"],
            "description": stored.get("description") or "",
            "extra": "{}" if extra in ("", None) else extra,
            "host": stored.get("host") or "", "login": stored.get("login") or "",
            "password": stored.get("password") or "", "port": int(stored.get("port") or 0),
            "schema": stored.get("schema") or ""}


def test_port_zero_is_removed_for_this_providers_types_only():
    for conn_type in ("hydroserver", "hydrocron"):
        body = json.dumps({"conn_type": conn_type, "connection_id": "mine", "port": 0}).encode()
        rewritten, conn_id = rewrite_test_body(body)
        assert json.loads(rewritten) == {"conn_type": conn_type, "connection_id": "mine"}
        assert conn_id == "mine"
    other = json.dumps({"conn_type": "http", "connection_id": "x", "port": 0}).encode()
    assert rewrite_test_body(other) == (other, None)  # Airflow's own check stays as it is
    real_port = json.dumps({"conn_type": "hydroserver", "connection_id": "y", "port": 8443})
    assert rewrite_test_body(real_port.encode())[0] == real_port.encode()
    assert rewrite_test_body(b"not json") == (b"not json", None)


def post(app, path: str, body: dict) -> httpx.Response:
    """One request through the ASGI app, in-process."""

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://airflow") as client:
            return await client.post(path, json=body)

    return asyncio.run(send())


def _app_and_calls():
    """A FastAPI app like Airflow's: the test route is a sync endpoint run in a thread pool."""
    calls: list[tuple[dict, str | None]] = []
    app = FastAPI()

    @app.post("/api/v2/connections/test")
    def test(body: dict) -> dict:
        calls.append((body, tested_connection_id()))
        return {"status": True}

    @app.post("/api/v2/connections")
    async def create(request: Request) -> dict:
        calls.append((await request.json(), tested_connection_id()))
        return {}

    app.add_middleware(ConnectionTestMiddleware)
    return app, calls


def test_the_middleware_passes_the_body_and_the_tested_id_to_the_endpoint():
    app, calls = _app_and_calls()
    body = ui_test_body({"conn_type": "hydroserver", "connection_id": "hydroserver_default",
                         "host": "https://hs.example.org", "password": "***"})
    assert post(app, "/api/v2/connections/test", body).status_code == 200
    assert post(app, "/api/v2/connections", body).status_code == 200
    (seen, conn_id), (untouched, other_id) = calls
    assert "port" not in seen and seen["host"] == "https://hs.example.org"
    assert conn_id == "hydroserver_default"  # visible in the endpoint's worker thread
    assert untouched["port"] == 0 and other_id is None  # other routes: not read, not changed
    assert tested_connection_id() is None


def test_the_hook_names_the_tested_connection_not_airflows_temporary_id(monkeypatch):
    """Airflow runs the test under a random id; the message names the user's connection."""
    from hydroserver_provider.hooks.hydroserver import HydroServerHook

    app = FastAPI()

    @app.post("/api/v2/connections/test")
    def test(body: dict) -> dict:  # what Airflow does: a transient env connection, its hook
        monkeypatch.setenv("AIRFLOW_CONN_KQZVMTDO", json.dumps(
            {"conn_type": "hydroserver", "host": body["host"]}))
        ok, message = HydroServerHook("kqzvmtdo").test_connection()
        return {"status": ok, "message": message}

    app.add_middleware(ConnectionTestMiddleware)
    answer = post(app, "/api/v2/connections/test", ui_test_body(
        {"conn_type": "hydroserver", "connection_id": "hs_prod",
         "host": "https://hs.example.org"})).json()
    assert answer == {"status": False, "message": (
        "Airflow connection 'hs_prod' has no HydroServer credentials: expected an API key (the "
        "API key field, i.e. the password), or an Email and the account password")}


def test_the_plugin_registers_the_middleware():
    from importlib.metadata import entry_points

    (entry,) = [e for e in entry_points(group="airflow.plugins")
                if e.name == "hydroserver_connection_test"]
    plugin = entry.load()
    from airflow.plugins_manager import is_valid_plugin

    assert is_valid_plugin(plugin)
    (middleware,) = plugin.fastapi_root_middlewares
    assert middleware["middleware"] is ConnectionTestMiddleware


@pytest.mark.slow
def test_the_test_button_works_on_a_connection_made_in_the_form(local_hydroserver, tmp_path):
    """A real Airflow 3.3 API server: a connection created as the form creates it (no port),
    then tested as the Test button tests it (``port: 0``)."""
    from hydroserver_provider.testing.airflow import LocalAirflow

    hs = local_hydroserver
    dags = tmp_path / "dags"
    dags.mkdir()
    airflow = LocalAirflow(tmp_path / "home", dags, password="test-button-admin",
                           env={"AIRFLOW__CORE__TEST_CONNECTION": "Enabled"})
    airflow.migrate()
    try:
        airflow.start("api-server")
        airflow.wait_healthy(timeout=180)
        api = airflow.api()

        def create(conn_id: str, conn_type: str = "hydroserver", **fields) -> dict:
            # the form's "add" posts empty fields as undefined: no port, no login, no extra
            api.request("POST", "/connections", json={
                "connection_id": conn_id, "conn_type": conn_type, **fields})
            return api.request("GET", f"/connections/{conn_id}")

        def press_test(stored: dict) -> tuple[int, dict, float]:
            started = time.monotonic()
            response = api._send("POST", "/api/v2/connections/test", json=ui_test_body(stored),
                                 headers={"Authorization": f"Bearer {api.login()}"})
            return response.status_code, response.json(), time.monotonic() - started

        good = create("hydroserver_default", host=hs.url, password=hs.api_key)
        assert good["port"] is None and good["password"] == "***"
        assert press_test(good)[:2] == (200, {"status": True, "message": (
            f"Connected to HydroServer at {hs.url} with an API key: 1 workspace "
            "(Local Workspace)")})

        # the bug itself, on a connection type without the fix: "Bad Request"
        other = create("plain_http", conn_type="http", host=hs.url, password="x")
        status, answer, _ = press_test(other)
        assert status == 400 and "differs from the stored connection" in answer["detail"]

        wrong = create("hs_wrong_key", host=hs.url, password="wrong-key-0123456789")
        status, answer, _ = press_test(wrong)
        assert status == 200 and answer["status"] is False
        assert answer["message"].startswith(f"HydroServer at {hs.url} did not accept the API key")

        missing = create("hs_no_key", host=hs.url)
        assert press_test(missing)[1]["message"].startswith(
            "Airflow connection 'hs_no_key' has no HydroServer credentials")

        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
        down = create("hs_down", host=closed, password="some-key-0123456789")
        status, answer, seconds = press_test(down)
        assert (status, answer["status"]) == (200, False) and seconds < 10
        assert answer["message"] == (f"HydroServer at {closed} could not be reached "
                                     "(connection refused) for GET /api/data/workspaces after "
                                     "2 tries")
    finally:
        airflow.stop()
    assert airflow.leftover_processes() == []
