"""DAG file parse time: our DAG factory, a hand-written loop (the floor), astronomer's dag-factory.

Run by hand (about 12 minutes on 2 cores; the first run also creates dag-factory's venv)::

    .venv/bin/python bench/bench_dag_parse.py                 # 100, 1,000 and 5,000 DAGs
    .venv/bin/python bench/bench_dag_parse.py --sizes 1000 --repeat 5

Each size gets N task definitions in files of 100 (10 data connections per file, the shape of a
HydroServer export). Half the tasks run hourly (an interval), half on a crontab; each has two
mapped datastreams. Three ways to get the same N DAGs, each in its own DAG file:

* **ours** -- ``dags/hydroserver_ingestion.py`` unchanged, pointed at the YAML definitions with
  ``HYDROSERVER_DEFINITIONS_DIR``: reads, validates and builds (trigger params, docs, macros);
* **plain loop** (the floor) -- one Python file holding the same definitions as literals and
  building each DAG by hand: same timetable, start date, tags, default args, and one
  ``HydroIngestOperator`` with the same data connection model, mappings and variables, written
  the obvious way (``with DAG``, ``default_args``). Nothing is read or validated beyond what the
  operator does, and no trigger params or docs are added: the floor for what the factory adds;
* **dag-factory** (``dag-factory`` from PyPI, in its own venv under ``bench/.work/``, sharing this
  Airflow through a ``.pth`` file; never installed into ``.venv``) -- YAML configs of the same
  DAGs (same timetable objects through its ``__type__`` syntax, start date, tags, default args)
  whose one task is an ``EmptyOperator``: it cannot run our operator from YAML, and an empty
  operator is the cheapest one there is, which only favours it. Its telemetry is switched off.

How it is measured -- the way the dag-processor parses a file: a fresh Python process per
measurement imports Airflow first (``airflow``, ``airflow.sdk``, ``DagBag`` and the serializer:
the baseline a dag-processor child already has, *not* counted), then times
``DagBag(dag_folder=<the DAG file>)`` (what the child runs: the file's own imports, reading,
validating, building the DAGs and Airflow's checks) and, separately, serialising every DAG (the
child's next step). Every run must yield N DAGs and no import error. One untimed warm-up run per
case (OS file cache, ``.pyc``), then ``--repeat`` rounds with the three cases interleaved so that
machine noise hits them alike; medians are reported. The figures are the process's CPU time
(wall time is printed alongside): the machines this runs on are shared, and CPU time is what
waiting for a core does not inflate; on an idle machine the two agree.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "bench" / ".work"
DAG_FACTORY_VENV = WORK / "dagfactory-venv"
DAG_FACTORY_VERSION = "1.1.0"
OUR_DAG_FILE = REPO / "dags" / "hydroserver_ingestion.py"
PER_FILE = 100
CONNECTIONS_PER_FILE = 10
START = "2025-01-01T00:00:00Z"

MEASURE = textwrap.dedent("""
    import json, sys, time, warnings
    warnings.simplefilter("ignore")
    import airflow, airflow.sdk  # the dag-processor child has these already: not timed
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization
    w0, c0 = time.perf_counter(), time.process_time()
    bag = DagBag(dag_folder=sys.argv[1], load_op_links=False)
    w1, c1 = time.perf_counter(), time.process_time()
    for dag in bag.dags.values():
        DagSerialization.to_dict(dag)
    w2, c2 = time.perf_counter(), time.process_time()
    print("RESULT " + json.dumps({
        "parse": c1 - c0, "serialize": c2 - c1, "parse_wall": w1 - w0, "serialize_wall": w2 - w1,
        "dags": len(bag.dags), "errors": {k: v[-400:] for k, v in bag.import_errors.items()}}))
