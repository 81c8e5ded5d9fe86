"""``hydroserver-airflow runs TASK`` and ``trigger TASK``: run history and manual runs.

HydroServer's ``task.list_runs(...)`` / ``task.get_run(...)`` / ``task.trigger()``, answered by
Airflow's REST API (see :mod:`hydroserver_provider.runs.history` for how Airflow's states map to
PENDING / STARTED / SUCCESS / FAILURE). The API server and an Airflow user come from
``--api-url`` / ``--username`` / ``--password`` or ``AIRFLOW_API_URL`` / ``AIRFLOW_USERNAME`` /
``AIRFLOW_PASSWORD`` (or a token in ``AIRFLOW_API_TOKEN``); nothing printed contains them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

from hydroserver_provider.cli.common import CommandError, parse_iso_moment, reports_errors
from hydroserver_provider.text import format_table

TERMINAL = ("SUCCESS", "FAILURE")
DRY_RUN_PREFIX = "dry_run__"


def dry_run_id(now: datetime | None = None) -> str:
    """The run id of ``trigger --dry-run``: ``dry_run__<time>``, so Airflow's run list tells a
    dry run from a real one (Airflow still records it as a manual run)."""
    return DRY_RUN_PREFIX + (now or datetime.now(UTC)).isoformat()


def register(subparsers: argparse._SubParsersAction) -> None:
    from hydroserver_provider.runs.history import STATUSES

    runs = subparsers.add_parser(
        "runs", help="list the runs of a task (newest first) or show one run",
        description="List the runs of a task, newest first, with HydroServer's statuses "
                    "(PENDING, STARTED, SUCCESS, FAILURE) and each run's message; --run shows "
                    "one run with its whole result.")
    runs.add_argument("task", metavar="TASK", help="the task's name or its DAG id")
    runs.add_argument("--status", type=str.upper, choices=STATUSES,
                      help="only runs with this status")
    runs.add_argument("--since", type=_moment, metavar="DATE",
                      help="only runs started at or after DATE (ISO 8601; UTC unless an offset "
                           "is given)")
    runs.add_argument("--until", type=_moment, metavar="DATE",
                      help="only runs started before DATE")
    runs.add_argument("--limit", type=_positive, default=10, metavar="N",
                      help="at most N runs (default 10)")
    runs.add_argument("--run", metavar="RUN_ID", help="show this run only, with its result")
    runs.add_argument("--json", action="store_true", help="print JSON (id, status, message, "
                                                          "result, started_at, finished_at)")
    _add_api_options(runs)
    runs.set_defaults(func=run_runs)

    trigger = subparsers.add_parser(
        "trigger", help="start a run of a task now",
        description="Start a manual run of a task. With --start and --end it loads that window "
                    "(the trigger form's window_start / window_end); otherwise its schedule's "
                    "last complete interval. --wait follows the run to its end.")
    trigger.add_argument("task", metavar="TASK", help="the task's name or its DAG id")
    trigger.add_argument("--start", type=_moment, metavar="DATE", help="window start (ISO 8601)")
    trigger.add_argument("--end", type=_moment, metavar="DATE", help="window end (ISO 8601)")
    trigger.add_argument("--dry-run", action="store_true",
                         help="fetch, parse and compare, but write nothing to HydroServer (the "
                              "run's id is dry_run__<time>)")
    trigger.add_argument("--wait", action="store_true",
                         help="wait for the run to finish; exit 0 on SUCCESS, 1 on FAILURE")
    trigger.add_argument("--timeout", type=_positive, default=3600, metavar="SECONDS",
                         help="with --wait: give up after this long (exit 2; default 3600)")
    trigger.add_argument("--poll", type=float, default=2.0, help=argparse.SUPPRESS)
    trigger.add_argument("--json", action="store_true", help="print the run as JSON")
    _add_api_options(trigger)
    trigger.set_defaults(func=run_trigger)


def _add_api_options(parser: argparse.ArgumentParser) -> None:
    from hydroserver_provider.runs.api import ENV_PASSWORD, ENV_TOKEN, ENV_URL, ENV_USERNAME

    group = parser.add_argument_group(
        "Airflow API", f"the API server and an Airflow user; default ${ENV_URL}, "
                       f"${ENV_USERNAME}, ${ENV_PASSWORD} (or a token in ${ENV_TOKEN})")
    group.add_argument("--api-url", metavar="URL", help="e.g. http://localhost:8080")
    group.add_argument("--username", metavar="USER")
    group.add_argument("--password", metavar="PASSWORD",
                       help=f"prefer ${ENV_PASSWORD}: a command line is visible to other users")


def _moment(text: str) -> datetime:
    try:
        return parse_iso_moment(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 date or date-time such as 2025-01-01 or "
            f"2025-01-01T06:00:00Z, found {text!r}") from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, found {text!r}")
    return value


def _api(args: argparse.Namespace) -> Any:
    from hydroserver_provider.runs.api import AirflowAPI

    return AirflowAPI.from_env(args.api_url, args.username, args.password)


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _short(text: str, width: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _print_run(run: Any) -> None:
    print(f"Run:      {run.id} ({run.dag_id})")
    print(f"Status:   {run.status} (Airflow: {run.airflow_state})")
    print(f"Started:  {_when(run.started_at)}")
    print(f"Finished: {_when(run.finished_at)}")
    print(f"Message:  {run.message}")
    if run.result is not None:
        print("Result:")
        print(json.dumps(run.result, indent=2, sort_keys=True))


@reports_errors
def run_runs(args: argparse.Namespace) -> int:
    from hydroserver_provider.runs.history import get_run, list_runs, resolve_dag_id

    with _api(args) as api:
        dag_id = resolve_dag_id(api, args.task)
        if args.run:
            run = get_run(api, dag_id, args.run)
            if run is None:
                raise CommandError(f"no run '{args.run}' of task '{args.task}' (DAG {dag_id})")
            if args.json:
                print(json.dumps(run.as_dict(), indent=2))
            else:
                _print_run(run)
            return 0
        runs = list_runs(api, dag_id, status=args.status, since=args.since, until=args.until,
                         limit=args.limit)
    if args.json:
        print(json.dumps([r.as_dict() for r in runs], indent=2))
        return 0
    if not runs:
        what = f" with status {args.status}" if args.status else ""
        when = f" started since {_when(args.since)} UTC" if args.since else ""
        print(f"No runs of {dag_id}{what}{when}.")
        return 0
    rows = [[_when(r.started_at), _when(r.finished_at), r.status, r.id, _short(r.message)]
            for r in runs]
    print(format_table(["STARTED (UTC)", "FINISHED (UTC)", "STATUS", "RUN ID", "MESSAGE"],
                       rows))
    return 0


@reports_errors
def run_trigger(args: argparse.Namespace) -> int:
    from hydroserver_provider.runs.history import get_run, resolve_dag_id, task_run

    if (args.start is None) != (args.end is None):
        raise CommandError("a window needs both --start and --end")
    if args.start is not None and args.start >= args.end:
        raise CommandError(f"--start ({args.start.isoformat()}) must be before --end "
                           f"({args.end.isoformat()})")
    conf: dict[str, Any] = {}
    if args.start is not None:
        conf["window_start"] = args.start.isoformat()
        conf["window_end"] = args.end.isoformat()
    if args.dry_run:
        conf["dry_run"] = True
    with _api(args) as api:
        dag_id = resolve_dag_id(api, args.task)
        dag = api.dag(dag_id) or {}
        if args.start is None and _needs_window(api, dag_id):
            raise CommandError(f"{dag_id} has no schedule and its source URL needs a window: "
                               "give --start and --end")
        if dag.get("is_paused"):
            print(f"warning: {dag_id} is paused: the run stays PENDING until it is unpaused",
                  file=sys.stderr)
        if args.dry_run:  # visible as such in Airflow's run list (run id) and on its page
            created = api.trigger(dag_id, conf=conf, run_id=dry_run_id(),
                                  note="Dry run: writes nothing (hydroserver-airflow trigger "
                                       "--dry-run)")
        else:
            created = api.trigger(dag_id, conf=conf, note="hydroserver-airflow trigger")
        run = task_run(created, None)
        if not args.wait:
            _report(run, args.json, f"Triggered run {run.id} of {dag_id}: {run.status}")
            return 0
        if not args.json:
            print(f"Triggered run {run.id} of {dag_id}; waiting for it to finish...")
        deadline = time.monotonic() + args.timeout
        while True:
            current = get_run(api, dag_id, run.id) or run
            if current.status in TERMINAL:
                break
            if time.monotonic() >= deadline:
                _report(current, args.json,
                        f"Run {run.id} still {current.status} after {args.timeout} s")
                return 2
            time.sleep(max(args.poll, 0.1))
    _report(current, args.json, None)
    return 0 if current.status == "SUCCESS" else 1


def _needs_window(api: Any, dag_id: str) -> bool:
    """Whether the DAG's trigger form requires a window (its ``window_start`` param does not
    accept null: a manual-only task whose URL needs a window)."""
    from urllib.parse import quote

    details = api.request("GET", f"/dags/{quote(dag_id, safe='')}/details", missing_ok=True)
    param = ((details or {}).get("params") or {}).get("window_start")
    kind = (param or {}).get("schema", {}).get("type") if isinstance(param, dict) else None
    return kind == "string"


def _report(run: Any, as_json: bool, line: str | None) -> None:
    if as_json:
        print(json.dumps(run.as_dict(), indent=2))
    elif line:
        print(line)
    else:
        _print_run(run)
