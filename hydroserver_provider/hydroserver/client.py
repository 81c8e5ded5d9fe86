"""HydroServer REST client: authentication, sessions, retries and the calls ingestion needs.

Plain Python (no Airflow), so the ingestion core, the CLI and the benchmarks share it;
``HydroServerHook`` builds one from an Airflow connection. Every API-key request costs a real
HydroServer about a second of CPU, so the calls here are shaped to need few requests: metadata
for many datastreams in one list call, observations in large chunks.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import orjson
import requests

from hydroserver_provider.defaults import CHUNK_ROWS
from hydroserver_provider.errors import HydroServerAPIError, HydroServerProviderError
from hydroserver_provider.retries import (
    RetriesExhausted,
    RetryPolicy,
    describe_transport_error,
    send_with_retries,
)
from hydroserver_provider.timestamps import parse_instant, to_utc_iso

log = logging.getLogger(__name__)

BulkMode = Literal["append", "insert", "backfill", "replace"]
MAX_PAGE_SIZE = 100_000
_NUMPY_JSON = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z

# A check that a person is waiting for (the Test button, ``preview``): an unreachable server is
# reported in seconds instead of after the ~15 s of a run's retries.
PROBE_RETRY = RetryPolicy(tries=2, backoff=0.5, max_delay=1.0, max_retry_after=2.0)
PROBE_TIMEOUT = (5.0, 30.0)


class AuthenticationError(HydroServerProviderError):
    """HydroServer refused the credentials (wrong API key, email or password)."""


class HydroServerUnreachable(HydroServerAPIError):
    """No answer at all from HydroServer (refused, unknown host, timeout, TLS) after every try.

    ``str()`` is one line: ``HydroServer at <url> could not be reached (<reason>) for <method>
    <path> after <n> tries``; ``reason`` alone is e.g. ``connection refused``.
    """

    def __init__(self, url: str, method: str, path: str, reason: str, tries: int) -> None:
        super().__init__(method, path, None, reason)
        self.url = url
        self.reason = reason
        self.tries = tries
        self.args = (f"HydroServer at {url} could not be reached ({reason}) for {method} {path} "
                     f"after {tries} {'try' if tries == 1 else 'tries'}",)


@dataclass(frozen=True, repr=False)
class Credentials:
    """An API key, or an email and password exchanged for a session token."""

    api_key: str | None = None
    email: str | None = None
    password: str | None = None

    def __post_init__(self) -> None:
        if not self.api_key and not (self.email and self.password):
            raise AuthenticationError(
                "HydroServer credentials are missing: expected an API key, or an email and a "
                "password"
            )

    @property
    def kind(self) -> str:
        return "API key" if self.api_key else "email/password"

    def __repr__(self) -> str:  # never show the secret
        return f"Credentials({self.kind})"


def normalize_url(url: str) -> str:
    """``host`` or ``https://host/`` -> ``https://host`` (the API paths are appended to it)."""
    url = url.strip()
    if "://" not in url:
        url = f"https://{url}"
    return url.rstrip("/")


