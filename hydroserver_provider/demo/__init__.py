"""``make demo`` / ``python -m hydroserver_provider.demo``: the example DAGs, end to end, offline.

What it does, on local stand-ins only (everything listens on 127.0.0.1 and stops at the end, on
an error and on Ctrl-C):

1. starts a local HydroServer and the station sources at the URLs the example definitions in
   ``dags/definitions/`` name (see :mod:`hydroserver_provider.demo.sources`);
2. creates the datastreams those definitions target, with the ids written there;
3. starts Airflow in a child process (:mod:`hydroserver_provider.demo.runner`: SQLite metadata in
   a throwaway ``AIRFLOW_HOME``, the repository's ``dags/`` folder, the ``hydroserver_default``
   connection pointing at the local HydroServer) and runs each example DAG for two consecutive
   data intervals, then re-runs the first;
4. prints what every run loaded next to what HydroServer holds, checks that the re-runs added
   nothing and that exactly the expected observations are stored (exit code 1 otherwise);
5. says how to point the same DAGs at a real HydroServer.

The demo process itself never imports Airflow: Airflow reads its configuration once per process,
and the child gets exactly the environment above, whatever the caller's shell (or test session)
has set.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from hydroserver_provider.defaults import HYDROSERVER_CONN_ID
from hydroserver_provider.demo.sources import (
    DEMO_SOURCES,
    DemoSetupError,
    DemoSource,
    Interval,
    SourceHosts,
)

if TYPE_CHECKING:
    from hydroserver_provider.definitions import Task
    from hydroserver_provider.testing.hydroserver import LocalHydroServer

REPO = Path(__file__).resolve().parents[2]
DEFAULT_HOME = REPO / ".demo" / "airflow_home"
HOME_MARKER = ".hydroserver-demo"  # only a folder carrying it is ever emptied
READY_TIMEOUT = 240.0  # seconds for Airflow's import, migration and DAG parse (~6 s measured)
RUN_TIMEOUT = 180.0  # seconds for one DAG run (~5 s for the first, < 1 s later)
LOG_LINES_ON_FAILURE = 12
ORDINALS = ("1st", "2nd", "3rd", "4th", "5th")


class DemoFailed(RuntimeError):
    """Airflow did not start or stopped answering; the message says where to look."""


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass
class DatastreamRow:
    """One datastream in one run: what the run says it loaded, what HydroServer holds."""

    datastream_id: str
    name: str
    loaded: int | None
    stored_before: int
    stored_after: int
    expected_after: int

    @property
    def added(self) -> int:
        return self.stored_after - self.stored_before


@dataclass
class RunRecord:
    task_name: str
    dag_id: str
    label: str  # "1st run", "2nd run", "re-run 1st"
    interval: Interval
    rerun: bool
    state: str
    message: str
    rows: list[DatastreamRow] = field(default_factory=list)


@dataclass
class DemoResult:
    runs: list[RunRecord] = field(default_factory=list)
    final_counts: dict[str, int] = field(default_factory=dict)
    expected_counts: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.runs)


# --------------------------------------------------------------------------------------------
# Airflow in a child process
# --------------------------------------------------------------------------------------------


class AirflowRunner:
    """The :mod:`~hydroserver_provider.demo_runner` child: start, ask for runs, stop."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._replies: queue.Queue[dict | None] = queue.Queue()
        with open(log_path, "ab") as log:  # what the child says before it redirects its output
            self._process = subprocess.Popen(
                [sys.executable, "-m", "hydroserver_provider.demo.runner", str(log_path)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                env=env, cwd=str(REPO), text=True, encoding="utf-8",
                start_new_session=True,  # Ctrl-C reaches the demo only; it stops the child
            )
        self._reader = threading.Thread(target=self._read, name="demo-airflow-reader",
                                        daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        try:
            for line in self._process.stdout:
                with contextlib.suppress(ValueError):  # not a protocol line
                    self._replies.put(json.loads(line))
        except (OSError, ValueError):  # the pipe was closed under us
            pass
        self._replies.put(None)

    def _reply(self, key: str, timeout: float, doing: str) -> dict[str, Any]:
        try:
            reply = self._replies.get(timeout=timeout)
        except queue.Empty:
            raise DemoFailed(f"Airflow did not finish {doing} within {timeout:.0f} s") from None
        if reply is None:
            raise DemoFailed(f"Airflow stopped while {doing} (exit code {self._process.poll()})")
        if "error" in reply:
            raise DemoFailed(f"Airflow failed while {doing}:\n{reply['error']}")
        return reply[key]

    def ready(self) -> dict[str, Any]:
        return self._reply("ready", READY_TIMEOUT, "starting (migration, DAG parsing)")

    def run(self, dag_id: str, logical_date: datetime) -> dict[str, Any]:
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps({"dag_id": dag_id,
                                              "logical_date": logical_date.isoformat()}) + "\n")
        self._process.stdin.flush()
        return self._reply("run", RUN_TIMEOUT, f"running {dag_id} for {logical_date}")

    def __enter__(self) -> AirflowRunner:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.close(patient=exc_type is None)

    def close(self, patient: bool = True) -> None:
        """Stop the child: end of input (an idle child exits at once), then SIGTERM, SIGKILL.

        ``patient=False`` (an error or Ctrl-C: the child may be mid-run) skips the wait for the
        child to finish what it is doing.
        """
        process = self._process
        with contextlib.suppress(OSError, ValueError):
            if process.stdin:
                process.stdin.close()
        steps = ((None, 5.0),) if patient else ()
        for stop, grace in (*steps, (process.terminate, 5.0), (process.kill, 5.0)):
            if process.poll() is not None:
                break
            if stop is not None:
                stop()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=grace)
        self._reader.join(timeout=2)  # reads to the end of the pipe, then closes nothing


