"""HydroServerHook: a HydroServer client configured from an Airflow connection.

Connection fields: host = HydroServer URL; either the ``api_key`` extra field (masked in the UI)
or login/password (email and password, exchanged for a session token). The API calls themselves
live in :class:`~hydroserver_provider.hydroserver.client.HydroServerClient`, shared with the
Airflow-free ingestion core.
"""

from __future__ import annotations

from typing import Any

from ..compat import BaseHook, mask_secret
from hydroserver_provider.errors import HydroServerProviderError
from hydroserver_provider.hydroserver.client import Credentials, HydroServerClient, normalize_url
from hydroserver_provider.retries import RetryPolicy
from ..defaults import HYDROSERVER_CONN_ID


class HydroServerHook(BaseHook, HydroServerClient):
    """Talk to HydroServer with the credentials of connection ``hydroserver_conn_id``.

    Nothing is looked up until the first call. Retries (``retry``) and timeouts can be tuned per
    hook, or per connection with the extras ``retries``, ``retry_backoff`` and ``timeout``.
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
        BaseHook.__init__(self)
        HydroServerClient.__init__(self, retry=retry, timeout=timeout or (10.0, 300.0))
        self.hydroserver_conn_id = hydroserver_conn_id
        self._explicit_retry = retry is not None
        self._explicit_timeout = timeout is not None

    def _resolve(self) -> None:
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
        if not self._explicit_retry and "retries" in extra:
            self.retry = RetryPolicy(tries=int(extra["retries"]) + 1,
                                     backoff=float(extra.get("retry_backoff", 1.0)))
        if not self._explicit_timeout and "timeout" in extra:
            self.timeout = float(extra["timeout"])
        self._url = normalize_url(host)
        self._credentials = credentials

    def get_conn(self) -> HydroServerClient:
        """The hook is itself the client; returned for Airflow's hook conventions."""
        return self

    def test_connection(self) -> tuple[bool, str]:
        """Used by the Test button of Airflow's connection form."""
        try:
            return True, self.check()
        except Exception as exc:  # the UI shows the message, whatever went wrong
            return False, str(exc)

    def __repr__(self) -> str:
        return f"HydroServerHook(hydroserver_conn_id={self.hydroserver_conn_id!r})"
