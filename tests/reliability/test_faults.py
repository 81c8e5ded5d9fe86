"""Fault injection: whatever fails, after Airflow-style retries the stored set is exactly right.

Seeded chaos runs (``HYDROSERVER_FAULT_SEED`` / ``HYDROSERVER_FAULT_RUNS`` change the seeds and
their number; the defaults are fixed so CI is deterministic): the local HydroServer faults a
share of its requests at random (500, 502, 503, 429 with ``Retry-After``, dropped connections,
answers lost after the write, answers later than the client's timeout) and the source fails too
(errors, drops, bodies cut short, late answers). Each run is retried like an Airflow task until
it succeeds, then every stored observation is compared with the expected set: nothing lost,
nothing duplicated, nothing stale left in a reloaded window. Incremental and windowed tasks, CSV
and JSON sources, many small chunks.

Then two deterministic cases: a chunk fails after N chunks, and a worker is killed (SIGKILL)
mid-load; in both the next try completes the load exactly.
"""

from __future__ import annotations

import collections
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta

import pytest
import requests
from reliability_support import (
    SLOW_ANSWER,
    UTC,
    StationSource,
    make_client,
    options,
    run_until_success,
    wait_until_idle,
)

from hydroserver_provider.errors import IngestionFailed, SourceError
from hydroserver_provider.pipeline import run_ingestion
from hydroserver_provider.sources.placeholders import RunWindow

BASE_SEED = int(os.environ.get("HYDROSERVER_FAULT_SEED", "20250601"))
RUNS = int(os.environ.get("HYDROSERVER_FAULT_RUNS", "30"))
MAX_TRIES = 12  # an Airflow task with retries=11; the runs below need far fewer
HS_KINDS = (500, 502, 503, 429, "drop", "lose", "slow")
SOURCE_KINDS = ("500", "502", "503", "429", "drop", "cut", "slow")


# ------------------------------------------------------------------------ the stand-ins' faults


def test_local_hydroserver_loses_answers_after_the_write_and_answers_late(local_hydroserver):
    hs = local_hydroserver
    ds = hs.create_datastream(name="Stage")
    url = f"{hs.url}/api/data/datastreams/{ds}/observations/bulk-create"
    headers = {"X-Api-Key": hs.api_key}
    body = {"phenomenonTime": ["2025-01-01T00:00:00Z"], "result": [1.5]}
    hs.faults.lose_answer_next(1, path_contains="bulk-create")
    with pytest.raises(requests.ConnectionError):
        requests.post(url, json=body, headers=headers, timeout=5)
    assert [v for _, v in hs.observations(ds)] == [1.5]  # stored although never answered

    hs.faults.slow_next(1, seconds=0.4, path_contains="bulk-create")
    body = {"phenomenonTime": ["2025-01-01T01:00:00Z"], "result": [2.5]}
    with pytest.raises(requests.ReadTimeout):
        requests.post(url, json=body, headers=headers, timeout=(2, 0.1))
    assert [v for _, v in hs.observations(ds)] == [1.5, 2.5]  # done before the late answer
    wait_until_idle(hs)
    assert hs.faults.injected == {"lose": 1, "slow": 1}


def test_local_hydroserver_fault_after_n_matching_requests(local_hydroserver):
    hs = local_hydroserver
    ds = hs.create_datastream(name="Stage")
    hs.faults.fail_next(1, status=500, path_contains=ds, after=2)
    statuses = [requests.get(f"{hs.url}/api/data/datastreams/{ds}",
                             headers={"X-Api-Key": hs.api_key}, timeout=5).status_code
                for _ in range(4)]
    assert statuses == [200, 200, 500, 200]


def test_local_hydroserver_random_faults_repeat_with_the_seed(local_hydroserver):
    hs = local_hydroserver
    ds = hs.create_datastream(name="Stage")

    def statuses(seed: int) -> list[int]:
        hs.faults.clear()
        hs.faults.at_random(0.5, kinds=(500, 503, 429), seed=seed, retry_after=1)
        return [requests.get(f"{hs.url}/api/data/datastreams/{ds}",
                             headers={"X-Api-Key": hs.api_key}, timeout=5).status_code
                for _ in range(40)]

    first = statuses(7)
    assert first == statuses(7) != statuses(8)
    counts = collections.Counter(str(s) for s in statuses(7) if s != 200)
    assert counts == hs.faults.injected and 10 < sum(counts.values()) < 30
    with pytest.raises(ValueError, match="kinds"):
        hs.faults.at_random(0.1, kinds=("explode",))


