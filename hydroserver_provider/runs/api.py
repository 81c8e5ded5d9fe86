"""A small client of Airflow's public REST API (``/api/v2``), for run history and triggers.

Used by ``hydroserver-airflow runs`` / ``trigger`` and by the digest task. Airflow 3 keeps tasks
away from the metadata database; the Task SDK lets a task count runs or read one run it names,
but not list a DAG's runs by start time, which is what a digest needs. The public REST API does,
with filters and paging done by the API server, so both the command line and the digest read
history the same way.

Authentication: ``POST /auth/token`` with a username and password returns a JWT (Airflow's simple
auth manager and the FAB auth manager both answer it); a ready token can be given instead; with
neither, ``GET /auth/token`` works when the simple auth manager runs with
``simple_auth_manager_all_admins``. A token that expires mid-way is renewed once. Credentials
never appear in errors, logs or ``repr``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from hydroserver_provider.errors import HydroServerProviderError

__all__ = [
    "AirflowAPI",
    "AirflowAPIError",
    "DEFAULT_API_CONN_ID",
    "ENV_PASSWORD",
    "ENV_TOKEN",
    "ENV_URL",
    "ENV_USERNAME",
    "iso_utc",
]

ENV_URL = "AIRFLOW_API_URL"
ENV_USERNAME = "AIRFLOW_USERNAME"
ENV_PASSWORD = "AIRFLOW_PASSWORD"
ENV_TOKEN = "AIRFLOW_API_TOKEN"
DEFAULT_API_CONN_ID = "airflow_api_default"
PAGE_SIZE = 100


class AirflowAPIError(HydroServerProviderError):
    """Airflow's API answered with an error (or could not be reached)."""

    def __init__(self, method: str, path: str, status: int | None, detail: Any) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.detail = detail
        where = f"{method} {path}"
        if status is None:
            text = f"Airflow's API could not be reached for {where}: {detail}"
        else:
            text = f"Airflow's API answered {status} to {where}: {detail}"
        super().__init__(text)


