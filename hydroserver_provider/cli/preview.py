"""``hydroserver-airflow preview TASK``: one dry run of a task, shown in the terminal.

What a scheduled run would do, without writing: the URL it fetches (secrets redacted), the first
parsed rows, and for each datastream how many observations would load, be skipped (already
stored, outside the window) or be dropped (and why). It runs the real pipeline with
``dry_run=True``, so what it shows is what the DAG will do -- the reading of HydroServer's
metadata included. ``--plot`` draws the parsed series (needs matplotlib: the ``plot`` extra).

The credentials are checked first (one request): HydroServer answers reads of public datastreams
anonymously whatever the API key, so without this check a wrong key would preview fine and only
the scheduled run would fail, at its first write. A refused key is a warning (the preview still
shows what the reads found) and exit code 1.
"""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hydroserver_provider.cli.common import (
    DEFAULT_CONN_ID,
    CommandError,
    add_hydroserver_options,
    from_metadata_database,
    hydroserver_client,
    parse_iso_moment,
    quiet_logs,
    reports_errors,
)
from hydroserver_provider.text import format_table, plural

PLOT_EXTRA_HINT = "pip install 'airflow-provider-hydroserver[plot]'"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "preview", help="dry-run one task: URL, parsed rows, what would load",
        description="Run one task as its DAG would, but write nothing to HydroServer: print the "
                    "resolved source URL, the first parsed rows and, per datastream, how many "
                    "observations would be loaded, skipped and dropped.")
    parser.add_argument("task", metavar="TASK", help="the task's name or its DAG id")
    parser.add_argument("--definitions", metavar="DIR",
                        help="definitions folder or file (default: $HYDROSERVER_DEFINITIONS_DIR, "
                             "else <Airflow dags folder>/definitions)")
    parser.add_argument("--start", metavar="DATE",
                        help="window start, ISO 8601 (UTC unless an offset is given)")
    parser.add_argument("--end", metavar="DATE", help="window end, ISO 8601")
    parser.add_argument("--rows", metavar="N", type=int, default=10,
                        help="parsed rows to show (default 10)")
    parser.add_argument("--plot", metavar="FILE.png", help="draw the parsed series to a PNG file")
    parser.add_argument("--feature", metavar="ID",
                        help="a Hydrocron task fanning out over features: the feature to preview "
                             "(default: the first)")
    add_hydroserver_options(parser, conn_id_help="Airflow connection of the HydroServer to read "
                                                 "(default: the task's hydroserver_conn_id)")
    parser.set_defaults(func=run)


@reports_errors
def run(args: argparse.Namespace) -> int:
    with quiet_logs("hydroserver_provider", "matplotlib"):
        return _preview(args)


def _preview(args: argparse.Namespace) -> int:
    if args.rows < 0:
        raise CommandError(f"--rows expects a number >= 0, found {args.rows}")
    if args.plot:
        _require_matplotlib()  # before any request: a missing extra should not cost a run
    task, source = find_task(definitions_location(args.definitions), args.task)
    window, why = preview_window(task, args.start, args.end, datetime.now(UTC))
    connection = task.data_connection
    if connection.uses_window and window is None:
        raise CommandError(f"task '{task.name}' has no schedule and its source URL needs a "
                           "window: give --start and --end")

    from hydroserver_provider.errors import IngestionFailed
    from hydroserver_provider.factory import dag_id_for
    from hydroserver_provider.pipeline import RunOptions, run_ingestion

    mappings, feature_note = _preview_mappings(task, args.feature)
    client, where = hydroserver_client(
        args, task.airflow.hydroserver_conn_id or DEFAULT_CONN_ID)
    refused = credentials_refused(client)
    print(f"Task:        {task.name}  (DAG {dag_id_for(task.name, task.airflow.dag_id)}, "
          f"{source})")
    print(f"Connection:  {connection.name} ({connection.payload.type})")
    print(f"HydroServer: {where}")
    if refused:
        print(f"Warning:     {refused}")
    print(f"Window:      {_window_text(window)} ({why})")
    if feature_note:
        print(f"Feature:     {feature_note}")

    source = _hydrocron_source(task, mappings)
    captured: list[Any] = []
    options = RunOptions(dry_run=True, source_headers=_source_headers(connection))
    failed = False
    try:
        with client:
            summary = run_ingestion(
                client, connection, mappings, window=window,
                task_variables=task.task_variables, start_time=task.schedule.start_time,
                options=options, on_parsed=captured.append, source=source)
    except IngestionFailed as exc:
        summary, failed = exc.summary, True
    finally:
        if source is not None:
            source.client.close()
    parsed = captured[0]

    print(f"URL:         {summary['url']}")
    print(f"Rows read:   {summary['rows_read']:,}")
    identifiers = list(dict.fromkeys(m.source_identifier for m in mappings))
    print()
    print(rows_table(parsed, identifiers, args.rows))
    print()
    print("Per datastream (dry run: nothing was written)")
    print(datastreams_table(summary["datastreams"]))
    print()
    for note in summary.get("notes") or ():
        print(f"Note: {note}")
    print(summary["message"])
    if args.plot:
        names = {d["datastream_id"]: d.get("name") for d in summary["datastreams"]}
        write_plot(Path(args.plot), task.name, mappings, parsed, names, window)
        print(f"Plot written to {args.plot}")
    if refused:
        print(f"Warning: {refused}")
    return 1 if failed or refused else 0