class _SessionToken:
    """The session token of email/password credentials, shared by a client and its forks, so
    that one login serves every thread and an expired token is renewed by one of them only."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value: str | None = None

    def get(self, login: Callable[[], str]) -> str:
        with self._lock:
            if self.value is None:
                self.value = login()
            return self.value

    def expire(self, used: str) -> None:
        """Forget ``used`` -- unless another thread already replaced it by a fresh token."""
        with self._lock:
            if self.value == used:
                self.value = None


class HydroServerClient:
    """A small, obvious client for the parts of HydroServer's API the provider uses.

    One ``requests.Session`` per client (keep-alive); requests does not promise that a Session
    is safe to share between threads, so a thread that needs its own calls :meth:`fork`.
    Transient failures are retried by ``retry``; a 401 with a session token logs in again once;
    any other error raises :class:`HydroServerAPIError` carrying the status and HydroServer's
    ``detail``.
    """

    def __init__(
        self,
        url: str,
        credentials: Credentials,
        *,
        retry: RetryPolicy | None = None,
        timeout: float | tuple[float, float] = (10.0, 300.0),
        session: requests.Session | None = None,
    ) -> None:
        self.url = normalize_url(url)
        self.credentials = credentials
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self._session = session or requests.Session()
        self._session.headers["Accept"] = "application/json"
        self._token = _SessionToken()
        self._units: dict[str, dict] = {}  # units by id, fetched once per client (one run)
        self._key_checked = False  # get_datastream proved the API key after a 404

    def fork(self) -> HydroServerClient:
        """A client for another thread: same server, credentials, session token and settings,
        its own ``requests.Session``."""
        twin = type(self).__new__(type(self))
        twin.__dict__.update(self.__dict__)
        twin._session = requests.Session()
        twin._session.headers["Accept"] = "application/json"
        return twin

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self.url!r}, auth={self.credentials.kind})"

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> HydroServerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- transport
    def _auth_headers(self) -> dict[str, str]:
        if self.credentials.api_key:
            return {"X-Api-Key": self.credentials.api_key}
        return {"Authorization": f"Bearer {self._token.get(self._login)}"}

    def _login(self) -> str:
        response = self._send(
            "POST",
            "/api/auth/app/session",
            json={"email": self.credentials.email, "password": self.credentials.password},
            authenticated=False,
        )
        if response.status_code != 200:
            raise AuthenticationError(
                f"HydroServer at {self.url} refused the login for {self.credentials.email!r} "
                f"(HTTP {response.status_code}): check the connection's email and password"
            )
        token = (response.json().get("meta") or {}).get("session_token")
        if not token:
            raise AuthenticationError(
                f"HydroServer at {self.url} accepted the login but returned no session token"
            )
        return token

    def _send(self, method: str, path: str, *, authenticated: bool = True,
              **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        if authenticated:
            headers.update(self._auth_headers())
        try:
            return send_with_retries(
                self._session, method, self.url + path, policy=self.retry, headers=headers,
                timeout=self.timeout, describe=f"HydroServer {method} {path}", **kwargs,
            )
        except RetriesExhausted as exc:
            raise HydroServerUnreachable(self.url, method, path, describe_transport_error(exc),
                                         self.retry.tries) from None

    def request(self, method: str, path: str, *, expected: Iterable[int] = (200,),
                **kwargs: Any) -> requests.Response:
        """Send an authenticated request; raise :class:`HydroServerAPIError` unless ``expected``."""
        used = self._token.value
        response = self._send(method, path, **kwargs)
        if response.status_code == 401 and used is not None:
            log.info("HydroServer session expired; logging in again")
            self._token.expire(used)
            response = self._send(method, path, **kwargs)
        if response.status_code not in expected:
            if response.status_code == 401:
                raise AuthenticationError(
                    f"HydroServer at {self.url} answered 401 to {method} {path}: the "
                    f"{self.credentials.kind} was not accepted"
                )
            raise HydroServerAPIError(
                method, path, response.status_code, _detail(response),
                after_transport_error=getattr(response, "after_transport_error", False))
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    def iter_pages(self, path: str, params: dict[str, Any] | None = None,
                   page_size: int = 1000) -> Iterator[list[dict]]:
        """Yield each page of a list endpoint, following ``X-Total-Pages``."""
        yield from self._page_bodies(path, params, page_size)

    def _iter_column_pages(self, path: str,
                           params: dict[str, Any]) -> Iterator[dict[str, list[Any]]]:
        """Like :meth:`iter_pages` for an observations list read with ``format=column``: each
        page is a dict of columns (``phenomenonTime``, ``result``), not a list of objects."""
        yield from self._page_bodies(path, params, MAX_PAGE_SIZE)

    def _page_bodies(self, path: str, params: dict[str, Any] | None,
                     page_size: int) -> Iterator[Any]:
        """The decoded JSON body of each page, whatever its shape."""
        page = 1
        while True:
            response = self.request(
                "GET", path, params={**(params or {}), "page": page, "page_size": page_size}
            )
            yield response.json()
            total_pages = int(response.headers.get("X-Total-Pages") or 1)
            if page >= total_pages:
                return
            page += 1

    def list_all(self, path: str, params: dict[str, Any] | None = None,
                 page_size: int = 1000) -> list[dict]:
        return [item for page in self.iter_pages(path, params, page_size) for item in page]

    # ---------------------------------------------------------------- datastreams
    def get_datastream(self, datastream_id: str) -> dict:
        """One datastream's metadata. A 403/404 with an API key first makes sure the key was
        accepted (once per client): HydroServer answers a wrong key anonymously, and a private
        datastream then "does not exist" -- the real cause is the key, raised as
        :class:`AuthenticationError`."""
        try:
            return self._json("GET", f"/api/data/datastreams/{datastream_id}")
        except HydroServerAPIError as exc:
            if exc.status in (403, 404) and self.credentials.api_key and not self._key_checked:
                self._key_checked = True
                self.check()  # raises AuthenticationError for a refused key
            raise

    def list_datastreams(self, **filters: Any) -> list[dict]:
        """Every datastream matching HydroServer's list filters (e.g. ``workspace_id=...``)."""
        return self.list_all("/api/data/datastreams", filters, page_size=MAX_PAGE_SIZE)

    def get_datastreams(self, datastream_ids: Sequence[str],
                        workspace_id: str | None = None) -> dict[str, dict]:
        """Metadata of many datastreams in as few requests as possible.

        One list request of their workspace when it is known; otherwise one GET of the first
        datastream (which names the workspace) and one list -- or plain GETs for two or fewer.
        Ids the list did not contain (other workspaces) are then read one by one.
        A missing datastream raises :class:`HydroServerAPIError` (404) naming it.
        """
        wanted = list(dict.fromkeys(datastream_ids))
        found: dict[str, dict] = {}
        if len(wanted) > 1 and (workspace_id is not None or len(wanted) > 2):
            if workspace_id is None:
                first = self.get_datastream(wanted[0])
                found[first["id"]] = first
                workspace_id = first["workspaceId"]
            for item in self.list_datastreams(workspace_id=workspace_id):
                if item["id"] in wanted:
                    found[item["id"]] = item
        for datastream_id in wanted:
            if datastream_id not in found:
                found[datastream_id] = self.get_datastream(datastream_id)
        return {datastream_id: found[datastream_id] for datastream_id in wanted}

    def get_units(self, unit_ids: Sequence[str], *,
                  datastream_ids: Sequence[str] = ()) -> dict[str, dict]:
        """Units by id (``{symbol, name, ...}``), in as few requests as possible.

        Units this client already read are not asked again. One missing unit: one GET. More: one
        list call filtered on the datastreams using them (``GET /api/data/units?datastream_id=``
        ...), then single GETs for what that list lacked. A unit HydroServer will not show
        (403/404) is left out rather than failing: the caller decides what an unknown unit means.
        """
        wanted = [u for u in dict.fromkeys(unit_ids) if u]
        missing = [u for u in wanted if u not in self._units]
        if len(missing) > 1 and datastream_ids:
            params = {"datastream_id": list(dict.fromkeys(datastream_ids))}
            for unit in self.list_all("/api/data/units", params, page_size=MAX_PAGE_SIZE):
                if unit.get("id") in missing:
                    self._units[unit["id"]] = unit
        for unit_id in missing:
            if unit_id not in self._units:
                try:
                    self._units[unit_id] = self._json("GET", f"/api/data/units/{unit_id}")
                except HydroServerAPIError as exc:
                    if exc.status not in (403, 404):
                        raise
        return {u: self._units[u] for u in wanted if u in self._units}

    # --------------------------------------------------------------- observations
    def bulk_create_observations(
        self,
        datastream_id: str,
        timestamps: np.ndarray | Sequence[datetime | str],
        values: np.ndarray | Sequence[float],
        *,
        mode: BulkMode = "append",
        chunk_rows: int = CHUNK_ROWS,
        on_chunk: Callable[[int, int], None] | None = None,
    ) -> int:
        """Write observations in chunks of ``chunk_rows``; returns the number of rows sent.

        ``timestamps`` are UTC (numpy ``datetime64`` or datetimes/ISO strings); ``values`` must be
        finite numbers (HydroServer answers 500 to a null). Each chunk is one request that
        HydroServer applies whole or not at all (:meth:`write_chunk`); ``on_chunk(sent_so_far,
        total)`` reports progress. In ``replace`` mode each chunk replaces the range its own
        timestamps span.
        """
        ts = _as_datetime64(timestamps)
        vals = np.asarray(values, dtype="float64")
        if len(ts) != len(vals):
            raise ValueError(f"{len(ts)} timestamps but {len(vals)} values")
        for chunk in chunk_slices(len(ts), chunk_rows):
            self.write_chunk(datastream_id, ts[chunk], vals[chunk], mode=mode)
            if on_chunk:
                on_chunk(chunk.stop, len(ts))
        return len(ts)

    def write_chunk(self, datastream_id: str, timestamps: np.ndarray, values: np.ndarray, *,
                    mode: BulkMode) -> None:
        """One bulk-create request: ``datetime64`` UTC timestamps and finite float64 values,
        applied by HydroServer whole or not at all."""
        if not np.isfinite(values).all():
            raise ValueError("values must be finite numbers: NaN/inf would make HydroServer fail")
        self.request("POST", f"/api/data/datastreams/{datastream_id}/observations/bulk-create",
                     params={"mode": mode}, data=serialize_observations(timestamps, values),
                     headers={"Content-Type": "application/json"}, expected=(200, 201))

    def bulk_delete_observations(self, datastream_id: str, start: datetime | str | None,
                                 end: datetime | str | None) -> None:
        """Delete the stored observations with ``start <= phenomenonTime <= end`` (None: open)."""
        self.request(
            "POST",
            f"/api/data/datastreams/{datastream_id}/observations/bulk-delete",
            json={
                "phenomenonTimeStart": None if start is None else to_utc_iso(start),
                "phenomenonTimeEnd": None if end is None else to_utc_iso(end),
            },
            expected=(200, 204),
        )

    def get_observations(self, datastream_id: str, start: datetime | str | None = None,
                         end: datetime | str | None = None) -> tuple[list[datetime], list[float]]:
        """Stored observations (inclusive range) in time order, as UTC datetimes and floats."""
        times, results = self.get_observation_arrays(datastream_id, start, end)
        return ([t.replace(tzinfo=UTC) for t in times.astype("datetime64[us]").tolist()],
                results.tolist())

    def get_observation_arrays(self, datastream_id: str, start: datetime | str | None = None,
                               end: datetime | str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Stored observations (inclusive range) in time order as numpy arrays: UTC
        ``datetime64[us]`` and ``float64`` -- what the loader compares its rows with."""
        params: dict[str, Any] = {"format": "column", "order_by": "phenomenonTime"}
        if start is not None:
            params["phenomenon_time_min"] = to_utc_iso(start)
        if end is not None:
            params["phenomenon_time_max"] = to_utc_iso(end)
        times: list[str] = []
        results: list[float] = []
        for page in self._iter_column_pages(
                f"/api/data/datastreams/{datastream_id}/observations", params):
            times.extend(page.get("phenomenonTime", []))
            results.extend(page.get("result", []))
        return _utc_datetime64(times), np.asarray(results, dtype="float64")

    # ------------------------------------------------------------------------ ETL
    def list_workspaces(self, associated_only: bool = True) -> list[dict]:
        return self.list_all("/api/data/workspaces", {"is_associated": associated_only})

    def list_data_connections(self, workspace_id: str | None = None) -> list[dict]:
        params = {"workspace_id": workspace_id} if workspace_id else {}
        return self.list_all("/api/data/etl/data-connections", params)

    def get_data_connection(self, data_connection_id: str) -> dict:
        return self._json("GET", f"/api/data/etl/data-connections/{data_connection_id}")

    def list_tasks(self, workspace_id: str | None = None,
                   data_connection_id: str | None = None) -> list[dict]:
        """Tasks with their mappings and data connection (HydroServer's expanded form)."""
        filters = (("workspace_id", workspace_id), ("data_connection_id", data_connection_id))
        params: dict[str, Any] = {k: v for k, v in filters if v}
        return self.list_all("/api/data/etl/tasks", {**params, "expand_related": True})

    def get_task(self, task_id: str) -> dict:
        """One task with its mappings and data connection (HydroServer's expanded form)."""
        return self._json("GET", f"/api/data/etl/tasks/{task_id}",
                          params={"expand_related": True})

    def update_task_schedule(self, task_id: str, **schedule: Any) -> dict:
        """Patch a task's schedule, e.g. ``enabled=False`` to stop HydroServer's own runs."""
        return self._json("PATCH", f"/api/data/etl/tasks/{task_id}", json={"schedule": schedule})

    # ---------------------------------------------------------------------- check
    def check(self) -> str:
        """Prove the URL and the credentials; returns one line for the Test button.

        Lists the workspaces associated with the credentials. An API key belongs to a
        workspace, so an accepted key always has one; a wrong key is answered as an anonymous
        visitor (no workspace, or 401). Reading data proves nothing about a key: HydroServer
        answers GETs of *public* datastreams anonymously, with 200, whatever the key.
        """
        try:
            workspaces = self.list_workspaces()
        except AuthenticationError:
            if not self.credentials.api_key:
                raise
            raise self._key_refused("answered 401") from None
        if not workspaces:
            if self.credentials.api_key:
                raise self._key_refused("answered as to an anonymous visitor: no workspace")
            raise AuthenticationError(
                f"HydroServer at {self.url} accepted the login of {self.credentials.email}, but "
                "that account belongs to no workspace: ask a workspace owner to add it"
            )
        names = ", ".join(sorted(w.get("name", w.get("id", "?")) for w in workspaces)[:5])
        how = "an API key" if self.credentials.api_key else f"the account {self.credentials.email}"
        return (f"Connected to HydroServer at {self.url} with {how}: "
                f"{len(workspaces)} workspace{'s' if len(workspaces) != 1 else ''} ({names})")

    def _key_refused(self, how: str) -> AuthenticationError:
        return AuthenticationError(
            f"HydroServer at {self.url} did not accept the API key ({how}). A wrong key still "
            "reads public datastreams (HydroServer answers those anonymously), but every write "
            "would fail: check the key"
        )

    def probe(self) -> HydroServerClient:
        """A twin of this client (same server, credentials and session token) that gives up
        quickly: two tries, a 5 s connect timeout (:data:`PROBE_RETRY`). Close it after use."""
        twin = self.fork()
        twin.retry, twin.timeout = PROBE_RETRY, PROBE_TIMEOUT
        return twin


def chunk_slices(total: int, size: int) -> Iterator[slice]:
    """``slice``s of at most ``size`` rows covering ``range(total)``: how rows become requests."""
    size = max(1, int(size))
    for start in range(0, total, size):
        yield slice(start, min(total, start + size))


def serialize_observations(timestamps: np.ndarray, values: np.ndarray) -> bytes:
    """The column-form bulk-create body, serialised straight from numpy arrays."""
    return orjson.dumps({"phenomenonTime": timestamps, "result": values}, option=_NUMPY_JSON)


def _as_datetime64(timestamps: np.ndarray | Sequence[datetime | str]) -> np.ndarray:
    if isinstance(timestamps, np.ndarray) and timestamps.dtype.kind == "M":
        return timestamps.astype("datetime64[us]", copy=False)
    converted = [
        np.datetime64(to_utc_iso(parse_instant(t)).rstrip("Z"), "us")
        for t in timestamps
    ]
    return np.array(converted, dtype="datetime64[us]")


def _utc_datetime64(times: Sequence[str]) -> np.ndarray:
    """HydroServer's timestamps (``...+00:00`` or ``...Z``) as UTC ``datetime64[us]``."""
    naive = [t[:-6] if t.endswith("+00:00") else t[:-1] if t.endswith("Z") else None
             for t in times]
    if all(t is not None for t in naive):  # the usual case: numpy parses them all at once
        return np.array(naive, dtype="datetime64[us]")
    return _as_datetime64(list(times))


def _detail(response: requests.Response) -> Any:
    """HydroServer's ``detail`` (or the first bytes of a non-JSON body, on one line: an HTML
    error page of Django or a proxy shows as its title)."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        title = re.search(r"<title>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
        if title:
            return f"an HTML page titled {' '.join(title.group(1).split())!r}"
        return " ".join(re.sub(r"<[^>]+>", " ", text[:300]).split()) or response.reason
    if isinstance(body, dict) and "detail" in body:
        return body["detail"]
    return body
