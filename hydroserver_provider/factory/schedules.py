"""Schedules of task definitions: their timetables and first run, readable descriptions, and
the window of a run that has no data interval.

What a schedule means (hydroserverpy's guide, kept on Airflow)
    ``interval`` + ``interval_period`` or ``crontab`` (in ``timezone``, UTC by default) run the
    task on that schedule; neither: manual only. Airflow runs a *data interval* schedule at the
    end of each period and the run loads that period (an hourly run at 10:00 loads 09:00 ->
    10:00), so the window placeholders are a real window.

    ``start_time`` is "when a scheduled task first runs": the DAG's ``start_date`` is one period
    before it (:func:`start_date_for`), so the first run happens *at* ``start_time`` and loads
    the period ending there; catch-up and backfills start with that period. Interval periods lie
    on a grid anchored at ``start_time`` (:class:`~.timetables.IntervalTimetable`).

    ``enabled: false`` means no automatic runs while manual runs still start at once: the DAG
    gets no schedule (:class:`~.timetables.ManualTimetable`, shown as "disabled (every hour)")
    and is created unpaused. Unlike a DAG's ``is_paused_upon_creation``, which Airflow reads only
    the first time it sees a DAG, this changes the DAG whenever the definition changes. A manual
    run of a disabled task still loads the last period of its schedule. Pausing the DAG in the UI
    stays the operator's override: a paused DAG starts no run at all, manual ones included.

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

from hydroserver_provider.periods import first_period, last_schedule_period, schedule_timing

__all__ = [
    "DEFAULT_START_DATE",
    "WINDOW_END_TEMPLATE",
    "WINDOW_START_TEMPLATE",
    "RunWindow",
    "RunWindowMacro",
    "schedule_text",
    "start_date_for",
    "timetable_for",
]

DEFAULT_START_DATE = datetime(2024, 1, 1, tzinfo=UTC)
"""``start_date`` of a task without ``start_time``: fixed, so parsing is deterministic."""

WINDOW_START_TEMPLATE = "{{ params.window_start or hydroserver_run_window(dag_run).start }}"
WINDOW_END_TEMPLATE = "{{ params.window_end or hydroserver_run_window(dag_run).end }}"


def timetable_for(schedule: Any) -> Any:
    """The timetable of a task's (or a digest's) schedule: every interval from ``start_time``,
    a crontab in its time zone, or no scheduled runs (manual only, or ``enabled: false``)."""
    from hydroserver_provider.factory.timetables import (
        CrontabTimetable,
        IntervalTimetable,
        ManualTimetable,
    )

    if not schedule.enabled:
        text = schedule_text(schedule)
        description = ("Disabled in its definition (enabled: false): no scheduled runs; manual "
                       "runs start at once"
                       + ("" if schedule.is_manual else
                          f" and load the last period of its schedule, {_base_text(schedule)}"))
        return ManualTimetable(text.replace("`", ""), description)
    delta = schedule.interval_delta
    if delta is not None:
        return IntervalTimetable(delta, anchor=schedule.start_time)
    if schedule.crontab:
        return CrontabTimetable(schedule.crontab, timezone=schedule.timezone or "UTC")
    return ManualTimetable()


def start_date_for(schedule: Any) -> datetime:
    """The DAG's ``start_date``: one period before ``start_time`` (the first run is at
    ``start_time``, loading the period ending there), ``start_time`` itself without a schedule,
    else :data:`DEFAULT_START_DATE`."""
    if schedule.start_time is None:
        return DEFAULT_START_DATE
    period = first_period(schedule.start_time, **schedule_timing(schedule))
    return period[0] if period is not None else schedule.start_time


def _base_text(schedule: Any) -> str:
    delta = schedule.interval_delta
    if delta is not None:
        from hydroserver_provider.factory.timetables import interval_text

        return interval_text(delta.total_seconds())
    if schedule.crontab:
        return f"cron `{schedule.crontab}` ({schedule.timezone or 'UTC'})"
    return "manual only"


def schedule_text(schedule: Any) -> str:
    """``"every 6 hours"``, ``"cron `0 2 * * *` (UTC)"``, ``"manual only"``; a disabled
    schedule ``"disabled (every 6 hours)"``."""
    text = _base_text(schedule)
    if not schedule.enabled:
        return "disabled" if schedule.is_manual else f"disabled ({text})"
    return text


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
