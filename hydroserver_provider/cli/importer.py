"""``hydroserver-airflow import``: HydroServer's data connections and tasks -> a definition file.

Reads the ETL definitions a HydroServer stores (``/api/data/etl/data-connections`` and
``/api/data/etl/tasks``) and writes one YAML file that the DAG factory loads unchanged: what the
file gives back equals what was read, which the command checks before writing.

Secrets never go into the file, nor to the terminal: a connection's ``authHeaderValue`` becomes
``auth: {header_name: ..., variable: <name>}`` and the command says which Airflow Variable (or
connection) to create -- by name only. ``--disable-server-schedules`` then switches the imported
tasks' schedules off on HydroServer, so the two schedulers do not both run them.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hydroserver_provider.cli.common import (
    DEFAULT_CONN_ID,
    CommandError,
    add_hydroserver_options,
    hydroserver_client,
    quiet_logs,
    reports_errors,
)
from hydroserver_provider.text import plural

AUTH_NAME_PREFIX = "hydroserver_source_auth_"
# HydroServer keys that hold a secret (the loader refuses them with a value)
_SECRET_KEYS = ("authHeaderValue", "auth_header_value")
_FLAT_SCHEDULE = ("interval", "interval_period", "crontab", "start_time", "enabled")
_PAYLOAD_ORDER = ("header_row", "data_start_row", "delimiter", "jmespath", "feature",
                  "collection_name", "fields")
_CONNECTION_ORDER = ("name", "id", "description", "workspace_id", "source_url", "payload_type",
                     *_PAYLOAD_ORDER, "timestamp_key", "timestamp_format", "timezone_type",
                     "timezone", "placeholder_variables", "auth", "notification")
_TASK_ORDER = ("name", "id", "description", "data_connection", "task_variables", "mappings",
               *_FLAT_SCHEDULE, "schedule")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "import", help="write HydroServer's data connections and tasks to a definition file",
        description="Read the data connections and tasks stored in a HydroServer and write them "
                    "as a definition file for the DAG factory. Secret header values are not "
                    "copied: the command names the Airflow Variable (or connection) to create.")
    add_hydroserver_options(parser, conn_id_help="Airflow connection of the HydroServer to read "
                                                 "(default hydroserver_default); the imported "
                                                 "tasks write through it too")
    parser.add_argument("--workspace", metavar="ID", help="only this workspace (default: every "
                                                          "workspace the credentials reach)")
    parser.add_argument("-o", "--output", metavar="FILE", required=True,
                        help="the definition file to write (.yaml)")
    parser.add_argument("--auth-from", choices=("variable", "connection"), default="variable",
                        help="where the source auth header values will live in Airflow: a "
                             "Variable each (default) or a connection each (its password)")
    parser.add_argument("--disable-server-schedules", action="store_true",
                        help="afterwards, set enabled=false on the imported tasks' HydroServer "
                             "schedules so only Airflow runs them")
    parser.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    parser.set_defaults(func=run)


@reports_errors
def run(args: argparse.Namespace) -> int:
    with quiet_logs("hydroserver_provider"):
        return _import(args)


def _import(args: argparse.Namespace) -> int:
    output = Path(args.output)
    if output.suffix.lower() not in (".yaml", ".yml"):
        raise CommandError(f"--output expects a .yaml file, found '{output.name}'")
    if output.exists() and not args.force:
        raise CommandError(f"{output} exists; pass --force to overwrite it")
    client, where = hydroserver_client(args)
    with client:
        raw_connections = client.list_data_connections(args.workspace)
        raw_tasks = client.list_tasks(args.workspace)
        print(f"Read {plural(len(raw_connections), 'data connection')} and "
              f"{plural(len(raw_tasks), 'task')} from {where}"
              + (f", workspace {args.workspace}" if args.workspace else ""))

        conn_id = None if args.url else (args.conn_id or DEFAULT_CONN_ID)
        plan = plan_import(raw_connections, raw_tasks, auth_from=args.auth_from,
                           conn_id=conn_id, source=f"HydroServer {client.url}")
        for problem in plan.problems:
            print(f"not imported: {problem}")
        if not plan.document.get("data_connections") and not plan.document.get("tasks"):
            raise CommandError("nothing to import" + (" (see the problems above)"
                                                      if plan.problems else ""))
        header = (f"Imported from HydroServer {client.url}"
                  + (f" (workspace {args.workspace})" if args.workspace else "")
                  + f" on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by "
                    "hydroserver-airflow import.")
        write_document(output, plan.document, header)
        print(f"Wrote {plural(len(plan.document.get('data_connections', [])), 'data connection')}"
              f" and {plural(len(plan.document.get('tasks', [])), 'task')} to {output}")
        if conn_id is None:
            print("The tasks write through the Airflow connection 'hydroserver_default': create "
                  "it for this HydroServer, or set defaults: {hydroserver_conn_id: ...} in the "
                  "file.")
        for note in plan.notes:
            print(note)
        return _schedules(client, plan, args.disable_server_schedules) or (
            1 if plan.problems else 0)


# --------------------------------------------------------------------------------------------
# HydroServer's answers -> a definition document
# --------------------------------------------------------------------------------------------


@dataclass
class ImportPlan:
    """The document to write, what could not be imported, and what the user must do next."""

    document: dict[str, Any] = field(default_factory=dict)
    problems: list[Any] = field(default_factory=list)  # DefinitionErrors of what was left out
    notes: list[str] = field(default_factory=list)  # Airflow Variables to create, and the like
    scheduled: list[tuple[str, str]] = field(default_factory=list)  # (id, name) HydroServer runs


def plan_import(raw_connections: list[dict], raw_tasks: list[dict], *, auth_from: str = "variable",
                conn_id: str | None = None, source: str = "HydroServer") -> ImportPlan:
    """Turn HydroServer's JSON into a definition document (no I/O).

    Every definition goes through the loader first, so only what loads is written; the written
    document is loaded again and must give back the same models, else this raises (a bug here,
    never a silent change of meaning).
    """
    from hydroserver_provider.definitions.files import parse_definitions
    from hydroserver_provider.factory import build_loaded, slugify
    from hydroserver_provider.sources.placeholders import redact_url

    plan = ImportPlan()
    connections: dict[str, dict] = {}
    for raw in [*raw_connections, *(t.get("dataConnection") for t in raw_tasks)]:
        if isinstance(raw, dict) and raw.get("id") not in connections:
            connections[raw["id"]] = raw

    defaults = {"hydroserver_conn_id": conn_id} if conn_id else {}
    names_taken: set[str] = set()
    auth_names: set[str] = set()
    notes: list[tuple[str, str]] = []  # (data connection, what to do), kept if it is imported
    sanitised = []
    for raw in connections.values():
        item = {k: v for k, v in raw.items() if k not in _SECRET_KEYS}
        header = item.pop("authHeaderName", None) or item.pop("auth_header_name", None)
        name = str(item.get("name", ""))
        if name in names_taken:  # names are unique per file; HydroServer's are per workspace
            item["name"] = name = f"{name} ({str(item.get('id'))[:8]})"
        names_taken.add(name)
        if header:
            reference = _unique(AUTH_NAME_PREFIX + (slugify(name) or "connection"), auth_names)
            key = "variable" if auth_from == "variable" else "conn_id"
            item["auth"] = {"header_name": header, key: reference}
            notes.append((name, _auth_note(name, header, reference, auth_from)))
        elif any(raw.get(k) for k in _SECRET_KEYS):
            notes.append((name, f"Data connection '{name}' has an auth header value but no "
                                "header name on HydroServer; it was not copied. Add auth: "
                                "{header_name: ..., variable: ...} to the file if the source "
                                "needs it."))
        url = str(item.get("sourceUrl") or item.get("source_url") or "")
        if url and redact_url(url) != url:
            notes.append((name, f"Data connection '{name}': its source URL has a "
                                f"secret-looking value written into it ({redact_url(url)}); it "
                                "is in the file as HydroServer stores it."))
        sanitised.append(item)

    tasks = []
    for raw in raw_tasks:
        item = dict(raw)
        linked = item.pop("dataConnection", None)
        if isinstance(linked, dict) and "dataConnectionId" not in item:
            item["dataConnectionId"] = linked.get("id")
        tasks.append(item)

    loaded = parse_definitions({"defaults": defaults or None, "dataConnections": sanitised,
                                "tasks": tasks}, source)
    refused = build_loaded([loaded], build=False).errors  # e.g. two names giving one DAG id
    if refused:
        where = {e.location for e in refused}
        loaded = replace(loaded, tasks=tuple(t for t in loaded.tasks
                                             if f"{source}: task '{t.name}'" not in where))
    plan.problems = [*loaded.errors, *refused]
    document: dict[str, Any] = {}
    if defaults:
        document["defaults"] = defaults
    # by name, so that importing again gives a file that diffs cleanly
    document["data_connections"] = [connection_entry(c)
                                    for c in _by_name(loaded.data_connections)]
    document["tasks"] = [task_entry(t, defaults) for t in _by_name(loaded.tasks)]

    again = parse_definitions(document, source)
    if again.errors or _by_name(again.tasks) != _by_name(loaded.tasks) or \
            _by_name(again.data_connections) != _by_name(loaded.data_connections):
        raise RuntimeError("the written definitions would not load back unchanged "
                           f"({len(again.errors)} problems); please report this")
    plan.document = document
    imported = {c.name for c in loaded.data_connections}
    plan.notes = [text for name, text in notes if name in imported]
    disabled = [t.name for t in _by_name(loaded.tasks)
                if not t.schedule.enabled and not t.schedule.is_manual]
    if disabled:  # enabled: false means no scheduled runs on Airflow either
        one = len(disabled) == 1
        plan.notes.append(
            f"{plural(len(disabled), 'task')} disabled in HydroServer {'is' if one else 'are'} "
            f"written with enabled: false, so Airflow runs {'it' if one else 'them'} only when "
            f"triggered: {', '.join(repr(n) for n in disabled)}. If HydroServer's schedule was "
            "switched off because Airflow runs them (--disable-server-schedules), set "
            "enabled: true for them in the file.")
    enabled = {t["id"] for t in raw_tasks if _runs_on_server(t.get("schedule"))}
    plan.scheduled = [(t.id, t.name) for t in loaded.tasks if t.id is not None and t.id in enabled]
    return plan


def _by_name(definitions: Any) -> list[Any]:
    return sorted(definitions, key=lambda d: (d.name.casefold(), d.name))


def _runs_on_server(schedule: Any) -> bool:
    return isinstance(schedule, dict) and bool(schedule.get("enabled", True)) and bool(
        schedule.get("crontab") or schedule.get("interval"))


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}_{n}", n + 1
    taken.add(candidate)
    return candidate


def _auth_note(connection: str, header: str, reference: str, auth_from: str) -> str:
    if auth_from == "variable":
        return (f"Data connection '{connection}' sends the header '{header}': create the Airflow "
                f"Variable '{reference}' holding its value (airflow variables set {reference} "
                "...). The value was not copied.")
    return (f"Data connection '{connection}' sends the header '{header}': create the Airflow "
            f"connection '{reference}' with the value as its password. The value was not copied.")


def connection_entry(connection: Any) -> dict[str, Any]:
    """A data connection in the file's flat, seed-guide vocabulary (defaults left out)."""
    data = connection.model_dump(mode="json", exclude_defaults=True)
    payload = data.pop("payload", {})
    payload.pop("type", None)
    data["payload_type"] = connection.payload.type
    data.update(payload)
    return _ordered(data, _CONNECTION_ORDER)


