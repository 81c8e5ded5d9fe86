"""The route table: which endpoint answers which method and path, and with what authentication."""

from __future__ import annotations

import re
from collections.abc import Callable

from hydroserver_provider.testing.hydroserver import (
    routes_auth,
    routes_catalog,
    routes_datastreams,
    routes_etl,
    routes_observations,
)
from hydroserver_provider.testing.hydroserver.access import authenticate
from hydroserver_provider.testing.hydroserver.context import Context
from hydroserver_provider.testing.hydroserver.request import Request
from hydroserver_provider.testing.hydroserver.responses import HttpError, Response

Endpoint = Callable[[Context, Request], Response]

_ID = r"(?P<{}>[^/]+)"


def _entry(methods: str, template: str, endpoint: Endpoint, auth: str) -> tuple:
    pattern = re.escape(template)
    for name in re.findall(r"\\\{(\w+)\\\}", pattern):
        pattern = pattern.replace(r"\{" + name + r"\}", _ID.format(name))
    return frozenset(methods.split()), re.compile(pattern), endpoint, auth


_SESSION = "/api/auth/{client}/session"
_DATASTREAM = "/api/data/datastreams/{datastream_id}"
_CONNECTIONS = "/api/data/etl/data-connections"
_TASKS = "/api/data/etl/tasks"

# auth: "anonymous" = key/session optional (public GETs), "required" = 401 without,
# "none" = not checked
ROUTES = [
    _entry("POST", _SESSION, routes_auth.h_session_create, "none"),
    _entry("GET", _SESSION, routes_auth.h_session_get, "none"),
    _entry("DELETE", _SESSION, routes_auth.h_session_delete, "none"),
    _entry("GET", "/api/data/workspaces", routes_catalog.h_workspaces, "anonymous"),
    _entry("GET", "/api/data/workspaces/{workspace_id}", routes_catalog.h_workspace, "anonymous"),
    _entry("GET", "/api/data/units", routes_catalog.h_units, "anonymous"),
    _entry("GET", "/api/data/units/{unit_id}", routes_catalog.h_unit, "anonymous"),
    _entry("GET", "/api/data/things", routes_catalog.h_things, "anonymous"),
    _entry("GET", "/api/data/things/{thing_id}", routes_catalog.h_thing, "anonymous"),
    _entry("GET", "/api/data/datastreams", routes_datastreams.h_datastreams, "anonymous"),
    _entry("GET", _DATASTREAM, routes_datastreams.h_datastream, "anonymous"),
    _entry("GET", f"{_DATASTREAM}/observations", routes_observations.h_observations, "anonymous"),
    _entry(
        "POST",
        f"{_DATASTREAM}/observations/bulk-create",
        routes_observations.h_bulk_create,
        "required",
    ),
    _entry(
        "POST",
        f"{_DATASTREAM}/observations/bulk-delete",
        routes_observations.h_bulk_delete,
        "required",
    ),
    _entry("GET", _CONNECTIONS, routes_etl.h_data_connections, "required"),
    _entry("POST", _CONNECTIONS, routes_etl.h_data_connection_create, "required"),
    _entry(
        "GET", f"{_CONNECTIONS}/{{data_connection_id}}", routes_etl.h_data_connection, "required"
    ),
    _entry("GET", _TASKS, routes_etl.h_tasks, "required"),
    _entry("POST", _TASKS, routes_etl.h_task_create, "required"),
    _entry("GET", f"{_TASKS}/{{task_id}}", routes_etl.h_task, "required"),
    _entry("PATCH", f"{_TASKS}/{{task_id}}", routes_etl.h_task_patch, "required"),
    _entry("GET", f"{_TASKS}/{{task_id}}/runs", routes_etl.h_task_runs, "required"),
]


def route(ctx: Context, req: Request) -> Response:
    """Authenticate as the matching route asks and answer; 405 on a known path, else 404."""
    path_matched = False
    for methods, pattern, endpoint, auth in ROUTES:
        match = pattern.fullmatch(req.path)
        if not match:
            continue
        path_matched = True
        if req.method not in methods:
            continue
        req.params = match.groupdict()
        if auth != "none":
            req.principal = authenticate(ctx, req, allow_anonymous=(auth == "anonymous"))
        return endpoint(ctx, req)
    if path_matched:
        allowed = sorted(
            {m for methods, pattern, _, _ in ROUTES if pattern.fullmatch(req.path) for m in methods}
        )
        return Response(
            405, b"Method not allowed", "text/html; charset=utf-8", {"Allow": ", ".join(allowed)}
        )
    raise HttpError(404, "Not Found")