def credentials_refused(client: Any) -> str | None:
    """Why HydroServer refused the API key (``None`` when it accepted the credentials).

    One quick request (:meth:`HydroServerClient.check` on a :meth:`~HydroServerClient.probe`): an
    unreachable server or a refused account login stops the preview right away (nothing could be
    read); a refused API key is returned, since public datastreams still read with it.
    """
    from hydroserver_provider.hydroserver.client import AuthenticationError

    probe = client.probe()
    try:
        probe.check()
    except AuthenticationError as exc:
        if not client.credentials.api_key:
            raise
        return (f"{exc}. This preview shows what HydroServer answers anonymously (public "
                "datastreams only); a scheduled run would fail")
    finally:
        probe.close()
    return None


# --------------------------------------------------------------------------------------------
# Which task, which window
# --------------------------------------------------------------------------------------------


def definitions_location(given: str | None) -> Path:
    """``--definitions``, else the folder the DAG file reads (same environment variable)."""
    from hydroserver_provider.factory import DEFINITIONS_DIR_ENV

    if given:
        return Path(given)
    if os.environ.get(DEFINITIONS_DIR_ENV):
        return Path(os.environ[DEFINITIONS_DIR_ENV])
    from hydroserver_provider.compat import airflow_conf

    return Path(airflow_conf.get("core", "dags_folder")) / "definitions"


def find_task(location: Path, wanted: str) -> tuple[Any, str]:
    """The loaded task named ``wanted`` (any case and spacing) or with that DAG id."""
    from hydroserver_provider.definitions.files import load_definition_paths
    from hydroserver_provider.factory import dag_id_for

    if not location.exists():
        raise CommandError(f"the definitions folder {location} does not exist: pass "
                           "--definitions DIR or set HYDROSERVER_DEFINITIONS_DIR")
    files, errors = load_definition_paths([location])
    key = " ".join(wanted.split()).casefold()
    names = []
    for loaded in files:
        for task in loaded.tasks:
            names.append(task.name)
            if (" ".join(task.name.split()).casefold() == key
                    or dag_id_for(task.name, task.airflow.dag_id) == wanted):
                return task, loaded.source
    mine = [e for e in errors if e.location and f"task '{wanted}'" in e.location]
    if mine:
        raise CommandError(f"task '{wanted}' does not load:\n" + "\n".join(f"  - {e}"
                                                                          for e in mine))
    import difflib

    close = difflib.get_close_matches(wanted, names, n=3, cutoff=0.5)
    hint = (f"did you mean {', '.join(repr(n) for n in close)}?" if close
            else f"loaded: {', '.join(repr(n) for n in names[:10]) or 'none'}")
    more = f"; {plural(len(errors), 'definition problem')} (run validate)" if errors else ""
    raise CommandError(f"no task named '{wanted}' (or with that DAG id) in {location}: "
                       f"{hint}{more}")


def parse_moment(text: str, option: str) -> datetime:
    try:
        return parse_iso_moment(text)
    except ValueError:
        raise CommandError(f"{option} expects an ISO 8601 date or date-time such as "
                           f"2025-06-01T00:00:00Z, found {text!r}") from None