def airflow_env(home: Path, hs: LocalHydroServer, conn_ids: set[str],
                extra: dict[str, str]) -> dict[str, str]:
    """The child's environment: the caller's, minus any Airflow setting, plus the demo's."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "_AIRFLOW")) and k != "HYDROSERVER_DEFINITIONS_DIR"}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "HYDROSERVER_DEFINITIONS_DIR": str(REPO / "dags" / "definitions"),
        "PYTHONWARNINGS": "ignore",
    })
    connection = json.dumps({"conn_type": "hydroserver", "host": hs.url,
                             "password": hs.api_key})  # the form's "API key" field
    for conn_id in conn_ids:
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = connection
    env.update(extra)
    return env


# --------------------------------------------------------------------------------------------
# Set-up
# --------------------------------------------------------------------------------------------


def prepare_home(home: Path) -> Path:
    """An empty ``AIRFLOW_HOME``: a fresh database makes every demo the same demo."""
    home = home.resolve()
    if home.exists() and any(home.iterdir()) and not (home / HOME_MARKER).exists():
        raise DemoSetupError(f"{home} is not empty and was not made by the demo; choose another "
                             "folder with --home")
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    (home / HOME_MARKER).write_text("Made by python -m hydroserver_provider.demo; emptied at "
                                    "every run.\n", encoding="utf-8")
    return home


def demo_tasks(sources: Sequence[DemoSource]) -> dict[str, Task]:
    """The example tasks the demo runs, read from ``dags/definitions/`` as Airflow will."""
    from hydroserver_provider.definitions.files import load_definitions

    folder = REPO / "dags" / "definitions"
    files, errors = load_definitions(folder)
    tasks = {task.name: task for loaded in files for task in loaded.tasks}
    wanted = {source.task_name for source in sources}
    if wanted - set(tasks):
        problems = "".join(f"\n  - {error}" for error in errors)
        raise DemoSetupError(
            f"{folder} has no valid task named {', '.join(sorted(wanted - set(tasks)))} "
            f"(tasks found: {', '.join(sorted(tasks)) or 'none'}){problems}")
    return {name: tasks[name] for name in wanted}


def create_datastreams(hs: LocalHydroServer, source: DemoSource, task: Task) -> list[str]:
    ids = []
    for mapping in task.mappings:
        series = source.series_for(mapping.source_identifier)
        ids.append(hs.create_datastream(name=series.name, unit=series.unit,
                                        datastream_id=mapping.target_datastream_id,
                                        description=f"{series.name} ({task.name})"))
    return ids


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a CI timeout, ``kill``) cleans up like Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def _shown(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def _interval(interval: Interval) -> str:
    start, end = (t.astimezone(UTC) for t in interval)
    if start.date() == end.date():
        return f"{start:%Y-%m-%d %H:%M}-{end:%H:%M}"
    return f"{start:%Y-%m-%d %H:%M}-{end:%m-%d %H:%M}"


class Table:
    """The demo's table, written as the runs finish."""

    HEADER = (f"  {'run':<10} {'data interval (UTC)':<28} {'datastream':<17} {'loaded':>7} "
              f"{'stored':>7} {'added':>7}")

    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def line(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def dag(self, dag_id: str, source: DemoSource) -> None:
        self.line()
        self.line(f"{dag_id}  ({source.label})")
        self.line(self.HEADER)

    def run(self, record: RunRecord) -> None:
        for i, row in enumerate(record.rows):
            lead = f"{record.label:<10} {_interval(record.interval):<28}" if i == 0 else " " * 39
            loaded = "-" if row.loaded is None else f"{row.loaded:,}"
            self.line(f"  {lead} {row.name[:17]:<17} {loaded:>7} {row.stored_after:>7,} "
                      f"{row.added:>+7,}")
        state = "" if record.state == "success" else f"run {record.state.upper()}: "
        self.line(f"  {'':<10} summary: {state}{record.message}")


# --------------------------------------------------------------------------------------------
# The demo
# --------------------------------------------------------------------------------------------


def _runs(source: DemoSource) -> list[tuple[str, Interval, bool]]:
    runs = [(f"{ORDINALS[i] if i < len(ORDINALS) else f'#{i + 1}'} run", interval, False)
            for i, interval in enumerate(source.intervals)]
    if source.intervals:
        runs.append(("re-run 1st", source.intervals[0], True))
    return runs


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Failed|Interrupt|Timeout)\b.*")
_LOG_PROBLEM = re.compile(r"\[(error|warning|critical)\s*\]", re.IGNORECASE)


