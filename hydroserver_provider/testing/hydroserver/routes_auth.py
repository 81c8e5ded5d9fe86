"""Endpoints under ``/api/auth/{client}/session``: session login, lookup and logout."""

from __future__ import annotations

import re
import secrets
import sqlite3
import time

from hydroserver_provider.testing.hydroserver.context import Context
from hydroserver_provider.testing.hydroserver.json_shapes import account_json
from hydroserver_provider.testing.hydroserver.request import (
    Params,
    Request,
    literal_error,
    missing,
    type_error,
)
from hydroserver_provider.testing.hydroserver.responses import Response, json_response


def check_credentials(db: sqlite3.Connection, email: str, password: str) -> sqlite3.Row | None:
    user = db.execute("SELECT * FROM users WHERE email = ? AND is_active = 1", (email,)).fetchone()
    if user is None or not secrets.compare_digest(str(user["password"]), str(password)):
        return None
    return user


def new_session(db: sqlite3.Connection, user_id: int) -> str:
    token = secrets.token_urlsafe(24)
    db.execute("INSERT INTO sessions VALUES (?, ?, ?)", (token, user_id, time.time()))
    return token


def _session_payload(user: sqlite3.Row, status: int = 200) -> dict:
    return {
        "status": status,
        "data": {
            "user": {
                "id": user["id"],
                "display": f"{user['first_name']} {user['last_name']}",
                "email": user["email"],
                "has_usable_password": True,
            },
            "methods": [{"method": "password", "at": time.time(), "email": user["email"]}],
            "account": account_json(user),
        },
        "meta": {"is_authenticated": True},
    }


def _session_token(req: Request) -> str | None:
    token = req.header("X-Session-Token")
    if token:
        return token
    authorization = req.header("Authorization") or ""
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return None


def _unauthenticated_session(status: int) -> Response:
    return json_response(
        status,
        {
            "status": status,
            "data": {"flows": [{"id": "login"}, {"id": "signup"}]},
            "meta": {"is_authenticated": False},
        },
    )


def h_session_create(ctx: Context, req: Request) -> Response:
    params = Params(req)
    client = req.params["client"]
    if client not in ("browser", "app"):
        params.errors.append(literal_error(["path", "client"], client, ("browser", "app")))
    body = req.json_body()
    if body is None:
        params.errors.append(missing(["body", "data"]))
    elif not isinstance(body, dict):
        params.errors.append(type_error(["body", "data"], "model_type", body))
    else:
        email, password = body.get("email"), body.get("password")
        if email is None:
            params.errors.append(missing(["body", "data", "email"]))
        elif not isinstance(email, str) or not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
            params.errors.append(
                {
                    "type": "value_error",
                    "loc": ["body", "data", "email"],
                    "msg": (
                        "value is not a valid email address: "
                        "An email address must have an @-sign."
                    ),
                    "input": email,
                }
            )
        if password is None:
            params.errors.append(missing(["body", "data", "password"]))
        elif not isinstance(password, str):
            params.errors.append(type_error(["body", "data", "password"], "string_type", password))
    params.done()
    with ctx.store.tx() as db:
        user = check_credentials(db, body["email"], body["password"])
        if user is None:
            return json_response(
                400,
                {
                    "status": 400,
                    "errors": [
                        {
                            "message": (
                                "The email address and/or password you specified "
                                "are not correct."
                            ),
                            "code": "email_password_mismatch",
                            "param": "password",
                        }
                    ],
                },
            )
        payload = _session_payload(user)
        token = new_session(db, user["id"])
    if client == "app":
        payload["meta"]["session_token"] = token
    return json_response(200, payload)


def h_session_get(ctx: Context, req: Request) -> Response:
    token = _session_token(req)
    if not token:
        return _unauthenticated_session(401)
    with ctx.store.read() as db:
        user = db.execute(
            "SELECT u.* FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token = ?",
            (token,),
        ).fetchone()
        if user is None:
            return _unauthenticated_session(410)
        return json_response(200, _session_payload(user))


def h_session_delete(ctx: Context, req: Request) -> Response:
    token = _session_token(req)
    if token:
        with ctx.store.tx() as db:
            db.execute("DELETE FROM sessions WHERE token = ?", (token,))
    return _unauthenticated_session(401)