def task_entry(task: Any, defaults: dict[str, Any]) -> dict[str, Any]:
    """A task referring to its data connection by name, with a flat schedule when it can be."""
    data = task.model_dump(mode="json", exclude_defaults=True,
                           exclude={"data_connection", "airflow", "schedule"})
    data["data_connection"] = task.data_connection.name
    schedule = task.schedule.model_dump(mode="json", exclude_defaults=True)
    schedule["enabled"] = task.schedule.enabled  # written even when true: it says what runs
    if set(schedule) <= set(_FLAT_SCHEDULE):
        data.update(schedule)
    else:
        data["schedule"] = schedule
    extra = {k: v for k, v in task.airflow.model_dump(mode="json", exclude_none=True).items()
             if defaults.get(k) != v}
    if extra:
        data["airflow"] = extra
    return _ordered(data, _TASK_ORDER)


def _ordered(data: dict[str, Any], order: tuple[str, ...]) -> dict[str, Any]:
    first = {k: data[k] for k in order if k in data}
    return {**first, **{k: v for k, v in data.items() if k not in first}}


def write_document(path: Path, document: dict[str, Any], header: str) -> None:
    import yaml

    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# {header}\n# Check it with: hydroserver-airflow validate {path.name}\n\n"
                    + text, encoding="utf-8")