def _log_excerpt(log_path: Path, offset: int) -> list[str]:
    """The lines of Airflow's log since ``offset`` that say what went wrong: error and warning
    records and the exceptions' last lines; the last lines of all when there are none."""
    try:
        with open(log_path, "rb") as log:
            log.seek(offset)
            text = log.read().decode("utf-8", "replace")
    except OSError as exc:
        return [f"(could not read {log_path}: {exc})"]
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    relevant = [line for line in lines if _LOG_PROBLEM.search(line) or _EXCEPTION_LINE.match(line)]
    chosen = list(dict.fromkeys(relevant)) or lines
    return [line[:300] for line in chosen[-LOG_LINES_ON_FAILURE:]]


def _failure_message(excerpt: list[str]) -> str:
    exceptions = [line for line in excerpt if _EXCEPTION_LINE.match(line)]
    return exceptions[-1] if exceptions else "see Airflow's log below"


def _check_run(record: RunRecord, reply: dict[str, Any]) -> list[str]:
    problems = []
    where = f"{record.dag_id} {record.label}"
    if record.state != "success":
        problems.append(f"{where}: the run ended {record.state}")
    summary = reply.get("summary") or {}
    window = summary.get("window") or {}
    planned = [t.astimezone(UTC).isoformat().replace("+00:00", "Z")
               for t in record.interval]
    shown = [str(window.get("start", "")).replace("+00:00", "Z"),
             str(window.get("end", "")).replace("+00:00", "Z")]
    if record.state == "success" and window and shown != planned:
        problems.append(f"{where}: the run's window was {shown}, expected {planned}")
    for row in record.rows:
        if row.stored_after != row.expected_after:
            problems.append(f"{where}: {row.name} holds {row.stored_after} observations, "
                            f"expected {row.expected_after}")
        if record.rerun and row.added != 0:
            problems.append(f"{where}: re-running the interval added {row.added} observations "
                            f"to {row.name}, expected 0")
    return problems