""")


# --------------------------------------------------------------------------------------------
# The definitions, three ways
# --------------------------------------------------------------------------------------------


def connection(file_no: int, j: int) -> dict:
    return {
        "name": f"Station API {file_no}-{j}",
        "source_url": f"https://api{j}.example.org/{{station_id}}/data.csv?start={{start}}"
                      "&end={end}",
        "payload_type": "CSV", "timestamp_key": "Timestamp",
        "timestamp_format": "%Y-%m-%d %H:%M:%S", "timezone_type": "iana",
        "timezone": "America/Denver", "header_row": 1, "data_start_row": 3,
        "placeholder_variables": [
            {"name": "station_id", "variable_type": "per_task"},
            {"name": "start", "variable_type": "window_start",
             "timestamp_format": "%Y-%m-%dT%H:%M:%S"},
            {"name": "end", "variable_type": "window_end",
             "timestamp_format": "%Y-%m-%dT%H:%M:%S"},
        ],
    }


def task(i: int) -> dict:
    file_no = i // PER_FILE
    spec = {
        "name": f"Station {i:05d}",
        "data_connection": f"Station API {file_no}-{i % CONNECTIONS_PER_FILE}",
        "task_variables": {"station_id": f"st-{i}"},
        "mappings": [{"source_identifier": f"Sensor {k}",
                      "target_datastream_id": f"{i:08x}-0000-4000-8000-{k:012x}"}
                     for k in range(2)],
        "start_time": START,
    }
    if i % 2:
        spec["crontab"] = f"{i % 60} * * * *"
    else:
        spec.update(interval=1, interval_period="hours")
    return spec


DEFAULTS = {"hydroserver_conn_id": "hydroserver_default", "owner": "hydrology", "retries": 3,
            "retry_delay": 60}


def write_ours(size: int, folder: Path) -> None:
    folder.mkdir(parents=True)
    for file_no in range(size // PER_FILE):
        document = {
            "defaults": DEFAULTS,
            "data_connections": [connection(file_no, j) for j in range(CONNECTIONS_PER_FILE)],
            "tasks": [task(i) for i in range(file_no * PER_FILE, (file_no + 1) * PER_FILE)],
        }
        (folder / f"stations_{file_no:03d}.yaml").write_text(
            yaml.safe_dump(document, sort_keys=False), encoding="utf-8")


LOOP_FILE = '''\
"""The same DAGs, written by hand: a loop over definitions kept as Python literals."""
from datetime import datetime, timedelta, timezone

from airflow.sdk import DAG, CronDataIntervalTimetable, DeltaDataIntervalTimetable

from hydroserver_provider.definitions import DataConnection
from hydroserver_provider.operators.ingest import HydroIngestOperator

START = datetime(2025, 1, 1, tzinfo=timezone.utc)
DEFAULT_ARGS = {{"owner": "hydrology", "retries": 3, "retry_delay": timedelta(seconds=60)}}
CONNECTIONS = {{spec["name"]: DataConnection.model_validate(spec) for spec in {connections!r}}}
TASKS = {tasks!r}

for name, connection, station, targets, crontab in TASKS:
    dag_id = "hydroserver_" + name.lower().replace(" ", "_")
    schedule = (CronDataIntervalTimetable(crontab, timezone="UTC") if crontab
                else DeltaDataIntervalTimetable(timedelta(hours=1)))
    with DAG(dag_id, dag_display_name=name, schedule=schedule, start_date=START, catchup=False,
             max_active_runs=1, default_args=DEFAULT_ARGS, description=connection,
             tags=["hydroserver", "CSV", connection]) as dag:
        HydroIngestOperator(
            task_id="ingest", data_connection=CONNECTIONS[connection],
            mappings=[{{"source_identifier": source, "target_datastream_id": target}}
                      for source, target in targets],
            task_variables={{"station_id": station}}, hydroserver_conn_id="hydroserver_default",
            window_start="{{{{ data_interval_start }}}}", window_end="{{{{ data_interval_end }}}}",
            start_time=START)
    globals()[dag_id] = dag
'''


def write_loop(size: int, path: Path) -> None:
    connections = [connection(f, j) for f in range(size // PER_FILE)
                   for j in range(CONNECTIONS_PER_FILE)]
    tasks = []
    for i in range(size):
        t = task(i)
        tasks.append((t["name"], t["data_connection"], t["task_variables"]["station_id"],
                      [(m["source_identifier"], m["target_datastream_id"]) for m in t["mappings"]],
                      t.get("crontab")))
    path.write_text(LOOP_FILE.format(connections=connections, tasks=tasks), encoding="utf-8")


DAG_FACTORY_FILE = '''\
"""The same DAGs through astronomer's dag-factory (an Airflow DAG file: the dag-processor's
safe mode skips files without the words "airflow" and "dag")."""
from dagfactory import load_yaml_dags

load_yaml_dags(globals_dict=globals(), dags_folder={folder!r})
'''


def write_dag_factory(size: int, folder: Path, dag_file: Path) -> None:
    folder.mkdir(parents=True)
    for file_no in range(size // PER_FILE):
        config: dict = {"default": {
            "default_args": {"owner": "hydrology", "retries": 3, "retry_delay_sec": 60,
                             "start_date": "2025-01-01"},
            "catchup": False, "max_active_runs": 1,
        }}
        for i in range(file_no * PER_FILE, (file_no + 1) * PER_FILE):
            t = task(i)
            if t.get("crontab"):
                schedule = {"__type__": "airflow.sdk.CronDataIntervalTimetable",
                            "expression": t["crontab"], "timezone": "UTC"}
            else:
                schedule = {"__type__": "airflow.sdk.DeltaDataIntervalTimetable",
                            "__args__": [{"__type__": "datetime.timedelta", "hours": 1}]}
            config["hydroserver_" + t["name"].lower().replace(" ", "_")] = {
                "dag_display_name": t["name"],
                "description": t["data_connection"],
                "tags": ["hydroserver", "CSV", t["data_connection"]],
                "schedule": schedule,
                "tasks": {"ingest": {
                    "operator": "airflow.providers.standard.operators.empty.EmptyOperator"}},
            }
        (folder / f"stations_{file_no:03d}.yaml").write_text(
            yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    dag_file.write_text(DAG_FACTORY_FILE.format(folder=str(folder)), encoding="utf-8")


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


def dag_factory_python() -> Path:
    """dag-factory's own venv, reusing this Airflow and its providers (this one included, or
    Airflow's provider discovery fails) read-only through a .pth file."""
    python = DAG_FACTORY_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(DAG_FACTORY_VENV)], check=True)
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True).stdout.strip()
    Path(purelib, "_shared_airflow.pth").write_text(
        f"{sysconfig.get_paths()['purelib']}\n{REPO}\n", encoding="utf-8")
    probe = subprocess.run([str(python), "-c", "import dagfactory; print(dagfactory.__version__)"],
                           capture_output=True, text=True, env=environment(WORK))
    if probe.stdout.strip() != DAG_FACTORY_VERSION:
        subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                        f"dag-factory=={DAG_FACTORY_VERSION}"], check=True)
    return python


