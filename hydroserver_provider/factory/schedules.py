"""Schedules of task definitions: data-interval timetables, readable descriptions, and the window
of a run that has no data interval.

Windows of a run (the placeholders ``window_start`` / ``window_end`` / ``run_time``)
    The operator's ``window_start`` / ``window_end`` are rendered from the trigger form first;
    a window given there (or a backfill run's data interval) is *owned* by the run, which reloads
    it even when the task is incremental (see the operator). For a task whose URL takes a window
    they come next from the run's data interval, then -- for a run without one (Airflow 3 allows
    ``logical_date=None``; a manual-only DAG's interval is empty) -- from the schedule: the last
    complete interval before the run (``now - interval`` -> ``now`` for an interval schedule, the
    last complete cron period for a crontab, like Airflow's own manual runs with a logical date).
    A manual-only task whose URL needs a window fails fast (no retries) asking for
    ``window_start`` and ``window_end``. The macro doing this is :class:`RunWindowMacro`; the
    "Rendered Template" tab shows the window each run used.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hydroserver_provider.compat import CronDataIntervalTimetable, DeltaDataIntervalTimetable
from hydroserver_provider.periods import last_schedule_period

__all__ = [
    "DEFAULT_START_DATE",
    "WINDOW_END_TEMPLATE",
    "WINDOW_START_TEMPLATE",
    "RunWindow",
    "RunWindowMacro",
    "schedule_text",
    "timetable_for",
]

DEFAULT_START_DATE = datetime(2024, 1, 1, tzinfo=UTC)
"""``start_date`` of a task without ``start_time``: fixed, so parsing is deterministic."""

WINDOW_START_TEMPLATE = "{{ params.window_start or hydroserver_run_window(dag_run).start }}"
WINDOW_END_TEMPLATE = "{{ params.window_end or hydroserver_run_window(dag_run).end }}"


def timetable_for(schedule: Any) -> Any:
    delta = schedule.interval_delta
    if delta is not None:
        return DeltaDataIntervalTimetable(delta)
    if schedule.crontab:
        return CronDataIntervalTimetable(schedule.crontab, timezone=schedule.timezone or "UTC")
    return None


def schedule_text(schedule: Any) -> str:
    if schedule.interval is not None and schedule.interval_period:
        period = schedule.interval_period
        if schedule.interval == 1:
            return f"every {period[:-1]}"
        return f"every {schedule.interval} {period}"
    if schedule.crontab:
        return f"cron `{schedule.crontab}` ({schedule.timezone or 'UTC'})"
    return "manual only"


@dataclass(frozen=True)
class RunWindow:
    start: str
    end: str


@dataclass(frozen=True)
class RunWindowMacro:
    """The ``hydroserver_run_window(dag_run)`` macro: the window a run loads, as ISO strings.

    The run's data interval when it has a non-empty one; otherwise the last complete interval of
    the schedule before ``run_after`` (``run_after - interval`` -> ``run_after``, or the last
    complete cron period); for a manual-only task, empty strings -- or, when the URL needs a
    window, a failure without retries asking for ``window_start`` and ``window_end``.
    """

    task_name: str
    windowed: bool
    interval_seconds: float | None = None
    crontab: str | None = None
    timezone: str = "UTC"

    def __call__(self, dag_run: Any) -> RunWindow:
        if not self.windowed:  # incremental: only a window given to the run counts (operator)
            return RunWindow("", "")
        start = getattr(dag_run, "data_interval_start", None)
        end = getattr(dag_run, "data_interval_end", None)
        if start is not None and end is not None and start < end:
            return RunWindow(start.isoformat(), end.isoformat())
        run_after = getattr(dag_run, "run_after", None) or datetime.now(UTC)
        if run_after.tzinfo is None:
            run_after = run_after.replace(tzinfo=UTC)
        period = last_schedule_period(run_after, interval_seconds=self.interval_seconds,
                                      crontab=self.crontab, timezone=self.timezone)
        if period is not None:
            return RunWindow(period[0].isoformat(), period[1].isoformat())
        if self.windowed:
            from hydroserver_provider.compat import AirflowFailException

            raise AirflowFailException(
                f"task '{self.task_name}' has no schedule and its source URL needs a window: "
                "trigger it with window_start and window_end (trigger form or run conf), e.g. "
                '{"window_start": "2025-01-01T00:00:00Z", "window_end": "2025-01-02T00:00:00Z"}'
            )
        return RunWindow("", "")
