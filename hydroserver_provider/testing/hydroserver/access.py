"""Who is calling (session, API key or anonymous) and what they may see and do."""

from __future__ import annotations

import secrets
import sqlite3
import time
from dataclasses import dataclass

from hydroserver_provider.testing.hydroserver.context import Context
from hydroserver_provider.testing.hydroserver.request import Request
from hydroserver_provider.testing.hydroserver.responses import HttpError
from hydroserver_provider.testing.hydroserver.store import datastream_row
from hydroserver_provider.testing.hydroserver.values import hash_key

#: API-key / collaborator roles of a stock HydroServer and what they may do, as
#: ``{(resource_type, permission_type), ...}`` (``"*"`` is a wildcard), as in its default fixtures.
ROLES: dict[str, frozenset[tuple[str, str]]] = {
    "Editor": frozenset({("*", "*")}),
    "Viewer": frozenset({("*", "view")}),
    "Data Loader": frozenset({("*", "view"), ("Observation", "create"), ("Datastream", "edit")}),
}


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user (session) or an API key (acting within one workspace)."""

    kind: str  # "user" | "apikey"
    user_id: int | None = None
    workspace_id: str | None = None
    role: str | None = None


def authenticate(ctx: Context, req: Request, allow_anonymous: bool) -> Principal | None:
    """Bearer session token first, then X-Api-Key, then anonymous (on public GETs) - like ninja."""
    authorization = req.header("Authorization")
    if authorization:
        parts = authorization.split(" ")
        if parts[0].lower() == "bearer":
            token = " ".join(parts[1:])
            if ctx.bearer_cost > 0:
                time.sleep(ctx.bearer_cost)
            with ctx.store.read() as db:
                row = db.execute(
                    "SELECT u.id FROM sessions s JOIN users u ON u.id = s.user_id "
                    "WHERE s.token = ? AND u.is_active = 1",
                    (token,),
                ).fetchone()
            if row is not None:
                return Principal(kind="user", user_id=int(row["id"]))
            if token:
                raise HttpError(401, "Invalid token")
    key = req.header("X-Api-Key")
    if key and len(key) >= 12:
        with ctx.store.read() as db:
            candidates = db.execute(
                "SELECT workspace_id, role, key_hash FROM api_keys"
                " WHERE prefix = ? AND is_active = 1",
                (key[:12],),
            ).fetchall()
        if candidates:
            if ctx.api_key_cost > 0:  # the real server hashes the key only when the prefix matches
                time.sleep(ctx.api_key_cost)
            digest = hash_key(key)
            for cand in candidates:
                if secrets.compare_digest(cand["key_hash"], digest):
                    return Principal(
                        kind="apikey", workspace_id=cand["workspace_id"], role=cand["role"]
                    )
    if allow_anonymous:
        return None
    raise HttpError(401, "Unauthorized")


def member_workspaces(db: sqlite3.Connection, principal: Principal | None) -> list[str]:
    """Workspaces whose private content the principal may view."""
    if principal is None:
        return []
    if principal.kind == "apikey":
        assert principal.workspace_id is not None  # an API key belongs to one workspace
        return [principal.workspace_id]  # every role can view its workspace
    return [
        r["id"]
        for r in db.execute("SELECT id FROM workspaces WHERE owner_id = ?", (principal.user_id,))
    ]


def permissions(
    db: sqlite3.Connection, principal: Principal | None, workspace_id: str, resource: str
) -> set[str]:
    """What a principal may do with a workspace's ``resource`` objects (view/edit/delete/create)."""
    if principal is None:
        return set()
    if principal.kind == "user":
        owner = db.execute(
            "SELECT owner_id FROM workspaces WHERE id = ?", (workspace_id,)
        ).fetchone()
        return (
            {"view", "edit", "delete", "create"}
            if owner and owner[0] == principal.user_id
            else set()
        )
    if principal.workspace_id != workspace_id:
        return set()
    granted: set[str] = set()
    for res, perm in ROLES[principal.role or "Viewer"]:
        if res in ("*", resource):
            granted |= {"view", "edit", "delete", "create"} if perm == "*" else {perm}
    return granted


def visible_workspaces(db: sqlite3.Connection, principal: Principal | None) -> set[str]:
    members = set(member_workspaces(db, principal))
    return members | {r["id"] for r in db.execute("SELECT id FROM workspaces WHERE is_private = 0")}


def visible_things(db: sqlite3.Connection, principal: Principal | None) -> list[sqlite3.Row]:
    members = set(member_workspaces(db, principal))
    return [
        r
        for r in db.execute(
            "SELECT th.*, w.is_private AS ws_private FROM things th "
            "JOIN workspaces w ON w.id = th.workspace_id ORDER BY th.id"
        )
        if r["workspace_id"] in members or not (r["is_private"] or r["ws_private"])
    ]


def datastream_for_action(
    db: sqlite3.Connection, principal: Principal | None, ds_id: str, action: str
) -> sqlite3.Row:
    ds = datastream_row(db, ds_id)
    if ds is None:
        raise HttpError(404, "Datastream does not exist")
    perms = permissions(db, principal, ds["workspace_id"], "Datastream") - {"create"}
    if not (ds["ws_private"] or ds["thing_private"] or ds["is_private"]):
        perms.add("view")
    if "view" not in perms:
        raise HttpError(404, "Datastream does not exist")
    if action not in perms:
        raise HttpError(403, f"You do not have permission to {action} this datastream")
    return ds
