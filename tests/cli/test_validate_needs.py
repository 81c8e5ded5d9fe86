"""``hydroserver-airflow validate`` names every Airflow connection, variable and pool the
definitions need, with what uses it, and which of them Airflow lacks -- as far as it can know
without the network (environment variables, the metadata database)."""

from __future__ import annotations

import json
import sqlite3
import textwrap
from pathlib import Path

import pytest

import hydroserver_provider.compat  # noqa: F401  (Airflow sets up its logging here, not under capsys)
from hydroserver_provider.cli import main

# the guide's notification example, a source behind an API key, and a pool
DEFINITIONS = """
data_connections:
  - name: Notified Source
    source_url: https://api.example.com/readings.csv
    timestamp_key: Timestamp
    payload_type: CSV
    notification:
      recipient_emails: [admin@example.com, engineer@example.com]
      schedule: {enabled: true, interval: 1, interval_period: days}
  - name: Keyed Source
    source_url: https://api.example.com/keyed.csv
    timestamp_key: Timestamp
    payload_type: CSV
    auth: {header_name: X-Api-Key, variable: keyed_source_key}
tasks:
  - name: Notified task
    data_connection: Notified Source
    mappings: [{source_identifier: Temperature, target_datastream_id: 0e000000-0000-4000-8000-000000000001}]
    interval: 1
    interval_period: hours
  - name: Keyed task
    data_connection: Keyed Source
    mappings: [{source_identifier: Level, target_datastream_id: 0e000000-0000-4000-8000-000000000002}]
    airflow: {pool: hydroserver_writes, hydroserver_conn_id: hs_prod}
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "defs").mkdir()
    (tmp_path / "defs" / "guide.yaml").write_text(textwrap.dedent(DEFINITIONS))
    return tmp_path / "defs"


@pytest.fixture
def airflow_env(tmp_path, monkeypatch):
    """No connection in the environment, a metadata database (the three tables validate
    reads) holding the HydroServer connection and the pool, and no secrets backend."""
    for name in ("HYDROSERVER_DEFAULT", "HS_PROD", "SMTP_DEFAULT", "AIRFLOW_API_DEFAULT"):
        monkeypatch.delenv(f"AIRFLOW_CONN_{name}", raising=False)
    monkeypatch.delenv("AIRFLOW_VAR_KEYED_SOURCE_KEY", raising=False)
    monkeypatch.delenv("AIRFLOW__SECRETS__BACKEND", raising=False)
    database = tmp_path / "airflow.db"
    with sqlite3.connect(database) as db:
        db.execute("create table connection (conn_id text)")
        db.execute("create table variable (key text)")
        db.execute("create table slot_pool (pool text)")
        db.execute("insert into connection values ('hydroserver_default')")
        db.execute("insert into slot_pool values ('hydroserver_writes')")
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{database}")
    return database


def needs(out: str) -> dict[str, str]:
    """``{"connection 'x'": "the rest of its line"}`` of the needs section."""
    found = {}
    for line in out.splitlines():
        if line.startswith("  - "):
            label, rest = line[4:].split(", for ", 1)
            found[label] = rest
    return found


def test_every_need_is_named_with_its_users_and_state(folder, airflow_env, capsys):
    assert main(["validate", str(folder)]) == 0  # missing settings are not definition problems
    out = capsys.readouterr().out
    listed = needs(out)
    assert list(listed) == ["connection 'hydroserver_default'", "connection 'smtp_default'",
                            "connection 'airflow_api_default'", "connection 'hs_prod'",
                            "variable 'keyed_source_key'", "pool 'hydroserver_writes'"]
    assert listed["connection 'hydroserver_default'"] == (
        "task 'Notified task': found (metadata database)")
    assert listed["connection 'smtp_default'"] == (
        "failure alerts of task 'Notified task', the digest of 'Notified Source': MISSING: create "
        "it (Admin > Connections, type SMTP, with a from_email extra) or set "
        "AIRFLOW_CONN_SMTP_DEFAULT")
    assert listed["connection 'airflow_api_default'"].startswith(
        "the digest of 'Notified Source': MISSING: create it (Admin > Connections, type HTTP")
    assert listed["variable 'keyed_source_key'"] == (
        "task 'Keyed task': MISSING: create it (Admin > Variables, the X-Api-Key header's "
        "value) or set AIRFLOW_VAR_KEYED_SOURCE_KEY")
    assert listed["pool 'hydroserver_writes'"] == "task 'Keyed task': found (metadata database)"
    assert out.strip().splitlines()[-1] == (
        "OK: 1 file, 2 tasks, 2 data connections; 4 Airflow settings missing")


def test_strict_makes_missing_settings_problems(folder, airflow_env, capsys, monkeypatch):
    assert main(["validate", "--strict", str(folder)]) == 1
    assert capsys.readouterr().out.strip().splitlines()[-1] == (
        "4 problems (1 file checked); 4 Airflow settings missing")
    for name in ("HS_PROD", "SMTP_DEFAULT", "AIRFLOW_API_DEFAULT"):
        monkeypatch.setenv(f"AIRFLOW_CONN_{name}", json.dumps({"conn_type": "http"}))
    monkeypatch.setenv("AIRFLOW_VAR_KEYED_SOURCE_KEY", "k")
    assert main(["validate", "--strict", str(folder)]) == 0
    out = capsys.readouterr().out
    assert needs(out)["connection 'smtp_default'"].endswith(
        "found (environment variable AIRFLOW_CONN_SMTP_DEFAULT)")
    assert out.strip().splitlines()[-1] == "OK: 1 file, 2 tasks, 2 data connections"


def test_what_cannot_be_checked_is_said_not_guessed(folder, airflow_env, capsys, monkeypatch,
                                                   tmp_path):
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
                       f"sqlite:///{tmp_path / 'nowhere.db'}")
    assert main(["validate", "--strict", str(folder)]) == 0  # nothing is known to be missing
    out = capsys.readouterr().out
    line = needs(out)["connection 'hydroserver_default'"]
    assert "not checked (not in the environment; there is no metadata database at" in line
    assert "or set AIRFLOW_CONN_HYDROSERVER_DEFAULT" in line
    assert not (tmp_path / "nowhere.db").exists()  # never created by looking
    assert out.strip().splitlines()[-1].endswith("; 6 Airflow settings not checked")

    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{airflow_env}")
    monkeypatch.setenv("AIRFLOW__SECRETS__BACKEND",
                       "airflow.providers.hashicorp.secrets.vault.VaultBackend")
    assert main(["validate", str(folder)]) == 0
    listed = needs(capsys.readouterr().out)
    assert "found (metadata database)" in listed["connection 'hydroserver_default'"]
    assert ("not checked (not in the environment or the metadata database; the secrets backend "
            "VaultBackend was not asked)") in listed["connection 'smtp_default'"]
    # pools live in the database only: no secrets backend holds them
    assert listed["pool 'hydroserver_writes'"] == "task 'Keyed task': found (metadata database)"

    assert main(["validate", "--no-database", str(folder)]) == 0
    listed = needs(capsys.readouterr().out)
    assert "the metadata database was not read (--no-database)" in listed[
        "connection 'hydroserver_default'"]


def test_a_disabled_or_manual_digest_needs_no_api_connection(tmp_path, airflow_env, capsys):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.yaml").write_text(textwrap.dedent(DEFINITIONS).replace(
        "schedule: {enabled: true,", "schedule: {enabled: false,"))
    assert main(["validate", str(tmp_path / "d")]) == 0
    listed = needs(capsys.readouterr().out)
    assert "connection 'airflow_api_default'" not in listed
    assert listed["connection 'smtp_default'"].startswith("failure alerts of task 'Notified task':")