def preview_window(task: Any, start: str | None, end: str | None,
                   now: datetime) -> tuple[Any, str]:
    """The run window and where it comes from: the options, else the schedule's last complete
    interval ending at ``now`` (what a manual run of the DAG gets), else none."""
    from hydroserver_provider.sources.placeholders import RunWindow

    if (start is None) != (end is None):
        raise CommandError("give both --start and --end, or neither")
    if start is not None and end is not None:
        begin, finish = parse_moment(start, "--start"), parse_moment(end, "--end")
        if begin >= finish:
            raise CommandError(f"--start ({begin.isoformat()}) must be before --end "
                               f"({finish.isoformat()})")
        return RunWindow(begin, finish), "from --start/--end"
    from hydroserver_provider.periods import last_schedule_period, schedule_timing

    timing = schedule_timing(task.schedule)
    period = last_schedule_period(now, **timing)
    if period is None:
        return None, "manual task without --start/--end"
    why = ("the last interval of the schedule, ending now" if timing["interval_seconds"]
           is not None else "the last complete period of the crontab")
    return RunWindow(*period), why


def _window_text(window: Any) -> str:
    if window is None:
        return "none"
    return f"{_iso(window.start)} -> {_iso(window.end)}"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _preview_mappings(task: Any, feature: str | None) -> tuple[list[Any], str]:
    """The mappings to preview: all of them, or for a Hydrocron task fanning out over features,
    those of one feature (``--feature``, else the first) -- one instance of its mapped task."""
    from hydroserver_provider.factory import fan_out_features

    features = fan_out_features(task)
    if not features:
        if feature:
            raise CommandError("--feature is for Hydrocron tasks that fan out over features")
        return list(task.mappings), ""
    chosen = feature or features[0]
    if chosen not in features:
        raise CommandError(f"--feature {chosen!r} is not one of the task's features "
                           f"({', '.join(features)})")
    note = (f"{chosen} ({'chosen' if feature else 'the first'} of "
            f"{plural(len(features), 'feature')}; the DAG runs each in its own instance)")
    return [m for m in task.mappings if m.feature_id == chosen], note


def _hydrocron_source(task: Any, mappings: list[Any]) -> Any:
    """For a HYDROCRON task, the source the operator gives the pipeline: the Hydrocron client of
    its Airflow connection (and the feature of a fan-out instance); None for other tasks."""
    payload = task.data_connection.payload
    if payload.type != "HYDROCRON":
        return None
    from hydroserver_provider.hooks.hydrocron import HydrocronHook
    from hydroserver_provider.sources.hydrocron.source import HydrocronSource

    conn_id = task.airflow.hydrocron_conn_id or payload.hydrocron_conn_id
    if not os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}"):
        from_metadata_database(connection=conn_id)  # one made in the UI (else the default)
    hook = HydrocronHook.for_payload(payload, task.airflow.hydrocron_conn_id)
    return HydrocronSource(hook.get_conn(), feature_id=mappings[0].feature_id
                           if task.hydrocron_features else None)


def _source_headers(connection: Any) -> dict[str, str]:
    if connection.auth is None:
        return {}
    from hydroserver_provider.operators.ingest import source_auth_headers

    auth = connection.auth
    try:
        return source_auth_headers(auth)
    except Exception as exc:  # Airflow's "not found" errors differ between releases
        if from_metadata_database(connection=auth.conn_id, variable=auth.variable):
            return source_auth_headers(auth)  # kept in Airflow's database (the UI)
        where = (f"the Airflow connection '{auth.conn_id}' (its password)" if auth.conn_id
                 else f"the Airflow variable '{auth.variable}' "
                      f"(or AIRFLOW_VAR_{auth.variable.upper()})")
        raise CommandError(f"data connection '{connection.name}' sends the header "
                           f"'{auth.header_name}', whose value is read from {where}: "
                           f"{type(exc).__name__}: {exc}") from None


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def first_rows(parsed: Any, identifiers: list[str], count: int) -> tuple[list, dict[str, list]]:
    """The first ``count`` timestamps over all series, and each identifier's value at them."""
    import numpy as np

    heads = [parsed.series[i].timestamps[:count] for i in identifiers if i in parsed.series]
    if not heads or count == 0:
        return [], {i: [] for i in identifiers}
    stamps = np.unique(np.concatenate(heads))[:count]
    values: dict[str, list] = {}
    for ident in identifiers:
        series = parsed.series.get(ident)
        column: list = [None] * len(stamps)
        if series is not None and len(series):
            where = np.searchsorted(series.timestamps, stamps)
            for row, pos in enumerate(where):
                if pos < len(series) and series.timestamps[pos] == stamps[row]:
                    column[row] = series.values[pos]
        values[ident] = column
    return list(stamps), values


