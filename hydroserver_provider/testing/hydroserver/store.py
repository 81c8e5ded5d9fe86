"""The SQLite schema and the writes and lookups shared by the endpoints and the seeding helpers."""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

from hydroserver_provider.testing.hydroserver.values import canonical_uuid, hash_key, uuid7
from hydroserver_provider.testing.hydroserver.vocabulary import (
    OBSERVED_PROPERTY_ID,
    PROCESSING_LEVEL_ID,
    SENSOR_ID,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE COLLATE NOCASE, password TEXT NOT NULL,
    first_name TEXT NOT NULL, last_name TEXT NOT NULL, is_active INTEGER NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS workspaces (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, is_private INTEGER NOT NULL,
    owner_id INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, role TEXT NOT NULL, name TEXT NOT NULL,
    prefix TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE, is_active INTEGER NOT NULL DEFAULT 1);
CREATE INDEX IF NOT EXISTS api_keys_prefix ON api_keys (prefix);
CREATE TABLE IF NOT EXISTS sessions (
    token TEXT PRIMARY KEY, user_id INTEGER NOT NULL, created REAL);
CREATE TABLE IF NOT EXISTS things (
    id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, name TEXT NOT NULL, description TEXT NOT NULL,
    is_private INTEGER NOT NULL, sampling_feature_code TEXT NOT NULL, site_type TEXT NOT NULL,
    latitude REAL NOT NULL, longitude REAL NOT NULL);
CREATE TABLE IF NOT EXISTS units (
    id TEXT PRIMARY KEY, workspace_id TEXT, name TEXT NOT NULL, symbol TEXT NOT NULL,
    definition TEXT NOT NULL, type TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS datastreams (
    pk INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, workspace_id TEXT NOT NULL,
    thing_id TEXT NOT NULL, unit_id TEXT NOT NULL, sensor_id TEXT NOT NULL,
    observed_property_id TEXT NOT NULL, processing_level_id TEXT NOT NULL,
    name TEXT NOT NULL, description TEXT NOT NULL, observation_type TEXT NOT NULL,
    sampled_medium TEXT NOT NULL, no_data_value REAL NOT NULL, aggregation_statistic TEXT NOT NULL,
    time_aggregation_interval REAL NOT NULL, time_aggregation_interval_unit TEXT NOT NULL,
    status TEXT, result_type TEXT NOT NULL, intended_time_spacing REAL,
    intended_time_spacing_unit TEXT, is_private INTEGER NOT NULL, is_visible INTEGER NOT NULL,
    value_count INTEGER, begin_us INTEGER, end_us INTEGER, result_begin_us INTEGER,
    result_end_us INTEGER, tags TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS observations (
    id INTEGER PRIMARY KEY, ds INTEGER NOT NULL, t INTEGER NOT NULL, result REAL NOT NULL,
    qualifiers TEXT, UNIQUE (ds, t));
CREATE TABLE IF NOT EXISTS data_connections (
    id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS etl_tasks (
    id TEXT PRIMARY KEY, data_connection_id TEXT NOT NULL, name TEXT NOT NULL, description TEXT,
    task_variables TEXT NOT NULL, schedule TEXT);
CREATE TABLE IF NOT EXISTS etl_mappings (
    pk INTEGER PRIMARY KEY, task_id TEXT NOT NULL, source_identifier TEXT NOT NULL,
    datastream_id TEXT NOT NULL);
"""


class Store:
    """One SQLite connection guarded by a lock; every request's writes are one transaction."""

    def __init__(self, path: str) -> None:
        self.lock = threading.RLock()
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        if path != ":memory:":
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)

    @contextlib.contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed at the end, rolled back entirely on any exception."""
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            yield self.db

    def close(self) -> None:
        with self.lock:
            self.db.close()


_KNOWN_UNITS = {
    "degC": ("Degree Celsius", "Degree Celsius", "Temperature"),
    "m": ("Meter", "Length in meters", "Length"),
    "ft": ("Foot", "Length in feet", "Length"),
    "cm": ("Centimeter", "Length in centimeters", "Length"),
    "mm": ("Millimeter", "Length in millimeters", "Length"),
    "m^3/s": ("Cubic meters per second", "Volumetric flow rate", "Flow"),
    "cfs": ("Cubic feet per second", "Volumetric flow rate", "Flow"),
    "ft^3/s": ("Cubic feet per second", "Volumetric flow rate", "Flow"),
    "%": ("Percent", "Percent", "Dimensionless"),
    "mg/L": ("Milligrams per liter", "Mass concentration", "Concentration"),
    "uS/cm": ("Microsiemens per centimeter", "Specific conductance", "Electrical Conductivity"),
    "V": ("Volt", "Electric potential", "Electric Potential"),
}


_DATASTREAM_FIELD_COLUMNS = {
    "observationType": "observation_type",
    "sampledMedium": "sampled_medium",
    "aggregationStatistic": "aggregation_statistic",
    "timeAggregationInterval": "time_aggregation_interval",
    "timeAggregationIntervalUnit": "time_aggregation_interval_unit",
    "resultType": "result_type",
    "intendedTimeSpacing": "intended_time_spacing",
    "intendedTimeSpacingUnit": "intended_time_spacing_unit",
    "isVisible": "is_visible",
}


def _datastream_defaults() -> dict[str, Any]:
    return {
        "observation_type": "OM_Measurement",
        "sampled_medium": "Surface Water",
        "aggregation_statistic": "Continuous",
        "time_aggregation_interval": 1.0,
        "time_aggregation_interval_unit": "minutes",
        "status": "Ongoing",
        "result_type": "Time Series Coverage",
        "intended_time_spacing": None,
        "intended_time_spacing_unit": None,
        "is_visible": 1,
    }


def require_row(db: sqlite3.Connection, table: str, row_id: str) -> sqlite3.Row:
    row = db.execute(f"SELECT * FROM {table} WHERE id = ?", (str(row_id),)).fetchone()
    if row is None:
        raise KeyError(f"No {table[:-1].replace('_', ' ')} with id {row_id}")
    return row


def insert_workspace(db: sqlite3.Connection, name: str, is_private: bool, owner_id: int) -> str:
    ws_id = uuid7()
    db.execute(
        "INSERT INTO workspaces VALUES (?, ?, ?, ?)", (ws_id, name, int(bool(is_private)), owner_id)
    )
    insert_thing(db, ws_id, f"{name} site", False)
    return ws_id


def insert_thing(
    db: sqlite3.Connection,
    workspace_id: str,
    name: str,
    is_private: bool,
    latitude: float = 41.74,
    longitude: float = -111.83,
) -> str:
    thing_id = uuid7()
    code = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").upper()[:40] or "SITE"
    db.execute(
        "INSERT INTO things VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            thing_id,
            workspace_id,
            name,
            f"{name} (local HydroServer)",
            int(bool(is_private)),
            code,
            "Stream",
            float(latitude),
            float(longitude),
        ),
    )
    return thing_id


def insert_api_key(
    db: sqlite3.Connection, workspace_id: str, role: str, name: str, key: str | None
) -> str:
    key = key or secrets.token_urlsafe(32)
    if db.execute("SELECT 1 FROM api_keys WHERE key_hash = ?", (hash_key(key),)).fetchone():
        raise ValueError("That API key already exists")
    db.execute(
        "INSERT INTO api_keys (id, workspace_id, role, name, prefix, key_hash)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (uuid7(), workspace_id, role, name, key[:12], hash_key(key)),
    )
    return key


def insert_unit(
    db: sqlite3.Connection,
    symbol: str,
    name: str | None,
    definition: str,
    unit_type: str,
    workspace_id: str | None,
) -> str:
    unit_id = uuid7()
    db.execute(
        "INSERT INTO units VALUES (?, ?, ?, ?, ?, ?)",
        (unit_id, workspace_id, name or symbol, symbol, definition, unit_type),
    )
    return unit_id


def resolve_unit(db: sqlite3.Connection, unit: Any, workspace_id: str) -> str:
    if isinstance(unit, dict):
        symbol = unit.get("symbol") or unit.get("name") or "unknown"
        return insert_unit(
            db,
            symbol,
            unit.get("name"),
            unit.get("definition", ""),
            unit.get("type", "Unknown"),
            unit.get("workspaceId", workspace_id),
        )
    text = str(unit)
    if (
        canonical_uuid(text)
        and db.execute("SELECT 1 FROM units WHERE id = ?", (canonical_uuid(text),)).fetchone()
    ):
        return canonical_uuid(text)  # type: ignore[return-value]
    row = db.execute(
        "SELECT id FROM units WHERE symbol = ? AND (workspace_id = ? OR workspace_id IS NULL) "
        "ORDER BY workspace_id IS NULL LIMIT 1",
        (text, workspace_id),
    ).fetchone()
    if row:
        return row["id"]
    name, definition, unit_type = _KNOWN_UNITS.get(text, (text, "", "Unknown"))
    return insert_unit(db, text, name, definition, unit_type, workspace_id)


def update_statistics(db: sqlite3.Connection, ds_pk: int) -> None:
    """Recompute phenomenonBeginTime/EndTime and valueCount, like every write on the server."""
    begin, end, count = db.execute(
        "SELECT MIN(t), MAX(t), COUNT(*) FROM observations WHERE ds = ?", (ds_pk,)
    ).fetchone()
    db.execute(
        "UPDATE datastreams SET begin_us = ?, end_us = ?, value_count = ? WHERE pk = ?",
        (begin, end, count, ds_pk),
    )


def datastream_row(db: sqlite3.Connection, ds_id: str) -> sqlite3.Row | None:
    return db.execute(
        "SELECT d.*, w.is_private AS ws_private, th.is_private AS thing_private, w.name AS ws_name "
        "FROM datastreams d JOIN workspaces w ON w.id = d.workspace_id "
        "JOIN things th ON th.id = d.thing_id WHERE d.id = ?",
        (ds_id,),
    ).fetchone()


def insert_datastream(
    db: sqlite3.Connection,
    workspace_id: str,
    name: str,
    unit: Any,
    no_data_value: float,
    is_private: bool,
    thing_id: str | None,
    description: str | None,
    tags: dict[str, str] | None,
    datastream_id: str | None,
    fields: dict[str, Any],
) -> str:
    """Add a datastream (see :meth:`LocalHydroServer.create_datastream`); returns its id."""
    require_row(db, "workspaces", workspace_id)
    if thing_id is None:
        row = db.execute(
            "SELECT id FROM things WHERE workspace_id = ? ORDER BY rowid LIMIT 1", (workspace_id,)
        ).fetchone()
        thing_id = row["id"] if row else insert_thing(db, workspace_id, "Local site", False)
    else:
        thing = require_row(db, "things", thing_id)
        if thing["workspace_id"] != workspace_id:
            raise ValueError("thing_id belongs to another workspace")
    unit_id = resolve_unit(db, unit, workspace_id)
    values = _datastream_defaults()
    for key, value in fields.items():
        column = _DATASTREAM_FIELD_COLUMNS.get(key, key)
        if column not in values:
            raise TypeError(f"Unknown datastream field {key!r}")
        values[column] = value
    ds_id = uuid7() if datastream_id is None else canonical_uuid(datastream_id)
    if ds_id is None:
        raise ValueError(f"datastream_id: expected a UUID, found {datastream_id!r}")
    values.update(
        id=ds_id,
        workspace_id=workspace_id,
        thing_id=thing_id,
        unit_id=unit_id,
        sensor_id=SENSOR_ID,
        observed_property_id=OBSERVED_PROPERTY_ID,
        processing_level_id=PROCESSING_LEVEL_ID,
        name=name,
        description=description if description is not None else f"{name} (local HydroServer)",
        no_data_value=float(no_data_value),
        is_private=int(bool(is_private)),
        tags=json.dumps(dict(tags or {})),
    )
    db.execute(
        f"INSERT INTO datastreams ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
        tuple(values.values()),
    )
    return ds_id


def seed_defaults(
    db: sqlite3.Connection,
    email: str,
    password: str,
    workspace_name: str,
    requested_key: str | None,
) -> tuple[int, str, str]:
    """Make sure the default account, its public workspace and an Editor key exist (reusing what a
    database file already holds); returns ``(user_id, workspace_id, api_key)``."""
    meta = {r["key"]: r["value"] for r in db.execute("SELECT key, value FROM meta")}
    user = db.execute("SELECT id FROM users WHERE email = ?", (email,)).fetchone()
    if user is None:
        user_id = db.execute(
            "INSERT INTO users (email, password, first_name, last_name) VALUES (?, ?, ?, ?)",
            (email, password, "Local", "Hydrologist"),
        ).lastrowid
        assert user_id is not None  # set by the INSERT
    else:
        user_id = user["id"]
        db.execute("UPDATE users SET password = ? WHERE id = ?", (password, user_id))
    user_id = int(user_id)
    workspace_id = meta.get("default_workspace_id")
    if (
        workspace_id is None
        or db.execute("SELECT 1 FROM workspaces WHERE id = ?", (workspace_id,)).fetchone() is None
    ):
        workspace_id = insert_workspace(db, workspace_name, False, user_id)
        db.execute(
            "INSERT OR REPLACE INTO meta VALUES ('default_workspace_id', ?)", (workspace_id,)
        )
    key = requested_key or meta.get("default_api_key")
    if (
        key is None
        or db.execute("SELECT 1 FROM api_keys WHERE key_hash = ?", (hash_key(key),)).fetchone()
        is None
    ):
        key = insert_api_key(db, workspace_id, "Editor", "Local default key", key)
    db.execute("INSERT OR REPLACE INTO meta VALUES ('default_api_key', ?)", (key,))
    return user_id, workspace_id, key
