"""``hydroserver-airflow runs`` / ``trigger`` against a real Airflow API server and run history."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest

from hydroserver_provider.cli import main


@pytest.fixture
def api_env(airflow_history, monkeypatch):
    monkeypatch.setenv("AIRFLOW_API_URL", airflow_history.url)
    monkeypatch.setenv("AIRFLOW_USERNAME", "admin")
    monkeypatch.setenv("AIRFLOW_PASSWORD", airflow_history.password)
    monkeypatch.delenv("AIRFLOW_API_TOKEN", raising=False)
    return airflow_history


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_ids(table: str) -> list[str]:
    return re.findall(r"\b((?:scheduled|manual)__\w+)", table)


def test_runs_by_task_name_newest_first_with_hydroserver_statuses(api_env, capsys):
    code, out, err = run_cli(capsys, "runs", "River 1")
    assert code == 0, err
    assert run_ids(out) == ["manual__r5", "scheduled__r4", "scheduled__r3", "scheduled__r2",
                            "scheduled__r1"]
    lines = {run_ids(line)[0]: line for line in out.splitlines() if run_ids(line)}
    assert "PENDING" in lines["manual__r5"] and "Queued." in lines["manual__r5"]
    assert "STARTED" in lines["scheduled__r4"]
    assert "Waiting to retry after try 1 failed: the source answered 503" in lines[
        "scheduled__r4"]
    assert "SUCCESS" in lines["scheduled__r3"] and "Loaded 8 observations" in lines[
        "scheduled__r3"]
    assert "FAILURE" in lines["scheduled__r2"] and "Gage height: HydroServer answered 500" in \
        lines["scheduled__r2"]
    started = (api_env.now - timedelta(hours=3)).strftime("%Y-%m-%d %H:%M:%S")
    assert started in lines["scheduled__r3"]
    assert api_env.password not in out + err


def test_runs_filters_status_since_and_limit(api_env, capsys):
    code, out, _ = run_cli(capsys, "runs", "hydroserver_river_1", "--status", "failure")
    assert code == 0 and run_ids(out) == ["scheduled__r2"]

    since = api_env.at(3.5).isoformat()
    code, out, _ = run_cli(capsys, "runs", "River 1", "--since", since)
    assert code == 0 and run_ids(out) == ["scheduled__r4", "scheduled__r3"]

    code, out, _ = run_cli(capsys, "runs", "River 1", "--since", since, "--until",
                           api_env.at(1).isoformat())
    assert run_ids(out) == ["scheduled__r3"]

    code, out, _ = run_cli(capsys, "runs", "River 1", "--status", "SUCCESS", "--limit", "1")
    assert code == 0 and run_ids(out) == ["scheduled__r3"]

    code, out, _ = run_cli(capsys, "runs", "River 2", "--status", "FAILURE")
    assert code == 0 and out.startswith("No runs of hydroserver_river_2 with status FAILURE")


def test_runs_json_has_the_run_record_fields(api_env, capsys):
    code, out, _ = run_cli(capsys, "runs", "River 1", "--json", "--status", "FAILURE")
    assert code == 0
    (record,) = json.loads(out)
    assert record["id"] == "scheduled__r2" and record["status"] == "FAILURE"
    assert record["airflow_state"] == "failed"
    assert record["message"].startswith("1 of 2 datastreams failed")
    assert [d["loaded"] for d in record["result"]["datastreams"]] == [2, 0]
    assert record["started_at"] == api_env.at(4).isoformat().replace("+00:00", "Z")
    assert record["finished_at"] == api_env.at(3.9).isoformat().replace("+00:00", "Z")


def test_one_run_with_its_result(api_env, capsys):
    code, out, _ = run_cli(capsys, "runs", "River 1", "--run", "scheduled__r3")
    assert code == 0
    assert "Status:   SUCCESS (Airflow: success)" in out
    assert "Message:  Loaded 8 observations into 2 datastreams." in out
    result = json.loads(out.split("Result:\n", 1)[1])
    assert result["datastreams"][0]["dropped"] == {"not_a_number": 2}

    code, out, _ = run_cli(capsys, "runs", "Manual reload", "--run", "manual__m1")
    assert code == 0 and "Status:   FAILURE" in out and "no run summary was recorded" in out

    code, _, err = run_cli(capsys, "runs", "River 1", "--run", "nope")
    assert code == 1 and "no run 'nope' of task 'River 1'" in err


def test_unknown_task_names_what_was_looked_for(api_env, capsys):
    code, out, err = run_cli(capsys, "runs", "River 9")
    assert code == 1 and out == ""
    assert "no DAG for task 'River 9'" in err and "no DAG has this id or this name" in err


def test_credentials_problems_are_clear_and_never_printed(api_env, capsys, monkeypatch):
    monkeypatch.setenv("AIRFLOW_PASSWORD", "wrong-pw-123")
    code, out, err = run_cli(capsys, "runs", "River 1")
    assert code == 1 and "login refused for user 'admin'" in err
    assert "wrong-pw-123" not in out + err

    code, out, err = run_cli(capsys, "runs", "River 1", "--password", "other-pw-456")
    assert code == 1 and "other-pw-456" not in out + err

    monkeypatch.delenv("AIRFLOW_API_URL")
    code, _, err = run_cli(capsys, "runs", "River 1")
    assert code == 1 and "AIRFLOW_API_URL" in err

    code, _, err = run_cli(capsys, "runs", "River 1", "--api-url", "http://127.0.0.1:9")
    assert code == 1 and "could not be reached" in err


def test_trigger_with_a_window_passes_the_trigger_form_params(api_env, capsys):
    code, out, err = run_cli(capsys, "trigger", "Manual reload", "--start", "2025-06-01",
                             "--end", "2025-06-02T00:00:00Z", "--dry-run", "--json")
    assert code == 0, err
    created = json.loads(out)
    assert created["status"] == "PENDING" and created["run_type"] == "manual"
    assert created["conf"] == {"window_start": "2025-06-01T00:00:00+00:00",
                               "window_end": "2025-06-02T00:00:00+00:00", "dry_run": True}
    # a dry run is one in Airflow's run list too: its run id, and its note on the run's page
    assert created["id"].startswith("dry_run__")
    with api_env.api() as api:
        stored = api.dag_run("hydroserver_manual_reload", created["id"])
    assert stored["conf"] == created["conf"] and stored["state"] == "queued"
    assert stored["note"] == "Dry run: writes nothing (hydroserver-airflow trigger --dry-run)"


def test_a_run_without_the_window_its_task_needs_is_refused(api_env, capsys):
    """A manual-only task whose URL needs a window: Airflow refuses the run (the trigger form
    marks the window required) instead of creating a run that fails."""
    code, out, err = run_cli(capsys, "trigger", "Manual reload")
    assert code == 1 and out == ""
    assert err.strip() == ("error: hydroserver_manual_reload has no schedule and its source URL "
                           "needs a window: give --start and --end")
    from hydroserver_provider.runs.api import AirflowAPIError

    with api_env.api() as api, pytest.raises(AirflowAPIError) as refused:
        api.trigger("hydroserver_manual_reload")  # Airflow itself refuses it (the form too)
    assert "400" in str(refused.value) and "window_start" in str(refused.value)


def test_trigger_wait_gives_up_after_the_timeout(api_env, capsys):
    # No scheduler serves this API server, so the run stays queued.
    code, out, _ = run_cli(capsys, "trigger", "hydroserver_manual_reload", "--wait",
                           "--start", "2025-06-01", "--end", "2025-06-02",
                           "--timeout", "1", "--poll", "0.2")
    assert code == 2
    assert re.search(r"Run manual__\S+ still PENDING after 1 s", out)


def test_trigger_warns_about_a_paused_dag(api_env, capsys):
    with api_env.api() as api:
        api.set_paused("hydroserver_river_2", True)
        try:
            code, out, err = run_cli(capsys, "trigger", "River 2")
        finally:
            api.set_paused("hydroserver_river_2", False)
    assert code == 0 and "Triggered run manual__" in out
    assert "hydroserver_river_2 is paused" in err


def test_trigger_argument_errors(api_env, capsys):
    code, _, err = run_cli(capsys, "trigger", "River 1", "--start", "2025-06-01")
    assert code == 1 and "both --start and --end" in err
    code, _, err = run_cli(capsys, "trigger", "River 1", "--start", "2025-06-02",
                           "--end", "2025-06-01")
    assert code == 1 and "must be before --end" in err
    with pytest.raises(SystemExit) as exit_info:
        main(["trigger", "River 1", "--start", "June 1st", "--end", "2025-06-02"])
    assert exit_info.value.code == 2
    assert "expected an ISO 8601 date or date-time" in capsys.readouterr().err
