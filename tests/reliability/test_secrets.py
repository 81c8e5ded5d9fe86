"""Secrets never leave the places that need them.

Six unique secrets are planted: the HydroServer API key, a HydroServer password (email login),
a source auth header from an Airflow connection, another from an Airflow Variable, a secret query
parameter, and a Hydrocron API key. Every name they travel under is one Airflow does not mask by
itself (placeholder ``station`` in ``?key={station}``, Variables ``station`` and ``site_header``,
headers ``X-Station`` and ``X-Site``): only the provider's own registration with the masker
hides them. The servers receive them (that is checked, so no test passes by never using a
secret); then everything a person or a system could read is searched for each secret and for
its distinctive middle part (a cut or re-encoded secret is found too):

* a real Airflow run: ``dag.test()`` of factory-built DAGs in a fresh ``AIRFLOW_HOME`` --
  successes and failures (an error page echoing the secrets back, a missing datastream), the
  task log output, every file under ``AIRFLOW_HOME`` (the metadata database included), the XComs
  and the rendered template fields read back from that database, the failure e-mails received,
  and what Airflow's API server answers (DAG details and its Docs panel, tasks, DAG runs and
  their notes, task instances with their rendered fields, XCom entries);
* the operator run directly, success and failure paths: every log record at DEBUG level (the
  provider's own records as written; all records, urllib3's request lines included, after
  Airflow's secrets masker, which proves each secret is registered with it), exception texts and
  tracebacks, XComs, summaries, reprs;
* the Hydrocron hook, and the ``hydroserver-airflow`` command line (stdout and stderr).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
import textwrap
import traceback
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from reliability_support import FAST, UTC

# Airflow configures logging when first imported: import it before any test sets log levels.
from hydroserver_provider.compat import redact
from hydroserver_provider.operators.ingest import HydroIngestOperator
from hydroserver_provider.testing import stations
from hydroserver_provider.testing.hydroserver import LocalHydroServer

SECRETS = {
    "HydroServer API key": "hsk-7Q2WXK-apikey-not-for-logs",
    "HydroServer password": "pw-4RZ8MN-password-not-for-logs",
    "source header (connection)": "hdr-9PLC3V-conn-not-for-logs",
    "source header (Variable)": "hdr-2TYB6H-var-not-for-logs",
    "query parameter": "qp-5KDS1J-station-not-for-logs",
    "Hydrocron key": "hck-8FGE4U-hydrocron-not-for-logs",
    "rejected API key": "hsk-3MVQ0P-wrongkey-not-for-logs",
}
EMAIL = "hydro@example.org"
FIXTURES = (Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures"
            / "hydrocron").resolve()
REPO = Path(__file__).resolve().parents[2]


def needles(secret: str) -> list[str]:
    """The secret and its distinctive middle part (found even when cut or embedded)."""
    return [secret, secret.split("-")[1]]


class Haystack:
    """Everything captured, by place; ``leaks()`` lists (place, secret) found anywhere."""

    def __init__(self) -> None:
        self.places: dict[str, bytes] = {}

    def add(self, place: str, content: str | bytes | None) -> None:
        if content is None:
            return
        data = content.encode("utf-8", "replace") if isinstance(content, str) else content
        self.places[place] = self.places.get(place, b"") + data

    def leaks(self) -> list[tuple[str, str]]:
        found = []
        for place, data in self.places.items():
            for name, secret in SECRETS.items():
                if any(n.encode() in data for n in needles(secret)):
                    found.append((place, name))
        return found

    @property
    def size(self) -> int:
        return sum(len(v) for v in self.places.values())


def _record(tally, part: str, stack: Haystack) -> None:
    tally.setdefault("secrets: places searched", {})[part] = len(stack.places)
    tally.setdefault("secrets: bytes searched", {})[part] = stack.size


# ================================================================== a real Airflow run

AIRFLOW_RUN = textwrap.dedent("""
    import json, os, sys, time
    from datetime import datetime
    from airflow.utils.db import initdb
    initdb()
    from airflow.dag_processing.dagbag import DagBag
    plan = json.loads(sys.argv[1])
    runs = []
    for dag_id, when, env in plan:
        os.environ.update(env)
        # a fresh DagBag per run, as a worker parses the file: dag.test() renders in place
        bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
        assert not bag.import_errors, bag.import_errors
        run = bag.dags[dag_id].test(logical_date=datetime.fromisoformat(when))
        runs.append([dag_id, when, str(run.state)])
    print("RUNS " + json.dumps(runs), flush=True)

    # What the API server answers the UI and API clients (simple auth manager, all admins).
    from fastapi.testclient import TestClient
    from airflow.api_fastapi.app import create_app
    client = TestClient(create_app("core"))
    answers = {}

    def get(path):
        response = client.get("/api/v2" + path)
        assert response.status_code == 200, (path, response.status_code, response.text[:500])
        answers[path] = response.text
        return response.json()

    for dag_id in sorted({dag_id for dag_id, _, _ in plan}):
        get(f"/dags/{dag_id}/details")
        get(f"/dags/{dag_id}/tasks")
        for run in get(f"/dags/{dag_id}/dagRuns")["dag_runs"]:
            base = f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}"
            get(base)
            for ti in get(base + "/taskInstances")["task_instances"]:
                task = f"{base}/taskInstances/{ti['task_id']}"
                get(task)  # dag.test() logs to its stdout (searched), not to log files
                for xcom in get(task + "/xcomEntries")["xcom_entries"]:
                    get(f"{task}/xcomEntries/{xcom['key']}?map_index={xcom['map_index']}")
    print("API " + json.dumps(answers), flush=True)
