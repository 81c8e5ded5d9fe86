"""The Test button of Airflow 3.3's connection list, made to work for this provider's connections.

**The bug** (Airflow 3.3.2): the Test button posts the stored connection back to
``POST /api/v2/connections/test`` with ``port: Number(port)`` -- ``0`` for a connection without a
port, which is every ``hydroserver`` and ``hydrocron`` connection made in the form (the port field
is hidden: the port belongs in the URL). The API server compares that ``0`` with the stored port
(empty), concludes that another destination is being tested, and refuses to reuse the stored
credentials: 400 "The host or port to test differs from the stored connection", which the UI shows
as a bare "Bad Request".

**The way around it**: :class:`ConnectionTestMiddleware`, a root middleware of the API server
(registered by :mod:`hydroserver_provider.hooks.airflow_plugin` through the ``airflow.plugins``
entry point), removes ``port: 0`` from test requests of these two connection types before Airflow
reads them. Port 0 is no destination (no server listens on it, and the hooks ignore it), so the
request then tests exactly the stored connection, as intended; Airflow's check still refuses any
other host or port. Every other request passes through untouched.

The middleware also remembers which connection is being tested
(:func:`tested_connection_id`): Airflow runs the test under a random temporary connection id, and
a message naming that id ("connection 'kqzvmtdo' has no credentials") would mislead.

Nothing here imports Airflow, so the hooks can read :func:`tested_connection_id` cheaply.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from typing import Any

CONNECTION_TYPES = frozenset({"hydroserver", "hydrocron"})
TEST_PATH = "/api/v2/connections/test"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_tested_connection: ContextVar[str | None] = ContextVar("hydroserver_tested_connection",
                                                        default=None)


def tested_connection_id() -> str | None:
    """The id of the connection the Test button is testing right now (in the API server, while
    :class:`ConnectionTestMiddleware` handles the request), else None."""
    return _tested_connection.get()


def rewrite_test_body(body: bytes) -> tuple[bytes, str | None]:
    """``(body to pass on, tested connection id)`` for the body of a connection test.

    For this provider's connection types, ``"port": 0`` is removed; any other body (another
    connection type, not JSON) is passed on unchanged, with no id.
    """
    try:
        data = json.loads(body)
    except ValueError:
        return body, None
    if not isinstance(data, dict) or data.get("conn_type") not in CONNECTION_TYPES:
        return body, None
    if type(data.get("port")) is int and data["port"] == 0:  # not False, not 0.5
        del data["port"]
        body = json.dumps(data).encode()
    conn_id = data.get("connection_id")
    return body, conn_id if isinstance(conn_id, str) and conn_id else None


class ConnectionTestMiddleware:
    """ASGI middleware: see the module's description. Only ``POST .../api/v2/connections/test``
    is read; every other request goes straight to the app."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope.get("type") != "http" or scope.get("method") != "POST"
                or not str(scope.get("path", "")).rstrip("/").endswith(TEST_PATH)):
            await self.app(scope, receive, send)
            return
        received: list[Message] = []
        body = b""
        while True:
            message = await receive()
            received.append(message)
            if message.get("type") != "http.request":  # the client went away: pass it on
                await self.app(scope, _replay(received, receive), send)
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        new_body, conn_id = rewrite_test_body(body)
        if new_body is not body:
            scope = dict(scope)
            scope["headers"] = [(name, value) for name, value in scope.get("headers", [])
                                if name.lower() != b"content-length"]
            scope["headers"].append((b"content-length", str(len(new_body)).encode()))
        token = _tested_connection.set(conn_id)
        try:
            await self.app(scope, _replay([{"type": "http.request", "body": new_body,
                                            "more_body": False}], receive), send)
        finally:
            _tested_connection.reset(token)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that hands out ``messages`` first, then waits on the real one."""
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
