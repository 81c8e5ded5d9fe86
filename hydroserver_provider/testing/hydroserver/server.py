"""The :class:`LocalHydroServer` itself: lifecycle, seeding, counters and the request pipeline.

The endpoints live in the ``routes_*`` modules, the database in :mod:`.store`.
"""

from __future__ import annotations

import collections
import logging
import math
import re
import sqlite3
import threading
import time
import traceback
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from hydroserver_provider.testing.hydroserver.access import ROLES
from hydroserver_provider.testing.hydroserver.context import Context
from hydroserver_provider.testing.hydroserver.faults import ClientThrottle, Faults
from hydroserver_provider.testing.hydroserver.json_shapes import (
    data_connection_json,
    datastream_detail,
    datastream_summary,
    task_detail,
    task_summary,
    unit_json,
)
from hydroserver_provider.testing.hydroserver.request import Request
from hydroserver_provider.testing.hydroserver.responses import (
    DROP,
    HttpError,
    ServerError,
    error_response,
    fault_response,
    throttled_response,
)
from hydroserver_provider.testing.hydroserver.routes_auth import check_credentials, new_session
from hydroserver_provider.testing.hydroserver.routes_etl import insert_data_connection, insert_task
from hydroserver_provider.testing.hydroserver.routing import route
from hydroserver_provider.testing.hydroserver.store import (
    Store,
    datastream_row,
    insert_api_key,
    insert_datastream,
    insert_thing,
    insert_unit,
    insert_workspace,
    require_row,
    seed_defaults,
    update_statistics,
)
from hydroserver_provider.testing.hydroserver.transport import ThreadingServer
from hydroserver_provider.testing.hydroserver.values import from_us, to_us

logger = logging.getLogger("hydroserver_provider.testing")

_UUID_RE = re.compile(
    r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
)


def _normalise_path(path: str) -> str:
    """The path with ids replaced by ``{id}``.

    This is the key of :attr:`LocalHydroServer.request_counts`.
    """
    return "/".join("{id}" if _UUID_RE.fullmatch(seg) else seg for seg in path.split("/"))


