"""HydroServerHook against the local HydroServer, over real HTTP."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from hydroserver_provider.errors import HydroServerAPIError, HydroServerProviderError
from hydroserver_provider.hooks.hydroserver import HydroServerHook
from hydroserver_provider.hydroserver.client import AuthenticationError
from hydroserver_provider.retries import RetryPolicy

FAST = RetryPolicy(tries=4, backoff=0.01, max_delay=0.05, max_retry_after=0.2)
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def hours(n: int, start: datetime = T0) -> list[datetime]:
    return [start + timedelta(hours=i) for i in range(n)]


@pytest.fixture
def conn_env(monkeypatch):
    """Define an Airflow connection in the environment, as users do in containers."""

    def define(conn_id: str = "hydroserver_test", **fields) -> str:
        body = {"conn_type": "hydroserver", **fields}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(body))
        return conn_id

    return define


@pytest.fixture
def key_hook(local_hydroserver, conn_env):
    conn_id = conn_env(host=local_hydroserver.url, extra={"api_key": local_hydroserver.api_key})
    hook = HydroServerHook(conn_id, retry=FAST)
    yield hook
    hook.close()


@pytest.fixture
def key_client(key_hook):
    """What an API-key hook hands out: its HydroServer client."""
    return key_hook.get_conn()


@pytest.fixture
def login_client(login_hook):
    return login_hook.get_conn()


@pytest.fixture
def login_hook(local_hydroserver, conn_env):
    conn_id = conn_env(host=local_hydroserver.url, login=local_hydroserver.email,
                       password=local_hydroserver.password)
    hook = HydroServerHook(conn_id, retry=FAST)
    yield hook
    hook.close()


def test_api_key_is_sent_as_x_api_key_and_reads_a_datastream(local_hydroserver, key_client):
    ds = local_hydroserver.create_datastream(name="Stage")
    data = key_client.get_datastream(ds)
    assert data["id"] == ds and data["name"] == "Stage"
    assert data["phenomenonEndTime"] is None


def test_session_login_then_bearer_token(local_hydroserver, login_client):
    ds = local_hydroserver.create_datastream(name="Flow")
    assert login_client.get_datastream(ds)["name"] == "Flow"
    counts = local_hydroserver.request_counts
    assert counts["POST /api/auth/app/session"] == 1
    login_client.get_datastream(ds)
    assert local_hydroserver.request_counts["POST /api/auth/app/session"] == 1  # token reused


def test_expired_session_logs_in_again_once(local_hydroserver, login_client):
    ds = local_hydroserver.create_datastream(name="Flow")
    login_client.get_datastream(ds)
    local_hydroserver.expire_sessions()
    assert login_client.get_datastream(ds)["id"] == ds
    assert local_hydroserver.request_counts["POST /api/auth/app/session"] == 2


def test_wrong_password_fails_clearly(local_hydroserver, conn_env):
    conn_id = conn_env(host=local_hydroserver.url, login=local_hydroserver.email,
                       password="not-the-password-xyz")
    hook = HydroServerHook(conn_id, retry=FAST)
    with pytest.raises(AuthenticationError, match="refused the login") as info:
        hook.get_conn().get_datastream(local_hydroserver.create_datastream())
    assert "not-the-password-xyz" not in str(info.value)


def test_wrong_api_key_fails_with_a_clear_message(local_hydroserver, conn_env):
    conn_id = conn_env(host=local_hydroserver.url, extra={"api_key": "wrong-key-abcdef"})
    hook = HydroServerHook(conn_id, retry=FAST)
    ds = local_hydroserver.create_datastream(is_private=True)
    with pytest.raises(AuthenticationError, match="API key was not accepted") as info:
        hook.get_conn().bulk_create_observations(ds, hours(2), [1.0, 2.0])
    assert "wrong-key-abcdef" not in str(info.value)
    ok, message = hook.test_connection()
    assert not ok and "wrong-key-abcdef" not in message


def test_missing_host_or_credentials_name_the_connection(conn_env):
    no_host = conn_env("hs_no_host", extra={"api_key": "abc12345"})
    with pytest.raises(HydroServerProviderError, match="'hs_no_host' has no host"):
        HydroServerHook(no_host).get_conn().get_datastream("x")
    no_creds = conn_env("hs_no_creds", host="http://127.0.0.1:9")
    with pytest.raises(HydroServerProviderError, match="'hs_no_creds' has no HydroServer credentials"):
        HydroServerHook(no_creds).get_conn().get_datastream("x")


def test_test_connection_reports_success(key_hook, local_hydroserver):
    ok, message = key_hook.test_connection()
    assert ok, message
    assert message == (f"Connected to HydroServer at {local_hydroserver.url} with an API key: "
                       "1 workspace (Local Workspace)")


def test_the_api_key_field_is_the_password(local_hydroserver, conn_env):
    """A connection made in the form: the key in the password field (labelled "API key")."""
    ds = local_hydroserver.create_datastream(is_private=True)
    conn_id = conn_env(host=local_hydroserver.url, password=local_hydroserver.api_key)
    hook = HydroServerHook(conn_id, retry=FAST)
    assert hook.get_conn().credentials.kind == "API key"
    hook.get_conn().bulk_create_observations(ds, hours(2), [1.0, 2.0])  # a write proves the key
    assert len(local_hydroserver.observations(ds)) == 2
    assert local_hydroserver.request_counts["POST /api/auth/app/session"] == 0


def test_the_api_key_field_wins_over_an_older_api_key_extra(local_hydroserver, conn_env):
    """A connection from before the form change, given a new key in the form's field."""
    conn_id = conn_env(host=local_hydroserver.url, password=local_hydroserver.api_key,
                       extra={"api_key": "old-revoked-key-0123456789"})
    assert HydroServerHook(conn_id, retry=FAST).test_connection()[0]