""")


DEFINITIONS = """
defaults: {{retries: 0}}
data_connections:
  - name: Discharge API
    source_url: "{source}/obs.json?from={{start}}&to={{end}}&key={{station}}"
    payload_type: JSON
    jmespath: "data.records[*]"
    timestamp_key: time
    auth: {{header_name: X-Station, conn_id: station_api}}
    placeholder_variables:
      - {{name: start, variable_type: window_start}}
      - {{name: end, variable_type: window_end}}
      - {{name: station, variable_type: per_task}}
    notification: {{recipient_emails: [ops@example.org]}}
  - name: Level logger
    source_url: "{source}/level.csv"
    payload_type: CSV
    timestamp_key: Date Time
    timestamp_format: "%Y-%m-%d %H:%M:%S"
    timezone_type: iana
    timezone: America/Denver
    data_start_row: 3
    auth: {{header_name: X-Site, variable: site_header}}
    notification: {{recipient_emails: [ops@example.org]}}
  - name: SWOT reach
    payload_type: HYDROCRON
    feature: Reach
    feature_id: "18180900091"
    collection_name: SWOT_L2_HR_RiverSP_2.0
    fields: [wse]
    mode: windowed
    overlap_hours: 0
    hydrocron_conn_id: hydrocron_keyed
tasks:
  - name: Station 7
    data_connection: Discharge API
    task_variables: {{station: "{{{{ var.value.station }}}}"}}
    mappings: [{{source_identifier: values.discharge, target_datastream_id: {discharge}}}]
    interval: 1
    interval_period: hours
    start_time: 2025-01-01T00:00:00Z
  - name: Station 8
    data_connection: Level logger
    mappings: [{{source_identifier: Water Level, target_datastream_id: {level}}}]
    interval: 1
    interval_period: hours
    start_time: 2025-01-01T00:00:00Z
    airflow: {{hydroserver_conn_id: hydroserver_login}}
  - name: Station 9
    data_connection: Discharge API
    task_variables: {{station: "{{{{ var.value.station }}}}"}}
    mappings: [{{source_identifier: values.discharge, target_datastream_id: {ghost}}}]
    interval: 1
    interval_period: hours
    start_time: 2025-01-01T00:00:00Z
  - name: SWOT reach 18180900091
    data_connection: SWOT reach
    mappings: [{{source_identifier: wse, target_datastream_id: {wse}}}]
    interval: 45
    interval_period: days
    start_time: 2024-01-01T00:00:00Z