# --------------------------------------------------------------------------------------------
# HydroServer's own schedules
# --------------------------------------------------------------------------------------------


def _schedules(client: Any, plan: ImportPlan, disable: bool) -> int:
    """Switch off (or warn about) HydroServer's schedules of the imported tasks; 1 on failure."""
    if not plan.scheduled:
        return 0
    if not disable:
        print(f"HydroServer still runs {plural(len(plan.scheduled), 'imported task')} on its own "
              "schedule: switch those schedules off in HydroServer (or import with "
              "--disable-server-schedules) when the DAGs take over, so that each runs once.")
        return 0
    from hydroserver_provider.errors import HydroServerAPIError

    done, failed = [], []
    for task_id, name in plan.scheduled:
        try:
            client.update_task_schedule(task_id, enabled=False)
            done.append(name)
        except HydroServerAPIError as exc:
            failed.append(f"'{name}' ({exc})")
    if done:
        print(f"Disabled HydroServer's own schedule of {plural(len(done), 'task')} (Airflow runs "
              f"them now): {', '.join(repr(n) for n in done)}")
    if failed:
        print(f"Could not disable HydroServer's schedule of {plural(len(failed), 'task')}, which "
              f"HydroServer still runs: {'; '.join(failed)}")
        return 1
    return 0
