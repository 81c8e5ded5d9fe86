"""Building multipart e-mails and sending them through an Airflow SMTP connection."""

from __future__ import annotations

import json

import pytest

from hydroserver_provider.notifications.mail import (
    EmailNotSent,
    build_message,
    default_smtp_conn_id,
    send_message,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def test_message_has_text_and_html_alternatives_and_inline_images():
    message = build_message(subject="Digest", recipients=["a@example.org", "b@example.org"],
                            text="plain words", html='<p>rich <img src="cid:c1"></p>',
                            images={"c1": PNG})
    assert message.get_content_type() == "multipart/alternative"
    text, related = message.get_payload()
    assert text.get_content_type() == "text/plain" and text.get_content() == "plain words\n"
    assert related.get_content_type() == "multipart/related"
    html, image = related.get_payload()
    assert html.get_content_type() == "text/html"
    assert image.get_content_type() == "image/png" and image["Content-ID"] == "<c1>"
    assert image.get_content() == PNG
    assert message["To"] == "a@example.org, b@example.org"


def test_sent_through_the_smtp_connection_with_its_sender(smtp):
    message = build_message(subject="Hello", recipients=["ops@example.org", "hydro@example.org"],
                            text="figures: 1,234", html="<b>figures: 1,234</b>")
    assert send_message(message) == ["ops@example.org", "hydro@example.org"]
    (received,) = smtp.wait_for(1)
    assert received.recipients == ("ops@example.org", "hydro@example.org")
    assert received.mail_from == "airflow@example.org"  # the connection's from_email
    assert received.message["From"] == "airflow@example.org"
    assert received.subject == "Hello"
    assert received.text.strip() == "figures: 1,234"
    assert "<b>figures: 1,234</b>" in received.html


def test_the_connection_id_follows_airflows_email_conn_id(smtp, monkeypatch):
    monkeypatch.setenv("AIRFLOW__EMAIL__EMAIL_CONN_ID", "alerts_smtp")
    monkeypatch.setenv("AIRFLOW_CONN_ALERTS_SMTP", smtp.airflow_connection("alerts@example.org"))
    assert default_smtp_conn_id() == "alerts_smtp"
    send_message(build_message(subject="Via alerts_smtp", recipients=["x@example.org"],
                               text="t", html="<p>t</p>"))
    (received,) = smtp.wait_for(1)
    assert received.mail_from == "alerts@example.org"


def test_a_missing_connection_is_named(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_NO_SUCH_SMTP", raising=False)
    message = build_message(subject="s", recipients=["x@example.org"], text="t", html="t")
    with pytest.raises(EmailNotSent, match="Airflow SMTP connection 'no_such_smtp': the "
                                           "connection does not exist"):
        send_message(message, smtp_conn_id="no_such_smtp")


def test_a_refused_login_never_shows_the_password(smtp, monkeypatch):
    conn = json.loads(smtp.airflow_connection())
    conn.update(login="mailer", password="smtp-pass-987")
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps(conn))
    message = build_message(subject="s", recipients=["x@example.org"], text="t", html="t")
    with pytest.raises(EmailNotSent) as raised:
        send_message(message)
    assert "'smtp_default'" in str(raised.value)
    assert "smtp-pass-987" not in str(raised.value) and "mailer" not in str(raised.value)
    assert smtp.received == []


def test_an_unreachable_server_is_reported(smtp, monkeypatch):
    conn = json.loads(smtp.airflow_connection())
    conn["port"] = 9  # discard port: nothing listens
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps(conn))
    message = build_message(subject="s", recipients=["x@example.org"], text="t", html="t")
    with pytest.raises(EmailNotSent, match="while connecting"):
        send_message(message)
