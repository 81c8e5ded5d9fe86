"""``hydroserver-airflow import``: HydroServer's ETL definitions -> a file that loads unchanged."""

from __future__ import annotations

import json

import pytest

import hydroserver_provider.compat  # noqa: F401  (Airflow sets up its logging here, not under capsys)
from hydroserver_provider import factory as dag_factory
from hydroserver_provider.cli import main
from hydroserver_provider.definitions import SourceAuth
from hydroserver_provider.definitions.files import load_definition_file, parse_definitions

SECRET = "x-api-secret-value-40217"
CONN_ID = "hs_import"


def csv_connection(workspace_id: str | None = None, name: str = "Logger CSV") -> dict:
    body = {
        "name": name, "description": "15-minute logger files",
        "sourceUrl": "https://data.example.org/{station}/logger.csv?start={start}&end={end}",
        "timezoneType": "iana", "timezone": "America/Denver",
        "payload": {"type": "CSV", "timestampKey": "Date Time",
                    "timestampFormat": "%Y-%m-%d %H:%M:%S", "headerRow": 1, "dataStartRow": 3,
                    "delimiter": ";"},
        "placeholderVariables": [
            {"name": "station", "type": "per_task"},
            {"name": "start", "type": "window_start", "timestampFormat": "%Y-%m-%dT%H:%M:%S"},
            {"name": "end", "type": "window_end"}],
    }
    if workspace_id:
        body["workspaceId"] = workspace_id
    return body


SECURE_API = {
    "name": "Secure API",
    "sourceUrl": "https://api.example.org/sites/{site}/obs.json?since={since}",
    "authHeaderName": "X-Api-Key", "authHeaderValue": SECRET,
    "timezoneType": "offset", "timezone": "-07:00",
    "payload": {"type": "JSON", "timestampKey": "time", "jmespath": "data.records[*]"},
    "placeholderVariables": [{"name": "site", "type": "per_task"},
                             {"name": "since", "type": "latest_observation_timestamp",
                              "timestampFormat": "%Y-%m-%dT%H:%M:%SZ"}],
}


@pytest.fixture
def server(local_hydroserver, monkeypatch):
    """Two data connections (one with a secret header) and four tasks: interval, crontab,
    manual, and one whose schedule is already disabled; an Airflow connection to reach them."""
    hs = local_hydroserver
    ds = [hs.create_datastream(name=f"Datastream {i}") for i in range(5)]
    logger = hs.create_data_connection(csv_connection())
    secure = hs.create_data_connection(SECURE_API)
    tasks = {
        "Logger 42": hs.create_task({
            "name": "Logger 42", "dataConnectionId": logger, "description": "Logger at site 42",
            "taskVariables": {"station": "42"},
            "schedule": {"interval": 15, "intervalPeriod": "minutes",
                         "startTime": "2025-01-01T00:00:00Z"},
            "mappings": [{"sourceIdentifier": "Water Level", "targetDatastreamId": ds[0]},
                         {"sourceIdentifier": "Water Temp", "targetDatastreamId": ds[1]}]}),
        "River site": hs.create_task({
            "name": "River site", "dataConnectionId": secure, "taskVariables": {"site": "0938"},
            "schedule": {"crontab": "0 * * * *", "startTime": "2025-03-01T06:00:00Z"},
            "mappings": [{"sourceIdentifier": "values.discharge", "targetDatastreamId": ds[2]}]}),
        "Manual logger": hs.create_task({
            "name": "Manual logger", "dataConnectionId": logger, "taskVariables": {"station": "7"},
            "mappings": [{"sourceIdentifier": "Water Level", "targetDatastreamId": ds[3]}]}),
        "Paused logger": hs.create_task({
            "name": "Paused logger", "dataConnectionId": logger, "taskVariables": {"station": "9"},
            "schedule": {"interval": 1, "intervalPeriod": "days", "enabled": False,
                         "startTime": "2025-01-01T00:00:00Z"},
            "mappings": [{"sourceIdentifier": "Water Level", "targetDatastreamId": ds[4]}]}),
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(
        {"conn_type": "hydroserver", "host": hs.url, "extra": {"api_key": hs.api_key}}))
    return hs, {"logger": logger, "secure": secure}, tasks


