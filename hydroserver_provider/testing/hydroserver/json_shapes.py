"""The JSON bodies the real server answers, built from stored rows (camelCase, same field order)."""

from __future__ import annotations

import copy
import hashlib
import json
import sqlite3
import uuid
from datetime import datetime, timedelta

from hydroserver_provider.testing.hydroserver.store import datastream_row
from hydroserver_provider.testing.hydroserver.values import UTC, iso, iso_dt
from hydroserver_provider.testing.hydroserver.vocabulary import (
    OBSERVED_PROPERTY,
    PROCESSING_LEVEL,
    SENSOR,
)


def datastream_summary(r: sqlite3.Row) -> dict:
    return {
        "name": r["name"],
        "description": r["description"],
        "observationType": r["observation_type"],
        "sampledMedium": r["sampled_medium"],
        "noDataValue": r["no_data_value"],
        "aggregationStatistic": r["aggregation_statistic"],
        "timeAggregationInterval": r["time_aggregation_interval"],
        "status": r["status"],
        "resultType": r["result_type"],
        "valueCount": r["value_count"],
        "phenomenonBeginTime": iso(r["begin_us"]),
        "phenomenonEndTime": iso(r["end_us"]),
        "resultBeginTime": iso(r["result_begin_us"]),
        "resultEndTime": iso(r["result_end_us"]),
        "isPrivate": bool(r["is_private"]),
        "isVisible": bool(r["is_visible"]),
        "timeAggregationIntervalUnit": r["time_aggregation_interval_unit"],
        "intendedTimeSpacing": r["intended_time_spacing"],
        "intendedTimeSpacingUnit": r["intended_time_spacing_unit"],
        "thingId": r["thing_id"],
        "sensorId": r["sensor_id"],
        "observedPropertyId": r["observed_property_id"],
        "processingLevelId": r["processing_level_id"],
        "unitId": r["unit_id"],
        "id": r["id"],
        "workspaceId": r["workspace_id"],
        "tags": [{"key": k, "value": v} for k, v in json.loads(r["tags"]).items()],
        "fileAttachments": [],
    }


def datastream_detail(db: sqlite3.Connection, ds: sqlite3.Row) -> dict:
    body = datastream_summary(ds)
    for key in (
        "thingId",
        "sensorId",
        "observedPropertyId",
        "processingLevelId",
        "unitId",
        "workspaceId",
    ):
        body.pop(key)
    workspace = db.execute(
        "SELECT * FROM workspaces WHERE id = ?", (ds["workspace_id"],)
    ).fetchone()
    thing = db.execute("SELECT * FROM things WHERE id = ?", (ds["thing_id"],)).fetchone()
    unit = db.execute("SELECT * FROM units WHERE id = ?", (ds["unit_id"],)).fetchone()
    body.update(
        workspace=workspace_summary(workspace),
        thing=thing_json(thing),
        sensor=dict(SENSOR),
        observedProperty=dict(OBSERVED_PROPERTY),
        processingLevel=dict(PROCESSING_LEVEL),
        unit=unit_json(unit),
    )
    return body


def unit_json(r: sqlite3.Row) -> dict:
    return {
        "name": r["name"],
        "symbol": r["symbol"],
        "definition": r["definition"],
        "type": r["type"],
        "id": r["id"],
        "workspaceId": r["workspace_id"],
    }


def thing_json(r: sqlite3.Row) -> dict:
    return {
        "name": r["name"],
        "description": r["description"],
        "samplingFeatureType": "Site",
        "samplingFeatureCode": r["sampling_feature_code"],
        "siteType": r["site_type"],
        "isPrivate": bool(r["is_private"]),
        "dataDisclaimer": None,
        "id": r["id"],
        "workspaceId": r["workspace_id"],
        "location": {
            "latitude": r["latitude"],
            "longitude": r["longitude"],
            "elevation_m": None,
            "elevationDatum": None,
            "adminArea1": None,
            "adminArea2": None,
            "country": None,
        },
        "tags": [],
        "fileAttachments": [],
    }


def workspace_summary(r: sqlite3.Row) -> dict:
    return {"name": r["name"], "isPrivate": bool(r["is_private"]), "id": r["id"]}


def workspace_detail(r: sqlite3.Row) -> dict:
    return {
        **workspace_summary(r),
        "owner": {
            "phone": None,
            "address": None,
            "link": None,
            "type": "Other",
            "name": f"{r['first_name']} {r['last_name']}",
            "email": r["email"],
            "organizationName": None,
        },
        "collaboratorRole": None,
        "pendingTransferTo": None,
    }


