"""Two runs of the same task at once (a manual run during a scheduled one) never duplicate.

Both runs start together against one local HydroServer, in threads (each with its own client,
as two Airflow workers would) and once in two separate processes. The server's unique
``(datastream, phenomenonTime)`` constraint holds anyway; what is proven here is more: the
stored set afterwards is exactly the expected one and both runs succeed -- for the same task
incremental, for the same window twice, and for a manual run of an *overlapping* window against
the scheduled one. A write the other run got in first is settled by reading its span back. The
races really happen: the writes HydroServer refused because the other run got there first are
counted. (The generated schedules of ``test_load_model.py`` go much further.)
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
from datetime import datetime, timedelta

import pytest
from reliability_support import UTC, StationSource, make_client, options

from hydroserver_provider.errors import IngestionFailed
from hydroserver_provider.pipeline import run_ingestion
from hydroserver_provider.sources.placeholders import RunWindow

ROUNDS = 8


def _scenario(hs, source, mode: str, seed: int):
    """The task, its two runs' windows, and the expected stored rows per datastream."""
    rng = random.Random(seed)
    station = StationSource(source, ("json", "csv")[seed % 2])
    t0 = datetime(2025, 7, 1, tzinfo=UTC) + timedelta(days=rng.randint(0, 20))
    span = timedelta(hours=rng.randint(6, 10) if station.kind == "csv" else rng.randint(30, 60))
    datastreams = [hs.create_datastream(name=n) for n in station.identifiers]
    expected = {}
    if mode == "incremental":
        station.full_range = (t0, t0 + span)
        windows = [None, None]
        for field, ds in enumerate(datastreams):
            rows = station.rows(field, t0, t0 + span)
            prefix = rng.randint(0, len(rows) // 3)
            if prefix:
                hs.add_observations(ds, rows[:prefix])
            expected[ds] = rows
    else:
        scheduled = (t0, t0 + span)
        # "same window": a manual re-run of the scheduled window; "overlapping": a manual run
        # of a window shifted by half its length.
        manual = scheduled if mode == "same window" else (t0 + span / 2, t0 + span * 1.5)
        windows = [RunWindow(*scheduled), RunWindow(*manual)]
        for field, ds in enumerate(datastreams):
            before = station.rows(field, t0 - 4 * station.step, t0)
            stale = [(t, v + 500.0) for t, v in station.rows(field, t0, manual[1])][::3]
            hs.add_observations(ds, before + stale)
            expected[ds] = before + station.rows(field, t0, manual[1])
    connection = station.connection(mode != "incremental")
    return station, connection, station.mappings(datastreams), windows, expected


def _race(hs, connection, mappings, windows, chunk_rows: int) -> list[dict]:
    """Both runs, released together; each one's summary (a failed run's summary too)."""
    barrier = threading.Barrier(2)
    summaries: list[dict] = [{}, {}]

    def run(i: int) -> None:
        with make_client(hs) as client:
            barrier.wait()
            try:
                summaries[i] = run_ingestion(client, connection, mappings, window=windows[i],
                                             options=options(chunk_rows))
            except IngestionFailed as exc:
                summaries[i] = exc.summary

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return summaries


def _refused_writes(hs) -> int:
    return sum(1 for method, path, status in hs.requests_log
               if method == "POST" and "bulk-create" in path and status in (400, 409))


@pytest.mark.parametrize("mode", ["incremental", "same window", "overlapping windows"])
@pytest.mark.parametrize("seed", range(ROUNDS))
def test_two_runs_at_once_never_duplicate_and_a_retry_completes(mode, seed, local_hydroserver,
                                                                source, tally):
    hs = local_hydroserver
    hs.row_cost = 0.0005  # writes take a few milliseconds: the two runs interleave
    station, connection, mappings, windows, expected = _scenario(hs, source, mode, seed)
    chunk_rows = random.Random(seed).randint(5, 12)
    summaries = _race(hs, connection, mappings, windows, chunk_rows)
    # a write the other run got in first is settled by reading that span back: no run fails
    assert [s["status"] for s in summaries] == ["SUCCESS", "SUCCESS"], [
        s["message"] for s in summaries]
    for ds, rows in expected.items():
        stored = hs.observations(ds)
        assert len({t for t, _ in stored}) == len(stored)
        assert stored == rows, f"{mode}, seed {seed}: stored set differs"
    figures = tally.setdefault("concurrency", {"rounds": 0, "runs": 0,
                                               "writes refused to the slower run": 0,
                                               "observations compared": 0})
    figures["rounds"] += 1
    figures["runs"] += 2
    figures["writes refused to the slower run"] += _refused_writes(hs)
    figures["observations compared"] += sum(len(rows) for rows in expected.values())


def test_the_races_really_happen(tally):
    """Guards the figures above against a vacuous pass (runs that never overlapped)."""
    figures = tally.get("concurrency")
    if figures is None or figures["rounds"] < 3 * ROUNDS:
        pytest.skip("runs only after the whole race module")
    assert figures["writes refused to the slower run"] >= ROUNDS


WORKER = """
import json, sys
from datetime import datetime
from hydroserver_provider.definitions import DataConnection, Mapping
from hydroserver_provider.errors import IngestionFailed
from hydroserver_provider.hydroserver.client import Credentials, HydroServerClient
from hydroserver_provider.pipeline import RunOptions, run_ingestion
from hydroserver_provider.sources.placeholders import RunWindow

job = json.loads(sys.argv[1])
window = RunWindow(*map(datetime.fromisoformat, job["window"])) if job["window"] else None
with HydroServerClient(job["url"], Credentials(api_key=job["key"])) as client:
    print("ready", flush=True)
    sys.stdin.readline()  # the starting gun
    try:
        run_ingestion(client, DataConnection.model_validate(job["connection"]),
                      [Mapping.model_validate(m) for m in job["mappings"]], window=window,
                      options=RunOptions(chunk_rows=job["chunk_rows"]))
        print("SUCCESS", flush=True)
    except IngestionFailed as exc:
        print(exc.summary["message"], flush=True)
"""


def test_two_worker_processes_at_once(local_hydroserver, source):
    """The same race between two processes, as two Airflow workers would run it."""
    hs = local_hydroserver
    hs.row_cost = 0.0005
    station, connection, mappings, windows, expected = _scenario(hs, source, "same window", 3)
    workers = []
    for window in windows:
        job = {"url": hs.url, "key": hs.api_key, "chunk_rows": 7,
               "connection": connection.model_dump(mode="json"),
               "mappings": [m.model_dump(mode="json") for m in mappings],
               "window": [window.start.isoformat(), window.end.isoformat()] if window else None}
        workers.append(subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(job)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True))
    try:
        for worker in workers:  # both imported and connected: start them together
            assert worker.stdout.readline().strip() == "ready", worker.stderr.read()[-2000:]
        for worker in workers:
            worker.stdin.write("go\n")
            worker.stdin.flush()
        outcomes = [worker.communicate(timeout=120)[0].strip() for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    assert [w.returncode for w in workers] == [0, 0]
    assert outcomes == ["SUCCESS", "SUCCESS"]
    for ds, rows in expected.items():
        assert hs.observations(ds) == rows