def test_an_api_key_extra_with_an_account_keeps_winning(local_hydroserver, conn_env):
    """Env-var connections written before: ``api_key`` extra + login/password used the key."""
    conn_id = conn_env(host=local_hydroserver.url, login=local_hydroserver.email,
                       password="stale-password", extra={"api_key": local_hydroserver.api_key})
    client = HydroServerHook(conn_id, retry=FAST).get_conn()
    assert client.credentials.kind == "API key"
    assert client.check().endswith("with an API key: 1 workspace (Local Workspace)")


def test_an_email_without_password_says_what_to_fill_in(conn_env):
    conn_id = conn_env("hs_email_only", host="http://127.0.0.1:9", login="me@example.org")
    ok, message = HydroServerHook(conn_id).test_connection()
    assert not ok
    assert message == ("Airflow connection 'hs_email_only' has an Email ('me@example.org') but "
                       "no password: fill in the account password, or empty the Email and put an "
                       "API key in the API key field")


def test_the_test_button_refuses_a_wrong_key_that_public_reads_would_hide(local_hydroserver,
                                                                          conn_env):
    public = local_hydroserver.create_datastream(name="Public stage", is_private=False)
    conn_id = conn_env(host=local_hydroserver.url, password="wrong-key-abcdef-123456")
    hook = HydroServerHook(conn_id, retry=FAST)
    # why a read proves nothing: HydroServer answers it anonymously, whatever the key
    assert hook.get_conn().get_datastream(public)["name"] == "Public stage"
    ok, message = hook.test_connection()
    assert not ok
    assert message == (
        f"HydroServer at {local_hydroserver.url} did not accept the API key (answered as to an "
        "anonymous visitor: no workspace). A wrong key still reads public datastreams "
        "(HydroServer answers those anonymously), but every write would fail: check the key")
    assert "wrong-key-abcdef-123456" not in message