def environment(work: Path, definitions: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "HYDROSERVER", "_AIRFLOW"))}
    home = work / "airflow_home"
    home.mkdir(parents=True, exist_ok=True)
    env.update({
        "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(work),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR",
        # dag-factory would otherwise report usage over the network at every parse
        "AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY": "False", "DO_NOT_TRACK": "1",
        "SCARF_NO_ANALYTICS": "1",
    })
    if definitions is not None:
        env["HYDROSERVER_DEFINITIONS_DIR"] = str(definitions)
    return env


def measure(python: Path, dag_file: Path, env: dict[str, str], expected: int) -> dict:
    done = subprocess.run([str(python), "-c", MEASURE, str(dag_file)], capture_output=True,
                          text=True, env=env, timeout=900)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if done.returncode or line is None:
        raise SystemExit(f"{dag_file} failed:\n{done.stderr[-3000:]}")
    result = json.loads(line[len("RESULT "):])
    if result["dags"] != expected or result["errors"]:
        raise SystemExit(f"{dag_file}: {result['dags']} DAGs instead of {expected}, "
                         f"import errors: {result['errors']}")
    return result


def run_size(size: int, repeat: int, df_python: Path | None) -> dict[str, dict[str, float]]:
    work = WORK / "dag_parse" / str(size)
    shutil.rmtree(work, ignore_errors=True)
    write_ours(size, work / "definitions")
    write_loop(size, work / "plain_loop_dag.py")
    cases = {
        "ours": (Path(sys.executable), OUR_DAG_FILE, environment(work, work / "definitions")),
        "plain loop": (Path(sys.executable), work / "plain_loop_dag.py", environment(work)),
    }
    if df_python is not None:
        write_dag_factory(size, work / "dagfactory_configs", work / "dag_factory_dag.py")
        cases["dag-factory"] = (df_python, work / "dag_factory_dag.py", environment(work))
    samples: dict[str, list[dict]] = {name: [] for name in cases}
    for python, dag_file, env in cases.values():  # warm-up: file cache, .pyc
        measure(python, dag_file, env, size)
    for _ in range(repeat):
        for name, (python, dag_file, env) in cases.items():
            samples[name].append(measure(python, dag_file, env, size))
            last = samples[name][-1]
            print(f"  {size:>5} {name:<12} parse {last['parse']:6.2f} s CPU "
                  f"({last['parse_wall']:5.2f} s wall)  serialize {last['serialize']:5.2f} s CPU",
                  flush=True)
    return {name: {key: statistics.median(s[key] for s in runs)
                   for key in ("parse", "serialize", "parse_wall")}
            for name, runs in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,5000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-dag-factory", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if any(s % PER_FILE for s in sizes):
        raise SystemExit(f"sizes must be multiples of {PER_FILE}")
    df_python = None if args.no_dag_factory else dag_factory_python()
    results = {size: run_size(size, args.repeat, df_python) for size in sizes}

    print("\nMedian CPU seconds: parse (DagBag of the DAG file) + serialise; baseline excluded")
    print("| DAGs | ours | plain loop (floor) | dag-factory | ours / floor | "
          "ours / dag-factory |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for size, r in results.items():
        def cell(name: str, r: dict[str, dict[str, float]] = r) -> str:
            if name not in r:
                return "-"
            return f"{r[name]['parse']:.2f} + {r[name]['serialize']:.2f}"

        df = r.get("dag-factory")
        print(f"| {size:,} | {cell('ours')} | {cell('plain loop')} | {cell('dag-factory')} | "
              f"{r['ours']['parse'] / r['plain loop']['parse']:.2f} | "
              + (f"{r['ours']['parse'] / df['parse']:.2f} |" if df else "- |"))


if __name__ == "__main__":
    main()
