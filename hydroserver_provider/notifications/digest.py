"""Digests: what every task of a data connection did between two digests.

A data connection with ``notification.schedule`` gets a digest DAG (see
:mod:`hydroserver_provider.notifications.dags`). Each digest run covers its data interval --
from the previous digest to this one -- and reports, per task: each run that started in it
(status, message), observations loaded, skipped and dropped per datastream, the failures with
their messages, and whether the task is *behind schedule*: no successful run for more than two
of its intervals.

Run history is read through Airflow's public REST API (:mod:`hydroserver_provider.runs.history`):
the Task SDK gives a task no way to list another DAG's runs by start time, and Airflow 3 keeps
task code off the metadata database. Per task that is one request for the runs of the period,
one per run for its summary XCom, and one or two for the last successful run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hydroserver_provider.periods import last_schedule_period
from hydroserver_provider.runs.history import TaskRun, list_runs
from hydroserver_provider.timestamps import parse_instant

__all__ = ["DatastreamTotals", "Digest", "DigestTask", "TaskDigest", "behind_schedule",
           "collect_digest", "dropped_total", "schedule_period"]

BEHIND_AFTER_INTERVALS = 2


@dataclass(frozen=True)
class DigestTask:
    """A task a digest reports on, as its definition describes it."""

    dag_id: str
    name: str
    interval_seconds: float | None = None
    crontab: str | None = None
    timezone: str = "UTC"
    enabled: bool = True

    @property
    def scheduled(self) -> bool:
        return self.interval_seconds is not None or self.crontab is not None


@dataclass
class DatastreamTotals:
    """One datastream over the runs of the period (in run order)."""

    datastream_id: str
    name: str | None
    loaded: int = 0
    skipped: int = 0
    dropped: int = 0
    failed_runs: int = 0
    loaded_per_run: list[int] = field(default_factory=list)
    failed_per_run: list[bool] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.datastream_id})" if self.name else self.datastream_id


@dataclass
class TaskDigest:
    task: DigestTask
    runs: list[TaskRun]  # oldest first
    datastreams: list[DatastreamTotals]
    last_success: datetime | None
    behind: bool
    paused: bool | None
    found: bool = True  # the DAG exists in Airflow
    period: timedelta | None = None

    def count(self, status: str) -> int:
        return sum(1 for run in self.runs if run.status == status)

    @property
    def failures(self) -> list[TaskRun]:
        return [run for run in self.runs if run.status == "FAILURE"]

    @property
    def loaded(self) -> int:
        return sum(d.loaded for d in self.datastreams)


@dataclass
class Digest:
    connection_name: str
    start: datetime
    end: datetime
    tasks: list[TaskDigest]
    generated_at: datetime

    @property
    def runs(self) -> int:
        return sum(len(t.runs) for t in self.tasks)

    @property
    def failures(self) -> int:
        return sum(len(t.failures) for t in self.tasks)

    @property
    def loaded(self) -> int:
        return sum(t.loaded for t in self.tasks)

    @property
    def behind(self) -> list[TaskDigest]:
        return [t for t in self.tasks if t.behind]


def schedule_period(task: DigestTask, now: datetime) -> timedelta | None:
    """How often the task is meant to run (for a crontab: its latest period), None if manual."""
    period = last_schedule_period(now, interval_seconds=task.interval_seconds,
                                  crontab=task.crontab, timezone=task.timezone)
    return None if period is None else period[1] - period[0]


def behind_schedule(period: timedelta | None, last_success: datetime | None,
                    first_start: datetime | None, now: datetime) -> bool:
    """No successful run for more than :data:`BEHIND_AFTER_INTERVALS` periods.

    Counted from the last success, or -- for a task that never succeeded -- from its first
    run; a task that has not run at all is new, not late.
    """
    if period is None:
        return False
    since = last_success or first_start
    return since is not None and now - since > BEHIND_AFTER_INTERVALS * period


def dropped_total(item: dict) -> int:
    """Observations a run summary's datastream entry dropped: ``dropped_total``, else the sum
    of the counts by reason (an entry not written by the loader may have only those)."""
    dropped = item.get("dropped_total")
    if dropped is None and isinstance(item.get("dropped"), dict):
        dropped = sum(int(v) for v in item["dropped"].values())
    return int(dropped or 0)


def _totals(runs: Sequence[TaskRun]) -> list[DatastreamTotals]:
    by_id: dict[str, DatastreamTotals] = {}
    for index, run in enumerate(runs):
        for item in (run.result or {}).get("datastreams") or ():
            if not isinstance(item, dict) or not item.get("datastream_id"):
                continue
            key = str(item["datastream_id"])
            totals = by_id.get(key)
            if totals is None:
                totals = by_id[key] = DatastreamTotals(key, item.get("name"))
                totals.loaded_per_run = [0] * index
                totals.failed_per_run = [False] * index
            totals.name = totals.name or item.get("name")
            loaded = int(item.get("loaded") or 0)
            totals.loaded += loaded
            totals.skipped += int(item.get("skipped") or 0)
            totals.dropped += dropped_total(item)
            failed = item.get("status") == "FAILURE" or bool(item.get("error"))
            if failed:
                totals.failed_runs += 1
                if item.get("error"):
                    totals.errors.append(str(item["error"]))
            totals.loaded_per_run.append(loaded)
            totals.failed_per_run.append(failed)
        for totals in by_id.values():  # runs without this datastream count as zero
            if len(totals.loaded_per_run) < index + 1:
                totals.loaded_per_run.append(0)
                totals.failed_per_run.append(run.status == "FAILURE")
    return list(by_id.values())


def _task_digest(api: Any, task: DigestTask, start: datetime, end: datetime,
                 now: datetime) -> TaskDigest:
    dag = api.dag(task.dag_id)
    if dag is None:
        return TaskDigest(task, [], [], None, False, None, found=False)
    runs = list_runs(api, task.dag_id, since=start, until=end)
    runs.reverse()  # oldest first: the order of the charts
    successes = api.dag_runs(task.dag_id, states=["success"], order_by="-end_date", limit=1)
    last_success = parse_instant(successes[0].get("end_date")) if successes else None
    first_start = None
    if last_success is None:
        first = api.dag_runs(task.dag_id, order_by="start_date", limit=1)
        first_start = parse_instant(first[0].get("start_date")) if first else None
    paused = bool(dag.get("is_paused"))
    period = schedule_period(task, now)
    # a disabled task (enabled: false) has no scheduled runs to fall behind on
    behind = not paused and task.enabled and behind_schedule(period, last_success, first_start,
                                                             now)
    return TaskDigest(task, runs, _totals(runs), last_success, behind, paused, period=period)


def collect_digest(api: Any, connection_name: str, tasks: Sequence[DigestTask],
                   start: datetime, end: datetime, now: datetime | None = None) -> Digest:
    """Everything the digest of ``[start, end)`` shows, read from Airflow's API."""
    now = now or datetime.now(UTC)
    return Digest(connection_name, start, end,
                  [_task_digest(api, task, start, end, now) for task in tasks], now)