def iso_utc(moment: datetime) -> str:
    """``2025-01-01T00:00:00Z`` (a naive value is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _base_url(url: str) -> str:
    """The server root from what a user may paste: with or without ``/api/v2``, a trailing
    slash, or a user:password part (dropped: credentials travel separately)."""
    url = url.strip()
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    path = parts.path.rstrip("/")
    for suffix in ("/api/v2", "/api/v1", "/api"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
            break
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def _detail(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        text = (response.text or "").strip()
        return text[:300] or response.reason or "no detail"
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, list):  # FastAPI validation errors
        detail = "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', ()))}: {d.get('msg')}" if isinstance(d, dict)
            else str(d) for d in detail)
    elif isinstance(detail, dict):
        detail = detail.get("message") or detail.get("reason") or str(detail)
    return str(detail)[:500]


@dataclass
class AirflowAPI:
    """``AirflowAPI("http://airflow:8080", username="admin", password="...")``.

    Methods return the API's JSON as dicts (dates as ISO strings), ``None`` for a 404 where "not
    there" is an answer, and raise :class:`AirflowAPIError` otherwise.
    """

    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    timeout: float = 30.0
    _session: Any = field(default=None, init=False, repr=False)
    _bearer: str | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.url = _base_url(self.url)
        self._bearer = self.token or None

    # ---------------------------------------------------------------- construction

    @classmethod
    def from_env(cls, url: str | None = None, username: str | None = None,
                 password: str | None = None) -> AirflowAPI:
        """Arguments first, then ``AIRFLOW_API_URL``, ``AIRFLOW_USERNAME``,
        ``AIRFLOW_PASSWORD``; the token only from ``AIRFLOW_API_TOKEN``."""
        env = os.environ
        url = url or env.get(ENV_URL)
        if not url:
            raise HydroServerProviderError(f"no Airflow API URL: pass --api-url or set {ENV_URL} "
                             "(e.g. http://localhost:8080)")
        return cls(url, username=username or env.get(ENV_USERNAME) or None,
                   password=password or env.get(ENV_PASSWORD) or None,
                   token=env.get(ENV_TOKEN) or None)

    @classmethod
    def from_connection(cls, conn_id: str = DEFAULT_API_CONN_ID) -> AirflowAPI:
        """From an Airflow connection: host (with scheme and port) = the API server, login +
        password = an Airflow user, or ``extra.token`` = a ready JWT. Without a host, Airflow's
        own ``[api] base_url`` is used."""
        from hydroserver_provider.compat import AirflowNotFoundException, Connection, airflow_conf

        try:
            conn = Connection.get(conn_id)
        except AirflowNotFoundException:
            raise HydroServerProviderError(
                f"reading run history needs the Airflow connection '{conn_id}' (the API server "
                "URL as host, an Airflow user as login and password); it does not exist. Create "
                f"it, e.g. AIRFLOW_CONN_{conn_id.upper()}='{{\"conn_type\": \"http\", \"host\": "
                "\"http://localhost:8080\", \"login\": \"...\", \"password\": \"...\"}'") from None
        host = (conn.host or "").strip()
        if host and "://" not in host:
            scheme = conn.schema or "http"
            host = f"{scheme}://{host}"
        if host and conn.port and not urlsplit(host).port:
            parts = urlsplit(host)
            host = urlunsplit((parts.scheme, f"{parts.netloc}:{conn.port}", parts.path, "", ""))
        if not host:
            host = airflow_conf.get("api", "base_url", fallback="") or ""
        if not host:
            raise HydroServerProviderError(
                f"the Airflow connection '{conn_id}' has no host: set it to the API server's URL")
        extra = conn.extra_dejson if conn.extra else {}
        return cls(host, username=conn.login or None, password=conn.password or None,
                   token=extra.get("token") or None)

    # ---------------------------------------------------------------- transport

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def __enter__(self) -> AirflowAPI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _http(self) -> Any:
        if self._session is None:
            import requests

            self._session = requests.Session()
            self._session.headers["Accept"] = "application/json"
        return self._session

    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        import requests

        try:
            return self._http().request(method, self.url + path, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise AirflowAPIError(method, path, None,
                                  f"{type(exc).__name__} connecting to {self.url}") from None

    def login(self) -> str:
        """A fresh JWT from ``/auth/token``."""
        if self.username and self.password:
            response = self._send("POST", "/auth/token",
                                  json={"username": self.username, "password": self.password})
        elif self.password and not self.username:
            return self.password  # a token kept in a password field
        else:
            response = self._send("GET", "/auth/token")
        if response.status_code in (200, 201):
            token = response.json().get("access_token")
            if token:
                return str(token)
        if response.status_code in (401, 403, 405):
            who = (f"user '{self.username}'" if self.username
                   else "no credentials (and the API server does not give tokens without)")
            raise AirflowAPIError("POST" if self.username else "GET", "/auth/token",
                                  response.status_code,
                                  f"login refused for {who}; set {ENV_USERNAME} and "
                                  f"{ENV_PASSWORD} (or {ENV_TOKEN}) to an Airflow user")
        raise AirflowAPIError("POST", "/auth/token", response.status_code, _detail(response))

    def request(self, method: str, path: str, *, params: Any = None, json: Any = None,
                missing_ok: bool = False) -> Any:
        """``/api/v2`` + ``path``; the JSON answer, or None for a 404 when ``missing_ok``."""
        full = "/api/v2" + path
        for attempt in (1, 2):
            if self._bearer is None:
                self._bearer = self.login()
            response = self._send(method, full, params=params, json=json,
                                  headers={"Authorization": f"Bearer {self._bearer}"})
            if response.status_code == 401 and attempt == 1 and not self.token:
                self._bearer = None  # expired: log in again, once
                continue
            break
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code >= 400:
            raise AirflowAPIError(method, full, response.status_code, _detail(response))
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    # ---------------------------------------------------------------- DAGs

    def dag(self, dag_id: str) -> dict | None:
        return self.request("GET", f"/dags/{quote(dag_id, safe='')}", missing_ok=True)

    def dags(self, *, display_name_pattern: str | None = None,
             tags: Sequence[str] = ()) -> list[dict]:
        params: dict[str, Any] = {"limit": PAGE_SIZE}
        if display_name_pattern:
            params["dag_display_name_pattern"] = display_name_pattern
        if tags:
            params["tags"] = list(tags)
        return list(self._pages("/dags", params, "dags"))

    def set_paused(self, dag_id: str, paused: bool) -> dict:
        return self.request("PATCH", f"/dags/{quote(dag_id, safe='')}",
                            json={"is_paused": paused})

    # ---------------------------------------------------------------- runs

    def dag_runs(self, dag_id: str, **filters: Any) -> list[dict]:
        """:meth:`iter_dag_runs` as a list."""
        return list(self.iter_dag_runs(dag_id, **filters))

    def iter_dag_runs(self, dag_id: str, *, states: Sequence[str] = (),
                      start_date_gte: datetime | None = None,
                      start_date_lt: datetime | None = None, order_by: str = "-start_date",
                      limit: int | None = None) -> Iterator[dict]:
        """Runs of ``dag_id`` (``~`` for all DAGs), filtered and ordered by the server, read one
        page at a time.

        Airflow 3.3 also returns runs that have not started (no ``start_date``) when a start
        date range is given; callers that need the range exactly check ``start_date``.
        """
        params: dict[str, Any] = {"order_by": order_by}
        if states:
            params["state"] = list(states)
        if start_date_gte is not None:
            params["start_date_gte"] = iso_utc(start_date_gte)
        if start_date_lt is not None:
            params["start_date_lt"] = iso_utc(start_date_lt)
        return self._pages(f"/dags/{quote(dag_id, safe='~')}/dagRuns", params, "dag_runs",
                           limit=limit)

    def dag_run(self, dag_id: str, run_id: str) -> dict | None:
        return self.request("GET", f"/dags/{quote(dag_id, safe='')}/dagRuns/"
                                   f"{quote(run_id, safe='')}", missing_ok=True)

    def trigger(self, dag_id: str, *, conf: Mapping[str, Any] | None = None,
                logical_date: datetime | None = None, note: str | None = None,
                run_id: str | None = None) -> dict:
        """A manual run; ``conf`` fills the DAG's params (validated by Airflow); ``run_id``
        instead of Airflow's ``manual__<time>``."""
        body: dict[str, Any] = {"logical_date": iso_utc(logical_date) if logical_date else None,
                                "conf": dict(conf or {})}
        if note:
            body["note"] = note
        if run_id:
            body["dag_run_id"] = run_id
        return self.request("POST", f"/dags/{quote(dag_id, safe='')}/dagRuns", json=body)

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict | None:
        return self.request("GET", f"/dags/{quote(dag_id, safe='')}/dagRuns/"
                                   f"{quote(run_id, safe='')}/taskInstances/"
                                   f"{quote(task_id, safe='')}", missing_ok=True)

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str) -> Any:
        """The value of one XCom (JSON), or None when the task pushed none under ``key``."""
        entry = self.request("GET", f"/dags/{quote(dag_id, safe='')}/dagRuns/"
                                    f"{quote(run_id, safe='')}/taskInstances/"
                                    f"{quote(task_id, safe='')}/xcomEntries/"
                                    f"{quote(key, safe='')}", missing_ok=True)
        if entry is None:
            return None
        value = entry.get("value")
        if isinstance(value, str) and value[:1] in ("{", "["):  # stored as a JSON text
            try:
                return json.loads(value)
            except ValueError:
                pass
        return value

    def _pages(self, path: str, params: dict[str, Any], key: str,
               limit: int | None = None) -> Iterator[dict]:
        offset = 0
        while True:
            size = PAGE_SIZE if limit is None else min(PAGE_SIZE, limit - offset)
            if size <= 0:
                return
            page = self.request("GET", path, params={**params, "limit": size, "offset": offset})
            items = page.get(key) or []
            yield from items
            offset += len(items)
            total = page.get("total_entries")
            if len(items) < size or (total is not None and offset >= total):
                return
