"""The periods of a schedule (an interval, or a crontab in a time zone): the last complete one
before a moment -- what Airflow gives a manual run, what a digest covers, what ``preview`` loads.

Plain Python (croniter comes with Airflow but is imported only for a crontab).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

__all__ = ["first_period", "last_cron_period", "last_schedule_period", "schedule_timing"]


def schedule_timing(schedule: Any) -> dict[str, Any]:
    """``interval_seconds``, ``crontab`` and ``timezone`` of a schedule: all that the run-window
    macro, the digest task and ``preview`` keep of it to find a run's period
    (:func:`last_schedule_period`)."""
    delta = schedule.interval_delta
    return {"interval_seconds": delta.total_seconds() if delta is not None else None,
            "crontab": schedule.crontab if delta is None else None,
            "timezone": schedule.timezone or "UTC"}


def last_schedule_period(moment: datetime, *, interval_seconds: float | None,
                         crontab: str | None, timezone: str = "UTC",
                         ) -> tuple[datetime, datetime] | None:
    """The last complete period of a schedule (given as :func:`schedule_timing` describes it)
    ending at or before ``moment``: ``moment - interval`` -> ``moment``, or the last complete
    cron period, as Airflow gives a manual run; None for a manual-only schedule."""
    if interval_seconds is not None:
        return moment - timedelta(seconds=interval_seconds), moment
    if crontab:
        return last_cron_period(crontab, timezone, moment)
    return None


@lru_cache(maxsize=4096)  # a folder of definitions repeats a few schedules and start times
def first_period(start_time: datetime, *, interval_seconds: float | None,
                 crontab: str | None, timezone: str = "UTC") -> tuple[datetime, datetime] | None:
    """The period whose end is a schedule's first run at or after ``start_time``.

    The guide's ``start_time`` is "when a scheduled task first runs"; Airflow runs a data-interval
    schedule at the *end* of each period, so this is the first period a DAG should get:
    ``start_time - interval`` -> ``start_time`` for an interval, and for a crontab the tick before
    the first tick at or after ``start_time`` -> that tick (in the crontab's time zone). None for
    a manual-only schedule.
    """
    if interval_seconds is not None:
        return start_time - timedelta(seconds=interval_seconds), start_time
    if not crontab:
        return None
    from zoneinfo import ZoneInfo

    from croniter import croniter

    local = start_time.astimezone(ZoneInfo(timezone))
    on_tick = local.second == 0 and local.microsecond == 0 and croniter.match(crontab, local)
    first = local if on_tick else croniter(crontab, local).get_next(datetime)
    before = croniter(crontab, first).get_prev(datetime)
    return before.astimezone(UTC), first.astimezone(UTC)


def last_cron_period(crontab: str, zone: str, moment: datetime) -> tuple[datetime, datetime]:
    """The last complete period of ``crontab`` (in time zone ``zone``) ending at or before
    ``moment``: what Airflow's ``infer_manual_data_interval`` gives a manual run."""
    from zoneinfo import ZoneInfo

    from croniter import croniter

    local = moment.astimezone(ZoneInfo(zone))
    on_boundary = local.second == 0 and local.microsecond == 0 and croniter.match(crontab, local)
    end = local if on_boundary else croniter(crontab, local).get_prev(datetime)
    start = croniter(crontab, end).get_prev(datetime)
    return start.astimezone(UTC), end.astimezone(UTC)

