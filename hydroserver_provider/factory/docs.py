"""What a task DAG shows in the UI: its Docs panel, description and tags."""

from __future__ import annotations

import re
from typing import Any

from hydroserver_provider.factory.ids import INGEST_TASK_ID
from hydroserver_provider.factory.schedules import schedule_text
from hydroserver_provider.factory.settings import MAX_TAG, TaskSettings

__all__ = ["dag_description", "dag_doc_md", "dag_tags"]


def _md(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


# A value read when the task runs, not written in the definition: shown as it is written.
_REFERENCE = re.compile(r"\{\{\s*(var\.value|var\.json|conn|params)\.[A-Za-z0-9_.]+\s*\}\}\Z")


def _per_task_value(name: str, value: Any, secret: set[str]) -> str:
    """A per_task placeholder's value for the Docs panel: a secret one is never shown, only
    where it is read from (``{{ var.value.station_key }}``)."""
    text = "" if value is None else str(value)
    if name not in secret or not text:
        return f"`{_md(text)}`"
    if _REFERENCE.match(text.strip()):
        return f"secret, read from `{_md(text.strip())}`"
    return "secret (not shown)"


def dag_doc_md(task: Any, source: str | None, dag_id: str, conn_id: str) -> str:
    connection = task.data_connection
    payload = connection.payload.type
    lines = [f"### {task.name}", ""]
    if task.description:
        lines += [task.description, ""]
    lines += [
        f"- **Definition file:** `{source}`" if source else "- **Definition file:** (in code)",
        f"- **Data connection:** {connection.name} ({payload})",
        _source_line(task),
        f"- **Schedule:** {schedule_text(task.schedule)}"
        + (f", from {task.schedule.start_time.isoformat()}" if task.schedule.start_time else ""),
        f"- **HydroServer connection:** `{conn_id}`",
    ]
    if connection.placeholder_variables:
        from hydroserver_provider.sources.placeholders import secret_placeholder_names

        secret = set(secret_placeholder_names(connection.source_url or ""))
        lines += ["", "| Placeholder | Type | Value |", "| --- | --- | --- |"]
        for variable in connection.placeholder_variables:
            if variable.variable_type == "per_task":
                value = _per_task_value(variable.name, task.task_variables.get(variable.name),
                                        secret)
            else:
                value = (f"format `{_md(variable.timestamp_format)}`"
                         if variable.timestamp_format else "ISO 8601 UTC")
            lines.append(f"| `{{{_md(variable.name)}}}` | {variable.variable_type} | {value} |")
    lines += ["", "| Source identifier | Target datastream |", "| --- | --- |"]
    lines += [f"| `{_md(m.source_identifier)}` | `{_md(m.target_datastream_id)}` |"
              for m in task.mappings]
    if connection.uses_window:
        lines += ["", "Each run loads its data interval; trigger with `window_start` and "
                      "`window_end` to reload another period."]
    else:
        lines += ["", "Each run loads what is newer than what HydroServer already holds; "
                      "trigger with `window_start` and `window_end` (or backfill) to reload a "
                      "period."]
    lines += ["", f"DAG id `{dag_id}`, task `{INGEST_TASK_ID}`."]
    return "\n".join(lines) + "\n"


def dag_tags(task: Any, settings: TaskSettings) -> list[str]:
    connection = task.data_connection
    tags = ["hydroserver", connection.payload.type, connection.name[:MAX_TAG]]
    if connection.workspace_id:
        tags.append(f"workspace:{connection.workspace_id}"[:MAX_TAG])
    tags.extend(settings.extra_tags)
    return list(dict.fromkeys(tags))


def dag_description(task: Any) -> str:
    if task.description:
        return task.description
    count = len(task.mappings)
    return (f"{task.data_connection.name} -> {count} datastream{'s' if count != 1 else ''}, "
            f"{schedule_text(task.schedule).replace('`', '')}")



def _source_line(task: Any) -> str:
    connection = task.data_connection
    payload = connection.payload
    if payload.type != "HYDROCRON":
        from hydroserver_provider.definitions.checks import safe_url

        return f"- **Source URL template:** `{safe_url(connection.source_url or '')}`"
    features = task.hydrocron_features
    which = (f"{len(features)} {payload.feature} features (one mapped instance each)"
             if features else
             f"{payload.feature} `{payload.feature_id or task.task_variables.get('feature_id')}`")
    return (f"- **Hydrocron:** {which}, fields "
            f"{', '.join(f'`{f}`' for f in payload.fields) or 'as mapped'}, "
            f"{payload.collection_name or 'default collection'}, {payload.mode}, connection "
            f"`{task.airflow.hydrocron_conn_id or payload.hydrocron_conn_id}`")