def rows_table(parsed: Any, identifiers: list[str], count: int) -> str:
    stamps, values = first_rows(parsed, identifiers, count)
    total = len(_all_timestamps(parsed, identifiers))
    if not stamps:
        return "Parsed rows: none" if total == 0 else f"Parsed rows: {total:,} (not shown)"
    rows = [[_stamp(t)] + [_number(values[i][r]) for i in identifiers]
            for r, t in enumerate(stamps)]
    title = f"First {len(stamps)} of {total:,} parsed timestamps (UTC):"
    return title + "\n" + format_table(["timestamp", *identifiers], rows,
                                       right=range(1, len(identifiers) + 1))


def _all_timestamps(parsed: Any, identifiers: list[str]) -> Any:
    import numpy as np

    arrays = [parsed.series[i].timestamps for i in identifiers if i in parsed.series]
    return np.unique(np.concatenate(arrays)) if arrays else np.array([], dtype="datetime64[us]")


def _stamp(value: Any) -> str:
    return str(value.astype("datetime64[s]")) + "Z"


def _number(value: Any) -> str:
    return "" if value is None else f"{float(value):.10g}"


def _reasons(counts: dict[str, int]) -> str:
    return ", ".join(f"{reason} {count:,}" for reason, count in counts.items())


def datastreams_table(datastreams: list[dict]) -> str:
    rows = []
    for d in datastreams:
        notes = []
        if d.get("skipped_reasons"):
            notes.append("skipped: " + _reasons(d["skipped_reasons"]))
        if d.get("dropped"):
            notes.append("dropped: " + _reasons(d["dropped"]))
        if d.get("first") and d.get("loaded"):
            notes.append(f"{d['first']} .. {d['last']}")
        if d.get("error"):
            notes.append("ERROR: " + d["error"])
        rows.append([d.get("name") or "?", d["datastream_id"], d["source_identifier"],
                     f"{d['loaded']:,}", f"{d['skipped']:,}", f"{d['dropped_total']:,}",
                     "; ".join(notes)])
    return format_table(["datastream", "id", "source", "would load", "skip", "drop", "notes"],
                        rows, right=(3, 4, 5))


# --------------------------------------------------------------------------------------------
# Plot
# --------------------------------------------------------------------------------------------


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise CommandError(f"--plot needs matplotlib, which is not installed: "
                           f"{PLOT_EXTRA_HINT}") from None


def write_plot(path: Path, title: str, mappings: list[Any], parsed: Any,
               names: dict[str, str | None], window: Any) -> None:
    """One panel per mapped datastream with its parsed series; the run window is shaded."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 1.2 + 2.4 * len(mappings)), layout="constrained")
    axes = figure.subplots(len(mappings), 1, sharex=True, squeeze=False)[:, 0]
    for ax, mapping in zip(axes, mappings):
        series = parsed.series.get(mapping.source_identifier)
        name = names.get(mapping.target_datastream_id) or mapping.target_datastream_id
        if series is not None and len(series):
            ax.plot(series.timestamps, series.values, linewidth=1.2,
                    marker="." if len(series) <= 200 else None)
        else:
            ax.text(0.5, 0.5, "no values parsed", transform=ax.transAxes, ha="center")
        if window is not None:
            ax.axvspan(_naive_utc(window.start), _naive_utc(window.end), alpha=0.12,
                       color="tab:green", label="run window")
        ax.set_title(f"{name}  \u2190  {mapping.source_identifier}", loc="left", fontsize=10)
        ax.grid(True, alpha=0.3)
    axes[-1].set_xlabel("UTC")
    if window is not None:
        axes[0].legend(loc="best", fontsize=8)
    figure.suptitle(f"{title}: parsed series (dry run)", fontsize=12)
    figure.autofmt_xdate()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=100)


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)