def server_definitions(hs, connections: dict, tasks: dict) -> tuple[list, list]:
    """What HydroServer holds, read by the loader from its own (camelCase) answers: the
    secret replaced by the reference the import is expected to write."""
    raw_connections = []
    for dc_id in connections.values():
        raw = hs.data_connection(dc_id)
        if raw.pop("authHeaderValue", None):
            raw["auth"] = {"header_name": raw.pop("authHeaderName"),
                           "variable": "hydroserver_source_auth_secure_api"}
        raw_connections.append(raw)
    raw_tasks = []
    for task_id in tasks.values():
        raw = hs.task(task_id, expand_related=True)
        raw["dataConnectionId"] = raw.pop("dataConnection")["id"]
        raw_tasks.append(raw)
    loaded = parse_definitions({"defaults": {"hydroserver_conn_id": CONN_ID},
                                "dataConnections": raw_connections, "tasks": raw_tasks})
    assert loaded.errors == ()
    by_name = lambda items: sorted(items, key=lambda d: d.name)  # noqa: E731
    return by_name(loaded.data_connections), by_name(loaded.tasks)


def test_import_writes_what_hydroserver_holds_and_never_the_secret(server, tmp_path, capsys):
    hs, connections, tasks = server
    expected_connections, expected_tasks = server_definitions(hs, connections, tasks)
    out = tmp_path / "dags" / "definitions" / "imported.yaml"
    hs.reset_counts()

    code = main(["import", "--conn-id", CONN_ID, "-o", str(out), "--disable-server-schedules"])
    captured = capsys.readouterr()
    assert code == 0, captured
    text = out.read_text()
    for secret in (SECRET, hs.api_key):
        assert secret not in text and secret not in captured.out + captured.err

    # round trip: the file loads, unchanged, into exactly what HydroServer holds
    loaded = load_definition_file(out)
    assert loaded.errors == ()
    assert sorted(loaded.data_connections, key=lambda c: c.name) == expected_connections
    assert sorted(loaded.tasks, key=lambda t: t.name) == expected_tasks
    by_name = {t.name: t for t in loaded.tasks}
    assert {name: t.id for name, t in by_name.items()} == tasks
    assert by_name["River site"].data_connection.auth == SourceAuth(
        header_name="X-Api-Key", variable="hydroserver_source_auth_secure_api")
    assert by_name["River site"].data_connection.timezone == "-0700"
    logger = by_name["Logger 42"]
    assert logger.data_connection.payload.delimiter == ";"
    assert logger.schedule.interval == 15 and logger.schedule.interval_period == "minutes"
    assert [m.source_identifier for m in logger.mappings] == ["Water Level", "Water Temp"]
    assert by_name["Manual logger"].schedule.is_manual
    assert by_name["Paused logger"].schedule.enabled is False
    # enabled: false now means no scheduled runs on Airflow either: the command says so
    assert ("1 task disabled in HydroServer is written with enabled: false, so Airflow runs it "
            "only when triggered: 'Paused logger'.") in captured.out
    assert all(t.airflow.given() == {"hydroserver_conn_id": CONN_ID} for t in loaded.tasks)

    # the user is told which Airflow Variable to create, by name
    assert "create the Airflow Variable 'hydroserver_source_auth_secure_api'" in captured.out
    # only the two tasks HydroServer was running got their schedule switched off
    assert hs.request_counts["PATCH /api/data/etl/tasks/{id}"] == 2
    for name in ("Logger 42", "River site", "Paused logger"):
        assert hs.task(tasks[name])["schedule"]["enabled"] is False
    assert hs.task(tasks["Manual logger"])["schedule"] is None
    assert "Disabled HydroServer's own schedule of 2 tasks" in captured.out
    assert "'Logger 42'" in captured.out and "'River site'" in captured.out

    # and the DAG factory builds one DAG per task from the file
    built = dag_factory.build_dags(out.parent)
    assert built.errors == [] and len(built.dags) == 4
    assert main(["validate", "--no-database", str(out)]) == 0
    validated = capsys.readouterr().out
    # the Variable the import asked for is named again, with how to create it
    assert "  - variable 'hydroserver_source_auth_secure_api', for task 'River site': not " \
           "checked" in validated and "AIRFLOW_VAR_HYDROSERVER_SOURCE_AUTH_SECURE_API" in validated
    assert validated.strip().splitlines()[-1].startswith("OK: 1 file, 4 tasks, 2 data connections")


