"""Endpoints for ETL data connections and tasks, and the writes the seeding helpers share."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from hydroserver_provider.testing.hydroserver.access import (
    Principal,
    datastream_for_action,
    permissions,
)
from hydroserver_provider.testing.hydroserver.bodies_etl import (
    apply_schedule,
    validate_data_connection,
    validate_task_body,
)
from hydroserver_provider.testing.hydroserver.context import Context
from hydroserver_provider.testing.hydroserver.json_shapes import (
    data_connection_json,
    task_detail,
    task_summary,
    task_workspace,
)
from hydroserver_provider.testing.hydroserver.request import Params, Request
from hydroserver_provider.testing.hydroserver.responses import (
    HttpError,
    Response,
    json_response,
    page_slice,
    paginate_headers,
)
from hydroserver_provider.testing.hydroserver.store import datastream_row
from hydroserver_provider.testing.hydroserver.values import uuid7

_DC_ORDER_KEYS = {
    "id": lambda i: i["id"],
    "name": lambda i: i["name"],
    "timestampKey": lambda i: i["payload"].get("timestampKey"),
    "timestampFormat": lambda i: i["payload"].get("timestampFormat"),
    "timezoneType": lambda i: i.get("timezoneType"),
    "timezone": lambda i: i.get("timezone"),
    "workspaceId": lambda i: i["workspace"]["id"],
    "workspaceName": lambda i: i["workspace"]["name"],
}


_DC_ORDER_ALLOWED = tuple(_DC_ORDER_KEYS) + tuple(f"-{k}" for k in _DC_ORDER_KEYS)


_TASK_ORDER_FIELDS = (
    "id",
    "name",
    "dataConnectionId",
    "dataConnectionName",
    "workspaceId",
    "workspaceName",
    "latestRunStatus",
    "latestRunStartedAt",
    "latestRunFinishedAt",
)


_TASK_ORDER_ALLOWED = _TASK_ORDER_FIELDS + tuple(f"-{k}" for k in _TASK_ORDER_FIELDS)


def _sort_key(value: Any) -> tuple:
    return (value is None, value if value is not None else "")


def _sort_items(items: list[dict], order_by: list[str], keys: dict) -> list[dict]:
    items = sorted(items, key=lambda i: i["id"], reverse=True)  # the "-id" every ETL list ends with
    for field in reversed(order_by):
        getter = keys[field.lstrip("-")]
        items.sort(key=lambda i: _sort_key(getter(i)), reverse=field.startswith("-"))
    return items


def _sort_pairs(
    pairs: list[tuple[dict, sqlite3.Row]], order_by: list[str], db: sqlite3.Connection
) -> list:
    def dc_name(summary: dict) -> str:
        row = db.execute(
            "SELECT body FROM data_connections WHERE id = ?", (summary["dataConnectionId"],)
        ).fetchone()
        return json.loads(row[0])["name"]

    def ws_name(summary: dict) -> str:
        return db.execute(
            "SELECT name FROM workspaces WHERE id = ?", (summary["workspaceId"],)
        ).fetchone()[0]

    keys = {
        "id": lambda s: s["id"],
        "name": lambda s: s["name"],
        "dataConnectionId": lambda s: s["dataConnectionId"],
        "dataConnectionName": dc_name,
        "workspaceId": lambda s: s["workspaceId"],
        "workspaceName": ws_name,
        "latestRunStatus": lambda s: None,
        "latestRunStartedAt": lambda s: None,
        "latestRunFinishedAt": lambda s: None,
    }
    pairs = sorted(pairs, key=lambda p: p[0]["id"], reverse=True)
    for field in reversed(order_by):
        getter = keys[field.lstrip("-")]
        pairs.sort(key=lambda p: _sort_key(getter(p[0])), reverse=field.startswith("-"))
    return pairs


def _etl_permissions(
    db: sqlite3.Connection, principal: Principal | None, workspace_id: str
) -> set[str]:
    return permissions(db, principal, workspace_id, "ETL")


def _visible_data_connections(
    db: sqlite3.Connection, principal: Principal | None
) -> list[sqlite3.Row]:
    return [
        r
        for r in db.execute("SELECT * FROM data_connections ORDER BY id DESC")
        if "view" in _etl_permissions(db, principal, r["workspace_id"])
    ]


def h_data_connections(ctx: Context, req: Request) -> Response:
    params = Params(req)
    page, page_size = params.page()
    order_by = params.literals("order_by", _DC_ORDER_ALLOWED)
    workspace_ids = params.uuids("workspace_id")
    payload_types = params.strings("payload_type")
    params.done()
    if page_size == 0:
        raise HttpError(400, "page_size: Input should be greater than 0")
    with ctx.store.read() as db:
        items = [data_connection_json(db, r) for r in _visible_data_connections(db, req.principal)]
    if workspace_ids is not None:
        items = [i for i in items if i["workspace"]["id"] in workspace_ids]
    if payload_types is not None:
        items = [i for i in items if i["payload"]["type"] in payload_types]
    items = _sort_items(items, order_by, _DC_ORDER_KEYS)
    page_items = page_slice(items, page, page_size)
    return json_response(200, page_items, paginate_headers(len(items), page, page_size))


def h_data_connection(ctx: Context, req: Request) -> Response:
    params = Params(req)
    dc_id = params.path_uuid("data_connection_id")
    params.done()
    with ctx.store.read() as db:
        row = db.execute("SELECT * FROM data_connections WHERE id = ?", (dc_id,)).fetchone()
        if row is None or "view" not in _etl_permissions(db, req.principal, row["workspace_id"]):
            raise HttpError(404, f"Data connection with ID {dc_id} does not exist.")
        return json_response(200, data_connection_json(db, row))


def h_data_connection_create(ctx: Context, req: Request) -> Response:
    body = req.json_body()
    with ctx.store.tx() as db:
        dc_id = insert_data_connection(db, body, principal=req.principal)
        row = db.execute("SELECT * FROM data_connections WHERE id = ?", (dc_id,)).fetchone()
        return json_response(201, data_connection_json(db, row))


def insert_data_connection(db: sqlite3.Connection, body: Any, principal: Principal | None) -> str:
    normalised = validate_data_connection(body)
    workspace_id = normalised.pop("workspaceId")
    if db.execute("SELECT 1 FROM workspaces WHERE id = ?", (workspace_id,)).fetchone() is None:
        raise HttpError(404, "Workspace does not exist")
    if principal is not None and "create" not in _etl_permissions(db, principal, workspace_id):
        raise HttpError(403, "You do not have permission to create this data connection.")
    dc_id = normalised.pop("id", None) or uuid7()
    if db.execute("SELECT 1 FROM data_connections WHERE id = ?", (dc_id,)).fetchone():
        raise HttpError(409, "The operation could not be completed due to a resource conflict.")
    db.execute(
        "INSERT INTO data_connections VALUES (?, ?, ?)",
        (dc_id, workspace_id, json.dumps(normalised)),
    )
    return dc_id


def _task_for_action(
    db: sqlite3.Connection, principal: Principal | None, task_id: str, action: str
) -> sqlite3.Row:
    row = db.execute("SELECT * FROM etl_tasks WHERE id = ?", (task_id,)).fetchone()
    if row is None:
        raise HttpError(404, f"Task with ID {task_id} does not exist.")
    perms = _etl_permissions(db, principal, task_workspace(db, row))
    if "view" not in perms:
        raise HttpError(404, f"Task with ID {task_id} does not exist.")
    if action not in perms:
        raise HttpError(403, f"You do not have permission to {action} this task.")
    return row


def h_tasks(ctx: Context, req: Request) -> Response:
    params = Params(req)
    page, page_size = params.page()
    order_by = params.literals("order_by", _TASK_ORDER_ALLOWED)
    workspace_ids = params.uuids("workspace_id")
    dc_ids = params.uuids("data_connection_id")
    thing_ids = params.uuids("thing_id")
    statuses = params.strings("latest_run_status")
    expand = params.boolean("expand_related")
    params.done()
    if page_size == 0:
        raise HttpError(400, "page_size: Input should be greater than 0")
    with ctx.store.read() as db:
        rows = [
            r
            for r in db.execute("SELECT * FROM etl_tasks ORDER BY id DESC")
            if "view" in _etl_permissions(db, req.principal, task_workspace(db, r))
        ]
        if workspace_ids is not None:
            rows = [r for r in rows if task_workspace(db, r) in workspace_ids]
        if dc_ids is not None:
            rows = [r for r in rows if r["data_connection_id"] in dc_ids]
        if thing_ids is not None:
            thing_marks = ", ".join("?" * len(thing_ids)) or "NULL"
            rows = [
                r
                for r in rows
                if db.execute(
                    "SELECT 1 FROM etl_mappings m JOIN datastreams d ON d.id = m.datastream_id "
                    f"WHERE m.task_id = ? AND d.thing_id IN ({thing_marks})",
                    (r["id"], *thing_ids),
                ).fetchone()
            ]
        if statuses is not None:
            rows = [r for r in rows if None in statuses]  # no task has run on the local server
        items = [(task_summary(db, r), r) for r in rows]
        items = _sort_pairs(items, order_by, db)
        page_items = page_slice(items, page, page_size)
        body = [task_detail(db, r) if expand else summary for summary, r in page_items]
    return json_response(200, body, paginate_headers(len(items), page, page_size))


def h_task(ctx: Context, req: Request) -> Response:
    params = Params(req)
    task_id = params.path_uuid("task_id")
    expand = params.boolean("expand_related")
    params.done()
    with ctx.store.read() as db:
        row = _task_for_action(db, req.principal, task_id, "view")
        return json_response(200, task_detail(db, row) if expand else task_summary(db, row))


def h_task_create(ctx: Context, req: Request) -> Response:
    body = req.json_body()
    with ctx.store.tx() as db:
        task_id = insert_task(db, body, principal=req.principal)
        row = db.execute("SELECT * FROM etl_tasks WHERE id = ?", (task_id,)).fetchone()
        return json_response(201, task_summary(db, row))


def h_task_patch(ctx: Context, req: Request) -> Response:
    params = Params(req)
    task_id = params.path_uuid("task_id")
    body = req.json_body()
    patch = validate_task_body(body, params.errors, partial=True)
    params.done()
    with ctx.store.tx() as db:
        row = _task_for_action(db, req.principal, task_id, "edit")
        updates = {}
        if "name" in patch:
            updates["name"] = patch["name"]
        if "description" in patch:
            updates["description"] = patch["description"]
        if "taskVariables" in patch:
            updates["task_variables"] = json.dumps(patch["taskVariables"])
        if "schedule" in patch:
            current = json.loads(row["schedule"]) if row["schedule"] else None
            changes = (
                patch["schedule"]
                if patch["schedule"] is not None
                else {"crontab": None, "interval": None}
            )
            new = apply_schedule(current, changes)
            updates["schedule"] = json.dumps(new) if new is not None else None
        if updates:
            db.execute(
                f"UPDATE etl_tasks SET {', '.join(f'{k} = ?' for k in updates)} WHERE id = ?",
                (*updates.values(), task_id),
            )
        if "mappings" in patch:
            _apply_mappings(
                db, task_id, row["data_connection_id"], patch["mappings"], req.principal
            )
        row = db.execute("SELECT * FROM etl_tasks WHERE id = ?", (task_id,)).fetchone()
        return json_response(200, task_summary(db, row))


def h_task_runs(ctx: Context, req: Request) -> Response:
    params = Params(req)
    task_id = params.path_uuid("task_id")
    page, page_size = params.page()
    params.done()
    with ctx.store.read() as db:
        _task_for_action(db, req.principal, task_id, "view")
    return json_response(200, [], paginate_headers(0, page, page_size))


def insert_task(db: sqlite3.Connection, body: Any, principal: Principal | None) -> str:
    errors: list[dict] = []
    task = validate_task_body(body, errors, partial=False)
    if errors:
        raise HttpError(422, errors)
    dc = db.execute(
        "SELECT * FROM data_connections WHERE id = ?", (task["dataConnectionId"],)
    ).fetchone()
    if dc is None:
        raise HttpError(404, f"Data connection with ID {task['dataConnectionId']} does not exist.")
    if principal is not None and "create" not in _etl_permissions(
        db, principal, dc["workspace_id"]
    ):
        raise HttpError(403, "You do not have permission to create this task.")
    task_id = task.get("id") or uuid7()
    if db.execute("SELECT 1 FROM etl_tasks WHERE id = ?", (task_id,)).fetchone():
        raise HttpError(409, "The operation could not be completed due to a resource conflict.")
    schedule_in = task.get("schedule")
    schedule = apply_schedule(None, {"enabled": True, **schedule_in}) if schedule_in else None
    db.execute(
        "INSERT INTO etl_tasks VALUES (?, ?, ?, ?, ?, ?)",
        (
            task_id,
            dc["id"],
            task["name"],
            task.get("description"),
            json.dumps(task.get("taskVariables", {})),
            json.dumps(schedule) if schedule else None,
        ),
    )
    _apply_mappings(db, task_id, dc["id"], task.get("mappings", []), principal)
    return task_id


def _apply_mappings(
    db: sqlite3.Connection,
    task_id: str,
    dc_id: str,
    mappings: list[dict],
    principal: Principal | None,
) -> None:
    workspace_id = db.execute(
        "SELECT workspace_id FROM data_connections WHERE id = ?", (dc_id,)
    ).fetchone()[0]
    for m in mappings:
        target = m["targetDatastreamId"]
        ds: sqlite3.Row | None
        if principal is not None:
            ds = datastream_for_action(db, principal, target, "edit")
        else:
            ds = datastream_row(db, target)
            if ds is None:
                raise HttpError(404, "Datastream does not exist")
        if ds["workspace_id"] != workspace_id:
            raise HttpError(
                400, f"Datastream {target} does not belong to workspace {workspace_id}."
            )
    existing = {
        r["datastream_id"]
        for r in db.execute("SELECT datastream_id FROM etl_mappings WHERE task_id = ?", (task_id,))
    }
    new_targets = [
        m["targetDatastreamId"] for m in mappings if m["targetDatastreamId"] not in existing
    ]
    if new_targets:
        target_marks = ", ".join("?" * len(new_targets))
        conflicts = [
            r[0]
            for r in db.execute(
                "SELECT datastream_id FROM etl_mappings"
                f" WHERE datastream_id IN ({target_marks})",
                new_targets,
            )
        ]
        if conflicts:
            raise HttpError(
                400, f"Datastream(s) {', '.join(conflicts)} are already mapped to by another task."
            )
    wanted = {(m["sourceIdentifier"], m["targetDatastreamId"]) for m in mappings}
    current = {
        (r["source_identifier"], r["datastream_id"]): r["pk"]
        for r in db.execute("SELECT * FROM etl_mappings WHERE task_id = ?", (task_id,))
    }
    for key, pk in current.items():
        if key not in wanted:
            db.execute("DELETE FROM etl_mappings WHERE pk = ?", (pk,))
    for m in mappings:
        key = (m["sourceIdentifier"], m["targetDatastreamId"])
        if key not in current:
            current[key] = db.execute(
                "INSERT INTO etl_mappings (task_id, source_identifier, datastream_id)"
                " VALUES (?, ?, ?)",
                (task_id, *key),
            ).lastrowid
