"""What a run tells people: the summary (the task's XCom ``return_value``, mirroring HydroServer's
run record) and the task-log lines a hydrologist reads. Both say the same facts.

The summary's shape (README, "The run summary"): ``status``, ``message``, ``dry_run``, ``mode``
and ``mode_reason``, ``window`` (UTC, and the connection's zone), ``url`` (secrets redacted),
``variables``, ``rows_read``, ``loaded``, ``timestamps`` (how they were read), ``notes`` (what
a person should know about how the source was read, also logged as warnings), ``datastreams``
(per datastream: loaded / revised / removed, skipped by reason, dropped by reason with the first
offending values and where they were), ``seconds``; a source may add its own block
(``hydrocron``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

from hydroserver_provider.text import number, plural
from hydroserver_provider.timestamps import to_utc_iso

__all__ = ["describe_window", "log_datastreams", "run_message"]


def run_message(outcomes: Sequence[dict[str, Any]], dry_run: bool) -> str:
    """One sentence, like HydroServer's run message: what was loaded, what failed."""
    failed = [o for o in outcomes if o["error"]]
    loaded = sum(o["loaded"] for o in outcomes)
    into = sum(1 for o in outcomes if o["loaded"])
    verb = "Would load" if dry_run else "Loaded"
    loaded_text = (f"{verb} {plural(loaded, 'observation')} into "
                   f"{plural(into, 'datastream')}.")
    if failed:
        names = "; ".join(f"{o['name'] or o['datastream_id']}: {o['error']}" for o in failed)
        return f"{len(failed)} of {len(outcomes)} datastreams failed ({names}). " + loaded_text
    if loaded:
        return loaded_text
    return "Already up to date."


def describe_window(start: datetime, end: datetime, zone: tzinfo) -> str:
    """``2025-06-02 10:00 -> 11:00 UTC (04:00 -> 05:00 America/Denver)``."""

    def span(a: datetime, b: datetime, where: tzinfo, day: object = None) -> str:
        """``a -> b`` in ``where``, each date written only where it is not ``day``'s."""
        a, b = a.astimezone(where), b.astimezone(where)
        first = a.strftime("%H:%M" if a.date() == day else "%Y-%m-%d %H:%M")
        second = b.strftime("%H:%M" if b.date() == a.date() else "%Y-%m-%d %H:%M")
        return f"{first} -> {second}"

    text = f"{span(start, end, UTC)} UTC"
    name = getattr(zone, "key", None) or zone.tzname(start) or str(zone)
    if zone is not UTC and name not in ("UTC", "Etc/UTC"):
        local = span(start, end, zone, day=start.astimezone(UTC).date())
        text += f" ({local} {name})"
    return text


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{reason} {number(n)}" for reason, n in counts.items())


def datastream_line(outcome: dict[str, Any], dry_run: bool) -> str:
    """One datastream's outcome, by name: loaded, skipped and dropped, with examples."""
    who = (f"Datastream '{outcome['name']}'" if outcome["name"]
           else f"Datastream {outcome['datastream_id']}")
    if outcome["error"]:
        return f"{who} failed: {outcome['error']}"
    parts = [f"{'would load' if dry_run else 'loaded'} {number(outcome['loaded'])}"]
    extra = [f"{number(outcome[k])} {k}" for k in ("revised", "removed") if outcome.get(k)]
    if extra:
        parts[0] += f" ({', '.join(extra)})"
    if outcome["skipped"]:
        parts.append(f"skipped {number(outcome['skipped'])} "
                     f"({_counts(outcome['skipped_reasons'])})")
    if outcome["dropped"]:
        examples = outcome.get("dropped_examples") or {}
        reasons = []
        for reason, n in outcome["dropped"].items():
            shown = examples.get(reason)
            reasons.append(f"{reason} {number(n)}" + (f": {'; '.join(shown)}" if shown else ""))
        parts.append(f"dropped {number(sum(outcome['dropped'].values()))} ({' | '.join(reasons)})")
    span = (f", {outcome['first']} .. {outcome['last']}"
            if outcome["first"] and outcome["loaded"] else "")
    return f"{who}: {'; '.join(parts)}{span}"


def log_datastreams(summary: dict[str, Any], log: logging.Logger) -> None:
    """The per-datastream lines of the task log (warnings for failures)."""
    for outcome in summary["datastreams"]:
        line = datastream_line(outcome, summary["dry_run"])
        (log.error if outcome["error"] else log.info)("%s", line)


def window_block(start: datetime | None, end: datetime | None,
                 zone: tzinfo) -> dict[str, str] | None:
    """The summary's ``window``: UTC instants, and the span as the connection's zone reads it."""
    if start is None or end is None:
        return None
    return {"start": to_utc_iso(start), "end": to_utc_iso(end),
            "shown": describe_window(start, end, zone)}
