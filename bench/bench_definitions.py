"""How long definitions take to load and validate (run by hand: python bench/bench_definitions.py).

The DAG file loads every definition on each parse of the DAG folder, so this must stay far below
a second for thousands of tasks. Two shapes: 1,000 tasks sharing 10 data connections, and 1,000
tasks each with its own connection (a HydroServer export); each measured from an in-memory dict
(validation only) and from a YAML file (libyaml parsing + validation).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

from hydroserver_provider.definitions.files import load_definition_file, parse_definitions


def connection(i: int) -> dict:
    return {
        "name": f"Station API {i}",
        "source_url": "https://api.example.com/{station_id}/data.csv?start={start}&end={end}",
        "payload_type": "CSV", "timestamp_key": "Timestamp",
        "timestamp_format": "%Y-%m-%d %H:%M:%S", "timezone_type": "iana",
        "timezone": "America/Denver", "delimiter": ",",
        "placeholder_variables": [
            {"name": "station_id", "variable_type": "per_task"},
            {"name": "start", "variable_type": "window_start",
             "timestamp_format": "%Y-%m-%dT%H:%M:%S"},
            {"name": "end", "variable_type": "window_end"},
        ],
    }


def task(i: int, connections: int) -> dict:
    return {
        "name": f"Station {i}", "data_connection": f"Station API {i % connections}",
        "task_variables": {"station_id": f"station-{i}"},
        "mappings": [{"source_identifier": f"Sensor{j}",
                      "target_datastream_id": f"{i:08x}-0000-4000-8000-{j:012x}"}
                     for j in range(3)],
        "crontab": f"{i % 60} * * * *", "start_time": "2025-01-01T00:00:00Z",
        "airflow": {"retries": 5},
    }


def document(tasks: int, connections: int) -> dict:
    return {"defaults": {"hydroserver_conn_id": "hydroserver_default", "retries": 3},
            "data_connections": [connection(i) for i in range(connections)],
            "tasks": [task(i, connections) for i in range(tasks)]}


def best(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def main() -> None:
    tasks = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    for connections in (10, tasks):
        doc = document(tasks, connections)
        result = parse_definitions(doc, "bench")
        assert not result.errors and len(result.tasks) == tasks, result.errors[:3]
        fastest, median = best(lambda doc=doc: parse_definitions(doc, "bench"))
        print(f"{tasks} tasks / {connections} connections, from a dict: "
              f"best {fastest * 1000:.0f} ms, median {median * 1000:.0f} ms")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bench.yaml"
            path.write_text(yaml.safe_dump(doc, sort_keys=False))
            fastest, median = best(lambda path=path: load_definition_file(path))
            print(f"{tasks} tasks / {connections} connections, from YAML:  "
                  f"best {fastest * 1000:.0f} ms, median {median * 1000:.0f} ms")


if __name__ == "__main__":
    main()
