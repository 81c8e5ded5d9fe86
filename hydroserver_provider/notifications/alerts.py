"""Failure alerts: an e-mail when an ingestion run has failed for good.

:class:`FailureAlert` is the ``on_failure_callback`` of every ``ingest`` task the DAG factory
builds. Airflow calls it once, after the last try (``on_retry_callback`` would fire on the
others), in the task's own process, with the task's context. It

1. makes sure the run has a ``summary`` XCom: the operator pushes one when some datastreams
   failed; for a failure before any summary existed (the source answered 404, a connection is
   missing) a short one holding the error message is recorded, so run history always has a
   message (see :mod:`hydroserver_provider.runs.history`);
2. e-mails the data connection's ``notification.recipient_emails``, if any: task, data
   interval, error, per-datastream outcome, links to the run and its log.

Only error texts this package wrote are shown (its own exceptions, or raised from its own
code); anything else shows as its type and "see the task log", and every text passes through
Airflow's secrets masker as well.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from hydroserver_provider.compat import BaseNotifier

__all__ = ["FailureAlert", "FailureReport", "failure_report", "safe_error_text"]

log = logging.getLogger(__name__)

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_OWN_AIRFLOW_ERRORS = ("AirflowTaskTimeout", "AirflowTaskTerminated")


def _raised_by_us(exc: BaseException) -> bool:
    """Whether the innermost frame of ``exc``'s traceback is in this package."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(_PACKAGE_DIR + os.sep)


def safe_error_text(exc: BaseException | None) -> str:
    """The error as a person should read it, never a secret.

    The text of this package's errors (their messages carry redacted URLs and no credentials),
    of exceptions raised from this package's code, and of Airflow's timeouts is shown; any
    other exception shows only its type, since a third-party message may echo a URL with a
    key or a response body.
    """
    if exc is None:
        return "the task failed (no exception was reported; see the task log)"
    from hydroserver_provider.compat import redact
    from hydroserver_provider.errors import HydroServerProviderError

    name = type(exc).__name__
    if isinstance(exc, HydroServerProviderError) or name in _OWN_AIRFLOW_ERRORS \
            or _raised_by_us(exc):
        text = str(exc).strip() or name
        return str(redact(text if isinstance(exc, HydroServerProviderError) else
                          f"{name}: {text}"))
    return f"{name} (details in the task log)"


@dataclass
class FailureReport:
    """What a failure alert says."""

    task_name: str
    connection_name: str
    dag_id: str
    run_id: str
    try_number: int | None
    window_start: str | None
    window_end: str | None
    error: str
    summary: dict | None
    run_url: str | None
    log_url: str | None
    datastreams: list[dict] = field(default_factory=list)


def _iso(value: Any) -> str | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value)
    return None if "{{" in text else text


def _window(context: Mapping[str, Any], summary: dict | None) -> tuple[str | None, str | None]:
    """The window the run loaded: from its summary, the rendered operator fields, or the data
    interval (a run without one has no window)."""
    window = (summary or {}).get("window")
    if isinstance(window, dict) and window.get("start"):
        return window.get("start"), window.get("end")
    task = context.get("task")
    start, end = _iso(getattr(task, "window_start", None)), _iso(getattr(task, "window_end", None))
    if start and end:
        return start, end
    start, end = _iso(context.get("data_interval_start")), _iso(context.get("data_interval_end"))
    if start and end and start != end:
        return start, end
    return None, None


def _urls(ti: Any, dag_id: str, run_id: str) -> tuple[str | None, str | None]:
    from hydroserver_provider.compat import airflow_conf

    base = (airflow_conf.get("api", "base_url", fallback="") or "").rstrip("/")
    run_url = f"{base}/dags/{quote(dag_id)}/runs/{quote(run_id, safe='')}" if base else None
    try:
        log_url = ti.log_url if ti is not None else None
    except Exception:  # a TaskInstance stand-in without the property
        log_url = None
    return run_url, log_url


def failure_report(context: Mapping[str, Any], *, task_name: str,
                   connection_name: str) -> FailureReport:
    """The facts of a failed run, from the callback's context and the run's summary XCom."""
    ti = context.get("ti")
    dag_run = context.get("dag_run")
    dag_id = getattr(ti, "dag_id", None) or getattr(dag_run, "dag_id", "") or ""
    run_id = getattr(ti, "run_id", None) or context.get("run_id") or ""
    summary = _pull_summary(ti)
    error = safe_error_text(context.get("exception"))
    if summary and summary.get("message") and _is_ingestion_failure(context.get("exception")):
        error = str(summary["message"])
    start, end = _window(context, summary)
    run_url, log_url = _urls(ti, dag_id, run_id)
    return FailureReport(
        task_name=task_name, connection_name=connection_name, dag_id=dag_id, run_id=run_id,
        try_number=getattr(ti, "try_number", None), window_start=start, window_end=end,
        error=error, summary=summary, run_url=run_url, log_url=log_url,
        datastreams=list((summary or {}).get("datastreams") or []),
    )


def _is_ingestion_failure(exc: BaseException | None) -> bool:
    from hydroserver_provider.errors import IngestionFailed

    return isinstance(exc, IngestionFailed)


def _pull_summary(ti: Any) -> dict | None:
    if ti is None:
        return None
    try:
        value = ti.xcom_pull(task_ids=ti.task_id, key="summary")
    except Exception:
        log.warning("Could not read the run summary from XCom", exc_info=True)
        return None
    return value if isinstance(value, dict) else None


def _record_summary(ti: Any, report: FailureReport) -> None:
    """Give the run a ``summary`` XCom when the failure came before the operator made one."""
    if ti is None or report.summary is not None:
        return
    summary = {
        "status": "FAILURE", "message": report.error, "loaded": 0, "datastreams": [],
        "window": ({"start": report.window_start, "end": report.window_end}
                   if report.window_start else None),
    }
    try:
        ti.xcom_push(key="summary", value=summary)
    except Exception:
        log.warning("Could not record the failure summary in XCom", exc_info=True)


class FailureAlert(BaseNotifier):
    """``on_failure_callback`` of an ingestion task: records the failure, e-mails it.

    :param task_name: the task's name in its definition (the DAG's display name).
    :param connection_name: its data connection's name.
    :param recipients: ``notification.recipient_emails`` of the data connection (may be empty:
        then nothing is sent, the failure is only recorded).
    :param smtp_conn_id: Airflow SMTP connection; default Airflow's ``[email] email_conn_id``.
    """

    template_fields: Sequence[str] = ()

    def __init__(self, *, task_name: str, connection_name: str,
                 recipients: Sequence[str] = (), smtp_conn_id: str | None = None) -> None:
        super().__init__()
        self.task_name = task_name
        self.connection_name = connection_name
        self.recipients = tuple(recipients)
        self.smtp_conn_id = smtp_conn_id

    def notify(self, context: Mapping[str, Any]) -> None:
        report = failure_report(context, task_name=self.task_name,
                                connection_name=self.connection_name)
        _record_summary(context.get("ti"), report)
        if not self.recipients:
            return
        from hydroserver_provider.notifications.mail import (
            EmailNotSent,
            build_message,
            send_message,
        )
        from hydroserver_provider.notifications.render import render_failure

        subject, text, html = render_failure(report)
        message = build_message(subject=subject, recipients=self.recipients, text=text,
                                html=html)
        try:
            send_message(message, smtp_conn_id=self.smtp_conn_id)
        except EmailNotSent as exc:
            log.error("Failure alert for task '%s' not sent: %s", self.task_name, exc)
            raise