def _check_values(hs: LocalHydroServer, source: DemoSource, task: Task,
                  done: list[Interval]) -> tuple[list[str], dict[str, int], dict[str, int]]:
    """Every stored observation equals the source's value at that instant, none missing."""
    problems: list[str] = []
    counts: dict[str, int] = {}
    expected_counts: dict[str, int] = {}
    for mapping in task.mappings:
        series = source.series_for(mapping.source_identifier)
        expected = source.expected(task, series, done)
        stored = hs.observations(mapping.target_datastream_id)
        counts[mapping.target_datastream_id] = len(stored)
        expected_counts[mapping.target_datastream_id] = len(expected)
        wrong = [(t, v, e) for (t, v), (te, e) in zip(stored, expected)
                 if t != te or abs(v - e) > 1e-9]
        if len(stored) != len(expected) or wrong:
            detail = (f"first difference at {wrong[0][0].isoformat()}: {wrong[0][1]} stored, "
                      f"{wrong[0][2]} expected" if wrong else "")
            problems.append(f"{series.name} ({mapping.target_datastream_id}): {len(stored)} "
                            f"observations stored, {len(expected)} expected; {detail}".rstrip("; "))
    return problems, counts, expected_counts


def _stored(hs: LocalHydroServer, task: Task) -> dict[str, int]:
    return {m.target_datastream_id: len(hs.observations(m.target_datastream_id))
            for m in task.mappings}


def _run_source(runner: AirflowRunner, hs: LocalHydroServer, table: Table, result: DemoResult,
                source: DemoSource, task: Task, dag_id: str) -> None:
    """The runs of one example DAG, printed and checked as they finish."""
    table.dag(dag_id, source)
    done: list[Interval] = []
    problems: list[str] = []
    for label, interval, rerun in _runs(source):
        before = _stored(hs, task)
        offset = runner.log_path.stat().st_size if runner.log_path.exists() else 0
        reply = runner.run(dag_id, interval[1])  # the logical date Airflow maps back to interval
        after = _stored(hs, task)
        done.append(interval)
        summary = reply.get("summary") or {}
        loaded = {d["datastream_id"]: d.get("loaded") for d in summary.get("datastreams", [])}
        state = reply.get("state", "unknown")
        excerpt = _log_excerpt(runner.log_path, offset) if state != "success" else []
        record = RunRecord(task_name=task.name, dag_id=dag_id, label=label, interval=interval,
                           rerun=rerun, state=state,
                           message=summary.get("message") or reply.get("error")
                           or _failure_message(excerpt))
        for mapping in task.mappings:
            ds = mapping.target_datastream_id
            series = source.series_for(mapping.source_identifier)
            record.rows.append(DatastreamRow(
                datastream_id=ds, name=series.name, loaded=loaded.get(ds),
                stored_before=before[ds], stored_after=after[ds],
                expected_after=len(source.expected(task, series, done))))
        table.run(record)
        result.runs.append(record)
        problems.extend(_check_run(record, reply))
        if excerpt:
            table.line(f"  {'':<10} Airflow's log of this run ({_shown(runner.log_path)}):")
            for line in excerpt:
                table.line(f"  {'':<10} | {line}")
    value_problems, counts, expected = _check_values(hs, source, task, done)
    problems.extend(f"{dag_id}: {problem}" for problem in value_problems)
    result.problems.extend(problems)
    result.final_counts.update(counts)
    result.expected_counts.update(expected)
    if problems:
        table.line(f"  FAILED: {len(problems)} problem{'s' if len(problems) > 1 else ''}, "
                   "listed at the end")
        return
    rerun_added = sum(row.added for record in result.runs if record.rerun
                      and record.dag_id == dag_id for row in record.rows)
    stored = " and ".join(f"{n:,}" for n in counts.values())
    table.line(f"  OK: {stored} observations stored, exactly the source's; re-run added "
               f"{rerun_added}")
    if task.data_connection.uses_window:
        table.line("      (windowed: the run owns its window, so the re-run replaced it)")
    else:
        start = task.schedule.start_time
        since = f" since start_time {start:%Y-%m-%d}" if start else ""
        table.line(f"      (incremental: the 1st run caught up{since}; the re-run found "
                   "nothing new)")