"""


def _station_routes(source, seen: dict) -> None:
    """Sources that check the secrets they need, and echo them back on a 'bad' day."""
    header_conn = SECRETS["source header (connection)"]
    header_var = SECRETS["source header (Variable)"]
    station = SECRETS["query parameter"]

    def obs(query: dict) -> tuple[int, str] | str:
        headers = source.requests[-1].headers
        seen.setdefault("obs", []).append((headers.get("X-Station"), query.get("key")))
        if headers.get("X-Station") not in (header_conn, header_var) or \
                query.get("key") != station:
            return 401, "unauthorized"
        start = stations.parse_query_time(query["from"])
        if start.day == 2:  # a broken day: the error page quotes both secrets back
            return 403, (f"<html><title>Forbidden</title><body>key {query['key']} with "
                         f"header {headers.get('X-Station')} is not allowed</body></html>")
        return stations.api_json(start, stations.parse_query_time(query["to"]))

    def level(query: dict) -> tuple[int, str] | str:
        key = source.requests[-1].headers.get("X-Site")
        seen.setdefault("level", []).append(key)
        if key != header_var:
            return 401, "unauthorized"
        t0 = datetime(2025, 6, 1, tzinfo=UTC)
        return stations.logger_csv(t0, t0 + timedelta(hours=2))

    source.add("/obs.json", obs, "application/json")
    source.add("/level.csv", level)


@pytest.mark.slow  # starts Airflow
@pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"Hydrocron fixtures not found at {FIXTURES}")
def test_a_real_airflow_run_leaks_no_secret(tmp_path, source, tally):
    from hydroserver_provider.testing.hydrocron import LocalHydrocron
    from hydroserver_provider.testing.smtp import LocalSmtpServer

    seen: dict = {}
    _station_routes(source, seen)
    home, dags = tmp_path / "airflow_home", tmp_path / "dags"
    (dags / "definitions").mkdir(parents=True)
    (dags / "hydroserver_ingestion.py").write_text((REPO / "dags" / "hydroserver_ingestion.py")
                                                   .read_text())
    with LocalHydroServer(api_key=SECRETS["HydroServer API key"], email=EMAIL,
                          password=SECRETS["HydroServer password"]) as hs, \
            LocalSmtpServer() as smtp, LocalHydrocron(FIXTURES) as hydrocron:
        ids = {"discharge": hs.create_datastream(name="Discharge"),
               "level": hs.create_datastream(name="Water Level", unit="ft"),
               "wse": hs.create_datastream(name="WSE", unit="m"),
               "ghost": "0190a6c4-0000-7000-8000-00000000dead"}
        (dags / "definitions" / "stations.yaml").write_text(
            DEFINITIONS.format(source=source.url, **ids))
        key_conn = json.dumps({"conn_type": "hydroserver", "host": hs.url,
                               "extra": {"api_key": SECRETS["HydroServer API key"]}})
        login_conn = json.dumps({"conn_type": "hydroserver", "host": hs.url, "login": EMAIL,
                                 "password": SECRETS["HydroServer password"]})
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_"))}
        env.update({
            "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW_CONN_HYDROSERVER_DEFAULT": key_conn,
            "AIRFLOW_CONN_HYDROSERVER_LOGIN": login_conn,
            "AIRFLOW_CONN_STATION_API": json.dumps(
                {"conn_type": "http", "password": SECRETS["source header (connection)"]}),
            "AIRFLOW_VAR_SITE_HEADER": SECRETS["source header (Variable)"],
            "AIRFLOW_VAR_STATION": SECRETS["query parameter"],
            "AIRFLOW_CONN_HYDROCRON_KEYED": json.dumps(
                {"conn_type": "hydrocron", "host": hydrocron.url,
                 "password": SECRETS["Hydrocron key"]}),
            "AIRFLOW_CONN_SMTP_DEFAULT": smtp.airflow_connection(),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        })
        env.pop("HYDROSERVER_DEFINITIONS_DIR", None)
        login = {"AIRFLOW_CONN_HYDROSERVER_DEFAULT": login_conn}
        plan = [
            ["hydroserver_station_7", "2025-06-01T06:00:00+00:00", {}],
            ["hydroserver_station_7", "2025-06-02T06:00:00+00:00", login],  # echoed secrets
            ["hydroserver_station_8", "2025-06-01T06:00:00+00:00", {}],
            ["hydroserver_station_9", "2025-06-01T06:00:00+00:00", {}],  # missing datastream
            ["hydroserver_swot_reach_18180900091", "2024-03-16T00:00:00+00:00", {}],
        ]
        done = subprocess.run([sys.executable, "-c", AIRFLOW_RUN, json.dumps(plan)], env=env,
                              capture_output=True, text=True, timeout=300, cwd=tmp_path)
        output = done.stdout + done.stderr
        assert done.returncode == 0, output[-5000:]
        runs = json.loads(output.split("RUNS ", 1)[1].splitlines()[0])
        assert [state for _, _, state in runs] == ["success", "failed", "success", "failed",
                                                   "success"], output[-5000:]
        emails = smtp.wait_for(2, timeout=30)
        # The secrets were used: every server got what it needed.
        assert (SECRETS["source header (connection)"], SECRETS["query parameter"]) in seen["obs"]
        assert seen["level"] == [SECRETS["source header (Variable)"]]
        assert {r.api_key for r in hydrocron.requests} == {SECRETS["Hydrocron key"]}
        assert hs.request_counts["POST /api/auth/app/session"] >= 1
        assert len(hs.observations(ids["discharge"])) == 1
        assert len(hs.observations(ids["level"])) == 8 and hs.observations(ids["wse"])

    stack = Haystack()
    stack.add("task log output (dag.test stdout and stderr)", output)
    for path in sorted(home.rglob("*")):
        if path.is_file():
            stack.add(f"file {path.relative_to(home)}", path.read_bytes())
    with sqlite3.connect(home / "airflow.db") as db:
        xcoms = db.execute("select dag_id, task_id, key, value from xcom").fetchall()
        rendered = db.execute("select dag_id, task_id, rendered_fields "
                              "from rendered_task_instance_fields").fetchall()
        for table in ("dag_run", "task_instance", "log", "callback_request"):
            try:
                rows = db.execute(f"select * from {table}").fetchall()
            except sqlite3.OperationalError:
                continue
            stack.add(f"table {table}", repr(rows))
    for dag_id, task_id, key, value in xcoms:
        stack.add(f"XCom {dag_id}.{task_id}.{key}", value if isinstance(value, bytes)
                  else str(value))
    for dag_id, task_id, fields in rendered:
        stack.add(f"rendered template fields {dag_id}.{task_id}", str(fields))
    for i, email in enumerate(emails):
        stack.add(f"e-mail {i + 1} (raw)", email.message.as_bytes())
        stack.add(f"e-mail {i + 1} (text and HTML)", email.text + email.html)
    answers = json.loads(output.split("API ", 1)[1].splitlines()[0])
    for path, text in answers.items():
        stack.add(f"API server: GET /api/v2{path}", text)

    # Not vacuous: the places hold what they should.
    assert "key=***" in output and "Forbidden" in output
    assert {key for *_, key, _ in xcoms} >= {"return_value", "summary"}
    assert any("task_variables" in str(fields) for *_, fields in rendered)
    assert any("Station 7" in e.subject for e in emails)
    # the API server's rendered fields: the secret placeholder's value rendered, and masked
    station_7 = [json.loads(text) for path, text in answers.items()
                 if path.startswith("/dags/hydroserver_station_7/dagRuns/")
                 and path.endswith("/taskInstances/ingest")]
    assert len(station_7) == 2 and all(
        ti["rendered_fields"]["task_variables"] == {"station": "***"} for ti in station_7)
    details = json.loads(answers["/dags/hydroserver_station_7/details"])
    assert "| `{station}` | per_task | secret, read from `{{ var.value.station }}` |" in (
        details["doc_md"])
    assert any("/xcomEntries/return_value" in path for path in answers)
    assert stack.leaks() == []
    _record(tally, "Airflow run", stack)
    tally["secrets: Airflow runs"] = f"{len(runs)} ({', '.join(s for *_, s in runs)})"


# ================================================================== the operator, directly


class FakeTI:
    def __init__(self) -> None:
        self.pushed: dict = {}

    def xcom_push(self, key, value) -> None:
        self.pushed[key] = value


@pytest.fixture
def airflow_env(monkeypatch, local_hydroserver, source):
    """Connections and Variables as Airflow reads them from the environment."""
    hs = local_hydroserver
    key = hs.create_api_key(key=SECRETS["HydroServer API key"])
    hs.create_user(hs.email, SECRETS["HydroServer password"])  # the workspace owner's login
    monkeypatch.setenv("AIRFLOW_CONN_HYDROSERVER_DEFAULT", json.dumps(
        {"conn_type": "hydroserver", "host": hs.url,
         "extra": {"api_key": key, "retries": 1, "retry_backoff": 0.01}}))
    monkeypatch.setenv("AIRFLOW_CONN_HYDROSERVER_LOGIN", json.dumps(
        {"conn_type": "hydroserver", "host": hs.url, "login": hs.email,
         "password": SECRETS["HydroServer password"], "extra": {"retries": 1}}))
    monkeypatch.setenv("AIRFLOW_CONN_HYDROSERVER_WRONG", json.dumps(
        {"conn_type": "hydroserver", "host": hs.url,
         "extra": {"api_key": SECRETS["rejected API key"], "retries": 0}}))
    monkeypatch.setenv("AIRFLOW_CONN_HYDROSERVER_WRONG_LOGIN", json.dumps(
        {"conn_type": "hydroserver", "host": hs.url, "login": hs.email,
         "password": SECRETS["rejected API key"], "extra": {"retries": 0}}))
    monkeypatch.setenv("AIRFLOW_CONN_STATION_API", json.dumps(
        {"conn_type": "http", "password": SECRETS["source header (connection)"]}))
    monkeypatch.setenv("AIRFLOW_VAR_STATION_HEADER", SECRETS["source header (Variable)"])
    seen: dict = {}
    _station_routes(source, seen)
    return hs, source, seen


def _operator(source, datastream: str, **extra):
    connection = {
        "name": "Discharge API",
        "source_url": source.url + "/obs.json?from={start}&to={end}&key={station}",
        "payload_type": "JSON", "jmespath": "data.records[*]", "timestamp_key": "time",
        "auth": {"header_name": "X-Station", "conn_id": "station_api"},
        "placeholder_variables": [{"name": "start", "variable_type": "window_start"},
                                  {"name": "end", "variable_type": "window_end"},
                                  {"name": "station", "variable_type": "per_task"}]}
    connection.update(extra.pop("connection", {}))
    return HydroIngestOperator(
        task_id="ingest", data_connection=connection,
        mappings=[{"source_identifier": "values.discharge", "target_datastream_id": datastream}],
        task_variables={"station": "{{ params.station }}"}, **extra)


def _context(day: int) -> dict:
    start = datetime(2025, 6, day, 5, tzinfo=UTC)
    return {"data_interval_start": start, "data_interval_end": start + timedelta(hours=1),
            "params": {"station": SECRETS["query parameter"]}, "ti": FakeTI()}


def test_operator_success_and_failure_paths_leak_no_secret(airflow_env, caplog, capsys, tally):
    hs, source, seen = airflow_env
    caplog.set_level(logging.DEBUG)
    ds = hs.create_datastream(name="Discharge")
    stack = Haystack()
    outcomes = {}
    cases = {
        "API key, header from a connection": (_operator(source, ds), 1),
        "email login, header from a Variable": (_operator(
            source, ds, hydroserver_conn_id="hydroserver_login",
            connection={"auth": {"header_name": "X-Station",
                                 "variable": "station_header"}}), 1),
        "error page echoing the secrets": (_operator(source, ds), 2),
        "HTML page echoing the secrets": (_operator(
            source, ds, connection={"source_url": source.url + "/page?from={start}&to={end}"
                                                  "&key={station}"}),
            1),
        "rejected API key": (_operator(source, ds, hydroserver_conn_id="hydroserver_wrong"), 1),
        "rejected password": (_operator(source, ds,
                                        hydroserver_conn_id="hydroserver_wrong_login"), 1),
        "connection cut mid-body": (_operator(source, ds), 1),
        "missing datastream": (_operator(source, "0190a6c4-0000-7000-8000-00000000dead"), 1),
    }
    token = SECRETS["query parameter"]
    source.add("/page", lambda q: f"<html><title>Login</title><body>{q.get('key')} "
                                  f"{SECRETS['source header (connection)']}</body></html>",
               "text/html")
    for name, (operator, day) in cases.items():
        if name == "connection cut mid-body":
            source.drop_next("/obs.json", after_bytes=20)
        context = _context(day)
        operator.render_template_fields(context)
        assert operator.task_variables == {"station": token}  # rendered for the run
        try:
            summary = operator.execute(context)
            outcomes[name] = "success"
            stack.add(f"{name}: XCom return_value", json.dumps(summary))
        except Exception as exc:  # every failure path is searched
            outcomes[name] = type(exc).__name__
            stack.add(f"{name}: exception", "".join(traceback.format_exception(exc)))
            stack.add(f"{name}: exception repr", repr(exc) + repr(getattr(exc, "args", "")))
        stack.add(f"{name}: XCom summary", json.dumps(context["ti"].pushed))
        stack.add(f"{name}: operator repr", repr(operator))
    # Rendered template fields as Airflow stores them: after its masker.
    stack.add("rendered task_variables (masked)", json.dumps(redact(operator.task_variables,
                                                                    "task_variables")))
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    own = [r for r in caplog.records if r.name.startswith("hydroserver_provider")]
    stack.add("provider log records, as written", "\n".join(formatter.format(r) for r in own))
    stack.add("all log records (urllib3 debug included), after Airflow's masker",
              "\n".join(str(redact(formatter.format(r))) for r in caplog.records))
    captured = capsys.readouterr()
    stack.add("stdout and stderr", captured.out + captured.err)

    assert outcomes == {
        "API key, header from a connection": "success",
        "email login, header from a Variable": "success",
        "error page echoing the secrets": "SourceError",
        "HTML page echoing the secrets": "SourceError",
        "rejected API key": "AuthenticationError",  # the 404 of a private datastream: the key
        "rejected password": "AuthenticationError",
        "connection cut mid-body": "SourceError",
        "missing datastream": "IngestionFailed",
    }
    assert (SECRETS["source header (connection)"], token) in seen["obs"]
    assert any(token in r.getMessage() for r in caplog.records
               if r.name.startswith("urllib3")), "urllib3 logs the query: the masker must hide it"
    assert any("Forbidden" in text.decode() for text in stack.places.values())
    assert stack.leaks() == []
    _record(tally, "operator", stack)


# ================================================================== Hydrocron and the CLI


@pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"Hydrocron fixtures not found at {FIXTURES}")
def test_hydrocron_key_stays_in_its_header(monkeypatch, caplog, tally):
    from hydroserver_provider.hooks.hydrocron import HydrocronHook
    from hydroserver_provider.sources.hydrocron.client import HydrocronQuery
    from hydroserver_provider.testing.hydrocron import LocalHydrocron

    caplog.set_level(logging.DEBUG)
    key = SECRETS["Hydrocron key"]
    stack = Haystack()
    query = HydrocronQuery("Reach", "18180900091", ("wse",),
                           collection_name="SWOT_L2_HR_RiverSP_2.0")
    with LocalHydrocron(FIXTURES) as hydrocron:
        monkeypatch.setenv("AIRFLOW_CONN_HYDROCRON_KEYED", json.dumps(
            {"conn_type": "hydrocron", "host": hydrocron.url, "password": key,
             "extra": {"requests_per_second": 0}}))
        hook = HydrocronHook("hydrocron_keyed", retry=FAST)
        hydrocron.fail_next(1, 429, retry_after="0")
        result = hook.fetch_timeseries(query, datetime(2024, 2, 1), datetime(2024, 3, 16))
        stack.add("result", result.url + result.description + json.dumps(result.summary()))
        hydrocron.fail_next(10, 503)
        with pytest.raises(Exception) as info:
            hook.fetch_timeseries(query, datetime(2024, 2, 1), datetime(2024, 3, 16))
        stack.add("exception", "".join(traceback.format_exception(info.value)))
        hydrocron.fail_next(10, 503)
        ok, message = hook.test_connection()
        stack.add("test_connection", f"{ok} {message}")
        stack.add("repr", repr(hook) + repr(hook.get_conn()))
        assert {r.api_key for r in hydrocron.requests} == {key}
        hook.close()
    assert not ok
    formatter = logging.Formatter("%(name)s %(message)s")
    stack.add("log records", "\n".join(formatter.format(r) for r in caplog.records
                                       if r.name.startswith("hydroserver_provider")))
    assert stack.leaks() == []
    _record(tally, "Hydrocron hook", stack)


CLI_DEFINITIONS = """
data_connections:
  - name: Discharge API
    source_url: "{source}/obs.json?from={{start}}&to={{end}}&key={{station}}"
    payload_type: JSON
    jmespath: "data.records[*]"
    timestamp_key: time
    auth: {{header_name: X-Station, conn_id: station_api}}
    placeholder_variables:
      - {{name: start, variable_type: window_start}}
      - {{name: end, variable_type: window_end}}
      - {{name: station, variable_type: per_task}}