def test_without_the_flag_hydroserver_keeps_its_schedules_and_the_output_says_so(
        server, tmp_path, capsys):
    hs, _, tasks = server
    assert main(["import", "--conn-id", CONN_ID, "-o", str(tmp_path / "a.yaml"),
                 "--auth-from", "connection"]) == 0
    out = capsys.readouterr().out
    assert "HydroServer still runs 2 imported tasks on its own schedule" in out
    assert hs.task(tasks["Logger 42"])["schedule"]["enabled"] is True
    assert "create the Airflow connection 'hydroserver_source_auth_secure_api' with the value " \
           "as its password" in out
    (secure,) = [c for c in load_definition_file(tmp_path / "a.yaml").data_connections
                 if c.auth]
    assert secure.auth == SourceAuth(header_name="X-Api-Key",
                                     conn_id="hydroserver_source_auth_secure_api")


def test_what_cannot_load_here_is_reported_and_left_out(server, tmp_path, capsys):
    hs, _, tasks = server
    windowed = hs.create_data_connection({
        **csv_connection(name="Windowed on HydroServer"),
        "payload": {**csv_connection()["payload"], "dataIngestionWindow": {
            "start": {"anchor": "run_time", "lookback": 2, "lookbackUnits": "days"}}}})
    hs.create_task({"name": "Uses the window", "dataConnectionId": windowed,
                    "taskVariables": {"station": "1"},
                    "mappings": [{"sourceIdentifier": "Level",
                                  "targetDatastreamId": hs.create_datastream(name="W")}]})
    out = tmp_path / "a.yaml"
    assert main(["import", "--conn-id", CONN_ID, "-o", str(out)]) == 1
    printed = capsys.readouterr().out
    refused = [line for line in printed.splitlines() if line.startswith("not imported: ")]
    assert any("data connection 'Windowed on HydroServer'" in line
               and "data ingestion window" in line for line in refused)
    assert any("task 'Uses the window'" in line for line in refused)
    loaded = load_definition_file(out)
    assert loaded.errors == ()
    assert sorted(t.name for t in loaded.tasks) == sorted(tasks)
    assert "Windowed on HydroServer" not in out.read_text()


def test_workspace_filter_and_same_names_in_two_workspaces(server, tmp_path, capsys,
                                                           monkeypatch):
    hs, _, _ = server
    other = hs.create_workspace("Second workspace")
    hs.create_data_connection(csv_connection(workspace_id=other))  # also named "Logger CSV"
    monkeypatch.setenv("AIRFLOW_CONN_HS_ACCOUNT", json.dumps(
        {"conn_type": "hydroserver", "host": hs.url, "login": hs.email,
         "password": hs.password}))

    assert main(["import", "--conn-id", "hs_account", "-o", str(tmp_path / "all.yaml")]) == 0
    names = sorted(c.name for c in load_definition_file(tmp_path / "all.yaml").data_connections)
    assert len(names) == 3 and names[0] == "Logger CSV" and names[1].startswith("Logger CSV (")

    assert main(["import", "--conn-id", "hs_account", "--workspace", other,
                 "-o", str(tmp_path / "one.yaml")]) == 0
    loaded = load_definition_file(tmp_path / "one.yaml")
    assert [(c.name, c.workspace_id) for c in loaded.data_connections] == [("Logger CSV", other)]
    assert loaded.tasks == ()
    assert hs.password not in capsys.readouterr().out


