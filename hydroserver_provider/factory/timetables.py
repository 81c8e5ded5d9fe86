"""Timetables that show a task's schedule the way its definition says it.

Airflow shows a schedule by its timetable's ``summary`` (the DAG list, the DAG's header) and
``description`` (the tooltip). Its own data-interval timetables print an interval as a
``timedelta`` -- an hourly task shows ``1:00:00``, a daily one ``1 day, 0:00:00`` -- and a
disabled task would show no schedule at all. These subclasses keep Airflow's scheduling and only
add words, plus one thing Airflow's interval timetable lacks:

* :class:`IntervalTimetable` -- ``interval`` + ``interval_period``: "every 15 minutes", "every
  6 hours", "every day". Its periods lie on a grid anchored at the task's ``start_time`` (Airflow
  anchors an interval at the Unix epoch once a DAG stops catching up, so "every 6 hours from
  03:00" would drift to 00:00, 06:00, ...); without a ``start_time``, on Airflow's epoch grid.
* :class:`CrontabTimetable` -- ``crontab``: the crontab's description and time zone, "At 02:00
  (UTC)".
* :class:`ManualTimetable` -- no scheduled runs: "manual only", or for ``enabled: false`` "disabled
  (every hour)". Manual runs still start at once.

Airflow stores a DAG's timetable by class name and only rebuilds a class that a *plugin*
registers (``TimetableNotRegistered`` otherwise, in the dag-processor, the scheduler and the API
server alike), so :class:`HydroServerTimetablesPlugin` registers the three, through the
``airflow.plugins`` entry point of this package. (Plugins listed in a provider's info are loaded
only with ``[core] lazy_discover_providers = False``; the entry point is loaded always.)
"""

from __future__ import annotations

import datetime
from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin
from airflow.timetables.interval import CronDataIntervalTimetable, DeltaDataIntervalTimetable
from airflow.timetables.simple import NullTimetable
from pendulum import DateTime

__all__ = ["CrontabTimetable", "HydroServerTimetablesPlugin", "IntervalTimetable",
           "ManualTimetable", "interval_text"]

_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


def interval_text(seconds: float) -> str:
    """``"every 15 minutes"``, ``"every hour"``, ``"every 2 days"``: the largest whole unit."""
    whole = int(seconds)
    for unit, size in _UNITS:
        if whole % size == 0:
            count = whole // size
            return f"every {unit}" if count == 1 else f"every {count} {unit}s"
    return f"every {seconds} seconds"  # pragma: no cover - whole seconds above


def _utc_text(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


class IntervalTimetable(DeltaDataIntervalTimetable):
    """Every ``delta``, on a grid anchored at ``anchor`` (the task's ``start_time``).

    Runs at the end of each period and loads that period, like Airflow's
    ``DeltaDataIntervalTimetable``; summary ``"every 6 hours"``.
    """

    def __init__(self, delta: datetime.timedelta,
                 anchor: datetime.datetime | None = None) -> None:
        super().__init__(delta)
        self._anchor = anchor.astimezone(datetime.UTC) if anchor is not None else None
        text = interval_text(delta.total_seconds())
        self.description = (
            f"{text[0].upper()}{text[1:]}"
            + (f", from {_utc_text(self._anchor)}" if self._anchor is not None else "")
            + f"; each run loads the {text.removeprefix('every ')} before it")

    @property
    def summary(self) -> str:
        return interval_text(self._delta.total_seconds())

    @property
    def delta(self) -> datetime.timedelta:
        return self._delta

    @property
    def anchor(self) -> datetime.datetime | None:
        return self._anchor

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IntervalTimetable):
            return NotImplemented
        return (self._delta, self._anchor) == (other._delta, other._anchor)

    def __hash__(self) -> int:
        return hash((self._delta, self._anchor))

    def serialize(self) -> dict[str, Any]:
        return {"delta": self._delta.total_seconds(),
                "anchor": self._anchor.isoformat() if self._anchor is not None else None}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> IntervalTimetable:
        anchor = data.get("anchor")
        return cls(datetime.timedelta(seconds=data["delta"]),
                   datetime.datetime.fromisoformat(anchor) if anchor else None)

    def _round(self, dt: DateTime, anchor: DateTime) -> DateTime:
        """The period boundary at or before ``dt`` on this timetable's grid (Airflow's epoch
        grid without an anchor)."""
        if self._anchor is None:
            return super()._round(dt, anchor)
        step = self._delta.total_seconds()
        offset = self._anchor.timestamp()
        seconds = dt.timestamp() - offset
        return DateTime.fromtimestamp(offset + seconds - seconds % step, tz=dt.tzinfo)


class CrontabTimetable(CronDataIntervalTimetable):
    """A crontab in a time zone; summary ``"At 02:00 (UTC)"`` (the expression when it has no
    English description)."""

    _described: ClassVar[dict[str, str]] = {}
    """English descriptions by expression: Airflow describes a crontab anew for every timetable
    it builds (half a millisecond each), and a folder of definitions repeats a few crontabs."""

    def __init__(self, cron: str, timezone: Any) -> None:
        super().__init__(cron, timezone)
        self._words = self.description
        zone = getattr(self._timezone, "name", str(self._timezone))
        self.description = (f"crontab '{self._expression}' in {zone}"
                            + (f": {self._words}" if self._words else "")
                            + "; each run loads the period since the previous one")

    def _describe_with_dom_dow_fix(self, expression: str) -> str:
        words = self._described.get(expression)
        if words is None:
            words = self._described[expression] = super()._describe_with_dom_dow_fix(expression)
        return words

    @property
    def summary(self) -> str:
        zone = getattr(self._timezone, "name", str(self._timezone))
        return f"{self._words or self._expression} ({zone})"

    @property
    def expression(self) -> str:
        return self._expression

    @property
    def timezone(self) -> Any:
        return self._timezone


class ManualTimetable(NullTimetable):
    """No scheduled runs; manual runs start at once. ``summary``: why -- ``"manual only"``, or
    ``"disabled (every hour)"`` for a task with ``enabled: false``."""

    def __init__(self, summary: str = "manual only", description: str = "") -> None:
        self._summary = summary
        self.description = description or "Never scheduled; runs when triggered"

    @property
    def summary(self) -> str:
        return self._summary

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ManualTimetable):
            return NotImplemented
        return (self._summary, self.description) == (other._summary, other.description)

    def __hash__(self) -> int:
        return hash((self._summary, self.description))

    def serialize(self) -> dict[str, Any]:
        return {"summary": self._summary, "description": self.description}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> ManualTimetable:
        return cls(data.get("summary") or "manual only", data.get("description") or "")


class HydroServerTimetablesPlugin(AirflowPlugin):
    """Registers the timetables above, so Airflow can rebuild the DAGs that use them."""

    name = "hydroserver_timetables"
    timetables = [IntervalTimetable, CrontabTimetable, ManualTimetable]