def test_local_source_drops_cuts_and_delays(source):
    url = source.add("/a.csv", "t,v\n" + "x" * 1000)
    source.drop_next("/a.csv")
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=5)
    source.drop_next("/a.csv", after_bytes=100)
    with pytest.raises(requests.RequestException):  # the body ends 100 bytes in
        _ = requests.get(url, timeout=5).content
    source.slow_next("/a.csv", 0.3)
    with pytest.raises(requests.ReadTimeout):
        requests.get(url, timeout=(2, 0.1))
    streamed = source.add("/big.csv", lambda q: (b"%d\n" % i for i in range(1000)))
    assert requests.get(streamed, timeout=5).text == "".join(f"{i}\n" for i in range(1000))


# ------------------------------------------------------------------------ seeded chaos


def _seed_rows(source: StationSource, field: int, window: tuple[datetime, datetime],
               variant: str, rng: random.Random) -> tuple[list, list]:
    """(rows stored before the run, those of them that must survive it) for a windowed task."""
    start, end = window
    step = source.step
    before = source.rows(field, start - 3 * step, start)
    after = source.rows(field, end, end + 3 * step)
    inside = source.rows(field, start, end)
    stale = [(t, v + 1000.0) for t, v in rng.sample(inside, k=min(5, len(inside)))]
    off_grid = [(start + timedelta(minutes=7), -1.0)]  # a time the source does not have
    if variant == "empty":
        return [], []
    if variant == "before":
        return before, before
    if variant == "after":
        return after, after
    return sorted(before + stale + off_grid + after), before + after  # "overlap"


def _queue_source_faults(server, path: str, rng: random.Random) -> list[str]:
    kinds = [rng.choice(SOURCE_KINDS) for _ in range(rng.randint(0, 2))]
    for kind in kinds:
        if kind == "drop":
            server.drop_next(path)
        elif kind == "cut":
            server.drop_next(path, after_bytes=rng.randint(10, 400))
        elif kind == "slow":
            server.slow_next(path, SLOW_ANSWER)
        elif kind == "429":
            server.fail_next(path, status=429, body="Too Many Requests",
                             headers={"Retry-After": "0.01"})
        else:
            server.fail_next(path, status=int(kind), body=f"<html><title>{kind}</title></html>")
    return kinds