def test_a_failed_schedule_update_is_reported_with_the_tasks_still_running(
        server, tmp_path, capsys, monkeypatch):
    hs, _, tasks = server
    monkeypatch.setenv("HYDROSERVER_API_KEY", hs.create_api_key(role="Viewer"))
    code = main(["import", "--url", hs.url, "-o", str(tmp_path / "a.yaml"),
                 "--disable-server-schedules"])
    out = capsys.readouterr().out
    assert code == 1
    assert "Could not disable HydroServer's schedule of 2 tasks" in out and "403" in out
    assert hs.task(tasks["Logger 42"])["schedule"]["enabled"] is True
    # written all the same, for the default connection (no --conn-id with --url)
    assert "the Airflow connection 'hydroserver_default'" in out
    assert len(load_definition_file(tmp_path / "a.yaml").tasks) == 4


@pytest.mark.parametrize(("argv", "message"), [
    (["-o", "defs.json"], "--output expects a .yaml file"),
    (["-o", "exists.yaml"], "exists; pass --force"),
    (["-o", "a.yaml", "--url", "http://127.0.0.1:9"], "--url needs an API key"),
    (["-o", "a.yaml", "--conn-id", "not_defined_anywhere"],
     "cannot read the Airflow connection 'not_defined_anywhere'"),
])
def test_bad_options_fail_before_anything_is_written(tmp_path, capsys, monkeypatch, argv,
                                                      message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYDROSERVER_API_KEY", raising=False)
    (tmp_path / "exists.yaml").write_text("keep: me\n")
    assert main(["import", *argv]) == 1
    assert message in capsys.readouterr().err
    assert (tmp_path / "exists.yaml").read_text() == "keep: me\n"
    assert not (tmp_path / "a.yaml").exists()


def test_plan_notes_secrets_in_urls_and_refuses_colliding_dag_ids():
    """The planning step alone, on HydroServer-shaped answers (no server needed)."""
    from hydroserver_provider.cli.importer import plan_import

    key = "literal-key-in-url-991"
    url_connection = {
        "id": "0c100000-0000-4000-8000-000000000001", "name": "Keyed API",
        "sourceUrl": f"https://api.example.org/data.json?api_key={key}",
        "payload": {"type": "JSON", "timestampKey": "t", "jmespath": "rows"},
        "placeholderVariables": [], "authHeaderName": None, "authHeaderValue": "orphan-value-7",
        "workspace": {"id": "0c100000-0000-4000-8000-0000000000aa", "name": "W"}}

    def raw_task(n: int, name: str) -> dict:
        return {"id": f"0c200000-0000-4000-8000-00000000000{n}", "name": name,
                "dataConnectionId": url_connection["id"], "taskVariables": {},
                "schedule": None, "mappings": [{
                    "sourceIdentifier": "v",
                    "targetDatastreamId": f"0c300000-0000-4000-8000-00000000000{n}"}]}

    plan = plan_import([url_connection], [raw_task(1, "Station 42"), raw_task(2, "Station-42"),
                                          raw_task(3, "Station 43")])
    assert [t["name"] for t in plan.document["tasks"]] == ["Station 43"]
    assert sum("hydroserver_station_42" in str(p) for p in plan.problems) == 2
    text = "\n".join(plan.notes)
    assert "api_key=***" in text and key not in text
    assert "has an auth header value but no header name" in text and "orphan-value-7" not in text
    assert "orphan-value-7" not in json.dumps(plan.document)
    assert "defaults" not in plan.document  # no connection id given: nothing to default
