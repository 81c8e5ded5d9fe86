"""Endpoints reading, bulk-creating and bulk-deleting the observations of a datastream."""

from __future__ import annotations

import math
import sqlite3
import time
from typing import Any

from hydroserver_provider.testing.hydroserver.access import datastream_for_action, permissions
from hydroserver_provider.testing.hydroserver.bodies_observations import (
    BULK_FIELDS,
    NOT_A_TIME,
    parse_bulk_body,
)
from hydroserver_provider.testing.hydroserver.context import Context
from hydroserver_provider.testing.hydroserver.json_shapes import (
    checksum,
    datastream_summary,
    observation_id,
    qualifier_codes,
    workspace_summary,
)
from hydroserver_provider.testing.hydroserver.request import (
    Params,
    Request,
    check_order_repeats,
    missing,
    type_error,
)
from hydroserver_provider.testing.hydroserver.responses import (
    HttpError,
    Response,
    ServerError,
    json_response,
    paginate_headers,
)
from hydroserver_provider.testing.hydroserver.store import update_statistics
from hydroserver_provider.testing.hydroserver.values import iso, to_us


def h_observations(ctx: Context, req: Request) -> Response:
    params = Params(req)
    ds_id = params.path_uuid("datastream_id")
    page, page_size = params.page()
    order_by = params.literals("order_by", ("phenomenonTime", "-phenomenonTime"))
    response_format = params.literal("format", ("record", "row", "column"))
    t_max = params.datetime_us("phenomenon_time_max")
    t_min = params.datetime_us("phenomenon_time_min")
    codes = [c for c in (params.strings("result_qualifier_code") or []) if c is not None]
    expand = params.boolean("expand_related")
    params.done()
    with ctx.store.read() as db:
        ds = datastream_for_action(db, req.principal, ds_id, "view")
        where, args = ["ds = ?"], [ds["pk"]]
        if t_max is not None:
            where.append("t <= ?")
            args.append(t_max)
        if t_min is not None:
            where.append("t >= ?")
            args.append(t_min)
        if codes:
            where.append(
                f"EXISTS (SELECT 1 FROM json_each(o.qualifiers) j "
                f"WHERE j.value IN ({', '.join('?' * len(codes))}))"
            )
            args.extend(codes)
        clause = " AND ".join(where)
        count, max_id = db.execute(
            f"SELECT COUNT(*), MAX(id) FROM observations o WHERE {clause}", args
        ).fetchone()
        check_order_repeats(order_by or ["phenomenonTime"])
        direction = "DESC" if order_by and order_by[0] == "-phenomenonTime" else "ASC"
        rows = db.execute(
            f"SELECT id, t, result, qualifiers FROM observations o WHERE {clause} "
            f"ORDER BY t {direction}, id LIMIT ? OFFSET ?",
            [*args, page_size, (page - 1) * page_size],
        ).fetchall()
        ds_json = datastream_summary(ds) if expand and response_format in (None, "record") else None
        ws_json = None
        if ds_json is not None:
            ws_json = workspace_summary(
                db.execute(
                    "SELECT * FROM workspaces WHERE id = ?", (ds["workspace_id"],)
                ).fetchone()
            )
    headers = paginate_headers(count, page, page_size)
    headers["X-Checksum"] = checksum(observation_id(ds["id"], max_id) if max_id else None, count)
    if response_format == "row":
        body: Any = {
            "fields": list(BULK_FIELDS),
            "data": [[iso(t), r, qualifier_codes(q)] for _, t, r, q in rows],
        }
    elif response_format == "column":
        body = {
            "phenomenonTime": [iso(t) for _, t, _, _ in rows],
            "result": [r for _, _, r, _ in rows],
            "resultQualifierCodes": [qualifier_codes(q) for _, _, _, q in rows],
        }
    elif expand:
        body = [
            {
                "phenomenonTime": iso(t),
                "result": r,
                "resultQualifierCodes": qualifier_codes(q),
                "id": observation_id(ds["id"], oid),
                "workspace": ws_json,
                "datastream": ds_json,
            }
            for oid, t, r, q in rows
        ]
    else:
        body = [
            {
                "phenomenonTime": iso(t),
                "result": r,
                "resultQualifierCodes": qualifier_codes(q),
                "id": observation_id(ds["id"], oid),
                "workspaceId": ds["workspace_id"],
                "datastreamId": ds["id"],
            }
            for oid, t, r, q in rows
        ]
    return json_response(200, body, headers)


