"""HydroServerHook: a HydroServer client configured from an Airflow connection.

Connection fields: host = HydroServer URL; password = the API key (labelled so in the form,
masked); or login (email) + password = an account, exchanged for a session token. The ``api_key``
extra of older connections still works (and wins, as it always did, when an email is given too).
The API calls themselves live in
:class:`~hydroserver_provider.hydroserver.client.HydroServerClient`, shared with the Airflow-free
ingestion core; :meth:`HydroServerHook.get_conn` returns it, built on first use.
"""

from __future__ import annotations

from typing import Any

from hydroserver_provider.compat import BaseHook, mask_secret
from hydroserver_provider.defaults import HYDROSERVER_CONN_ID
from hydroserver_provider.errors import HydroServerProviderError
from hydroserver_provider.hooks.connection_test import tested_connection_id
from hydroserver_provider.hydroserver.client import (
    PROBE_RETRY,
    PROBE_TIMEOUT,
    Credentials,
    HydroServerClient,
)
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

    def _build_client(self, *, probe: bool = False) -> HydroServerClient:
        conn = self.get_connection(self.hydroserver_conn_id)
        extra: dict[str, Any] = conn.extra_dejson or {}
        for secret in (extra.get("api_key"), conn.password):
            if secret:
                mask_secret(secret)
        if not conn.host:
            raise HydroServerProviderError(
                f"{self._connection_name()} has no host: expected the HydroServer URL, e.g. "
                "https://hydroserver.example.org"
            )
        host = conn.host if "://" in conn.host else f"{conn.schema or 'https'}://{conn.host}"
        if conn.port and f":{conn.port}" not in host:
            host = f"{host.rstrip('/')}:{conn.port}"
        credentials = self._credentials(conn.login or None, conn.password or None,
                                        extra.get("api_key") or None)
        retry = self._retry
        if retry is None and "retries" in extra:
            retry = RetryPolicy(tries=int(extra["retries"]) + 1,
                                backoff=float(extra.get("retry_backoff", 1.0)))
        timeout = self._timeout
        if timeout is None:
            timeout = float(extra["timeout"]) if "timeout" in extra else (10.0, 300.0)
        if probe:  # the Test button: an answer in seconds, not after a minute of retries
            retry, timeout = PROBE_RETRY, PROBE_TIMEOUT
        return HydroServerClient(host, credentials, retry=retry, timeout=timeout)

    def _credentials(self, email: str | None, password: str | None,
                     extra_key: str | None) -> Credentials:
        """Email + password: an account (an ``api_key`` extra still wins, as before); the
        password field alone: the API key; else the ``api_key`` extra."""
        if email and not password and not extra_key:
            raise HydroServerProviderError(
                f"{self._connection_name()} has an Email ({email!r}) but no password: fill in "
                "the account password, or empty the Email and put an API key in the API key "
                "field")
        try:
            if email:
                return Credentials(api_key=extra_key, email=email, password=password)
            return Credentials(api_key=password or extra_key)
        except HydroServerProviderError:
            raise HydroServerProviderError(
                f"{self._connection_name()} has no HydroServer credentials: expected an API key "
                "(the API key field, i.e. the password), or an Email and the account password"
            ) from None

    def _connection_name(self) -> str:
        """How messages name the connection: the id the user gave it. Under the Test button,
        Airflow runs the hook with a random temporary id; the API server's middleware tells
        the real one (:mod:`~hydroserver_provider.hooks.connection_test`)."""
        return f"Airflow connection '{tested_connection_id() or self.hydroserver_conn_id}'"

    def test_connection(self) -> tuple[bool, str]:
        """Used by the Test button of Airflow's connection form: one short line either way.

        Proves the URL and the credentials: a wrong API key fails here even where HydroServer
        would answer reads of public datastreams anonymously. Two tries and a 5 s connect timeout,
        so an unreachable server is reported in seconds.
        """
        try:
            client = self._build_client(probe=True)
        except Exception as exc:  # the UI shows the message, whatever went wrong
            return False, str(exc)
        try:
            return True, client.check()
        except Exception as exc:
            return False, str(exc)
        finally:
            client.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __repr__(self) -> str:
        return f"HydroServerHook(hydroserver_conn_id={self.hydroserver_conn_id!r})"