def run_demo(home: Path = DEFAULT_HOME, out: IO[str] | None = None,
             sources: Sequence[DemoSource] = DEMO_SOURCES) -> DemoResult:
    """Run the demo, writing its table to ``out``; returns what happened and what was checked.

    Raises :class:`DemoSetupError` / :class:`DemoFailed` when it cannot go on, and
    ``KeyboardInterrupt`` on Ctrl-C -- always after stopping everything it started.
    """
    from hydroserver_provider.testing.hydroserver import LocalHydroServer

    out = out or sys.stdout
    table = Table(out)
    began = time.monotonic()
    result = DemoResult()
    with _sigterm_as_interrupt(), contextlib.ExitStack() as stack:
        home = prepare_home(home)
        tasks = demo_tasks(sources)
        hs = stack.enter_context(LocalHydroServer())
        hosts = SourceHosts(stack)
        extra_env: dict[str, str] = {}
        created = 0
        for source in sources:
            task = tasks[source.task_name]
            extra_env.update(source.serve(task, hosts, stack))
            created += len(create_datastreams(hs, source, task))
        conn_ids = {task.airflow.hydroserver_conn_id or HYDROSERVER_CONN_ID
                    for task in tasks.values()}
        runner = stack.enter_context(
            AirflowRunner(airflow_env(home, hs, conn_ids, extra_env), home / "demo.log"))

        table.line("HydroServer provider demo: the example DAGs of dags/definitions/ on Airflow")
        table.line(f"  HydroServer  {hs.url}  (local; {created} datastreams, ids from the "
                   "definitions)")
        shown = [f"{url}  (generated station data)" for url in hosts.urls] + hosts.others
        table.line("  Sources      " + "\n               ".join(shown))
        out.write(f"  Airflow      SQLite in {_shown(home)}, DAGs from {_shown(REPO / 'dags')}/: "
                  "starting... ")
        out.flush()
        started = time.monotonic()
        ready = runner.ready()
        table.line(f"ready in {time.monotonic() - started:.0f} s")
        for path, error in ready.get("import_errors", {}).items():
            last = (error.strip().splitlines() or ["?"])[-1][:200]
            table.line(f"  warning: Airflow import error in {_shown(Path(path))}: {last}")
        dag_ids = ready.get("dag_ids", {})
        for source in sources:
            dag_id = dag_ids.get(source.task_name)
            if dag_id is None:
                raise DemoFailed(f"Airflow's DAG factory did not load task '{source.task_name}'")
            _run_source(runner, hs, table, result, source, tasks[source.task_name], dag_id)
        result.seconds = time.monotonic() - began
    return result


def print_outcome(result: DemoResult, out: IO[str], home: Path) -> None:
    table = Table(out)
    table.line()
    if result.ok:
        table.line(f"All checks passed in {result.seconds:.0f} s: the re-runs added nothing, "
                   "HydroServer holds exactly the source's data.")
    else:
        table.line("The demo FAILED:")
        for problem in result.problems:
            table.line(f"  - {problem}")
    table.line(f"Airflow's own log of these runs: {_shown(home / 'demo.log')}")
    table.line()
    table.line("Point the same DAGs at your HydroServer:")
    table.line("  1. Connection 'hydroserver_default' (Airflow UI: Admin > Connections, type "
               "HydroServer), or:")
    table.line("     export AIRFLOW_CONN_HYDROSERVER_DEFAULT='{\"conn_type\": \"hydroserver\",")
    table.line("       \"host\": \"https://hydroserver.example.org\", \"password\": "
               "\"<your API key>\"}'")
    table.line("  2. Definitions: dags/definitions/*.yaml (or $HYDROSERVER_DEFINITIONS_DIR), one "
               "DAG per task.")
    table.line("  3. Datastreams: set each mapping's target_datastream_id to one of yours; "
               "check with")
    table.line("     hydroserver-airflow validate dags/definitions")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m hydroserver_provider.demo",
        description="Run the example ingestion DAGs end to end on a local HydroServer and local "
                    "station sources, and check what they stored.")
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME,
                        help=f"throwaway AIRFLOW_HOME, emptied at every run (default: "
                             f"{_shown(DEFAULT_HOME)})")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    out = sys.stdout
    try:
        result = run_demo(args.home, out)
    except KeyboardInterrupt:
        out.write("\nInterrupted: stopped Airflow and the local servers.\n")
        return 130
    except (DemoSetupError, DemoFailed) as exc:
        out.write(f"\nThe demo could not run: {exc}\n")
        log = args.home.resolve() / "demo.log"
        if isinstance(exc, DemoFailed) and log.exists():
            out.write(f"Airflow's log ({_shown(log)}):\n")
            out.writelines(f"  | {line}\n" for line in _log_excerpt(log, 0))
        return 1
    print_outcome(result, out, args.home.resolve())
    return 0 if result.ok else 1

