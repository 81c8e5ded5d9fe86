"""A local SMTP server that keeps what it receives, for testing alerts and digests.

``with LocalSmtpServer() as smtp: ...; smtp.wait_for(1)`` -- a real SMTP server (aiosmtpd) on
127.0.0.1; each received message is parsed with :mod:`email` (``policy.default``), so a test reads
recipients, subject and parts the way a mail client would. ``smtp.airflow_connection()`` is the
JSON for ``AIRFLOW_CONN_SMTP_DEFAULT``. Needs ``aiosmtpd`` (the provider's ``test`` extra).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

__all__ = ["LocalSmtpServer", "ReceivedEmail"]


@dataclass(frozen=True)
class ReceivedEmail:
    """One message as delivered: the SMTP envelope and the parsed message."""

    mail_from: str
    recipients: tuple[str, ...]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"] or "")

    def part(self, content_type: str) -> Any:
        """The first part of ``content_type`` (``text/plain``, ``text/html``, ``image/png``)."""
        for part in self.message.walk():
            if part.get_content_type() == content_type:
                return part
        return None

    @property
    def text(self) -> str:
        part = self.part("text/plain")
        return part.get_content() if part is not None else ""

    @property
    def html(self) -> str:
        part = self.part("text/html")
        return part.get_content() if part is not None else ""

    @property
    def images(self) -> dict[str, bytes]:
        """Inline images by content id (without the angle brackets)."""
        return {
            str(p["Content-ID"]).strip("<>"): p.get_content()
            for p in self.message.walk()
            if p.get_content_maintype() == "image"
        }


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class LocalSmtpServer:
    """An SMTP server on ``host``:``port`` (a free port by default) collecting messages."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port or _free_port(host)
        self.received: list[ReceivedEmail] = []
        self._changed = threading.Condition()
        self._controller: Any = None

    def airflow_connection(self, from_email: str = "airflow@example.org") -> str:
        """The JSON of an Airflow ``smtp`` connection to this server (no TLS, no login)."""
        return json.dumps(
            {
                "conn_type": "smtp",
                "host": self.host,
                "port": self.port,
                "extra": {
                    "disable_ssl": True,
                    "disable_tls": True,
                    "from_email": from_email,
                    "timeout": 10,
                    "retry_limit": 1,
                },
            }
        )

    def start(self) -> LocalSmtpServer:
        from aiosmtpd.controller import Controller

        self._controller = Controller(_Handler(self), hostname=self.host, port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> LocalSmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def clear(self) -> None:
        with self._changed:
            self.received.clear()

    def _deliver(self, email: ReceivedEmail) -> None:
        with self._changed:
            self.received.append(email)
            self._changed.notify_all()

    def wait_for(
        self, count: int = 1, timeout: float = 30.0, subject_contains: str | None = None
    ) -> list[ReceivedEmail]:
        """Wait until ``count`` messages (whose subject contains ``subject_contains``) arrived;
        returns them, or raises ``TimeoutError`` listing what did arrive."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [
                    m
                    for m in self.received
                    if subject_contains is None or subject_contains in m.subject
                ]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    subjects = [m.subject for m in self.received]
                    raise TimeoutError(
                        f"expected {count} e-mail(s)"
                        + (f" about {subject_contains!r}" if subject_contains else "")
                        + f" within {timeout} s; received: {subjects}"
                    )
                self._changed.wait(remaining)


class _Handler:
    def __init__(self, server: LocalSmtpServer) -> None:
        self.server = server

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = BytesParser(policy=policy.default).parsebytes(
            envelope.original_content or envelope.content
        )
        self.server._deliver(ReceivedEmail(envelope.mail_from, tuple(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"
