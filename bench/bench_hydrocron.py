"""Hydrocron fan-out: how close many features get to the configured request rate, and never above.

Run by hand: ``python bench/bench_hydrocron.py [--features 200] [--rate 20] [--share 4]``.

Hydrocron takes one feature per request, so a DAG loading a basin sends one request per reach
and run. The task's ``requests_per_second`` is the limit for all of them together. Two ways of
running the same 200 features through the local Hydrocron replay into the local HydroServer
(every feature: fetch its passes, check units, load wse and width into two datastreams):

* ``mapped``: what the fan-out DAG does. Airflow runs each mapped instance in its own process,
  at most ``share`` at once (``max_active_tis_per_dag``); each instance gets a *fresh* limiter at
  ``rate / share`` (a new process knows nothing of the previous one), sends its request, then
  holds its slot until that pace allows the next request (``HydroIngestOperator._keep_pace``).
  Here ``share`` worker processes play the executor's slots and run instances back to back,
  each instance with its own new limiter, as a new task process would.
* ``threads``: one process, 8 threads sharing one process-wide limiter at ``rate``.

Each runs twice: ``fetch`` (Hydrocron only: what the limiter scheme itself achieves) and
``fetch+load`` (the whole run per feature: HydroServer metadata, units, two bulk creates).

Airflow's own per-instance cost (starting the task process, about a second or more) is not in
these figures: it only slows a fan-out further below the limit, never above it.

Reported: total time (from the start signal until the last instance is done, its hold
included), achieved rate = requests / total time and its ratio to the limit (goal >= 90 %), the
span from the first to the last request, and the most requests seen in any one-second window.
The bound the scheme guarantees is ``rate * T + share`` requests in any T seconds (each slot may
send its first request at once); the threads' single limiter allows ``rate * T + 1`` by schedule,
and a thread woken late by a busy CPU can bunch with the next one in the measured send times.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import requests

UTC = UTC
START = datetime(2024, 1, 1, tzinfo=UTC)


class TimedSession(requests.Session):
    """Notes when each request leaves (after the limiter let it go)."""

    def __init__(self, times: list[float]) -> None:
        super().__init__()
        self._times = times

    def request(self, method, url, *args, **kwargs):
        self._times.append(time.monotonic())
        return super().request(method, url, *args, **kwargs)


def _one_feature(job: dict, limiter, times: list[float]) -> int:
    """What one mapped instance does for its feature; returns the observations loaded (or, when
    the job has no datastreams, fetched: Hydrocron only, no HydroServer)."""
    from hydroserver_provider.definitions import Mapping, parse_data_connection
    from hydroserver_provider.hydroserver.client import Credentials, HydroServerClient
    from hydroserver_provider.pipeline import run_ingestion
    from hydroserver_provider.sources.hydrocron.client import HydrocronClient, HydrocronQuery
    from hydroserver_provider.sources.hydrocron.source import HydrocronSource

    if not job["datastreams"]:
        query = HydrocronQuery("Reach", job["feature"], ("wse", "width"), overlap=0)
        with HydrocronClient(job["hc_url"], limiter=limiter, session=TimedSession(times)) as hc:
            result = hc.fetch(query, START, datetime.now(UTC))
        return sum(len(s) for s in result.series.values())
    connection = parse_data_connection({"name": "Basin", "payload_type": "HYDROCRON",
                                        "fields": ["wse", "width"], "overlap_hours": 0})
    mappings = [Mapping(source_identifier=f, target_datastream_id=d, feature_id=job["feature"])
                for f, d in job["datastreams"].items()]
    with HydroServerClient(job["hs_url"], Credentials(api_key=job["api_key"])) as hs, \
            HydrocronClient(job["hc_url"], limiter=limiter,
                            session=TimedSession(times)) as hc:
        summary = run_ingestion(hs, connection, mappings, start_time=START,
                                source=HydrocronSource(hc, feature_id=job["feature"]))
    return summary["loaded"]


def _slot_worker(jobs, results, ready, rate: float, share: int, go) -> None:
    """One executor slot: runs mapped instances one after the other, each with a fresh limiter
    at rate / share that it keeps until its pace allows another request (the hold)."""
    import hydroserver_provider.pipeline
    import hydroserver_provider.sources.hydrocron.parse  # noqa: F401  (what a task process has
    from hydroserver_provider.sources.hydrocron.client import HydrocronClient  # noqa: F401
    from hydroserver_provider.sources.ratelimit import RateLimiter

    times: list[float] = []
    loaded = 0
    ready.put(True)
    go.wait()
    while True:
        job = jobs.get()
        if job is None:
            break
        limiter = RateLimiter(rate / share)  # a new task process: a new limiter
        loaded += _one_feature(job, limiter, times)
        limiter.acquire()  # hold the slot (HydroIngestOperator._keep_pace)
    results.put((times, loaded))


def _serve(features: int, load: bool):
    from hydroserver_provider.testing.hydrocron import LocalHydrocron, synthetic_passes
    from hydroserver_provider.testing.hydroserver import LocalHydroServer

    hydrocron = LocalHydrocron(load_fixtures=False).start()
    hydroserver = LocalHydroServer().start()
    jobs = []
    for i in range(features):
        feature = f"{18180900000 + i * 10 + 1}"
        hydrocron.add_feature("Reach", feature, synthetic_passes(10, start=START, seed=i))
        jobs.append({
            "feature": feature, "hc_url": hydrocron.url, "hs_url": hydroserver.url,
            "api_key": hydroserver.api_key,
            "datastreams": {f: hydroserver.create_datastream(name=f"{feature} {f}", unit="m")
                            for f in ("wse", "width")} if load else {},
        })
    return hydrocron, hydroserver, jobs


def _report(name: str, times: list[float], rate: float, total: float, loaded: int,
            requests_seen: int) -> dict:
    times = sorted(times)
    span = times[-1] - times[0] if len(times) > 1 else float("nan")
    achieved = len(times) / total  # over the whole run, the last instance's hold included
    j, peak = 0, 0
    for i, t in enumerate(times):  # most requests in any window [t, t + 1 s)
        while times[j] < t - 1.0 + 1e-9:
            j += 1
        peak = max(peak, i - j + 1)
    row = {"mode": name, "requests": len(times), "replay saw": requests_seen,
           "total s": round(total, 2), "span s": round(span, 2),
           "achieved req/s": round(achieved, 2), "of limit": f"{achieved / rate:.1%}",
           "peak in 1 s": peak, "observations": loaded}
    print(" | ".join(f"{k}: {v}" for k, v in row.items()), flush=True)
    return row


def bench_mapped(features: int, rate: float, share: int, load: bool) -> dict:
    hydrocron, hydroserver, jobs = _serve(features, load)
    ctx = mp.get_context("spawn")
    queue, results, ready, go = ctx.Queue(), ctx.Queue(), ctx.Queue(), ctx.Event()
    for job in jobs:
        queue.put(job)
    for _ in range(share):
        queue.put(None)
    workers = [ctx.Process(target=_slot_worker,
                           args=(queue, results, ready, rate, share, go))
               for _ in range(share)]
    try:
        for w in workers:
            w.start()
        for _ in workers:  # the clock starts once every worker has imported the package
            ready.get(timeout=120)
        began = time.monotonic()
        go.set()
        collected = [results.get(timeout=600) for _ in workers]
        total = time.monotonic() - began
        for w in workers:
            w.join(timeout=30)
        times = [t for ts, _ in collected for t in ts]
        print(f"  first request {min(times) - began:.2f} s after the start, last "
              f"{total - (max(times) - began):.2f} s before the end", flush=True)
        what = "fetch+load" if load else "fetch"
        return _report(f"mapped {what} ({share} slots x {rate / share:g}/s)", times, rate, total,
                       sum(n for _, n in collected), hydrocron.request_count)
    finally:
        for w in workers:
            if w.is_alive():
                w.terminate()
        hydrocron.stop()
        hydroserver.stop()


def bench_threads(features: int, rate: float, load: bool, threads: int = 8) -> dict:
    from hydroserver_provider.sources.ratelimit import RateLimiter

    hydrocron, hydroserver, jobs = _serve(features, load)
    limiter = RateLimiter(rate)
    times: list[float] = []
    lock = threading.Lock()

    def one(job: dict) -> int:
        mine: list[float] = []
        n = _one_feature(job, limiter, mine)
        with lock:
            times.extend(mine)
        return n

    try:
        began = time.monotonic()
        with ThreadPoolExecutor(threads) as pool:
            loaded = sum(pool.map(one, jobs))
        total = time.monotonic() - began
        what = "fetch+load" if load else "fetch"
        return _report(f"threads {what} ({threads} x one limiter at {rate:g}/s)", times, rate,
                       total,
                       loaded, hydrocron.request_count)
    finally:
        hydrocron.stop()
        hydroserver.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--share", default="4,8",
                        help="mapped instances at once (comma-separated values to compare)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    rows: dict[str, list[dict]] = {}
    for _ in range(args.repeat):
        for load in (False, True):
            what = "fetch+load" if load else "fetch"
            for share in (int(v) for v in str(args.share).split(",")):
                rows.setdefault(f"mapped {what}, {share} slots", []).append(
                    bench_mapped(args.features, args.rate, share, load))
            rows.setdefault(f"threads {what}", []).append(
                bench_threads(args.features, args.rate, load))
    print()
    for mode, runs in rows.items():
        rates = [r["achieved req/s"] for r in runs]
        print(f"{mode}: median {statistics.median(rates):.2f} req/s "
              f"({statistics.median(rates) / args.rate:.1%} of {args.rate:g}), "
              f"total {statistics.median(r['total s'] for r in runs):.2f} s, "
              f"peak in 1 s {max(r['peak in 1 s'] for r in runs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
