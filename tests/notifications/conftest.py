"""A real SMTP server on 127.0.0.1 for the notification tests, wired as ``smtp_default``."""

from __future__ import annotations

import pytest

from hydroserver_provider.testing.smtp import LocalSmtpServer


@pytest.fixture(scope="session")
def _smtp_server():
    with LocalSmtpServer() as server:
        yield server


@pytest.fixture
def smtp(_smtp_server, monkeypatch) -> LocalSmtpServer:
    """The SMTP server, emptied, and ``AIRFLOW_CONN_SMTP_DEFAULT`` pointing at it."""
    _smtp_server.clear()
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", _smtp_server.airflow_connection())
    return _smtp_server