def test_a_wrong_account_password_fails_the_test_button(local_hydroserver, conn_env):
    conn_id = conn_env(host=local_hydroserver.url, login=local_hydroserver.email,
                       password="not-the-password")
    ok, message = HydroServerHook(conn_id, retry=FAST).test_connection()
    assert not ok
    assert message == (f"HydroServer at {local_hydroserver.url} refused the login for "
                       f"'{local_hydroserver.email}' (HTTP 400): check the connection's email "
                       "and password")


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_server_is_one_short_line_within_seconds(conn_env):
    import time

    url = f"http://127.0.0.1:{_closed_port()}"
    hook = HydroServerHook(conn_env(host=url, password="some-key-1234567890"))
    started = time.monotonic()
    ok, message = hook.test_connection()
    assert time.monotonic() - started < 5  # was ~12 s of retries
    assert not ok
    assert message == (f"HydroServer at {url} could not be reached (connection refused) for GET "
                       "/api/data/workspaces after 2 tries")


def test_an_unknown_host_name_is_named(conn_env):
    hook = HydroServerHook(conn_env(host="http://hydroserver.invalid", password="k" * 16))
    ok, message = hook.test_connection()
    assert not ok
    assert message.startswith("HydroServer at http://hydroserver.invalid could not be reached "
                              "(the host name 'hydroserver.invalid' could not be resolved")
    assert "urllib3" not in message and "Max retries" not in message


def test_a_run_reports_an_unreachable_server_in_one_line(conn_env):
    url = f"http://127.0.0.1:{_closed_port()}"
    hook = HydroServerHook(conn_env(host=url, password="some-key-1234567890"), retry=FAST)
    with pytest.raises(HydroServerAPIError) as info:
        hook.get_conn().get_datastream("0f000000-0000-4000-8000-000000000001")
    assert str(info.value) == (
        f"HydroServer at {url} could not be reached (connection refused) for GET "
        f"/api/data/datastreams/0f000000-0000-4000-8000-000000000001 after {FAST.tries} tries")
    assert info.value.status is None and "\n" not in str(info.value)


def test_a_silent_server_is_a_timeout(local_hydroserver, conn_env):
    import socket

    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        hook = HydroServerHook(conn_env(host=url, password="k" * 16),
                               retry=RetryPolicy(tries=1), timeout=(1.0, 0.3))
        with pytest.raises(HydroServerAPIError, match=r"could not be reached \(no answer within "
                                                      r"0.3 s\) for GET /api/data/workspaces"):
            hook.get_conn().check()


def test_get_datastreams_uses_one_list_request_for_many(local_hydroserver, key_client):
    ids = [local_hydroserver.create_datastream(name=f"DS {i}") for i in range(12)]
    local_hydroserver.reset_counts()
    found = key_client.get_datastreams(ids, workspace_id=local_hydroserver.workspace_id)
    assert list(found) == ids
    assert local_hydroserver.total_requests == 1
    local_hydroserver.reset_counts()
    key_client.get_datastreams(ids)  # workspace learned from the first datastream
    assert local_hydroserver.total_requests == 2


def test_get_datastreams_falls_back_to_single_gets_for_other_workspaces(local_hydroserver,
                                                                         login_client):
    other_ws = local_hydroserver.create_workspace("Other")
    here = local_hydroserver.create_datastream(name="Here")
    there = local_hydroserver.create_datastream(name="There", workspace_id=other_ws)
    found = login_client.get_datastreams([here, there], workspace_id=local_hydroserver.workspace_id)
    assert found[there]["workspaceId"] == other_ws


def test_list_follows_pagination_headers(local_hydroserver, key_client):
    for i in range(7):
        local_hydroserver.create_datastream(name=f"P{i}")
    local_hydroserver.reset_counts()
    items = key_client.list_all("/api/data/datastreams",
                              {"workspace_id": local_hydroserver.workspace_id}, page_size=3)
    assert len(items) == 7
    assert len({i["id"] for i in items}) == 7
    assert local_hydroserver.request_counts["GET /api/data/datastreams"] == 3


def test_bulk_create_in_chunks_and_read_back(local_hydroserver, key_client):
    ds = local_hydroserver.create_datastream()
    ts = hours(25)
    progress = []
    sent = key_client.bulk_create_observations(ds, ts, [float(i) for i in range(25)], chunk_rows=10,
                                             on_chunk=lambda done, total: progress.append(done))
    assert sent == 25 and progress == [10, 20, 25]
    assert local_hydroserver.request_counts[
        "POST /api/data/datastreams/{id}/observations/bulk-create"] == 3
    times, values = key_client.get_observations(ds)
    assert times == hours(25) and values == [float(i) for i in range(25)]
    meta = key_client.get_datastream(ds)
    assert meta["valueCount"] == 25
    assert meta["phenomenonEndTime"].startswith("2024-01-02T00:00:00")


