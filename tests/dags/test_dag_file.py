"""The DAG files under dags/: parsed by a DagBag, by the real dag-processor, and cheaply."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="hydroserver-dag-file-"))

import pytest

from hydroserver_provider.testing.airflow import LocalAirflow

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
INGESTION = DAGS / "hydroserver_ingestion.py"
CHECK = DAGS / "hydroserver_definition_check.py"
PYTHON = sys.executable

GOOD = """
data_connections:
  - name: Good CSV
    source_url: http://127.0.0.1:8765/good.csv?start={start}&end={end}
    payload_type: CSV
    timestamp_key: Timestamp
    placeholder_variables:
      - {name: start, variable_type: window_start}
      - {name: end, variable_type: window_end}
tasks:
  - name: Good station A
    data_connection: Good CSV
    mappings: [{source_identifier: Level, target_datastream_id: 0d000000-0000-4000-8000-000000000001}]
    interval: 1
    interval_period: hours
  - name: Good station B
    data_connection: Good CSV
    mappings: [{source_identifier: Temp, target_datastream_id: 0d000000-0000-4000-8000-000000000002}]
    crontab: "0 6 * * *"
"""

BROKEN = """
data_connections:
  - name: Broken JSON
    source_url: http://127.0.0.1:8765/broken.json
    payload_type: JSON
    jmespath: "data[*]"
    timestamp_key: time
tasks:
  - name: Broken station
    data_connection: Broken JSON
    mappings: [{source_identifier: q, target_datastream_id: 0d000000-0000-4000-8000-000000000003}]
    interval: 1
    interval_period: fortnights
  - name: Fine station in the broken file
    data_connection: Broken JSON
    mappings: [{source_identifier: h, target_datastream_id: 0d000000-0000-4000-8000-000000000004}]
    interval: 1
    interval_period: days
