"""HydrocronHook: a NASA Hydrocron client configured from an Airflow connection.

Connection type ``hydrocron``:

* host: the Hydrocron base URL; empty means the public endpoint
  ``https://soto.podaac.earthdatacloud.nasa.gov/hydrocron/v1`` (a bare host gets ``/hydrocron/v1``);
* password (labelled "API key" in the form): optional API key, sent as ``x-hydrocron-key`` and
  masked; the ``api_key`` extra of older connections is still read;
* extras: ``requests_per_second`` (default 5; 0 = no limit) and ``burst`` for the process-wide
  rate limiter, ``retries`` / ``retry_backoff``, ``timeout`` (seconds), ``min_window_hours``
  (smallest window a 413/504 may be split into, default 6), ``max_window_days`` (split longer
  windows up front).

Hydrocron needs no account, so ``hydrocron_default`` may be left undefined: the hook then talks
to the public endpoint anonymously. The requests themselves live in
:class:`~hydroserver_provider.sources.hydrocron.client.HydrocronClient`, shared with the
Airflow-free core.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, TypedDict

from hydroserver_provider.compat import AirflowNotFoundException, BaseHook, mask_secret
from hydroserver_provider.defaults import HYDROCRON_CONN_ID
from hydroserver_provider.errors import HydroServerProviderError
from hydroserver_provider.hooks.connection_test import tested_connection_id
from hydroserver_provider.retries import RetriesExhausted, RetryPolicy, describe_transport_error
from hydroserver_provider.sources.hydrocron.client import (
    DEFAULT_MIN_WINDOW,
    DEFAULT_TIMEOUT,
    DEFAULT_URL,
    HYDROCRON_RETRY,
    HydrocronClient,
    HydrocronQuery,
    HydrocronResult,
    normalize_base_url,
)
from hydroserver_provider.sources.hydrocron.parse import QualityRule
from hydroserver_provider.sources.ratelimit import shared_limiter

log = logging.getLogger(__name__)

DEFAULT_REQUESTS_PER_SECOND = 5.0


class _ProbeQuery(TypedDict):
    """The keyword arguments of the connection test's :class:`HydrocronQuery`."""

    feature: str
    feature_id: str
    fields: tuple[str, ...]
    quality_filter: tuple[QualityRule, ...]
    overlap: timedelta


# test_connection: one reach, one day, two fields (a pass of reach 18180900091 in version D).
PROBE_QUERY: _ProbeQuery = dict(feature="Reach", feature_id="18180900091", fields=("wse",),
                                quality_filter=(), overlap=timedelta(0))
PROBE_WINDOW = ("2024-01-12T00:00:00Z", "2024-01-13T00:00:00Z")


