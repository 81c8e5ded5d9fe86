"""HydrocronHook from Airflow connections defined in the environment, against the local replay."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

# An isolated AIRFLOW_HOME even when this file runs alone (tests/conftest.py sets the same).
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="hydrocron-hook-tests-"))

import pytest

from hydroserver_provider.errors import HydroServerProviderError
from hydroserver_provider.hooks.hydrocron import HydrocronHook
from hydroserver_provider.retries import RetryPolicy
from hydroserver_provider.sources.hydrocron.client import (
    DEFAULT_MIN_WINDOW,
    DEFAULT_URL,
    HydrocronQuery,
)
from hydroserver_provider.testing.hydrocron import LocalHydrocron

FIXTURES = (Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "hydrocron").resolve()
FAST = RetryPolicy(tries=3, backoff=0.01, max_delay=0.02, max_retry_after=0.1)
KEY = "hc-key-9f3e2d1c-not-for-logs"
QUERY = HydrocronQuery("Reach", "18180900091", ("wse", "slope", "width"),
                       collection_name="SWOT_L2_HR_RiverSP_2.0")

pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"fixtures not found at {FIXTURES}")


@pytest.fixture
def hydrocron():
    with LocalHydrocron(FIXTURES) as server:
        yield server


@pytest.fixture
def conn_env(monkeypatch):
    """Define an Airflow connection in the environment, as users do in containers."""

    def define(conn_id: str = "hydrocron_test", **fields) -> str:
        body = {"conn_type": "hydrocron", **fields}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(body))
        return conn_id

    return define


def test_password_is_sent_as_x_hydrocron_key_and_never_logged(hydrocron, conn_env, caplog):
    conn_id = conn_env(host=hydrocron.url, password=KEY)
    caplog.set_level(logging.DEBUG)
    hydrocron.fail_next(1, 429, retry_after="0")  # a retry: something gets logged
    hydrocron.max_rows = 2  # and a 413 split
    hook = HydrocronHook(conn_id, retry=FAST)
    result = hook.fetch_timeseries(QUERY, datetime(2024, 2, 1), datetime(2024, 3, 16))
    assert result.series["wse"].values.tolist() == [1065.3532, 1015.1029, 1240.6563, 1016.1183,
                                                    1074.6028]
    assert {r.api_key for r in hydrocron.requests} == {KEY}
    assert any("429" in m for m in caplog.messages) and any("413" in m for m in caplog.messages)
    everything = "\n".join([caplog.text, repr(hook), repr(hook.get_conn()), result.url,
                            result.description, json.dumps(result.summary())])
    assert KEY not in everything
    from airflow.sdk.log import redact  # the key is registered with Airflow's masker

    assert KEY not in str(redact(f"token={KEY}"))
    hook.close()


def test_api_key_extra_works_too(hydrocron, conn_env):
    conn_id = conn_env(host=hydrocron.url, extra={"api_key": KEY})
    hook = HydrocronHook(conn_id, retry=FAST)
    hook.fetch_timeseries(QUERY, datetime(2024, 2, 1), datetime(2024, 3, 1))
    assert hydrocron.requests[-1].api_key == KEY


def test_no_key_means_anonymous(hydrocron, conn_env):
    hook = HydrocronHook(conn_env(host=hydrocron.url), retry=FAST)
    ok, message = hook.test_connection()
    assert ok, message
    assert "anonymously" in message
    assert hydrocron.requests[-1].api_key is None


def test_test_connection_makes_one_tiny_request(hydrocron, conn_env):
    hook = HydrocronHook(conn_env(host=hydrocron.url, password=KEY), retry=FAST)
    ok, message = hook.test_connection()
    assert ok, message
    assert "with the API key" in message and "1 pass " in message and KEY not in message
    (request,) = hydrocron.requests
    assert request.params["feature_id"] == "18180900091"
    assert request.params["fields"] == "time_str,wse,collection_shortname"
    assert request.window == ("2024-01-12T00:00:00Z", "2024-01-13T00:00:00Z")


def test_test_connection_reports_failure(conn_env):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    hook = HydrocronHook(conn_env(host=f"http://127.0.0.1:{port}"))
    import time

    started = time.monotonic()
    ok, message = hook.test_connection()
    assert time.monotonic() - started < 5  # two quick tries, not the runs' minutes of backoff
    assert not ok
    assert message == (f"Hydrocron at http://127.0.0.1:{port}/hydrocron/v1 could not be reached "
                       "(connection refused)")


def test_lookup_is_lazy(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_NOT_DEFINED_ANYWHERE", raising=False)
    hook = HydrocronHook("not_defined_anywhere")  # nothing looked up yet
    with pytest.raises(Exception, match="not_defined_anywhere"):
        hook.get_conn()


def test_undefined_default_connection_means_the_public_endpoint(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_HYDROCRON_DEFAULT", raising=False)
    client = HydrocronHook().get_conn()
    assert client.base_url == DEFAULT_URL and not client.has_api_key
    assert client.limiter is not None and client.limiter.rate == 5.0


def test_empty_host_means_the_public_endpoint(conn_env):
    client = HydrocronHook(conn_env(password=KEY)).get_conn()
    assert client.base_url == DEFAULT_URL and client.has_api_key


def test_extras_configure_the_client(conn_env):
    conn_id = conn_env(host="hydrocron.example.org", extra={
        "requests_per_second": "50", "burst": 2, "retries": 1, "retry_backoff": 0.5,
        "timeout": 30, "min_window_hours": 3, "max_window_days": 90})
    client = HydrocronHook(conn_id).get_conn()
    assert client.base_url == "https://hydrocron.example.org/hydrocron/v1"
    assert (client.limiter.rate, client.limiter.burst) == (50.0, 2)
    assert (client.retry.tries, client.retry.backoff) == (2, 0.5)
    assert 429 in client.retry.statuses
    assert client.timeout == 30.0
    assert client.min_window == timedelta(hours=3) and client.max_window == timedelta(days=90)
    # hooks of one endpoint in one process share their limiter
    assert HydrocronHook(conn_id).get_conn().limiter is client.limiter


def test_zero_rate_disables_the_limiter_and_defaults_apply(conn_env):
    client = HydrocronHook(conn_env(extra={"requests_per_second": 0})).get_conn()
    assert client.limiter is None and client.min_window == DEFAULT_MIN_WINDOW


def test_bad_extra_is_named(conn_env):
    hook = HydrocronHook(conn_env(extra={"requests_per_second": "fast"}))
    with pytest.raises(HydroServerProviderError, match="requests_per_second"):
        hook.get_conn()


def test_host_port_and_schema_fields(hydrocron, conn_env):
    host, port = hydrocron.url.split("://")[1].split("/")[0].split(":")
    conn_id = conn_env(host=host, port=int(port), schema="http")
    hook = HydrocronHook(conn_id, retry=FAST)
    assert hook.get_conn().base_url == hydrocron.url
    assert hook.test_connection()[0]
