"""What the DAG factory adds for notifications: failure alerts on tasks, one digest DAG per
data connection with a ``notification.schedule``.

Digest DAG: ``hydroserver_digest_<slug of the data connection name>``, one task
(``send_digest``, :class:`HydroDigestOperator`), scheduled with the same *data interval*
timetables as ingestion (``interval`` + ``interval_period`` or ``crontab``), so each run's data
interval is exactly "since the previous digest". ``catchup`` is off (a digest for every missed
period would flood the recipients) and it is created unpaused unless the schedule says
``enabled: false`` -- then no digest DAG is built at all.

Nothing here runs at parse time beyond building objects: no network, no heavy import.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from hydroserver_provider.compat import DAG, BaseOperator
from hydroserver_provider.errors import DefinitionError
from hydroserver_provider.factory.ids import slugify
from hydroserver_provider.factory.schedules import schedule_text, start_date_for, timetable_for
from hydroserver_provider.notifications.alerts import FailureAlert
from hydroserver_provider.notifications.digest import DigestTask
from hydroserver_provider.periods import last_schedule_period, schedule_timing

if TYPE_CHECKING:
    from hydroserver_provider.definitions import DataConnection, Task

__all__ = ["DIGEST_DAG_PREFIX", "DIGEST_TASK_ID", "HydroDigestOperator", "add_failure_alert",
           "build_digest_dags", "digest_dag_id", "digest_task"]

log = logging.getLogger(__name__)

DIGEST_DAG_PREFIX = "hydroserver_digest_"
DIGEST_TASK_ID = "send_digest"


def add_failure_alert(dag: DAG, task: Task) -> None:
    """Put a :class:`FailureAlert` on every task of ``dag`` (after the ones already there)."""
    notification = task.data_connection.notification
    alert = FailureAlert(task_name=task.name, connection_name=task.data_connection.name,
                         recipients=notification.recipient_emails if notification else ())
    for operator in dag.tasks:
        callbacks = operator.on_failure_callback or ()
        # Airflow keeps callbacks as a list: a single one is wrapped when the task is built
        assert isinstance(callbacks, Sequence), callbacks
        operator.on_failure_callback = [*callbacks, alert]


def digest_dag_id(connection_name: str) -> str:
    slug = slugify(connection_name) or "c_" + hashlib.sha1(
        connection_name.encode("utf-8")).hexdigest()[:10]
    return (DIGEST_DAG_PREFIX + slug)[:250]


def digest_task(task: Task, dag_id: str) -> DigestTask:
    return DigestTask(dag_id=dag_id, name=task.name, enabled=task.schedule.enabled,
                      **schedule_timing(task.schedule))


@dataclass
class _Group:
    connection: DataConnection
    source: str
    tasks: list[DigestTask]


def _sends_digests(connection: DataConnection) -> bool:
    """Whether the data connection asks for digests: an enabled, non-manual schedule."""
    notification = connection.notification
    schedule = notification.schedule if notification else None
    return schedule is not None and schedule.enabled and not schedule.is_manual


def build_digest_dags(tasks: Iterable[tuple[Task, str, str]], taken: Iterable[str] = (), *,
                      only_dag_id: str | None = None,
                      build: bool = True) -> tuple[dict[str, DAG], list[DefinitionError]]:
    """Digest DAGs for ``(task, its DAG id, its definition file)`` triples, and the problems
    found: a digest without recipients, a digest DAG id already used by a task (``taken``), two
    different data connections of one name both asking for digests."""
    groups: dict[str, _Group] = {}
    errors: list[DefinitionError] = []
    clashes: set[str] = set()
    for task, dag_id, source in tasks:
        connection = task.data_connection
        if not _sends_digests(connection):
            continue
        group = groups.get(connection.name)
        if group is None:
            groups[connection.name] = _Group(connection, source, [digest_task(task, dag_id)])
        elif group.connection.notification != connection.notification:
            clashes.add(connection.name)
        else:
            group.tasks.append(digest_task(task, dag_id))
    taken = set(taken)
    dags: dict[str, DAG] = {}
    for name, group in groups.items():
        location = f"{group.source}: data connection '{name}'"
        if name in clashes:
            errors.append(DefinitionError(
                "two data connections of this name have different notification settings; "
                "their digests would share one DAG", location=location, field="name",
                expected="one name per data connection that sends digests", found=name))
            continue
        if not group.connection.notification.recipient_emails:  # type: ignore[union-attr]
            errors.append(DefinitionError(
                "a digest schedule needs someone to send it to", location=location,
                field="notification.recipient_emails",
                expected="at least one address, e.g. [ops@example.org]", found=[]))
            continue
        dag_id = digest_dag_id(name)
        if dag_id in taken:
            errors.append(DefinitionError(
                f"its digest DAG id '{dag_id}' is already the DAG id of a task",
                location=location, field="notification.schedule",
                expected="a task name that does not give the DAG id of a digest",
                found=dag_id))
            continue
        if build and (only_dag_id is None or only_dag_id == dag_id):
            dags[dag_id] = build_digest_dag(group.connection, group.tasks, dag_id, group.source)
    return dags, errors


def build_digest_dag(connection: DataConnection, tasks: Sequence[DigestTask], dag_id: str,
                     source: str | None = None) -> DAG:
    notification = connection.notification
    assert notification is not None and notification.schedule is not None
    schedule = notification.schedule
    dag = DAG(
        dag_id,
        dag_display_name=f"Digest: {connection.name}",
        description=f"E-mail digest of {connection.name} ({len(tasks)} task"
                    f"{'s' if len(tasks) != 1 else ''}), {schedule_text(schedule)}"
                    .replace("`", ""),
        schedule=timetable_for(schedule),
        start_date=start_date_for(schedule),
        catchup=False,
        max_active_runs=1,
        is_paused_upon_creation=False,
        tags=["hydroserver", "digest", connection.name[:100]],
        doc_md=_digest_doc(connection, tasks, source),
        auto_register=False,
    )
    HydroDigestOperator(
        task_id=DIGEST_TASK_ID, dag=dag, connection_name=connection.name, tasks=list(tasks),
        recipients=notification.recipient_emails, retries=2, retry_delay=timedelta(minutes=5),
        **schedule_timing(schedule),
    )
    return dag


def _digest_doc(connection: DataConnection, tasks: Sequence[DigestTask],
                source: str | None) -> str:
    notification = connection.notification
    assert notification is not None and notification.schedule is not None
    lines = [f"### Digest: {connection.name}", ""]
    if source:
        lines.append(f"- **Definition file:** `{source}`")
    lines += [f"- **Tasks:** {', '.join(t.name for t in tasks)}",
              f"- **Recipients:** {', '.join(notification.recipient_emails)}",
              f"- **Schedule:** {schedule_text(notification.schedule)}", "",
              "Each run e-mails what the tasks did during its data interval (since the previous "
              "digest): runs, observations loaded, skipped and dropped per datastream, failures, "
              "and tasks behind schedule."]
    return "\n".join(lines) + "\n"


class HydroDigestOperator(BaseOperator):
    """E-mail what some ingestion tasks did during this run's data interval.

    :param connection_name: the data connection the digest is about.
    :param tasks: the tasks (:class:`DigestTask`) to report on.
    :param recipients: who gets the e-mail.
    :param interval_seconds / crontab / timezone: the digest's schedule, for the period of a
        run without a data interval (a manual run): the last complete period before it.
    :param smtp_conn_id: Airflow SMTP connection; default Airflow's ``[email] email_conn_id``.
    :param airflow_api_conn_id: connection to Airflow's REST API (host, login, password).
    :param charts: inline PNG charts when matplotlib is installed (a text sparkline always).
    """

    ui_color = "#fdebd0"

    def __init__(self, *, connection_name: str, tasks: Sequence[DigestTask],
                 recipients: Sequence[str], interval_seconds: float | None = None,
                 crontab: str | None = None, timezone: str = "UTC",
                 smtp_conn_id: str | None = None,
                 airflow_api_conn_id: str = "airflow_api_default", charts: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.connection_name = connection_name
        self.tasks = [t if isinstance(t, DigestTask) else DigestTask(**t) for t in tasks]
        self.recipients = tuple(recipients)
        self.interval_seconds = interval_seconds
        self.crontab = crontab
        self.timezone = timezone
        self.smtp_conn_id = smtp_conn_id
        self.airflow_api_conn_id = airflow_api_conn_id
        self.charts = charts

    def period(self, context: Mapping[str, Any]) -> tuple[datetime, datetime]:
        start = context.get("data_interval_start")
        end = context.get("data_interval_end")
        if start is not None and end is not None and start < end:
            return start, end
        now = getattr(context.get("dag_run"), "run_after", None) or datetime.now(UTC)
        return last_schedule_period(now, interval_seconds=self.interval_seconds,
                                    crontab=self.crontab, timezone=self.timezone) or (
            now - timedelta(days=1), now)

    def check_connections(self) -> None:
        """Fail at once, without retries, in one line, when the Airflow API connection (run
        history) or the SMTP connection (sending) does not exist."""
        from hydroserver_provider.notifications.mail import default_smtp_conn_id
        from hydroserver_provider.operators.preflight import (
            airflow_api_connection,
            fail_if_missing,
            smtp_connection,
        )

        fail_if_missing([airflow_api_connection(self.airflow_api_conn_id),
                         smtp_connection(self.smtp_conn_id or default_smtp_conn_id())],
                        f"The digest of '{self.connection_name}' cannot run")

    def execute(self, context: Mapping[str, Any]) -> dict[str, Any]:
        from hydroserver_provider.notifications.digest import collect_digest
        from hydroserver_provider.notifications.mail import build_message, send_message
        from hydroserver_provider.notifications.render import render_digest
        from hydroserver_provider.runs.api import AirflowAPI, iso_utc

        self.check_connections()
        start, end = self.period(context)
        self.log.info("Digest of %s for %s -> %s", self.connection_name, start, end)
        with AirflowAPI.from_connection(self.airflow_api_conn_id) as api:
            digest = collect_digest(api, self.connection_name, self.tasks, start, end)
        subject, text, html, images = render_digest(digest, charts=self.charts)
        message = build_message(subject=subject, recipients=self.recipients, text=text,
                                html=html, images=images)
        send_message(message, smtp_conn_id=self.smtp_conn_id)
        return {
            "period": {"start": iso_utc(start), "end": iso_utc(end)},
            "runs": digest.runs, "failures": digest.failures, "loaded": digest.loaded,
            "behind": [t.task.dag_id for t in digest.behind],
            "recipients": len(self.recipients), "charts": len(images),
        }