def test_bulk_create_numpy_arrays(local_hydroserver, key_client):
    ds = local_hydroserver.create_datastream()
    ts = np.datetime64("2024-03-01T00:00:00", "us") + np.arange(5) * np.timedelta64(15, "m")
    key_client.bulk_create_observations(ds, ts, np.arange(5, dtype="float64"))
    stored = local_hydroserver.observations(ds)
    assert [t for t, _ in stored][-1] == datetime(2024, 3, 1, 1, 0, tzinfo=UTC)


def test_bulk_create_modes_and_their_errors(local_hydroserver, key_client):
    ds = local_hydroserver.create_datastream()
    key_client.bulk_create_observations(ds, hours(3), [1.0, 2.0, 3.0])
    with pytest.raises(HydroServerAPIError) as info:
        key_client.bulk_create_observations(ds, hours(1), [9.0], mode="append")
    assert info.value.status == 400 and "append mode" in str(info.value.detail)
    with pytest.raises(HydroServerAPIError) as info:
        key_client.bulk_create_observations(ds, hours(1), [9.0], mode="insert")
    assert info.value.status == 409
    key_client.bulk_create_observations(ds, hours(2, T0 + timedelta(minutes=30)), [5.0, 6.0],
                                      mode="insert")
    key_client.bulk_create_observations(ds, [T0 - timedelta(hours=1)], [0.5], mode="backfill")
    key_client.bulk_create_observations(ds, hours(2), [7.0, 8.0], mode="replace")
    stored = local_hydroserver.observations(ds)
    # replace dropped the 00:30 row inside [00:00, 01:00] and rewrote both hours
    assert [(t.strftime("%H:%M"), v) for t, v in stored] == [
        ("23:00", 0.5), ("00:00", 7.0), ("01:00", 8.0), ("01:30", 6.0), ("02:00", 3.0)]


def test_bulk_create_refuses_non_finite_values_before_sending(local_hydroserver, key_client):
    ds = local_hydroserver.create_datastream()
    local_hydroserver.reset_counts()
    with pytest.raises(ValueError, match="finite"):
        key_client.bulk_create_observations(ds, hours(2), [1.0, float("nan")])
    assert local_hydroserver.total_requests == 0


def test_bulk_delete_range(local_hydroserver, key_client):
    ds = local_hydroserver.create_datastream(observations=[(t, 1.0) for t in hours(6)])
    key_client.bulk_delete_observations(ds, T0 + timedelta(hours=1), T0 + timedelta(hours=3))
    assert [t.hour for t, _ in local_hydroserver.observations(ds)] == [0, 4, 5]
    times, _ = key_client.get_observations(ds, start=T0 + timedelta(hours=4))
    assert [t.hour for t in times] == [4, 5]


def test_retries_503_then_succeeds(local_hydroserver, key_client):
    ds = local_hydroserver.create_datastream(name="Retry")
    local_hydroserver.faults.fail_next(2, status=503)
    assert key_client.get_datastream(ds)["name"] == "Retry"
    assert local_hydroserver.total_requests >= 3


def test_retries_429_honouring_retry_after(local_hydroserver, key_client, caplog):
    ds = local_hydroserver.create_datastream(name="Throttled")
    local_hydroserver.faults.fail_next(1, status=429, retry_after=0.1)
    with caplog.at_level(logging.WARNING):
        assert key_client.get_datastream(ds)["name"] == "Throttled"
    assert any("answered 429" in r.getMessage() and "in 0.1 s" in r.getMessage()
               for r in caplog.records)


def test_retries_dropped_connections(local_hydroserver, key_client):
    ds = local_hydroserver.create_datastream(name="Dropped")
    local_hydroserver.faults.drop_next(2)
    assert key_client.get_datastream(ds)["name"] == "Dropped"


