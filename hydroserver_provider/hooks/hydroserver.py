"""HydroServerHook: a HydroServer client configured from an Airflow connection.

Connection fields: host = HydroServer URL; either the ``api_key`` extra field (masked in the UI)
or login/password (email and password, exchanged for a session token). The API calls themselves
live in :class:`~hydroserver_provider.hydroserver.client.HydroServerClient`, shared with the
Airflow-free ingestion core; :meth:`HydroServerHook.get_conn` returns it, built on first use.
"""

from __future__ import annotations

from typing import Any

from hydroserver_provider.compat import BaseHook, mask_secret
from hydroserver_provider.defaults import HYDROSERVER_CONN_ID
from hydroserver_provider.errors import HydroServerProviderError
from hydroserver_provider.hydroserver.client import Credentials, HydroServerClient
from hydroserver_provider.retries import RetryPolicy


class HydroServerHook(BaseHook):
    """Talk to HydroServer with the credentials of connection ``hydroserver_conn_id``.

    Nothing is looked up until :meth:`get_conn`. Retries (``retry``) and timeouts can be tuned
    per hook, or per connection with the extras ``retries``, ``retry_backoff`` and ``timeout``.
    """

    conn_name_attr = "hydroserver_conn_id"
    default_conn_name = HYDROSERVER_CONN_ID
    conn_type = "hydroserver"
    hook_name = "HydroServer"

    def __init__(
        self,
        hydroserver_conn_id: str = default_conn_name,
        *,
        retry: RetryPolicy | None = None,
        timeout: float | tuple[float, float] | None = None,
    ) -> None:
        super().__init__()
        self.hydroserver_conn_id = hydroserver_conn_id
        self._retry = retry
        self._timeout = timeout
        self._client: HydroServerClient | None = None

    def get_conn(self) -> HydroServerClient:
        """The configured :class:`HydroServerClient` (built on first use, then reused)."""
        if self._client is None:
            self._client = self._build_client()
        return self._client

    def _build_client(self) -> HydroServerClient:
        conn = self.get_connection(self.hydroserver_conn_id)
        extra: dict[str, Any] = conn.extra_dejson or {}
        api_key = extra.get("api_key") or None
        for secret in (api_key, conn.password):
            if secret:
                mask_secret(secret)
        if not conn.host:
            raise HydroServerProviderError(
                f"Airflow connection '{self.hydroserver_conn_id}' has no host: expected the "
                "HydroServer URL, e.g. https://hydroserver.example.org"
            )
        host = conn.host if "://" in conn.host else f"{conn.schema or 'https'}://{conn.host}"
        if conn.port and f":{conn.port}" not in host:
            host = f"{host.rstrip('/')}:{conn.port}"
        try:
            credentials = Credentials(api_key=api_key, email=conn.login or None,
                                      password=conn.password or None)
        except HydroServerProviderError:
            raise HydroServerProviderError(
                f"Airflow connection '{self.hydroserver_conn_id}' has no HydroServer credentials: "
                "expected the api_key field, or login (email) and password"
            ) from None
        retry = self._retry
        if retry is None and "retries" in extra:
            retry = RetryPolicy(tries=int(extra["retries"]) + 1,
                                backoff=float(extra.get("retry_backoff", 1.0)))
        timeout = self._timeout
        if timeout is None:
            timeout = float(extra["timeout"]) if "timeout" in extra else (10.0, 300.0)
        return HydroServerClient(host, credentials, retry=retry, timeout=timeout)

    def test_connection(self) -> tuple[bool, str]:
        """Used by the Test button of Airflow's connection form."""
        try:
            return True, self.get_conn().check()
        except Exception as exc:  # the UI shows the message, whatever went wrong
            return False, str(exc)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __repr__(self) -> str:
        return f"HydroServerHook(hydroserver_conn_id={self.hydroserver_conn_id!r})"