def _chaos_run(index: int, hs, server) -> dict:
    seed = BASE_SEED + index
    rng = random.Random(seed)
    kind = ("csv", "json")[index % 2]
    windowed = (index // 2) % 2 == 1
    station = StationSource(server, kind)
    span = timedelta(hours=rng.randint(6, 12) if kind == "csv" else rng.randint(24, 60))
    # June-July: no daylight-saving change inside a window of the Denver logger.
    t0 = datetime(2025, 6, 1, tzinfo=UTC) + timedelta(days=rng.randint(0, 40),
                                                      hours=rng.randint(0, 23))
    datastreams = [hs.create_datastream(name=name) for name in station.identifiers]
    expected: dict[str, list] = {}
    variant = "incremental"
    if windowed:
        window = (t0, t0 + span)
        variant = rng.choice(["empty", "before", "overlap", "after"])
        for field, ds in enumerate(datastreams):
            stored, surviving = _seed_rows(station, field, window, variant, rng)
            if stored:
                hs.add_observations(ds, stored)
            expected[ds] = sorted(surviving + station.rows(field, *window))
        run_window = RunWindow(*window)
    else:
        station.full_range = (t0, t0 + span)
        for field, ds in enumerate(datastreams):
            rows = station.rows(field, t0, t0 + span)
            prefix = rng.randint(0, len(rows) // 2)  # what earlier runs already stored
            if prefix:
                hs.add_observations(ds, rows[:prefix])
            expected[ds] = rows
        run_window = None
    chunk_rows = rng.randint(5, 17)
    rate = rng.choice([0.1, 0.15, 0.2, 0.25])
    source_faults = _queue_source_faults(server, station.path, rng)
    hs.faults.at_random(rate, HS_KINDS, seed=seed, retry_after=0.01, slow_seconds=SLOW_ANSWER)
    connection = station.connection(windowed)
    mappings = station.mappings(datastreams)

    def one_try() -> dict:
        with make_client(hs) as client:
            return run_ingestion(client, connection, mappings, window=run_window,
                                 options=options(chunk_rows))

    summary, failures = run_until_success(one_try, MAX_TRIES)
    injected = dict(hs.faults.injected)
    hs.faults.clear()
    wait_until_idle(hs, quiet=0.02)
    where = (f"seed {seed} (run {index}: {kind}, "
             f"{'windowed ' + variant if windowed else 'incremental'}, chunk_rows {chunk_rows})")
    assert summary is not None, f"{where}: still failing after {MAX_TRIES} tries: {failures}"
    for ds in datastreams:
        stored = hs.observations(ds)
        assert len(stored) == len(set(t for t, _ in stored)), f"{where}: duplicates"
        assert stored == expected[ds], f"{where}: stored set differs"
    used = min(len(source_faults), len(server.requests_to(station.path)))
    source_used = collections.Counter(f"source {k}" for k in source_faults[:used])
    return {"seed": seed, "tries": 1 + len(failures), "failures": failures,
            "faults": collections.Counter(injected) + source_used,
            "compared": sum(len(rows) for rows in expected.values()),
            "requests": hs.total_requests, "mode": "windowed" if windowed else "incremental"}


@pytest.mark.parametrize("index", range(RUNS), ids=lambda i: f"seed{BASE_SEED + i}")
def test_seeded_faults_never_lose_or_duplicate_an_observation(index, local_hydroserver, source,
                                                              tally):
    result = _chaos_run(index, local_hydroserver, source)
    print(f"seed {result['seed']}: {result['mode']}, {result['tries']} tries, "
          f"faults {dict(result['faults'])}, {result['compared']} observations compared")
    tally.setdefault("chaos runs", 0)
    tally["chaos runs"] += 1
    tally.setdefault("tries", collections.Counter())[result["tries"]] += 1
    tally.setdefault("faults injected", collections.Counter()).update(result["faults"])
    tally["faults total"] = sum(tally["faults injected"].values())
    tally["observations compared"] = tally.get("observations compared", 0) + result["compared"]
    tally["requests to HydroServer"] = (tally.get("requests to HydroServer", 0)
                                        + result["requests"])


# ------------------------------------------------------------------------ deterministic cases


@pytest.fixture
def station_task(local_hydroserver, source):
    """A JSON station with two datastreams, 96 hourly rows each, loaded in chunks of 10."""

    def build(windowed: bool):
        hs = local_hydroserver
        station = StationSource(source, "json")
        t0 = datetime(2025, 6, 10, tzinfo=UTC)
        window = (t0, t0 + timedelta(hours=96))
        station.full_range = window
        datastreams = [hs.create_datastream(name=n) for n in station.identifiers]
        expected = {}
        for field, ds in enumerate(datastreams):
            if windowed:  # stale values fill the window: the reload must replace all of them
                hs.add_observations(ds, [(t, v - 50) for t, v in station.rows(field, *window)])
            expected[ds] = station.rows(field, *window)
        return station, datastreams, (RunWindow(*window) if windowed else None), expected

    return build


@pytest.mark.parametrize("windowed", [False, True], ids=["incremental", "windowed"])
def test_a_chunk_failing_after_n_chunks_is_completed_by_the_next_try(windowed, station_task,
                                                                     local_hydroserver):
    hs = local_hydroserver
    station, datastreams, window, expected = station_task(windowed)
    hs.faults.fail_next(1, status=500, path_contains=f"{datastreams[0]}/observations/bulk-create",
                        after=4)  # the first datastream's 5th chunk
    connection, mappings = station.connection(windowed), station.mappings(datastreams)
    with make_client(hs) as client, pytest.raises(IngestionFailed) as info:
        run_ingestion(client, connection, mappings, window=window, options=options(10))
    summary = info.value.summary
    assert [d["status"] for d in summary["datastreams"]] == ["FAILURE", "SUCCESS"]
    assert summary["datastreams"][0]["loaded"] == 40  # 4 chunks of 10 went in before
    assert summary["datastreams"][0]["error"] == (
        f"HydroServer answered 500 to POST /api/data/datastreams/{datastreams[0]}/observations/"
        "bulk-create: an HTML page titled 'Server Error (500)'")
    assert hs.observations(datastreams[0]) != expected[datastreams[0]]

    with make_client(hs) as client:  # Airflow's retry
        again = run_ingestion(client, connection, mappings, window=window, options=options(10))
    assert again["status"] == "SUCCESS"
    for ds in datastreams:
        assert hs.observations(ds) == expected[ds]


KILLED_WORKER = textwrap.dedent("""
    import json, sys
    from datetime import datetime
    from hydroserver_provider.definitions import DataConnection, Mapping
    from hydroserver_provider.hydroserver.client import Credentials, HydroServerClient
    from hydroserver_provider.pipeline import RunOptions, run_ingestion
    from hydroserver_provider.sources.placeholders import RunWindow

    job = json.loads(sys.argv[1])
    window = RunWindow(*map(datetime.fromisoformat, job["window"])) if job["window"] else None
    with HydroServerClient(job["url"], Credentials(api_key=job["key"])) as client:
        print("started", flush=True)
        run_ingestion(client, DataConnection.model_validate(job["connection"]),
                      [Mapping.model_validate(m) for m in job["mappings"]], window=window,
                      options=RunOptions(chunk_rows=job["chunk_rows"]))
    print("finished", flush=True)
""")


@pytest.mark.parametrize("windowed", [False, True], ids=["incremental", "windowed"])
def test_a_worker_killed_mid_load_is_completed_by_the_next_try(windowed, station_task,
                                                               local_hydroserver, tally):
    hs = local_hydroserver
    station, datastreams, window, expected = station_task(windowed)
    connection, mappings = station.connection(windowed), station.mappings(datastreams)
    hs.row_cost = 0.004  # 40 ms per chunk of 10: the load takes about a second
    job = {"url": hs.url, "key": hs.api_key, "chunk_rows": 10,
           "connection": connection.model_dump(mode="json"),
           "mappings": [m.model_dump(mode="json") for m in mappings],
           "window": [window.start.isoformat(), window.end.isoformat()] if window else None}
    worker = subprocess.Popen([sys.executable, "-c", KILLED_WORKER, json.dumps(job)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and worker.poll() is None:
            if any("bulk-create" in path and status == 201 for _, path, status in hs.requests_log):
                break  # the first chunk is stored: kill the worker now, like an OOM kill
            time.sleep(0.005)
        worker.send_signal(signal.SIGKILL)
        out, err = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == -signal.SIGKILL, (out, err[-2000:])
    assert "finished" not in out
    hs.row_cost = 0.0
    wait_until_idle(hs)  # the chunk the worker was sending when it died may still land
    stored = sum(len(hs.observations(ds)) for ds in datastreams)
    total = sum(len(rows) for rows in expected.values())
    partial = [hs.observations(ds) for ds in datastreams] != list(expected.values())
    assert partial and stored > 0, "the kill came after the load ended or before it began"

    with make_client(hs) as client:  # Airflow's retry of the killed task
        summary = run_ingestion(client, connection, mappings, window=window, options=options(10))
    assert summary["status"] == "SUCCESS"
    for ds in datastreams:
        assert hs.observations(ds) == expected[ds]
    tally["killed workers"] = tally.get("killed workers", 0) + 1
    tally["observations compared after kills"] = (
        tally.get("observations compared after kills", 0) + total)


def test_source_faults_on_their_own_are_retried_or_fail_clearly(local_hydroserver, source):
    """Each source fault alone: transient ones are retried in the try, the others fail the try
    with a SourceError naming the source, and nothing is written."""
    hs = local_hydroserver
    station = StationSource(source, "csv")
    t0 = datetime(2025, 6, 1, tzinfo=UTC)
    station.full_range = (t0, t0 + timedelta(hours=2))
    ds = hs.create_datastream(name="Water Level")
    mappings = station.mappings([ds])
    connection = station.connection(False)
    url = source.url + station.path
    outcomes = {}
    for kind in SOURCE_KINDS:
        _queue = {"500": lambda: source.fail_next(station.path, status=500, body="boom"),
                  "502": lambda: source.fail_next(station.path, status=502),
                  "503": lambda: source.fail_next(station.path, status=503),
                  "429": lambda: source.fail_next(station.path, status=429,
                                                  headers={"Retry-After": "0.01"}),
                  "drop": lambda: source.drop_next(station.path),
                  "cut": lambda: source.drop_next(station.path, after_bytes=50),
                  "slow": lambda: source.slow_next(station.path, SLOW_ANSWER)}[kind]
        _queue()
        hs.reset_counts()
        try:
            with make_client(hs) as client:
                run_ingestion(client, connection, mappings, options=options(dry_run=True))
            outcomes[kind] = "retried"
        except SourceError as exc:
            assert str(exc).startswith(url), str(exc)
            outcomes[kind] = str(exc)[len(url):]
        assert not [k for k in hs.request_counts if k.startswith("POST")]
    assert outcomes["502"] == outcomes["503"] == outcomes["429"] == "retried"
    assert outcomes["drop"] == outcomes["slow"] == "retried"
    assert outcomes["500"] == ": the source answered HTTP 500 Internal Server Error: 'boom'"
    assert outcomes["cut"].startswith(": reading the source failed after 0 bytes: the connection "
                                      "closed before the end of the body (IncompleteRead(50 bytes")
    assert outcomes["cut"].endswith("; nothing was loaded")


def test_hydroserver_faults_on_their_own(local_hydroserver, source):
    """Each HydroServer fault alone, on a chunk write: transient ones are absorbed in the try;
    a 500 fails the datastream, naming the status; a lost answer is recognised, not resent."""
    hs = local_hydroserver
    station = StationSource(source, "json")
    t0 = datetime(2025, 6, 1, tzinfo=UTC)
    station.full_range = (t0, t0 + timedelta(hours=30))
    connection = station.connection(False)
    results = {}
    for kind in HS_KINDS:
        ds = hs.create_datastream(name=f"Discharge {kind}")
        mapping = station.mappings([ds])[:1]
        path = f"{ds}/observations/bulk-create"
        if kind == "drop":
            hs.faults.drop_next(1, path, after=1)
        elif kind == "lose":
            hs.faults.lose_answer_next(1, path, after=1)
        elif kind == "slow":
            hs.faults.slow_next(1, SLOW_ANSWER, path, after=1)
        else:
            hs.faults.fail_next(1, kind, retry_after=0.01 if kind == 429 else None,
                                path_contains=path, after=1)
        hs.reset_counts()
        with make_client(hs) as client:
            try:
                summary = run_ingestion(client, connection, mapping, options=options(10))
            except IngestionFailed as exc:
                summary = exc.summary
        outcome = summary["datastreams"][0]
        wait_until_idle(hs, quiet=0.02)  # a late answer is logged once it is sent
        posts = sum(1 for m, p, _ in hs.requests_log if m == "POST" and path in p)
        results[kind] = (outcome["status"], outcome["loaded"], outcome["skipped"], posts)
        if outcome["status"] == "SUCCESS":
            assert hs.observations(ds) == station.rows(0, *station.full_range)
        else:
            assert outcome["error"].startswith(
                f"HydroServer answered 500 to POST /api/data/datastreams/{path}")
            assert len(hs.observations(ds)) == 10  # the first chunk, nothing of the failed one
    # (status, loaded, skipped as already stored, bulk-create requests)
    assert results == {
        500: ("FAILURE", 10, 0, 2),
        502: ("SUCCESS", 30, 0, 4), 503: ("SUCCESS", 30, 0, 4), 429: ("SUCCESS", 30, 0, 4),
        "drop": ("SUCCESS", 30, 0, 4),
        # the lost chunk was stored; its resend is refused, its span read back and found to
        # hold exactly this chunk: counted as loaded by this run (its own write), not resent
        "lose": ("SUCCESS", 30, 0, 4), "slow": ("SUCCESS", 30, 0, 4),
    }


def test_a_lost_answer_while_reloading_a_window_is_recognised(station_task, local_hydroserver):
    """Reloading a window inserts the rows it lacks; an insert whose answer was lost is refused
    as a duplicate when resent, its span read back and found to hold exactly this chunk: no
    retry of the whole task is needed."""
    hs = local_hydroserver
    station, datastreams, window, expected = station_task(True)
    hs.faults.lose_answer_next(1, path_contains=f"{datastreams[0]}/observations/bulk-create",
                               after=2)
    with make_client(hs) as client:
        summary = run_ingestion(client, station.connection(True), station.mappings(datastreams),
                                window=window, options=options(10))
    first = summary["datastreams"][0]
    assert (first["status"], first["loaded"], first["skipped_reasons"]) == (
        "SUCCESS", 96, {})  # the lost chunk is this run's own write: loaded, not skipped
    for ds in datastreams:
        assert hs.observations(ds) == expected[ds]