class HydrocronHook(BaseHook):
    """Fetch SWOT time series from Hydrocron with the settings of connection ``hydrocron_conn_id``.

    Nothing is looked up until the first call. ``retry``, ``requests_per_second`` and ``timeout``
    given here win over the connection's extras.
    """

    conn_name_attr = "hydrocron_conn_id"
    default_conn_name = HYDROCRON_CONN_ID
    conn_type = "hydrocron"
    hook_name = "NASA Hydrocron"

    def __init__(
        self,
        hydrocron_conn_id: str = default_conn_name,
        *,
        retry: RetryPolicy | None = None,
        requests_per_second: float | None = None,
        timeout: float | tuple[float, float] | None = None,
    ) -> None:
        super().__init__()
        self.hydrocron_conn_id = hydrocron_conn_id
        self._retry = retry
        self._rate = requests_per_second
        self._timeout = timeout
        self._client: HydrocronClient | None = None

    @classmethod
    def for_payload(cls, payload: Any, conn_id: str | None = None) -> HydrocronHook:
        """The hook a HYDROCRON payload loads through: connection ``conn_id`` (the task's
        ``airflow.hydrocron_conn_id``), else the payload's, at the payload's request rate when it
        sets one -- the same for a scheduled run and ``hydroserver-airflow preview``."""
        return cls(conn_id or payload.hydrocron_conn_id,
                   requests_per_second=payload.requests_per_second)

    def _resolve(self, *, probe: bool = False) -> HydrocronClient:
        try:
            conn = self.get_connection(self.hydrocron_conn_id)
        except AirflowNotFoundException:
            if self.hydrocron_conn_id != self.default_conn_name:
                raise
            log.info("No Airflow connection '%s': using the public Hydrocron endpoint %s "
                     "anonymously", self.hydrocron_conn_id, DEFAULT_URL)
            conn = None
        extra: dict[str, Any] = (conn.extra_dejson or {}) if conn is not None else {}
        api_key = (conn.password if conn is not None else None) or extra.get("api_key") or None
        if api_key:
            mask_secret(api_key)
        host = conn.host if conn is not None else None
        if host and conn is not None and conn.port and "://" not in host:
            host = f"{host}:{conn.port}"
        if host and "://" not in host and conn is not None and conn.schema in ("http", "https"):
            host = f"{conn.schema}://{host}"
        base_url = normalize_base_url(host)

        def number(name: str, default: float | None) -> float | None:
            value = extra.get(name)
            if value in (None, ""):
                return default
            try:
                return float(value)
            except (TypeError, ValueError):
                raise HydroServerProviderError(
                    f"Airflow connection '{tested_connection_id() or self.hydrocron_conn_id}': "
                    f"extra '{name}' must be a number, found {value!r}"
                ) from None

        retry = self._retry
        if retry is None:
            retries = number("retries", None)
            retry = HYDROCRON_RETRY if retries is None else RetryPolicy(
                tries=int(retries) + 1, backoff=number("retry_backoff", 1.0) or 1.0,
                statuses=HYDROCRON_RETRY.statuses)
        limiter = None
        rate = self._rate if self._rate is not None else number(
            "requests_per_second", DEFAULT_REQUESTS_PER_SECOND)
        if rate and rate > 0:
            limiter = shared_limiter(f"hydrocron:{base_url}", rate, int(number("burst", 1) or 1))
        timeout = self._timeout if self._timeout is not None else number("timeout", None)
        if probe:  # the Test button: an answer in seconds, not after minutes of backoff
            retry = RetryPolicy(tries=2, backoff=0.5, max_delay=1.0, max_retry_after=2.0,
                                statuses=HYDROCRON_RETRY.statuses)
            timeout = (5.0, 30.0)
        min_hours = number("min_window_hours", None)
        max_days = number("max_window_days", None)
        return HydrocronClient(
            base_url,
            api_key=api_key,
            retry=retry,
            limiter=limiter,
            timeout=timeout if timeout is not None else DEFAULT_TIMEOUT,
            min_window=timedelta(hours=min_hours) if min_hours else DEFAULT_MIN_WINDOW,
            max_window=timedelta(days=max_days) if max_days else None,
        )

    def get_conn(self) -> HydrocronClient:
        """The configured :class:`HydrocronClient` (built on first use, then reused)."""
        if self._client is None:
            self._client = self._resolve()
        return self._client

    def fetch_timeseries(self, query: HydrocronQuery, start: Any, end: Any) -> HydrocronResult:
        """:meth:`HydrocronClient.fetch` with this connection's settings."""
        return self.get_conn().fetch(query, start, end)

    def test_connection(self) -> tuple[bool, str]:
        """Used by the Test button of Airflow's connection form: one tiny request, two tries."""
        try:
            client = self._resolve(probe=True)
        except Exception as exc:  # the UI shows the message, whatever went wrong
            return False, str(exc)
        try:
            result = client.fetch(HydrocronQuery(**PROBE_QUERY), *PROBE_WINDOW)
        except Exception as exc:
            if isinstance(exc.__cause__, RetriesExhausted):
                return False, (f"Hydrocron at {client.base_url} could not be reached "
                               f"({describe_transport_error(exc.__cause__)})")
            return False, str(exc)
        finally:
            client.close()
        key = "with the API key" if client.has_api_key else "anonymously"
        passes = result.parse_result.rows_read
        return True, (f"Hydrocron at {client.base_url} answered {key}: {passes} "
                      f"pass{'es' if passes != 1 else ''} of reach 18180900091 on 2024-01-12")

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __repr__(self) -> str:
        return f"HydrocronHook(hydrocron_conn_id={self.hydrocron_conn_id!r})"