class LocalHydroServer:
    """A HydroServer 1.11.2 look-alike on ``127.0.0.1`` for offline tests and demos.

    Use it as a context manager (or call :meth:`start` / :meth:`stop`)::

        with LocalHydroServer() as hs:
            hs.url, hs.api_key, hs.workspace_id, hs.email, hs.password

    On start it holds one user account (``email`` / ``password``, for session login), which owns
    one public workspace (:attr:`workspace_id`) with one site, and an Editor API key of that
    workspace (:attr:`api_key`). Datastreams are private by default; create them public with
    ``is_private=False`` to try anonymous reads.

    Args:
        host: interface to listen on.
        port: TCP port; 0 picks a free one.
        db_path: SQLite file to keep the data in (reused when it exists); ``None`` keeps everything
            in memory.
        api_key_cost: seconds slept for every request that presents a stored API key (the real
            server spends ~1 s hashing it). Slept outside any lock, so concurrent requests overlap.
        bearer_cost: seconds slept for every request with a Bearer token (~0.04 s on the server).
        row_cost: seconds slept per row of a bulk-create (~0.0001 s on the server).
        throttle: requests per second allowed per client IP (the real default is 20); ``None``
            disables throttling. Can be changed later through :attr:`throttle`.
        api_key: the default API key string (random when ``None``).
        email, password: the default account.
        workspace_name: name of the default workspace.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        db_path: str | None = None,
        api_key_cost: float = 0.0,
        bearer_cost: float = 0.0,
        row_cost: float = 0.0,
        throttle: int | None = None,
        api_key: str | None = None,
        email: str = "hydro@example.org",
        password: str = "local-hydroserver",
        workspace_name: str = "Local Workspace",
    ) -> None:
        self.host = host
        self.port = port
        self.db_path = db_path
        self.api_key_cost = float(api_key_cost)
        self.bearer_cost = float(bearer_cost)
        self.row_cost = float(row_cost)
        self.throttle: int | None = throttle
        self.faults = Faults()
        self._requested_key = api_key
        self._email = email
        self._password = password
        self._workspace_name = workspace_name
        self._store: Store | None = None
        self._server: ThreadingServer | None = None
        self._thread: threading.Thread | None = None
        self._stats_lock = threading.Lock()
        self._counts: collections.Counter = collections.Counter()
        self._log: list[tuple[str, str, int | None]] = []
        self._total = 0
        self._throttle_window = ClientThrottle()
        self._errors: list[str] = []
        self._in_flight = 0
        self._peak_in_flight = 0
        self._user_id: int | None = None
        self._workspace_id: str | None = None
        self._api_key: str | None = None
        self._lifecycle = threading.Lock()

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> LocalHydroServer:
        """Open the database, seed the default account/workspace/key and start serving."""
        with self._lifecycle:
            if self._server is not None:
                return self
            self._store = Store(self.db_path or ":memory:")
            self._seed_defaults()
            self._server = ThreadingServer((self.host, self.port), self._handle)
            self.port = self._server.server_address[1]
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"LocalHydroServer:{self.port}",
                daemon=True,
            )
            self._thread.start()
            logger.info("LocalHydroServer listening on %s", self.url)
            return self

    def stop(self) -> None:
        """Stop serving, close open connections and the database. Safe to call twice."""
        with self._lifecycle:
            server, self._server = self._server, None
            if server is None:
                return
            server.shutdown()
            server.server_close()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:  # let requests being answered finish
                with self._stats_lock:
                    if self._in_flight <= 0:
                        break
                time.sleep(0.01)
            server.close_open_connections()
            if self._thread is not None:
                self._thread.join(timeout=5)
                self._thread = None
            if self._store is not None:
                self._store.close()
                self._store = None

    def __enter__(self) -> LocalHydroServer:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    def __repr__(self) -> str:
        if not self.running:
            return f"<LocalHydroServer (stopped) db={self.db_path or ':memory:'}>"
        return (
            f"<LocalHydroServer {self.url} workspace={self._workspace_id} "
            f"requests={self.total_requests} db={self.db_path or ':memory:'}>"
        )

    # ---------------------------------------------------------------- public properties

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:51234`` (no trailing slash)."""
        self._require_running()
        host = self.host if self.host not in ("0.0.0.0", "::") else "127.0.0.1"
        return f"http://{host}:{self.port}"

    @property
    def api_key(self) -> str:
        """An Editor API key of the default workspace."""
        self._require_running()
        assert self._api_key is not None
        return self._api_key

    @property
    def workspace_id(self) -> str:
        """The default workspace (public, owned by :attr:`email`)."""
        self._require_running()
        assert self._workspace_id is not None
        return self._workspace_id

    @property
    def email(self) -> str:
        return self._email

    @property
    def password(self) -> str:
        return self._password

    @property
    def request_counts(self) -> collections.Counter:
        """Requests per endpoint.

        Keyed like ``"POST /api/data/datastreams/{id}/observations/bulk-create"``.
        """
        with self._stats_lock:
            return collections.Counter(self._counts)

    @property
    def total_requests(self) -> int:
        with self._stats_lock:
            return self._total

    @property
    def in_flight(self) -> int:
        """Requests being carried out right now (e.g. one a killed client left behind)."""
        with self._stats_lock:
            return self._in_flight

    @property
    def peak_in_flight(self) -> int:
        """The most requests carried out at the same time since the last :meth:`reset_counts`."""
        with self._stats_lock:
            return self._peak_in_flight

    @property
    def requests_log(self) -> list[tuple[str, str, int | None]]:
        """Every request as ``(method, raw path with query, status)``; status ``None``: dropped."""
        with self._stats_lock:
            return list(self._log)

    @property
    def errors(self) -> list[str]:
        """Tracebacks of unexpected exceptions inside the local server (should stay empty)."""
        with self._stats_lock:
            return list(self._errors)

    def reset_counts(self) -> None:
        """Clear :attr:`request_counts`, :attr:`requests_log`, :attr:`total_requests` and
        :attr:`peak_in_flight`."""
        with self._stats_lock:
            self._counts.clear()
            self._log.clear()
            self._total = 0
            self._peak_in_flight = self._in_flight

    # ---------------------------------------------------------------- seeding helpers

    def create_user(
        self, email: str, password: str, first_name: str = "Local", last_name: str = "User"
    ) -> int:
        """Add a user account (for session login); returns its id. Existing emails are reused."""
        with self._tx() as db:
            row = db.execute("SELECT id FROM users WHERE email = ?", (email,)).fetchone()
            if row:
                db.execute("UPDATE users SET password = ? WHERE id = ?", (password, row["id"]))
                return int(row["id"])
            cur = db.execute(
                "INSERT INTO users (email, password, first_name, last_name) VALUES (?, ?, ?, ?)",
                (email, password, first_name, last_name),
            )
            return int(cur.lastrowid)

    def create_workspace(
        self, name: str, is_private: bool = True, owner_email: str | None = None
    ) -> str:
        """Add a workspace (with one site) owned by ``owner_email`` (default :attr:`email`)."""
        with self._tx() as db:
            if owner_email is None:
                assert self._user_id is not None  # seeded by start(), like the workspace
                owner_id = self._user_id
            else:
                row = db.execute("SELECT id FROM users WHERE email = ?", (owner_email,)).fetchone()
                if row is None:
                    raise ValueError(f"No user {owner_email!r}; create it with create_user() first")
                owner_id = row["id"]
            return insert_workspace(db, name, is_private, owner_id)

    def create_api_key(
        self,
        workspace_id: str | None = None,
        role: str = "Editor",
        name: str | None = None,
        key: str | None = None,
    ) -> str:
        """Add an API key with ``role`` (Editor, Viewer or Data Loader) to a workspace.

        Returns the key.
        """
        if role not in ROLES:
            raise ValueError(f"Unknown role {role!r}; choose one of {sorted(ROLES)}")
        workspace_id = self._workspace_or_default(workspace_id)
        with self._tx() as db:
            require_row(db, "workspaces", workspace_id)
            return insert_api_key(db, workspace_id, role, name or f"{role} key", key)

    def create_thing(
        self,
        name: str,
        workspace_id: str | None = None,
        is_private: bool = False,
        latitude: float = 41.74,
        longitude: float = -111.83,
    ) -> str:
        """Add a site (HydroServer "thing") to a workspace; returns its id."""
        workspace_id = self._workspace_or_default(workspace_id)
        with self._tx() as db:
            require_row(db, "workspaces", workspace_id)
            return insert_thing(db, workspace_id, name, is_private, latitude, longitude)

    def create_unit(
        self,
        symbol: str,
        name: str | None = None,
        definition: str = "",
        unit_type: str = "Unknown",
        workspace_id: str | None = None,
    ) -> str:
        """Add a unit (``workspace_id=None`` makes it a system unit visible to everyone)."""
        with self._tx() as db:
            return insert_unit(db, symbol, name, definition, unit_type, workspace_id)

    def create_datastream(
        self,
        name: str = "Temp",
        workspace_id: str | None = None,
        unit: Any = "degC",
        no_data_value: float = -9999.0,
        is_private: bool = True,
        observations: Iterable[tuple[Any, float]] | None = None,
        *,
        thing_id: str | None = None,
        description: str | None = None,
        tags: dict[str, str] | None = None,
        datastream_id: str | None = None,
        **fields: Any,
    ) -> str:
        """Add a datastream and return its id.

        Args:
            name: datastream name.
            workspace_id: workspace (default :attr:`workspace_id`).
            unit: a unit symbol (``"degC"``; reused when the workspace or the system has it), a
                unit id, or a dict ``{"symbol", "name", "definition", "type"}``.
            no_data_value: the value NaN results are stored as.
            is_private: private datastreams are only seen by members of the workspace.
            observations: optional ``(timestamp, value)`` rows to seed
                (see :meth:`add_observations`).
            thing_id: the site (default: the workspace's first site).
            description, tags: free text and ``{key: value}`` tags.
            datastream_id: a fixed id (a UUID) instead of a new one, so definition files that
                name datastream ids work unchanged (the demo's ``stations.yaml``).
            **fields: any other datastream field in camelCase or snake_case, e.g.
                ``observationType``, ``sampledMedium``, ``status``, ``intendedTimeSpacing``.
        """
        workspace_id = self._workspace_or_default(workspace_id)
        with self._tx() as db:
            ds_id = insert_datastream(
                db,
                workspace_id,
                name,
                unit,
                no_data_value,
                is_private,
                thing_id,
                description,
                tags,
                datastream_id,
                fields,
            )
        if observations is not None:
            self.add_observations(ds_id, observations)
        return ds_id

    def add_observations(self, datastream_id: str, rows: Iterable[tuple[Any, float]]) -> int:
        """Store ``(timestamp, value)`` rows directly (no HTTP), then recompute the statistics.

        Timestamps may be datetimes (naive means UTC), ISO strings or epoch seconds. NaN values are
        stored as the datastream's ``noDataValue``, like the server does. A timestamp that is
        already stored (or repeated in ``rows``) raises ``ValueError`` and stores nothing.
        Returns the number of rows stored.
        """
        with self._tx() as db:
            ds = require_row(db, "datastreams", datastream_id)
            no_data = ds["no_data_value"]
            batch = []
            for t, value in rows:
                if value is None:
                    raise ValueError("Observation results cannot be None")
                value = float(value)
                if math.isnan(value):
                    value = no_data
                batch.append((ds["pk"], to_us(t), value))
            try:
                db.executemany("INSERT INTO observations (ds, t, result) VALUES (?, ?, ?)", batch)
            except sqlite3.IntegrityError:
                raise ValueError("Duplicate phenomenonTime found on this datastream.") from None
            update_statistics(db, ds["pk"])
            return len(batch)

    def observations(self, datastream_id: str) -> list[tuple[datetime, float]]:
        """All stored observations of a datastream as ``(aware UTC datetime, value)``, by time."""
        with self._read() as db:
            ds = require_row(db, "datastreams", datastream_id)
            rows = db.execute(
                "SELECT t, result FROM observations WHERE ds = ? ORDER BY t", (ds["pk"],)
            ).fetchall()
        return [(from_us(t), result) for t, result in rows]

    def datastream(self, datastream_id: str, expand_related: bool = False) -> dict:
        """The datastream JSON the API answers (``expand_related=True`` embeds unit, site, ...)."""
        with self._read() as db:
            ds = datastream_row(db, datastream_id)
            if ds is None:
                raise KeyError(f"Datastream {datastream_id} does not exist")
            return datastream_detail(db, ds) if expand_related else datastream_summary(ds)

    def unit(self, unit_id: str) -> dict:
        """The unit JSON the API answers for ``GET /api/data/units/{id}``."""
        with self._read() as db:
            return unit_json(require_row(db, "units", unit_id))

    def create_data_connection(self, body: dict) -> str:
        """Store an ETL data connection from a camelCase ``DataConnectionPostBody``; returns its id.

        ``workspaceId`` defaults to :attr:`workspace_id` and ``placeholderVariables`` to ``[]``.
        Invalid bodies raise ``ValueError`` with the validation errors.
        """
        body = dict(body)
        body.setdefault("workspaceId", self.workspace_id)
        body.setdefault("placeholderVariables", [])
        with self._tx() as db:
            try:
                return insert_data_connection(db, body, principal=None)
            except HttpError as exc:
                raise ValueError(f"Invalid data connection ({exc.status}): {exc.detail}") from None

    def create_task(self, body: dict) -> str:
        """Store an ETL task from a camelCase ``EtlTaskPostBody``; returns its id.

        ``mappings`` is a list of ``{"sourceIdentifier", "targetDatastreamId"}``; ``schedule`` is
        ``{"enabled", "crontab" | "interval" + "intervalPeriod", "startTime"}``.
        """
        with self._tx() as db:
            try:
                return insert_task(db, dict(body), principal=None)
            except HttpError as exc:
                raise ValueError(f"Invalid ETL task ({exc.status}): {exc.detail}") from None

    def data_connection(self, data_connection_id: str) -> dict:
        """The data connection JSON the API answers."""
        with self._read() as db:
            return data_connection_json(db, require_row(db, "data_connections", data_connection_id))

    def task(self, task_id: str, expand_related: bool = False) -> dict:
        """The ETL task JSON the API answers (summary, or detail with ``expand_related=True``)."""
        with self._read() as db:
            row = require_row(db, "etl_tasks", task_id)
            return task_detail(db, row) if expand_related else task_summary(db, row)

    def login(self, email: str | None = None, password: str | None = None) -> str:
        """Create a session directly (no HTTP); return its token for ``Authorization: Bearer``."""
        with self._tx() as db:
            user = check_credentials(db, email or self._email, password or self._password)
            if user is None:
                raise ValueError("Wrong email or password")
            return new_session(db, user["id"])

    def expire_sessions(self) -> int:
        """Invalidate every session token (the next Bearer call answers 401). Returns how many."""
        with self._tx() as db:
            return db.execute("DELETE FROM sessions").rowcount

    # ---------------------------------------------------------------- internals

    def _require_running(self) -> None:
        if self._server is None:
            raise RuntimeError("LocalHydroServer is not running; use start() or a `with` block")

    def _tx(self):
        if self._store is None:
            raise RuntimeError("LocalHydroServer is not running; use start() or a `with` block")
        return self._store.tx()

    def _read(self):
        if self._store is None:
            raise RuntimeError("LocalHydroServer is not running; use start() or a `with` block")
        return self._store.read()

    def _workspace_or_default(self, workspace_id: str | None) -> str:
        if workspace_id is None:
            self._require_running()
            assert self._workspace_id is not None
            return self._workspace_id
        return str(workspace_id)

    def _seed_defaults(self) -> None:
        assert self._store is not None
        with self._store.tx() as db:
            self._user_id, self._workspace_id, self._api_key = seed_defaults(
                db, self._email, self._password, self._workspace_name, self._requested_key
            )

    # ---------------------------------------------------------------- internals: request pipeline

    def _handle(
        self, method: str, raw_path: str, headers: dict[str, str], body: bytes, client: str
    ) -> Any:
        """Answer one request: count it, apply faults and the throttle, route it, log the status."""
        req = Request(method, raw_path, headers, body)
        with self._stats_lock:
            self._counts[f"{method} {_normalise_path(req.path)}"] += 1
            self._total += 1
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
        fault = None
        try:
            latency = self.faults.latency
            if latency > 0:
                time.sleep(latency)
            fault = self.faults.take(raw_path)
            if fault is not None and fault["kind"] == "drop":
                with self._stats_lock:
                    self._log.append((method, raw_path, None))
                return DROP
            if fault is not None and fault["kind"] == "fail":
                response = fault_response(fault["status"], fault["retry_after"])
            elif not self._throttle_window.admit(client, self.throttle):
                response = throttled_response()
            else:
                response = route(self._context(), req)
        except HttpError as exc:
            response = error_response(exc)
        except Exception:  # a bug in the local server: answer like Django and remember it
            tb = traceback.format_exc()
            logger.error("LocalHydroServer error on %s %s\n%s", method, raw_path, tb)
            with self._stats_lock:
                self._errors.append(tb)
            response = error_response(ServerError("unexpected"))
        finally:
            if fault is not None and fault["kind"] == "slow":
                time.sleep(fault["seconds"])  # done, answered late (still counted in flight)
            with self._stats_lock:
                self._in_flight -= 1
        lost = fault is not None and fault["kind"] == "lose"
        with self._stats_lock:
            self._log.append((method, raw_path, None if lost else response.status))
        return DROP if lost else response

    def _context(self) -> Context:
        if self._store is None:
            raise RuntimeError("LocalHydroServer is not running; use start() or a `with` block")
        return Context(self._store, self.api_key_cost, self.bearer_cost, self.row_cost)
