"""The words and tables of alert and digest e-mails: a plain-text and an HTML version of each.

Every value is escaped for HTML; numbers are written with thousands separators so the text and
HTML parts show the same figures.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC
from html import escape
from typing import TYPE_CHECKING, Any

from hydroserver_provider.notifications.charts import png_bar_chart, sparkline
from hydroserver_provider.notifications.digest import dropped_total
from hydroserver_provider.text import format_table, number
from hydroserver_provider.timestamps import parse_instant

if TYPE_CHECKING:
    from hydroserver_provider.notifications.alerts import FailureReport
    from hydroserver_provider.notifications.digest import Digest, TaskDigest

__all__ = ["SUBJECT_PREFIX", "render_digest", "render_failure"]

SUBJECT_PREFIX = "[HydroServer]"
_STATUS_COLOURS = {"SUCCESS": "#1e8449", "FAILURE": "#c0392b", "STARTED": "#b9770e",
                   "PENDING": "#7f8c8d"}
_STYLE = ("font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; font-size: 14px; "
          "color: #1b2631")
_TABLE = "border-collapse: collapse; margin: 6px 0 14px 0"
_CELL = "border: 1px solid #d5d8dc; padding: 4px 8px; text-align: left"
_NUM = "border: 1px solid #d5d8dc; padding: 4px 8px; text-align: right"


def _when(value: Any) -> str:
    """``2025-01-01 06:00 UTC`` from a datetime or an ISO text."""
    if value in (None, ""):
        return "-"
    try:
        moment = parse_instant(value)
        assert moment is not None  # None and "" were handled above
        value = moment.astimezone(UTC)
    except (ValueError, TypeError):
        return str(value)
    text = value.strftime("%Y-%m-%d %H:%M:%S" if value.second else "%Y-%m-%d %H:%M")
    return text + " UTC"


def _html_table(headers: Sequence[str], rows: Iterable[Sequence[Any]],
                right: Sequence[int] = (), raw: Sequence[int] = ()) -> str:
    """``raw`` columns hold HTML already (status badges, images)."""
    head = "".join(f'<th style="{_NUM if i in right else _CELL}; background: #eaf2f8">'
                   f"{escape(str(h))}</th>" for i, h in enumerate(headers))
    body = []
    for row in rows:
        tds = "".join(
            f'<td style="{_NUM if i in right else _CELL}">'
            f"{c if i in raw else escape('' if c is None else str(c))}</td>"
            for i, c in enumerate(row))
        body.append(f"<tr>{tds}</tr>")
    return f'<table style="{_TABLE}"><tr>{head}</tr>{"".join(body)}</table>'


def _badge(status: str) -> str:
    colour = _STATUS_COLOURS.get(status, "#7f8c8d")
    return f'<b style="color: {colour}">{escape(status)}</b>'


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'</head><body style="{_STYLE}">{body}</body></html>')


def _link(url: str | None, label: str) -> str:
    return f'<a href="{escape(url, quote=True)}">{escape(label)}</a>' if url else ""


# --------------------------------------------------------------------------------------------
# Failure alert
# --------------------------------------------------------------------------------------------


def _datastream_rows(items: Sequence[dict]) -> list[list[Any]]:
    rows = []
    for item in items:
        name = item.get("name") or item.get("source_identifier") or ""
        rows.append([name, item.get("datastream_id", ""), item.get("status", ""),
                     number(item.get("loaded")), number(item.get("skipped")),
                     number(dropped_total(item)), item.get("error") or ""])
    return rows


def render_failure(report: FailureReport) -> tuple[str, str, str]:
    """``(subject, text, html)`` of a failure alert."""
    window = (f"{_when(report.window_start)} -> {_when(report.window_end)}"
              if report.window_start else "none (a run without a data interval)")
    subject = f"{SUBJECT_PREFIX} Task '{report.task_name}' failed"
    if report.window_start:
        subject += f" ({_when(report.window_start)} - {_when(report.window_end)})"
    tries = f" after {report.try_number} tries" if (report.try_number or 0) > 1 else ""
    facts = [
        ("Task", report.task_name), ("Data connection", report.connection_name),
        ("DAG", report.dag_id), ("Run", report.run_id), ("Data interval", window),
        ("Error", report.error),
    ]
    headers = ["Datastream", "Id", "Status", "Loaded", "Skipped", "Dropped", "Error"]
    rows = _datastream_rows(report.datastreams)

    lines = [f"HydroServer task '{report.task_name}' failed{tries}.", ""]
    width = max(len(k) for k, _ in facts) + 1
    lines += [f"{(k + ':').ljust(width)} {v}" for k, v in facts]
    if rows:
        lines += ["", "Datastreams:", format_table(headers, rows, right=(3, 4, 5), indent="  ")]
    links = [(report.run_url, "Run in Airflow"), (report.log_url, "Task log")]
    lines += [""] + [f"{label}: {url}" for url, label in links if url]
    text = "\n".join(lines).rstrip() + "\n"

    html = [f"<h2>Task {escape(report.task_name)} failed{escape(tries)}</h2>",
            _html_table(["", ""], [[k, v] for k, v in facts])]
    if rows:
        html.append("<h3>Datastreams</h3>")
        html.append(_html_table(headers, [[*r[:2], _badge(r[2]), *r[3:]] for r in rows],
                                right=(3, 4, 5), raw=(2,)))
    html.append("<p>" + " &middot; ".join(_link(url, label) for url, label in links if url)
                + "</p>")
    return subject, text, _page(subject, "".join(html))


# --------------------------------------------------------------------------------------------
# Digest
# --------------------------------------------------------------------------------------------


def _digest_subject(digest: Digest) -> str:
    parts = [f"{digest.runs} run{'s' if digest.runs != 1 else ''}",
             f"{digest.failures} failed", f"{digest.loaded:,} observations loaded"]
    if digest.behind:
        count = len(digest.behind)
        parts.append(f"{count} task{'s' if count != 1 else ''} behind schedule")
    return f"{SUBJECT_PREFIX} Digest for {digest.connection_name}: " + ", ".join(parts)


def _task_state(task: TaskDigest) -> str:
    if not task.found:
        return "not found in Airflow (DAG missing or not parsed yet)"
    if task.paused:
        return "paused"
    if not task.task.enabled:
        return "disabled (enabled: false; manual runs only)"
    if task.behind:
        since = _when(task.last_success) if task.last_success else "never"
        return f"BEHIND SCHEDULE (last success: {since})"
    if not task.task.scheduled:
        return "manual only"
    return "on schedule"


def render_digest(digest: Digest, *, charts: bool = True) -> tuple[str, str, str,
                                                                   dict[str, bytes]]:
    """``(subject, text, html, images)``; ``images`` are PNG charts by content id (empty
    without matplotlib, or with ``charts=False``)."""
    subject = _digest_subject(digest)
    period = f"{_when(digest.start)} -> {_when(digest.end)}"
    images: dict[str, bytes] = {}
    text = [f"HydroServer digest for data connection '{digest.connection_name}'",
            f"Period: {period}",
            f"Runs: {digest.runs}, failed: {digest.failures}, observations loaded: "
            f"{digest.loaded:,}"]
    if digest.behind:
        text.append("Behind schedule: " + ", ".join(t.task.name for t in digest.behind))
    html = [f"<h2>HydroServer digest: {escape(digest.connection_name)}</h2>",
            f"<p>{escape(period)}<br>Runs: <b>{digest.runs}</b>, failed: "
            f"<b>{digest.failures}</b>, observations loaded: <b>{digest.loaded:,}</b></p>"]
    if digest.behind:
        html.append('<p style="color: #c0392b"><b>Behind schedule:</b> '
                    + escape(", ".join(t.task.name for t in digest.behind)) + "</p>")

    for task_number, task in enumerate(digest.tasks):
        counts = ", ".join(f"{task.count(s)} {s}" for s in ("SUCCESS", "FAILURE", "STARTED",
                                                            "PENDING") if task.count(s))
        state = _task_state(task)
        text += ["", f"== {task.task.name} ({task.task.dag_id}) ==",
                 f"Status: {state}", f"Runs: {len(task.runs)}" + (f" ({counts})" if counts
                                                                 else "")]
        last = _when(task.last_success) if task.last_success else "never"
        text.append(f"Last successful run: {last}")
        html.append(f"<h3>{escape(task.task.name)} <small style=\"color: #7f8c8d\">"
                    f"{escape(task.task.dag_id)}</small></h3>")
        colour = "#c0392b" if task.behind or not task.found else "#1b2631"
        html.append(f'<p>Status: <b style="color: {colour}">{escape(state)}</b><br>'
                    f"Runs: {len(task.runs)}{escape(' (' + counts + ')' if counts else '')}"
                    f"<br>Last successful run: {escape(last)}</p>")

        if task.datastreams:
            headers = ["Datastream", "Loaded", "Skipped", "Dropped", "Failed runs", "Per run"]
            text_rows, html_rows = [], []
            for ds_number, ds in enumerate(task.datastreams):
                spark = sparkline(ds.loaded_per_run)
                text_rows.append([ds.label, number(ds.loaded), number(ds.skipped),
                                  number(ds.dropped), ds.failed_runs, spark])
                chart_html = f'<span style="font-size: 16px">{escape(spark)}</span>'
                if charts and len(ds.loaded_per_run) > 1:
                    png = png_bar_chart(ds.loaded_per_run, failed=ds.failed_per_run,
                                        labels=[_when(r.started_at) for r in task.runs],
                                        title=f"{ds.name or ds.datastream_id}: loaded per run")
                    if png is not None:
                        cid = f"chart-{task_number}-{ds_number}"
                        images[cid] = png
                        chart_html = (f'<img src="cid:{cid}" alt="{escape(spark, quote=True)}" '
                                      f'width="400" height="130">')
                html_rows.append([ds.label, number(ds.loaded), number(ds.skipped),
                                  number(ds.dropped), ds.failed_runs, chart_html])
            text += ["", format_table(headers, text_rows, right=(1, 2, 3, 4), indent="  ")]
            html.append(_html_table(headers, html_rows, right=(1, 2, 3, 4), raw=(5,)))

        if task.runs:
            headers = ["Started", "Finished", "Status", "Run", "Message"]
            rows = [[_when(r.started_at), _when(r.finished_at), r.status, r.id, r.message]
                    for r in reversed(task.runs)]  # newest first, like run history
            text += ["", "Runs (newest first):", format_table(headers, rows, indent="  ")]
            html.append(_html_table(headers, [[*r[:2], _badge(r[2]), *r[3:]] for r in rows],
                                    raw=(2,)))
        else:
            text.append("No run started in this period.")
            html.append("<p>No run started in this period.</p>")

        if task.failures:
            text += ["", "Failures:"]
            text += [f"  - {_when(r.started_at)} ({r.id}): {r.message}" for r in task.failures]
            html.append("<p><b>Failures</b></p><ul>" + "".join(
                f"<li>{escape(_when(r.started_at))} ({escape(r.id)}): {escape(r.message)}</li>"
                for r in task.failures) + "</ul>")

    text_body = "\n".join(text).rstrip() + "\n"
    return subject, text_body, _page(subject, "".join(html)), images
