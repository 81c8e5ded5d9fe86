"""This project's side of the ingestion benchmark; ``bench_ingest.py`` runs it once per measurement.

    python bench/ingest_ours.py parse     '{"path": "..."}'
    python bench/ingest_ours.py serialize '{"path": "...", "chunk_rows": 50000}'
    python bench/ingest_ours.py run       '{"url": ..., "api_key": ..., "workspace_id": ...,
                                             "source_url": ..., "mappings": [[column, id], ...]}'

Imports happen before the clock starts (both sides pay their interpreter start the same way);
``"profile": "FILE"`` in the arguments writes a cProfile summary of the timed part there (and the
raw statistics to ``FILE.pstats``).
"""

from __future__ import annotations

import contextlib
import cProfile
import io
import pstats
import time
from collections.abc import Iterator

from ingest_inputs import COLUMNS, connection_definition
from ingest_measure import emit, peak_rss_mib, read_args, rss_mib

from hydroserver_provider.defaults import CHUNK_ROWS
from hydroserver_provider.definitions import Mapping, parse_data_connection
from hydroserver_provider.hydroserver.client import (
    Credentials,
    HydroServerClient,
    serialize_observations,
)
from hydroserver_provider.pipeline import run_ingestion
from hydroserver_provider.sources import csv_reader  # noqa: F401  (loaded by parse_payload on use)
from hydroserver_provider.sources.parse import parse_payload


@contextlib.contextmanager
def profiled(out: str | None) -> Iterator[None]:
    if not out:
        yield
        return
    profile = cProfile.Profile()
    profile.enable()
    try:
        yield
    finally:
        profile.disable()
        text = io.StringIO()
        stats = pstats.Stats(profile, stream=text)
        stats.sort_stats("cumulative").print_stats(30)
        stats.sort_stats("tottime").print_stats(20)
        with open(out, "w") as handle:
            handle.write(text.getvalue())
        profile.dump_stats(out + ".pstats")


def _parse(path: str):
    connection = parse_data_connection(connection_definition("http://127.0.0.1/logger.csv"))
    with open(path, "rb") as stream:
        return parse_payload(stream, connection, list(COLUMNS))


def parse(args: dict) -> dict:
    base = rss_mib()
    with profiled(args.get("profile")):
        began, cpu = time.perf_counter(), time.process_time()
        result = _parse(args["path"])
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    return {"seconds": seconds, "cpu_seconds": cpu, "rows": result.rows_read, "base_mib": base,
            "peak_mib": peak_rss_mib(),
            "stored_per_series": {k: len(s) for k, s in result.series.items()}}


def serialize(args: dict) -> dict:
    series = _parse(args["path"]).series
    chunk = int(args.get("chunk_rows") or CHUNK_ROWS)
    size = rows = bodies = 0
    first = b""
    with profiled(args.get("profile")):
        began, cpu = time.perf_counter(), time.process_time()
        for s in series.values():
            for start in range(0, len(s), chunk):
                body = serialize_observations(s.timestamps[start:start + chunk],
                                              s.values[start:start + chunk])
                size += len(body)
                bodies += 1
                first = first or body[:120]
            rows += len(s)
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    return {"seconds": seconds, "cpu_seconds": cpu, "bytes": size, "rows": rows, "bodies": bodies,
            "example": first.decode()}


def run(args: dict) -> dict:
    connection = parse_data_connection(
        connection_definition(args["source_url"], args.get("workspace_id")))
    mappings = [Mapping.model_validate({"source_identifier": column,
                                        "target_datastream_id": datastream_id})
                for column, datastream_id in args["mappings"]]
    with profiled(args.get("profile")):
        began = time.perf_counter()
        with HydroServerClient(args["url"], Credentials(api_key=args["api_key"])) as client:
            summary = run_ingestion(client, connection, mappings)
        seconds = time.perf_counter() - began
    return {"seconds": seconds, "status": summary["status"], "loaded": summary["loaded"],
            "rows_read": summary["rows_read"], "message": summary["message"],
            "peak_mib": peak_rss_mib()}


if __name__ == "__main__":
    command, arguments = read_args()
    emit({"parse": parse, "serialize": serialize, "run": run}[command](arguments))
