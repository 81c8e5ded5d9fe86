"""``hydroserver-airflow validate``: every problem at once, across files, with a clear exit code."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

import hydroserver_provider.compat  # noqa: F401  (Airflow sets up its logging here, not under capsys)
from hydroserver_provider.cli import main
from hydroserver_provider.definitions.files import load_definitions

REPO = Path(__file__).resolve().parents[2]
DS = "0e000000-0000-4000-8000-0000000000{:02d}"

CONNECTION = """
data_connections:
  - name: Station CSV
    source_url: http://127.0.0.1:8765/{station}/data.csv
    payload_type: CSV
    timestamp_key: Timestamp
    placeholder_variables:
      - {name: station, variable_type: per_task}
"""


def task(name: str, target: int, extra: str = "") -> str:
    text = f"""
  - name: {name}
    data_connection: Station CSV
    task_variables: {{station: s1}}
    mappings: [{{source_identifier: Level, target_datastream_id: {DS.format(target)}}}]
"""
    return text + textwrap.indent(textwrap.dedent(extra), "    ") if extra else text


@pytest.fixture(autouse=True)
def hydroserver_connection(monkeypatch):
    """The connection every task needs, so the last line is about the definitions alone (what
    validate says about Airflow's connections: test_validate_needs.py)."""
    monkeypatch.setenv("AIRFLOW_CONN_HYDROSERVER_DEFAULT",
                       json.dumps({"conn_type": "hydroserver", "host": "http://127.0.0.1:9"}))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def last_line(out: str) -> str:
    return out.strip().splitlines()[-1]


def problems(out: str) -> list[str]:
    return [line[2:] for line in out.splitlines() if line.startswith("- ")]


def test_the_shipped_example_definitions_are_valid(capsys):
    folder = REPO / "dags" / "definitions"
    files, _ = load_definitions(folder)
    tasks = sum(len(f.tasks) for f in files)
    connections = sum(len(f.data_connections) for f in files)
    assert main(["validate", str(folder)]) == 0
    assert last_line(capsys.readouterr().out) == (
        f"OK: {len(files)} file{'s' if len(files) > 1 else ''}, {tasks} tasks, "
        f"{connections} data connections")
    assert len(files) >= 1 and tasks >= 2


def test_ok_summary_counts_files_tasks_and_connections_across_paths(tmp_path, capsys):
    write(tmp_path / "a" / "one.yaml", CONNECTION + "tasks:" + task("Station 1", 1)
          + task("Station 2", 2))
    two = write(tmp_path / "two.yml", CONNECTION + "tasks:" + task("Station 3", 3))
    assert main(["validate", str(tmp_path / "a"), str(two)]) == 0
    assert last_line(capsys.readouterr().out) == "OK: 2 files, 3 tasks, 2 data connections"


def test_every_problem_of_every_file_is_listed_at_once(tmp_path, capsys):
    folder = tmp_path / "defs"
    write(folder / "a.yaml", CONNECTION + "tasks:"
          + task("Station 1", 1, "interval: 1\ninterval_period: fortnights")
          + task("Station 2", 2)
          + task("Station 3", 3, "airflow: {retries: many}")
          + task("Shared", 5))
    write(folder / "b.yaml", CONNECTION + "tasks:"
          + task("Station 2", 6)  # same name as in a.yaml
          + task("Writes five too", 5))  # same datastream as 'Shared' in a.yaml
    write(folder / "c.yaml", "data_connections: [\n")  # not YAML
    code = main(["validate", str(folder), str(tmp_path / "missing.yaml")])
    out = capsys.readouterr().out
    assert code == 1
    found = problems(out)
    a, b, c = (str(folder / n) for n in ("a.yaml", "b.yaml", "c.yaml"))
    expected_parts = [
        (a, "task 'Station 1'", "interval_period", "fortnights"),
        (a, "task 'Station 3'", "airflow.retries", "many"),
        (a, "task 'Station 2'", "same name", b),
        (b, "task 'Station 2'", "same name", a),
        (a, "task 'Shared'", DS.format(5), "Writes five too"),
        (b, "task 'Writes five too'", DS.format(5), "Shared"),
        (c, "not valid YAML", "line", ""),
        (str(tmp_path / "missing.yaml"), "no such file or folder", "", ""),
    ]
    for parts in expected_parts:
        assert any(all(p in line for p in parts) for line in found), (parts, found)
    assert last_line(out) == f"{len(found)} problems (3 files checked)"
    assert len(found) == len(expected_parts)  # one line per problem, nothing twice


def test_dag_id_collisions_and_factory_only_settings_are_reported(tmp_path, capsys):
    write(tmp_path / "one.yaml", CONNECTION + "tasks:"
          + task("Station 42", 1) + task("Station-42", 2)  # both slug to hydroserver_station_42
          + task("Catching up", 3, "interval: 1\ninterval_period: hours\n"
                                   "airflow: {catchup: true}"))  # catchup needs start_time
    assert main(["validate", str(tmp_path)]) == 1
    found = problems(capsys.readouterr().out)
    assert sum("hydroserver_station_42" in line for line in found) == 2
    assert any("task 'Catching up'" in line and "airflow.catchup" in line for line in found)
    assert len(found) == 3


def test_an_empty_folder_is_an_error_not_an_ok(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["validate", str(tmp_path / "empty")]) == 1
    captured = capsys.readouterr()
    assert "no .yaml, .yml or .json definition files" in captured.err
    assert "OK" not in captured.out


def test_a_secret_written_in_a_file_is_refused_without_echoing_it(tmp_path, capsys):
    secret = "do-not-print-me-8842"
    write(tmp_path / "s.yaml", f"""
data_connections:
  - name: Secret API
    source_url: http://127.0.0.1:8765/data.csv
    payload_type: CSV
    timestamp_key: Timestamp
    authHeaderName: X-Api-Key
    authHeaderValue: {secret}
""")
    assert main(["validate", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "authHeaderValue" in captured.out and "Airflow" in captured.out
    assert secret not in captured.out + captured.err


def test_paths_are_required(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["validate"])
    assert exc.value.code == 2
    assert "PATH" in capsys.readouterr().err


def test_problems_behind_a_broken_data_connection_are_listed_each_once(tmp_path, capsys):
    write(tmp_path / "a.yaml", """
data_connections:
  - name: Broken
    source_url: http://127.0.0.1:8765/data.csv
    payload_type: CSV
    timestamp_key: Timestamp
    delimiter: colon
tasks:
  - name: Own problems too
    data_connection: Broken
    interval: 0
    mappings: [{source_identifier: Level}]
  - name: Only the connection
    data_connection: Broken
    mappings: [{source_identifier: Level, target_datastream_id: 0e000000-0000-4000-8000-000000000001}]
""")
    assert main(["validate", str(tmp_path)]) == 1
    found = problems(capsys.readouterr().out)
    assert sum("field 'delimiter'" in line for line in found) == 1
    own = [line for line in found if "task 'Own problems too'" in line]
    assert len(own) == 3 and any("field 'interval'" in line for line in own)
    assert any("mappings[0].target_datastream_id" in line for line in own)
    assert sum("cannot be used" in line for line in own) == 1
    assert [line for line in found if "task 'Only the connection'" in line] == [
        line for line in found if "task 'Only the connection'" in line and "cannot be used" in line]
    assert len(found) == 5


def test_a_connection_listed_and_inline_in_its_task_is_reported_once(tmp_path, capsys):
    # HydroServer's task detail answer carries its data connection inline
    connection = {"id": "c1", "name": "C", "sourceUrl": "http://127.0.0.1:8765/data.csv",
                  "payload": {"type": "CSV", "timestampKey": "t", "delimiter": "colon"}}
    document = {"dataConnections": [connection], "tasks": [{
        "name": "T", "dataConnectionId": "c1", "dataConnection": connection,
        "mappings": [{"sourceIdentifier": "v", "targetDatastreamId": DS.format(1)}]}]}
    (tmp_path / "export.json").write_text(json.dumps(document), encoding="utf-8")
    assert main(["validate", str(tmp_path)]) == 1
    found = problems(capsys.readouterr().out)
    assert len(found) == 2, found
    assert "data connection 'C': field 'payload.delimiter'" in found[0]
    assert "task 'T': field 'dataConnection': this data connection cannot be used" in found[1]
    assert found[1].endswith("found 'C')")