def test_gives_up_after_configured_tries_with_a_clear_error(local_hydroserver, key_client):
    ds = local_hydroserver.create_datastream()
    local_hydroserver.faults.fail_next(10, status=503)
    local_hydroserver.reset_counts()
    with pytest.raises(HydroServerAPIError) as info:
        key_client.get_datastream(ds)
    assert info.value.status == 503
    assert "503" in str(info.value) and f"/api/data/datastreams/{ds}" in str(info.value)
    assert local_hydroserver.total_requests == FAST.tries


def test_never_retries_other_4xx(local_hydroserver, key_client):
    local_hydroserver.reset_counts()
    with pytest.raises(HydroServerAPIError) as info:
        key_client.get_datastream("00000000-0000-0000-0000-000000000000")
    assert info.value.status == 404
    assert local_hydroserver.request_counts["GET /api/data/datastreams/{id}"] == 1
    # the 404 had the key proven once (a wrong key would explain it): it was accepted
    assert local_hydroserver.request_counts["GET /api/data/workspaces"] == 1
    with pytest.raises(HydroServerAPIError):
        key_client.get_datastream("00000000-0000-0000-0000-000000000001")
    assert local_hydroserver.total_requests == 3  # proven once per client


def test_a_private_datastream_missing_for_a_wrong_key_blames_the_key(local_hydroserver,
                                                                     conn_env):
    """HydroServer answers a wrong key anonymously: a private datastream then "does not
    exist" (404). The client says what is really wrong."""
    private = local_hydroserver.create_datastream(is_private=True)
    hook = HydroServerHook(conn_env(host=local_hydroserver.url, password="wrong-key-abc-123456"),
                           retry=FAST)
    with pytest.raises(AuthenticationError, match=r"did not accept the API key \(answered as "
                                                  r"to an anonymous visitor: no workspace\)"):
        hook.get_conn().get_datastream(private)


def test_etl_definitions_and_schedule_patch(local_hydroserver, key_client):
    conn_id = local_hydroserver.create_data_connection({
        "name": "Station CSV", "workspaceId": local_hydroserver.workspace_id,
        "sourceUrl": "https://example.org/data.csv",
        "payload": {"type": "CSV", "timestampKey": "time", "headerRow": 1, "dataStartRow": 2,
                    "delimiter": ","},
    })
    task_id = local_hydroserver.create_task({
        "name": "Station task", "workspaceId": local_hydroserver.workspace_id,
        "dataConnectionId": conn_id,
        "schedule": {"enabled": True, "interval": 1, "intervalPeriod": "hours"},
        "mappings": [],
    })
    assert [c["id"] for c in key_client.list_data_connections(local_hydroserver.workspace_id)] == [conn_id]
    assert key_client.get_data_connection(conn_id)["name"] == "Station CSV"
    assert [t["id"] for t in key_client.list_tasks(data_connection_id=conn_id)] == [task_id]
    key_client.update_task_schedule(task_id, enabled=False)
    assert key_client.get_task(task_id)["schedule"]["enabled"] is False


def test_secrets_never_reach_logs_reprs_or_errors(local_hydroserver, conn_env, caplog):
    secret_key = "sk-" + "9f8e7d6c5b4a" * 3
    conn_id = conn_env(host=local_hydroserver.url, extra={"api_key": secret_key})
    hook = HydroServerHook(conn_id, retry=FAST)
    ds = local_hydroserver.create_datastream(is_private=True)
    local_hydroserver.faults.fail_next(2, status=503)
    texts = []
    with caplog.at_level(logging.DEBUG):
        for call in (lambda: hook.get_conn().get_datastream(ds),
                     lambda: hook.get_conn().bulk_create_observations(ds, hours(1), [1.0])):
            try:
                call()
            except Exception as exc:
                texts.append(str(exc))
                texts.append(repr(exc))
    texts += [repr(hook), repr(hook.get_conn().credentials), caplog.text]
    texts += [r.getMessage() for r in caplog.records]
    assert texts and all(secret_key not in t for t in texts)