"""
EXPECTED_GOOD = {"hydroserver_good_station_a", "hydroserver_good_station_b",
                 "hydroserver_fine_station_in_the_broken_file"}


@pytest.fixture
def dag_folder(tmp_path: Path) -> Path:
    """A DAG folder with the two shipped DAG files, one good and one broken definition file."""
    folder = tmp_path / "dags"
    (folder / "definitions").mkdir(parents=True)
    shutil.copy(INGESTION, folder)
    shutil.copy(CHECK, folder)
    (folder / "definitions" / "good.yaml").write_text(textwrap.dedent(GOOD))
    (folder / "definitions" / "broken.yaml").write_text(textwrap.dedent(BROKEN))
    return folder


def dagbag(folder: Path):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(folder))


def test_shipped_dags_load_without_import_errors(monkeypatch):
    monkeypatch.delenv("HYDROSERVER_DEFINITIONS_DIR", raising=False)
    bag = dagbag(DAGS)
    assert bag.import_errors == {}
    assert {"hydroserver_demo_logger_42", "hydroserver_demo_river_site_09380000"} <= set(bag.dags)
    for dag_id, dag in bag.dags.items():
        if dag_id.startswith("hydroserver_"):
            assert list(dag.task_dict) == ["ingest"]
            assert Path(dag.fileloc) == INGESTION


def test_both_dag_files_pass_safe_mode():
    from airflow.utils.file import might_contain_dag_via_default_heuristic

    assert might_contain_dag_via_default_heuristic(str(INGESTION))
    assert might_contain_dag_via_default_heuristic(str(CHECK))


def test_a_broken_file_shows_as_an_import_error_and_hides_nothing_else(dag_folder, monkeypatch):
    monkeypatch.delenv("HYDROSERVER_DEFINITIONS_DIR", raising=False)
    bag = dagbag(dag_folder)
    assert set(bag.dags) == EXPECTED_GOOD
    assert list(bag.import_errors) == [str(dag_folder / "hydroserver_definition_check.py")]
    (message,) = bag.import_errors.values()
    broken = str(dag_folder / "definitions" / "broken.yaml")
    assert f"{broken}: task 'Broken station': field 'interval_period'" in message
    assert "fortnights" in message and "good.yaml" not in message
    # the DAGs the broken definition keeps out of Airflow are named (the UI only says
    # "Deactivated"); the file's fine task still loads and is not named
    assert ("1 DAG not in Airflow until these are fixed (the UI shows a DAG that was there as "
            f"deactivated):\n  - {broken}: hydroserver_broken_station") in message
    assert "hydroserver_fine_station_in_the_broken_file" not in message
    # a DagBag outside Airflow's dag-processor has no Airflow to ask about connections
    assert "Airflow connection" not in message


def test_a_file_that_does_not_parse_names_the_dags_it_removes(dag_folder, monkeypatch):
    monkeypatch.delenv("HYDROSERVER_DEFINITIONS_DIR", raising=False)
    (dag_folder / "definitions" / "broken.yaml").write_text(
        textwrap.dedent(BROKEN).replace("jmespath: \"data[*]\"", "jmespath: [data"))
    bag = dagbag(dag_folder)
    assert set(bag.dags) == {"hydroserver_good_station_a", "hydroserver_good_station_b"}
    (message,) = bag.import_errors.values()
    broken = str(dag_folder / "definitions" / "broken.yaml")
    assert "not valid YAML" in message
    assert (f"  - {broken}: hydroserver_broken_station, hydroserver_fine_station_in_the_broken_"
            "file (read from the task names in its text)") in message


def test_the_check_names_missing_connections_when_it_can_ask_airflow(dag_folder, monkeypatch):
    from hydroserver_provider.factory import raise_definition_errors

    monkeypatch.delenv("AIRFLOW_CONN_HYDROSERVER_DEFAULT", raising=False)
    (dag_folder / "definitions" / "broken.yaml").unlink()
    raise_definition_errors(dag_folder / "definitions")  # not in a dag-processor: not asked
    with pytest.raises(Exception) as failed:
        raise_definition_errors(dag_folder / "definitions", check_airflow=True)
    assert str(failed.value) == (
        "1 Airflow setting the definitions need missing:\n  - Airflow connection "
        "'hydroserver_default' does not exist: create it (Admin > Connections, type HydroServer) "
        "or set AIRFLOW_CONN_HYDROSERVER_DEFAULT (for task 'Good station A', task 'Good station "
        "B')")
    monkeypatch.setenv("AIRFLOW_CONN_HYDROSERVER_DEFAULT",
                       json.dumps({"conn_type": "hydroserver", "host": "http://127.0.0.1:9"}))
    raise_definition_errors(dag_folder / "definitions", check_airflow=True)  # nothing to say


def test_definitions_dir_env_var(dag_folder, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(dag_folder / "definitions" / "good.yaml", elsewhere)
    monkeypatch.setenv("HYDROSERVER_DEFINITIONS_DIR", str(elsewhere))
    bag = dagbag(dag_folder)
    assert set(bag.dags) == {"hydroserver_good_station_a", "hydroserver_good_station_b"}
    assert bag.import_errors == {}


@pytest.mark.slow  # starts Airflow
def test_dag_processor_keeps_scheduling_the_good_dags(dag_folder, tmp_path):
    """The real dag-processor, against SQLite: the good DAGs are active and have next runs; the
    broken definition is one import error on the DAG-less check file."""
    home = tmp_path / "airflow_home"
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(dag_folder),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
           "PATH": f"{Path(PYTHON).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("HYDROSERVER_DEFINITIONS_DIR", None)
    airflow = [PYTHON, "-m", "airflow"]
    for command in (["db", "migrate"], ["dag-processor", "--num-runs", "1"]):
        done = subprocess.run(airflow + command, env=env, capture_output=True, text=True,
                              timeout=240)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    with sqlite3.connect(home / "airflow.db") as db:
        dags = {row[0]: row[1:] for row in db.execute(
            "select dag_id, is_stale, has_import_errors, is_paused, relative_fileloc, "
            "next_dagrun_data_interval_start, next_dagrun_data_interval_end from dag")}
        errors = dict(db.execute("select filename, stacktrace from import_error"))
    assert set(dags) == EXPECTED_GOOD
    for dag_id, (stale, has_errors, paused, fileloc, start, end) in dags.items():
        assert (stale, has_errors, paused) == (0, 0, 0), dag_id
        assert fileloc == "hydroserver_ingestion.py"
        assert start is not None and end is not None and start < end  # a real data window
    assert list(errors) == ["hydroserver_definition_check.py"]
    message = errors["hydroserver_definition_check.py"]
    assert "broken.yaml: task 'Broken station': field 'interval_period'" in message
    assert "broken.yaml: hydroserver_broken_station" in message
    # in the dag-processor the check asks Airflow, as a task would, for the connections the
    # definitions need: none is defined here
    assert ("Airflow connection 'hydroserver_default' does not exist: create it (Admin > "
            "Connections, type HydroServer) or set AIRFLOW_CONN_HYDROSERVER_DEFAULT (for task "
            "'Fine station in the broken file', task 'Good station A', task 'Good station B')"
            ) in message


@pytest.mark.slow  # starts Airflow
def test_flipping_enabled_changes_an_existing_dag(dag_folder, tmp_path):
    """``is_paused_upon_creation`` acts once; ``enabled`` must act on a DAG Airflow already has.
    The real dag-processor parses the folder three times: enabled, disabled, enabled again."""
    (dag_folder / "definitions" / "broken.yaml").unlink()
    good = dag_folder / "definitions" / "good.yaml"
    airflow = LocalAirflow(tmp_path / "home", dag_folder)
    airflow.migrate()

    def parse(text: str) -> tuple:
        good.write_text(textwrap.dedent(text))
        airflow.airflow("dag-processor", "--num-runs", "1")
        with sqlite3.connect(airflow.home / "airflow.db") as db:
            return db.execute(
                "select timetable_summary, is_paused, next_dagrun_create_after from dag "
                "where dag_id = 'hydroserver_good_station_a'").fetchone()

    summary, paused, next_run = parse(GOOD)
    assert (summary, paused) == ("every hour", 0) and next_run is not None
    disabled = GOOD.replace("    interval_period: hours\n", "    interval_period: hours\n"
                                                            "    enabled: false\n", 1)
    assert parse(disabled) == ("disabled (every hour)", 0, None)  # no runs, manual ones at once
    summary, paused, next_run = parse(GOOD)
    assert (summary, paused) == ("every hour", 0) and next_run is not None


def test_parsing_the_dag_file_imports_nothing_heavy(tmp_path):
    script = textwrap.dedent(f"""
        import json, runpy, sys
        namespace = runpy.run_path({str(INGESTION)!r})
        heavy = [m for m in ("pandas", "requests", "numpy") if m in sys.modules]
        pipeline = [m for m in sys.modules if m in (
            "hydroserver_provider.pipeline", "hydroserver_provider.sources.fetch",
            "hydroserver_provider.sources.parse", "hydroserver_provider.hydroserver.load")]
        dags = sorted(k for k in namespace if k.startswith("hydroserver_demo"))
        print(json.dumps({{"heavy": heavy, "pipeline": pipeline, "dags": dags}}))
    """)
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path)}
    env.pop("HYDROSERVER_DEFINITIONS_DIR", None)
    done = subprocess.run([PYTHON, "-c", script], env=env, capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"heavy": [], "pipeline": [],
                      "dags": ["hydroserver_demo_logger_42",
                               "hydroserver_demo_river_site_09380000"]}