tasks:
  - name: Station 7
    data_connection: Discharge API
    task_variables: {{station: "{token}"}}
    mappings: [{{source_identifier: values.discharge, target_datastream_id: {ds}}}]
    interval: 1
    interval_period: hours
"""


def test_command_line_output_leaks_no_secret(airflow_env, tmp_path, capsys, tally):
    from hydroserver_provider.cli import main

    hs, source, seen = airflow_env
    ds = hs.create_datastream(name="Discharge")
    folder = tmp_path / "definitions"
    folder.mkdir()
    (folder / "stations.yaml").write_text(CLI_DEFINITIONS.format(
        source=source.url, token=SECRETS["query parameter"], ds=ds))
    stack = Haystack()
    commands = {
        "validate": ["validate", str(folder)],
        "preview": ["preview", "Station 7", "--definitions", str(folder),
                    "--start", "2025-06-01T05:00:00Z", "--end", "2025-06-01T06:00:00Z"],
        "preview, login": ["preview", "Station 7", "--definitions", str(folder),
                           "--start", "2025-06-01T05:00:00Z", "--end", "2025-06-01T06:00:00Z",
                           "--conn-id", "hydroserver_login"],
        "preview, echoed secrets": ["preview", "Station 7", "--definitions", str(folder),
                                    "--start", "2025-06-02T05:00:00Z",
                                    "--end", "2025-06-02T06:00:00Z"],
        "preview, rejected key": ["preview", "Station 7", "--definitions", str(folder),
                                  "--start", "2025-06-01T05:00:00Z",
                                  "--end", "2025-06-01T06:00:00Z",
                                  "--conn-id", "hydroserver_wrong"],
    }
    codes = {}
    for name, argv in commands.items():
        try:
            codes[name] = main(argv)
        except SystemExit as exc:
            codes[name] = exc.code
        captured = capsys.readouterr()
        stack.add(f"hydroserver-airflow {name}", captured.out + captured.err)
    assert codes["validate"] == 0 and codes["preview"] == 0 and codes["preview, login"] == 0
    assert codes["preview, echoed secrets"] != 0 and codes["preview, rejected key"] != 0
    assert (SECRETS["source header (connection)"], SECRETS["query parameter"]) in seen["obs"]
    assert b"Forbidden" in stack.places["hydroserver-airflow preview, echoed secrets"]
    assert stack.leaks() == []
    _record(tally, "command line", stack)
