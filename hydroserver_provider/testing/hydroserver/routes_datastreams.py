"""Endpoints listing and reading datastreams."""

from __future__ import annotations

from typing import Any

from hydroserver_provider.testing.hydroserver.access import datastream_for_action, member_workspaces
from hydroserver_provider.testing.hydroserver.context import Context
from hydroserver_provider.testing.hydroserver.json_shapes import (
    datastream_detail,
    datastream_summary,
)
from hydroserver_provider.testing.hydroserver.request import Params, Request, check_order_repeats
from hydroserver_provider.testing.hydroserver.responses import (
    HttpError,
    Response,
    json_response,
    paginate_headers,
)

_DATASTREAM_ORDER_COLUMNS = {
    "name": "d.name",
    "observationType": "d.observation_type",
    "sampledMedium": "d.sampled_medium",
    "status": "d.status",
    "resultType": "d.result_type",
    "isPrivate": "d.is_private",
    "valueCount": "d.value_count",
    "phenomenonBeginTime": "d.begin_us",
    "phenomenonEndTime": "d.end_us",
    "resultBeginTime": "d.result_begin_us",
    "resultEndTime": "d.result_end_us",
}


_DATASTREAM_ORDER_ALLOWED = tuple(_DATASTREAM_ORDER_COLUMNS) + tuple(
    f"-{k}" for k in _DATASTREAM_ORDER_COLUMNS
)


def _order_sql(column: str, descending: bool) -> str:
    # PostgreSQL puts NULLs last when ascending and first when descending
    if descending:
        return f"({column} IS NULL) DESC, {column} DESC"
    return f"({column} IS NULL), {column}"


def _in_or_null(column: str, values: list[str | None]) -> tuple[str, list]:
    present = [v for v in values if v is not None]
    parts = []
    if present:
        parts.append(f"{column} IN ({', '.join('?' * len(present))})")
    if None in values:
        parts.append(f"{column} IS NULL")
    return f"({' OR '.join(parts)})", present


def h_datastreams(ctx: Context, req: Request) -> Response:
    params = Params(req)
    page, page_size = params.page()
    expand = params.boolean("expand_related")
    order_by = params.literals("order_by", _DATASTREAM_ORDER_ALLOWED)
    where: list[str] = []
    args: list[Any] = []
    for name, column in (
        ("workspace_id", "d.workspace_id"),
        ("thing_id", "d.thing_id"),
        ("sensor_id", "d.sensor_id"),
        ("observed_property_id", "d.observed_property_id"),
        ("processing_level_id", "d.processing_level_id"),
        ("unit_id", "d.unit_id"),
    ):
        values = params.uuids(name)
        if values:
            where.append(f"{column} IN ({', '.join('?' * len(values))})")
            args.extend(values)
    if params.uuids("result_qualifier_id"):
        where.append("0")  # HydroServer 1.11.2 answers nothing for this filter
    for name, column in (
        ("observation_type", "d.observation_type"),
        ("sampled_medium", "d.sampled_medium"),
        ("status", "d.status"),
        ("result_type", "d.result_type"),
    ):
        choices = params.strings(name)
        if choices:
            clause, clause_args = _in_or_null(column, choices)
            where.append(clause)
            args.extend(clause_args)
    tags = params.strings("tag") or []
    is_private = params.boolean("is_private")
    if is_private is not None:
        where.append("d.is_private = ? AND th.is_private = ? AND w.is_private = ?")
        args.extend([int(is_private)] * 3)
    for name, column, op in (
        ("value_count_max", "d.value_count", "<="),
        ("value_count_min", "d.value_count", ">="),
    ):
        value = params.integer(name, None)
        if value is not None:
            where.append(f"{column} {op} ?")
            args.append(value)
    for prefix, column in (
        ("phenomenon_begin_time", "d.begin_us"),
        ("phenomenon_end_time", "d.end_us"),
        ("result_begin_time", "d.result_begin_us"),
        ("result_end_time", "d.result_end_us"),
    ):
        for suffix, op in (("max", "<="), ("min", ">=")):
            value = params.datetime_us(f"{prefix}_{suffix}")
            if value is not None:
                where.append(f"{column} {op} ?")
                args.append(value)
    params.done()
    for tag in tags:
        if tag is None or ":" not in tag:
            raise HttpError(400, f"Invalid tag format: '{tag}'. Must be 'key:value'.")
        key, tag_value = tag.split(":", 1)
        where.append("EXISTS (SELECT 1 FROM json_each(d.tags) j WHERE j.key = ? AND j.value = ?)")
        args.extend([key, tag_value])
    check_order_repeats(order_by)
    order = ", ".join(
        _order_sql(_DATASTREAM_ORDER_COLUMNS[f.lstrip("-")], f.startswith("-")) for f in order_by
    )
    order = f"{order}, d.id" if order else "d.id"
    with ctx.store.read() as db:
        members = member_workspaces(db, req.principal)
        visible = "(w.is_private = 0 AND th.is_private = 0 AND d.is_private = 0)"
        if members:
            visible = f"({visible} OR d.workspace_id IN ({', '.join('?' * len(members))}))"
        clauses = " AND ".join([visible, *where])
        base = (
            "FROM datastreams d JOIN workspaces w ON w.id = d.workspace_id "
            f"JOIN things th ON th.id = d.thing_id WHERE {clauses}"
        )
        all_args = [*members, *args]
        count = db.execute(f"SELECT COUNT(*) {base}", all_args).fetchone()[0]
        rows = db.execute(
            "SELECT d.*, w.is_private AS ws_private, th.is_private AS thing_private,"
            " w.name AS ws_name "
            f"{base} ORDER BY {order} LIMIT ? OFFSET ?",
            [*all_args, page_size, (page - 1) * page_size],
        ).fetchall()
        body = [datastream_detail(db, r) if expand else datastream_summary(r) for r in rows]
    return json_response(200, body, paginate_headers(count, page, page_size))


def h_datastream(ctx: Context, req: Request) -> Response:
    params = Params(req)
    ds_id = params.path_uuid("datastream_id")
    expand = params.boolean("expand_related")
    params.done()
    with ctx.store.read() as db:
        ds = datastream_for_action(db, req.principal, ds_id, "view")
        body = datastream_detail(db, ds) if expand else datastream_summary(ds)
    return json_response(200, body)
