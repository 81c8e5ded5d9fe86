"""Endpoints for workspaces, units and things (sites)."""

from __future__ import annotations

from hydroserver_provider.testing.hydroserver.access import (
    member_workspaces,
    visible_things,
    visible_workspaces,
)
from hydroserver_provider.testing.hydroserver.context import Context
from hydroserver_provider.testing.hydroserver.json_shapes import (
    thing_json,
    unit_json,
    workspace_detail,
    workspace_summary,
)
from hydroserver_provider.testing.hydroserver.request import Params, Request, check_order_repeats
from hydroserver_provider.testing.hydroserver.responses import (
    HttpError,
    Response,
    json_response,
    page_slice,
    paginate_headers,
)


def h_workspaces(ctx: Context, req: Request) -> Response:
    params = Params(req)
    page, page_size = params.page()
    order_by = params.literals("order_by", ("name", "isPrivate", "-name", "-isPrivate"))
    is_private = params.boolean("is_private")
    is_associated = params.boolean("is_associated")
    expand = params.boolean("expand_related")
    params.done()
    check_order_repeats(order_by)
    with ctx.store.read() as db:
        members = member_workspaces(db, req.principal)
        rows = [
            r
            for r in db.execute(
                "SELECT w.*, u.email, u.first_name, u.last_name FROM workspaces w "
                "JOIN users u ON u.id = w.owner_id ORDER BY w.id"
            )
            if not r["is_private"] or r["id"] in members
        ]
    if is_private is not None:
        rows = [r for r in rows if bool(r["is_private"]) == is_private]
    if is_associated is not None:
        rows = [r for r in rows if (r["id"] in members) == is_associated]
    for field in reversed(order_by):
        column = "is_private" if field.lstrip("-") == "isPrivate" else "name"
        rows.sort(key=lambda r: r[column], reverse=field.startswith("-"))
    page_rows = page_slice(rows, page, page_size)
    detail = expand is not False
    body = [workspace_detail(r) if detail else workspace_summary(r) for r in page_rows]
    return json_response(200, body, paginate_headers(len(rows), page, page_size))


def h_workspace(ctx: Context, req: Request) -> Response:
    params = Params(req)
    ws_id = params.path_uuid("workspace_id")
    expand = params.boolean("expand_related")
    params.done()
    with ctx.store.read() as db:
        row = db.execute(
            "SELECT w.*, u.email, u.first_name, u.last_name FROM workspaces w "
            "JOIN users u ON u.id = w.owner_id WHERE w.id = ?",
            (ws_id,),
        ).fetchone()
        if row is None or (row["is_private"] and ws_id not in member_workspaces(db, req.principal)):
            raise HttpError(404, "Workspace does not exist")
    return json_response(
        200, workspace_detail(row) if expand is not False else workspace_summary(row)
    )


def h_units(ctx: Context, req: Request) -> Response:
    params = Params(req)
    page, page_size = params.page()
    workspace_ids = params.uuids("workspace_id")
    datastream_ids = params.uuids("datastream_id")
    params.done()
    with ctx.store.read() as db:
        visible = visible_workspaces(db, req.principal)
        rows = [
            r
            for r in db.execute("SELECT * FROM units ORDER BY id")
            if r["workspace_id"] is None or r["workspace_id"] in visible
        ]
        if datastream_ids:  # the units of these datastreams
            used = {
                r["unit_id"]
                for r in db.execute(
                    f"SELECT unit_id FROM datastreams WHERE id IN "
                    f"({', '.join('?' * len(datastream_ids))})",
                    datastream_ids,
                )
            }
            rows = [r for r in rows if r["id"] in used]
    if workspace_ids:
        rows = [r for r in rows if r["workspace_id"] in workspace_ids]
    page_rows = page_slice(rows, page, page_size)
    return json_response(
        200, [unit_json(r) for r in page_rows], paginate_headers(len(rows), page, page_size)
    )


def h_unit(ctx: Context, req: Request) -> Response:
    params = Params(req)
    unit_id = params.path_uuid("unit_id")
    params.done()
    with ctx.store.read() as db:
        row = db.execute("SELECT * FROM units WHERE id = ?", (unit_id,)).fetchone()
        if row is None or (
            row["workspace_id"] is not None
            and row["workspace_id"] not in visible_workspaces(db, req.principal)
        ):
            raise HttpError(404, "Unit does not exist")
    return json_response(200, unit_json(row))


def h_things(ctx: Context, req: Request) -> Response:
    params = Params(req)
    page, page_size = params.page()
    workspace_ids = params.uuids("workspace_id")
    params.done()
    with ctx.store.read() as db:
        rows = visible_things(db, req.principal)
    if workspace_ids:
        rows = [r for r in rows if r["workspace_id"] in workspace_ids]
    page_rows = page_slice(rows, page, page_size)
    return json_response(
        200, [thing_json(r) for r in page_rows], paginate_headers(len(rows), page, page_size)
    )


def h_thing(ctx: Context, req: Request) -> Response:
    params = Params(req)
    thing_id = params.path_uuid("thing_id")
    params.done()
    with ctx.store.read() as db:
        rows = [r for r in visible_things(db, req.principal) if r["id"] == thing_id]
    if not rows:
        raise HttpError(404, "Thing does not exist")
    return json_response(200, thing_json(rows[0]))