def account_json(user: sqlite3.Row) -> dict:
    return {
        "firstName": user["first_name"],
        "middleName": None,
        "lastName": user["last_name"],
        "phone": None,
        "address": None,
        "link": None,
        "type": "Other",
        "organization": None,
        "email": user["email"],
        "accountType": "standard",
    }


def observation_id(ds_id: str, rowid: int) -> str:
    # stable per stored row: the datastream id's first 80 bits, the row number in the last 48
    return f"{ds_id[:24]}{rowid:012x}"


def qualifier_codes(raw: str | None) -> list:
    return json.loads(raw) if raw else []


def checksum(max_id: str | None, count: int) -> str:
    id_bytes = uuid.UUID(max_id).bytes if max_id else b"\x00" * 16
    count_bytes = count.to_bytes((count.bit_length() + 7) // 8 or 1, "big")
    return hashlib.sha256(id_bytes + count_bytes).hexdigest()[:16]


def schedule_response(schedule: dict | None) -> dict | None:
    if schedule is None:
        return None
    next_run = None
    if schedule.get("enabled") and schedule.get("interval") and schedule.get("intervalPeriod"):
        step = timedelta(**{schedule["intervalPeriod"]: schedule["interval"]})
        start = datetime.fromisoformat(schedule["startTime"])
        now = datetime.now(UTC)
        if start > now:
            next_run = start
        else:
            next_run = start + step * (int((now - start) / step) + 1)
    return {
        "enabled": bool(schedule.get("enabled", True)),
        "startTime": schedule.get("startTime"),
        "crontab": schedule.get("crontab"),
        "interval": schedule.get("interval"),
        "intervalPeriod": schedule.get("intervalPeriod"),
        "nextRunAt": iso_dt(next_run),
    }


def data_connection_json(db: sqlite3.Connection, row: sqlite3.Row) -> dict:
    body = json.loads(row["body"])
    workspace = db.execute(
        "SELECT * FROM workspaces WHERE id = ?", (row["workspace_id"],)
    ).fetchone()
    task_count = db.execute(
        "SELECT COUNT(*) FROM etl_tasks WHERE data_connection_id = ?", (row["id"],)
    ).fetchone()[0]
    return {
        "id": row["id"],
        "name": body["name"],
        "description": body.get("description"),
        "sourceUrl": body["sourceUrl"],
        "authHeaderName": body.get("authHeaderName"),
        "authHeaderValue": body.get("authHeaderValue"),
        "timezoneType": body.get("timezoneType"),
        "timezone": body.get("timezone"),
        "workspace": workspace_summary(workspace),
        "payload": copy.deepcopy(body["payload"]),
        "placeholderVariables": copy.deepcopy(body["placeholderVariables"]),
        "notification": copy.deepcopy(body.get("notification")),
        "taskCount": task_count,
        "taskAttentionCount": 0,
    }


def task_workspace(db: sqlite3.Connection, row: sqlite3.Row) -> str:
    return db.execute(
        "SELECT workspace_id FROM data_connections WHERE id = ?", (row["data_connection_id"],)
    ).fetchone()[0]


def task_summary(db: sqlite3.Connection, row: sqlite3.Row) -> dict:
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "workspaceId": task_workspace(db, row),
        "dataConnectionId": row["data_connection_id"],
        "taskVariables": json.loads(row["task_variables"]),
        "schedule": schedule_response(json.loads(row["schedule"]) if row["schedule"] else None),
        "latestRun": None,
    }


def task_detail(db: sqlite3.Connection, row: sqlite3.Row) -> dict:
    dc = db.execute(
        "SELECT * FROM data_connections WHERE id = ?", (row["data_connection_id"],)
    ).fetchone()
    mappings = []
    for m in db.execute("SELECT * FROM etl_mappings WHERE task_id = ? ORDER BY pk", (row["id"],)):
        ds = datastream_row(db, m["datastream_id"])
        if ds is not None:
            mappings.append(
                {
                    "sourceIdentifier": m["source_identifier"],
                    "targetDatastream": datastream_summary(ds),
                }
            )
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "taskVariables": json.loads(row["task_variables"]),
        "dataConnection": data_connection_json(db, dc),
        "schedule": schedule_response(json.loads(row["schedule"]) if row["schedule"] else None),
        "latestRun": None,
        "mappings": mappings,
    }