def h_bulk_create(ctx: Context, req: Request) -> Response:
    params = Params(req)
    ds_id = params.path_uuid("datastream_id")
    mode = params.literal("mode", ("insert", "append", "backfill", "replace")) or "append"
    body = req.json_body()
    parsed = parse_bulk_body(body, params.errors)
    params.done()
    assert parsed is not None
    fields, times, results, codes = parsed
    with ctx.store.read() as db:  # permission errors answer before the (slow) write
        ds = datastream_for_action(db, req.principal, ds_id, "edit")
        if "create" not in permissions(db, req.principal, ds["workspace_id"], "Observation"):
            raise HttpError(403, "You do not have permission to create these observations")
    if ctx.row_cost > 0 and times:
        time.sleep(ctx.row_cost * len(times))
    with ctx.store.tx() as db:
        ds = datastream_for_action(db, req.principal, ds_id, "edit")
        if not {"phenomenonTime", "result"}.issubset(fields):
            raise HttpError(400, "Missing required observation fields")
        no_data = ds["no_data_value"]
        results = [no_data if isinstance(r, float) and math.isnan(r) else r for r in results]
        used_codes = {c for row in codes for c in row} if codes is not None else set()
        if used_codes:
            raise HttpError(400, f"Invalid result qualifier codes: {', '.join(sorted(used_codes))}")
        if any(t is NOT_A_TIME for t in times):
            raise ServerError("phenomenonTime is not a timestamp")
        if mode == "append" and ds["end_us"] is not None:
            if not times:
                raise ServerError("min() of an empty batch")
            if min(times) <= ds["end_us"]:
                raise HttpError(
                    400,
                    "All observations must occur after the datastream's end time for append mode",
                )
        elif mode == "backfill" and ds["begin_us"] is not None:
            if not times:
                raise ServerError("max() of an empty batch")
            if max(times) >= ds["begin_us"]:
                raise HttpError(
                    400,
                    "All observations must occur before the datastream's begin time "
                    "for backfill mode",
                )
        elif mode == "replace":
            if not times:
                raise ServerError("min() of an empty batch")
            if "delete" not in permissions(db, req.principal, ds["workspace_id"], "Observation"):
                raise HttpError(403, "You do not have permission to delete these observations")
            db.execute(
                "DELETE FROM observations WHERE ds = ? AND t >= ? AND t <= ?",
                (ds["pk"], min(times), max(times)),
            )
        if any(r is None for r in results):
            raise ServerError('null value in column "result" violates not-null constraint')
        pk = ds["pk"]
        try:
            db.executemany(
                "INSERT INTO observations (ds, t, result) VALUES (?, ?, ?)",
                zip([pk] * len(times), times, results),
            )
        except sqlite3.IntegrityError:
            raise HttpError(409, "Duplicate phenomenonTime found on this datastream.") from None
        update_statistics(db, pk)
    return Response(201, b"", None)


def h_bulk_delete(ctx: Context, req: Request) -> Response:
    params = Params(req)
    ds_id = params.path_uuid("datastream_id")
    body = req.json_body()
    start = end = None
    if body is None:
        params.errors.append(missing(["body", "data"]))
    elif not isinstance(body, dict):
        params.errors.append(type_error(["body", "data"], "model_type", body))
    else:
        bounds: list[int | None] = []
        for name in ("phenomenonTimeStart", "phenomenonTimeEnd"):
            value = body.get(
                name, body.get("phenomenon_time_" + name[len("phenomenonTime") :].lower())
            )
            if value in (None, ""):
                bounds.append(None)
                continue
            try:
                if not isinstance(value, str):
                    raise TypeError
                bounds.append(to_us(value))
            except (TypeError, ValueError):
                params.errors.append(
                    {
                        "type": "value_error",
                        "loc": ["body", "data", name],
                        "msg": "Value error, Invalid ISO time format",
                        "input": value,
                        "ctx": {"error": "Invalid ISO time format"},
                    }
                )
                bounds.append(None)
        start, end = bounds
    params.done()
    with ctx.store.tx() as db:
        ds = datastream_for_action(db, req.principal, ds_id, "edit")
        if "delete" not in permissions(db, req.principal, ds["workspace_id"], "Observation"):
            raise HttpError(403, "You do not have permission to delete these observations")
        where, args = ["ds = ?"], [ds["pk"]]
        if start is not None:
            where.append("t >= ?")
            args.append(start)
        if end is not None:
            where.append("t <= ?")
            args.append(end)
        db.execute(f"DELETE FROM observations WHERE {' AND '.join(where)}", args)
        update_statistics(db, ds["pk"])
    return Response(204, b"", None)
