"""Build a multipart e-mail and send it through an Airflow SMTP connection.

The message carries a plain-text part and an HTML part (``multipart/alternative``), the HTML
with its inline PNG charts (``multipart/related``, ``cid:`` links). Airflow's SMTP provider
builds HTML-only messages, so the message is built here with the standard library and handed to
the provider's ``SmtpHook`` connection -- host, port, SSL/STARTTLS, login and ``from_email`` all
come from the Airflow connection (``[email] email_conn_id``, ``smtp_default`` by default).
"""

from __future__ import annotations

import functools
import logging
import smtplib
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

__all__ = ["DEFAULT_SMTP_CONN_ID", "EmailNotSent", "build_message", "default_smtp_conn_id",
           "send_message"]

log = logging.getLogger(__name__)

DEFAULT_SMTP_CONN_ID = "smtp_default"
_FALLBACK_SENDER = "airflow@localhost"


class EmailNotSent(Exception):
    """The e-mail could not be sent; the message says why, without any credential."""


def default_smtp_conn_id() -> str:
    """Airflow's own setting for the SMTP connection: ``[email] email_conn_id``."""
    from hydroserver_provider.compat import airflow_conf

    return airflow_conf.get("email", "email_conn_id", fallback=None) or DEFAULT_SMTP_CONN_ID


def build_message(*, subject: str, recipients: Sequence[str], text: str, html: str,
                  images: Mapping[str, bytes] | None = None,
                  sender: str | None = None) -> EmailMessage:
    """A ``multipart/alternative`` message: ``text``, then ``html`` with ``images`` (PNG bytes
    by content id, referenced in the HTML as ``cid:<id>``) attached inline."""
    message = EmailMessage()
    message["Subject"] = subject
    message["To"] = ", ".join(recipients)
    if sender:
        message["From"] = sender
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain="hydroserver-airflow")
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    if images:
        *_, html_part = message.iter_parts()  # the part add_alternative added last
        for content_id, png in images.items():
            html_part.add_related(png, maintype="image", subtype="png", cid=f"<{content_id}>",
                                  disposition="inline", filename=f"{content_id}.png")
    return message


@functools.lru_cache(maxsize=1)
def _mime_hook_class() -> type:
    from hydroserver_provider.compat import smtp_hook_class

    base: Any = smtp_hook_class()

    class MimeSmtpHook(base):
        """Airflow's ``SmtpHook`` that sends a ready MIME message."""

        def send_mime(self, message: EmailMessage, recipients: Sequence[str]) -> None:
            for attempt in range(self.smtp_retry_limit + 1):
                try:
                    self._smtp_client.send_message(message, to_addrs=list(recipients))
                    return
                except (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError):
                    if attempt == self.smtp_retry_limit:
                        raise

    return MimeSmtpHook


def _sender(hook: Any) -> str:
    from hydroserver_provider.compat import airflow_conf

    return (hook.from_email or airflow_conf.get("email", "from_email", fallback=None)
            or airflow_conf.get("smtp", "smtp_mail_from", fallback=None) or _FALLBACK_SENDER)


def send_message(message: EmailMessage, *, smtp_conn_id: str | None = None) -> list[str]:
    """Send ``message`` to its ``To`` addresses through the Airflow SMTP connection; returns
    the recipients. ``From`` defaults to the connection's ``from_email`` extra, then Airflow's
    ``[email] from_email``."""
    conn_id = smtp_conn_id or default_smtp_conn_id()
    recipients = [a.strip() for a in str(message["To"] or "").split(",") if a.strip()]
    if not recipients:
        raise EmailNotSent("the e-mail has no recipient")
    hook = _mime_hook_class()(smtp_conn_id=conn_id)
    try:
        with hook:
            if not message["From"]:
                message["From"] = _sender(hook)
            hook.send_mime(message, recipients)
    except EmailNotSent:
        raise
    except Exception as exc:
        # Name the connection and the failure kind; SMTP error texts can echo a login.
        reason = _reason(exc)
        raise EmailNotSent(f"could not send e-mail through the Airflow SMTP connection "
                           f"'{conn_id}': {reason}") from None
    log.info("E-mail '%s' sent to %s", message["Subject"], ", ".join(recipients))
    return recipients


def _reason(exc: Exception) -> str:
    name = type(exc).__name__
    if name == "AirflowException" and "not found" in str(exc).lower():
        return ("the connection does not exist (create it, e.g. AIRFLOW_CONN_SMTP_DEFAULT="
                "'{\"conn_type\": \"smtp\", \"host\": \"mail.example.org\", \"port\": 587, "
                "\"login\": \"...\", \"password\": \"...\", \"extra\": {\"from_email\": "
                "\"airflow@example.org\"}}')")
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return f"the server refused the login (SMTP {exc.smtp_code})"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "the server refused the recipients " + ", ".join(sorted(exc.recipients))
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"the server answered SMTP {exc.smtp_code}"
    if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
        return f"{name} while connecting (check host, port, and the disable_ssl / disable_tls " \
               "extras)"
    return name
