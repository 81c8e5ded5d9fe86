"""The loading invariant, checked against a model over hundreds of generated schedules.

For one task, let S be the source's valid observations per mapped datastream. After any set of
runs in any interleaving -- scheduled runs, backfills running many windows at once beside them,
two runs of one window at once, explicit-window reloads of an incremental task, retries after a
crash at any request (before or after the server carried it out), lost answers, 503s, dropped
connections, late-arriving older rows, revised and withdrawn source values -- HydroServer holds,
per datastream, exactly what the loading rules say (DESIGN.md, "Loading rules"):

- a windowed run over W: stored rows in W == S's rows in W;
- an incremental run (stored end E, look-back L): every row of S after E, and every row of S in
  [E - L, E], with S's value; stored rows the source lacks are kept; older rows are untouched.

Each schedule is a list of *phases*. The source changes only between phases; inside a phase its
runs start together, each in its own thread with its own client (as separate Airflow workers),
and every failed or crashed run is tried again, as Airflow does, until it succeeds. After each
phase the stored series must equal the model exactly, and every run's summary must add up
(``loaded + skipped + dropped == rows read`` per datastream; for a phase with a single run and no
faults, ``loaded``/``revised``/``removed`` must equal what really changed).

Every schedule derives from one seed; a failure prints it, and
``HYDROSERVER_MODEL_SEED=<seed> pytest tests/reliability/test_load_model.py`` replays it (thread
interleavings differ from run to run, the schedule does not). ``HYDROSERVER_MODEL_SCHEDULES``
sets how many schedules to run (default 400).
"""

from __future__ import annotations

import os
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from reliability_support import FAST, TIMEOUT

from hydroserver_provider.definitions import DataConnection, Mapping
from hydroserver_provider.errors import HydroServerProviderError, IngestionFailed
from hydroserver_provider.hydroserver.client import Credentials, HydroServerClient
from hydroserver_provider.pipeline import RunOptions, run_ingestion
from hydroserver_provider.sources.placeholders import RunWindow
from hydroserver_provider.testing.hydroserver import LocalHydroServer
from hydroserver_provider.testing.sources import LocalSourceServer

UTC = UTC
T0 = datetime(2025, 6, 1, tzinfo=UTC)
STEP = timedelta(minutes=15)
HOUR = timedelta(hours=1)
FIELDS = ("level", "temp")
SCHEDULES = int(os.environ.get("HYDROSERVER_MODEL_SCHEDULES", "400"))
ONLY_SEED = os.environ.get("HYDROSERVER_MODEL_SEED")
MAX_ATTEMPTS = 20  # tries of one run (Airflow's retries); still failing after them: a bug


class SimulatedCrash(BaseException):
    """The worker process died (SIGKILL): nothing of the run goes on, no cleanup runs."""


# ------------------------------------------------------------------------------------- source


class ModelSource:
    """The station web service: one CSV route whose rows the schedule changes between phases.

    ``?start=..&end=..`` answers the window plus one step on each side (the loader must trim);
    ``?since=..`` answers every row from then on; both as ``time,level,temp`` (a field may be
    empty in a row: that value is dropped as "empty").
    """

    def __init__(self, server: LocalSourceServer, path: str) -> None:
        self.rows: dict[datetime, dict[str, float]] = {}
        self.lock = threading.Lock()
        self.url = server.add(path, self._answer)

    def _answer(self, query: dict[str, str]) -> str:
        if "since" in query:
            low, high = _parse(query["since"]), datetime.max.replace(tzinfo=UTC)
        else:
            low, high = _parse(query["start"]) - STEP, _parse(query["end"]) + STEP
        with self.lock:
            picked = sorted((t, v) for t, v in self.rows.items() if low <= t <= high)
        lines = ["time," + ",".join(FIELDS)]
        for t, values in picked:
            cells = [repr(values[f]) if f in values else "" for f in FIELDS]
            lines.append(f"{t.strftime('%Y-%m-%dT%H:%M:%SZ')}," + ",".join(cells))
        return "\n".join(lines) + "\n"

    def series(self, f: str) -> dict[datetime, float]:
        return {t: v[f] for t, v in self.rows.items() if f in v}

    def connection(self, windowed: bool, lookback: timedelta | None) -> DataConnection:
        variables = ([{"name": "start", "variable_type": "window_start"},
                      {"name": "end", "variable_type": "window_end"}] if windowed else
                     [{"name": "since", "variable_type": "latest_observation_timestamp"}])
        return DataConnection.model_validate({
            "name": "Model station", "payload_type": "CSV", "timestamp_key": "time",
            "source_url": self.url + ("?start={start}&end={end}" if windowed else
                                      "?since={since}"),
            "placeholder_variables": variables,
            **({"lookback": lookback.total_seconds()} if lookback else {}),
        })


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


# ------------------------------------------------------------------------------------- client


class CrashPlan:
    """Kills a run at its ``at``-th HydroServer request, before or after the server acted."""

    def __init__(self, at: int | None, after_server: bool) -> None:
        self.at, self.after_server = at, after_server
        self.count = 0
        self.crashed = False
        self.lock = threading.Lock()

    def check(self, stage: str) -> None:
        with self.lock:
            if self.crashed:
                raise SimulatedCrash()
            if stage == "before":
                self.count += 1
            hit = self.at is not None and self.count == self.at and (
                (stage == "after") == self.after_server)
            if hit:
                self.crashed = True
        if hit:
            raise SimulatedCrash()


class ModelClient(HydroServerClient):
    """A HydroServer client whose run (and every thread's fork of it) may be killed."""

    def __init__(self, *args: Any, plan: CrashPlan, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plan = plan

    def fork(self) -> HydroServerClient:
        twin = ModelClient(self.url, self.credentials, retry=self.retry, timeout=self.timeout,
                           plan=self.plan)
        twin._token = self._token
        return twin

    def _send(self, method: str, path: str, **kwargs: Any):
        self.plan.check("before")
        response = super()._send(method, path, **kwargs)
        self.plan.check("after")
        return response


# ------------------------------------------------------------------------------------- model


Series = dict[datetime, float]


@dataclass
class Run:
    window: tuple[datetime, datetime] | None  # None: incremental
    explicit: bool = False  # a window given to an incremental task's run (a reload)
    crash: tuple[int, bool] | None = None  # (request number, after the server acted)


@dataclass
class Phase:
    runs: list[Run]
    fault_rate: float = 0.0
    changes: list[str] = field(default_factory=list)  # what happened to the source before it


def apply_rules(stored: dict[str, Series], source: ModelSource, phase: Phase,
                lookback: timedelta | None) -> dict[str, Series]:
    """What HydroServer must hold after ``phase``, from the loading rules alone."""
    after = {f: dict(stored[f]) for f in FIELDS}
    for f in FIELDS:
        truth = source.series(f)
        end = max(stored[f]) if stored[f] else None
        for run in phase.runs:
            if run.window is not None:
                start, stop = run.window
                for t in [t for t in after[f] if start <= t < stop]:
                    del after[f][t]
                after[f].update({t: v for t, v in truth.items() if start <= t < stop})
            elif end is None:  # nothing stored yet: everything
                after[f].update(truth)
            elif lookback:  # after the end, and missing or revised rows of the look-back span
                after[f].update({t: v for t, v in truth.items() if t >= end - lookback})
            else:  # only after the end, like HydroServer's own loader
                after[f].update({t: v for t, v in truth.items() if t > end})
    return after


# ---------------------------------------------------------------------------------- schedules


@dataclass
class Schedule:
    seed: int
    windowed: bool
    lookback: timedelta | None
    chunk_rows: int
    parallel: int
    phases: list[Phase]


def _hour_windows(rng: random.Random, hours: int, count: int) -> list[tuple[datetime, datetime]]:
    picked = []
    for _ in range(count):
        first = rng.randrange(hours)
        span = 1 if rng.random() < 0.8 else rng.randint(2, 3)  # some windows span hours
        picked.append((T0 + first * HOUR, T0 + min(hours, first + span) * HOUR))
    return picked


def change_source(rng: random.Random, source: ModelSource, now: int) -> list[str]:
    """Between phases: the rows of the hours up to ``now`` appear (some arrive late, in a later
    phase), late rows between the grid points, revised and withdrawn values."""
    notes = []
    with source.lock:
        rows = source.rows
        for t in (T0 + i * STEP for i in range(now * 4)):
            if t not in rows and rng.random() < 0.85:
                rows[t] = _values(rng)
        for _ in range(rng.randint(0, 2)):  # a late row off the grid, in the past
            t = T0 + timedelta(minutes=rng.randrange(now * 60), seconds=7)
            rows[t] = _values(rng)
            notes.append(f"late {t:%H:%M:%S}")
        for t in rng.sample(sorted(rows), min(len(rows), rng.randint(0, 3))):  # revisions
            f = rng.choice(FIELDS)
            rows[t] = {**rows[t], f: round(rng.uniform(-5, 50), 3)}
            notes.append(f"revised {t:%H:%M:%S} {f}")
        if rows and rng.random() < 0.3:  # a withdrawn value
            t = rng.choice(sorted(rows))
            f = rng.choice(FIELDS)
            rows[t] = {k: v for k, v in rows[t].items() if k != f}
            notes.append(f"withdrawn {t:%H:%M:%S} {f}")
    return notes


def _values(rng: random.Random) -> dict[str, float]:
    values = {f: round(rng.uniform(0, 30), 3) for f in FIELDS}
    if rng.random() < 0.1:
        del values[rng.choice(FIELDS)]
    return values


def make_schedule(seed: int) -> Schedule:
    rng = random.Random(seed)
    windowed = rng.random() < 0.5
    lookback = None if windowed or rng.random() < 0.4 else timedelta(hours=rng.choice((1, 2)))
    phases = []
    for p in range(rng.randint(3, 5)):
        kind = rng.random()
        runs: list[Run]
        if windowed:
            if kind < 0.3:  # a backfill: many windows at once, beside the scheduled run
                first = rng.randrange(3)
                runs = [Run((T0 + h * HOUR, T0 + (h + 1) * HOUR))
                        for h in range(first, first + rng.randint(4, 8))]
            elif kind < 0.5:  # two runs of the same window at once (a retry beside its orphan)
                (w,) = _hour_windows(rng, 8, 1)
                runs = [Run(w), Run(w)]
            else:
                runs = [Run(w) for w in _hour_windows(rng, 8, rng.randint(1, 4))]
        else:
            runs = [Run(None) for _ in range(rng.randint(1, 3))]
            if kind < 0.35 and p > 0:  # an explicit-window reload of the incremental task
                runs = [Run(w, explicit=True) for w in _hour_windows(rng, 8, rng.randint(1, 2))]
                if rng.random() < 0.5:  # beside incremental runs: windows in the old history
                    runs += [Run(None)]
        for run in runs:
            if rng.random() < 0.2:
                run.crash = (rng.randint(1, 12), rng.random() < 0.5)
        phases.append(Phase(runs, fault_rate=rng.choice((0.0, 0.0, 0.05, 0.1, 0.15))))
    return Schedule(seed, windowed, lookback, chunk_rows=rng.randint(2, 6),
                    parallel=rng.choice((1, 2)), phases=phases)


# ------------------------------------------------------------------------------------ running


@dataclass
class Tally:
    schedules: int = 0
    phases: int = 0
    runs: int = 0
    attempts: int = 0
    crashes: int = 0
    faults: Counter = field(default_factory=Counter)
    compared: int = 0
    exact_counts: int = 0


def execute(schedule: Schedule, hs: LocalHydroServer, src: LocalSourceServer,
            tally: Tally) -> None:
    rng = random.Random(schedule.seed * 7919)
    source = ModelSource(src, f"/model-{schedule.seed}.csv")
    connection = source.connection(schedule.windowed, schedule.lookback)
    datastreams = {f: hs.create_datastream(name=f"{f} {schedule.seed}") for f in FIELDS}
    mappings = [Mapping(source_identifier=f, target_datastream_id=datastreams[f])
                for f in FIELDS]
    options = RunOptions(chunk_rows=schedule.chunk_rows, source_retry=FAST,
                         source_timeout=TIMEOUT, parallel_datastreams=schedule.parallel)
    stored: dict[str, Series] = {f: {} for f in FIELDS}
    now = 4  # hours of data the source holds
    change_source(rng, source, now)
    for number, phase in enumerate(schedule.phases):
        if number:
            now = min(8, now + rng.randint(0, 2))
            phase.changes = change_source(rng, source, now)
        if not schedule.windowed:
            _keep_reloads_apart(phase, stored, schedule.lookback)
        expected = apply_rules(stored, source, phase, schedule.lookback)
        hs.faults.clear()
        hs.faults.latency = 0.001
        if phase.fault_rate:
            hs.faults.at_random(phase.fault_rate,
                                kinds=(503, 503, 429, 500, "drop", "lose", "lose"),
                                seed=schedule.seed * 31 + number)
        summaries = _run_phase(phase, hs, connection, mappings, options, tally)
        tally.faults.update(hs.faults.injected)
        hs.faults.clear()
        actual = {f: dict(hs.observations(datastreams[f])) for f in FIELDS}
        context = (f"seed {schedule.seed}, phase {number} ({_describe(schedule, phase)})")
        for f in FIELDS:
            _compare(actual[f], expected[f], f"{context}, datastream {f}")
            tally.compared += len(expected[f])
        for summary in summaries:
            _check_counts(summary, context)
        if len(phase.runs) == 1 and not phase.fault_rate and phase.runs[0].crash is None:
            _check_exact_counts(summaries[0], stored, expected, datastreams, context)
            tally.exact_counts += 1
        stored = expected
        tally.phases += 1
    tally.schedules += 1


def _keep_reloads_apart(phase: Phase, stored: dict[str, Series],
                        lookback: timedelta | None) -> None:
    """Reloads beside incremental runs stay in the old history, before every look-back span:
    then what the incremental runs see does not depend on how the threads interleave."""
    if not any(r.window is None for r in phase.runs):
        return
    ends = [max(s) for s in stored.values() if s]
    limit = (min(ends) - (lookback or timedelta(0))) if len(ends) == len(FIELDS) else T0
    for run in phase.runs:
        if run.window is not None and run.window[1] > limit:
            run.window = None  # no room in the history: an incremental run instead
            run.explicit = False


def _run_phase(phase: Phase, hs: LocalHydroServer, connection: DataConnection,
               mappings: list[Mapping], options: RunOptions, tally: Tally) -> list[dict]:
    summaries: list[dict | None] = [None] * len(phase.runs)
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(phase.runs))

    def attempt_all(i: int, run: Run) -> None:
        try:
            barrier.wait()
            for attempt in range(MAX_ATTEMPTS):
                crash = run.crash if attempt == 0 else None
                plan = CrashPlan(*(crash or (None, False)))
                window = (RunWindow(*run.window, explicit=run.explicit,
                                    reason="model reload" if run.explicit else None)
                          if run.window else RunWindow())
                client = ModelClient(hs.url, Credentials(api_key=hs.api_key), retry=FAST,
                                     timeout=TIMEOUT, plan=plan)
                tally.attempts += 1
                try:
                    summaries[i] = run_ingestion(client, connection, mappings, window=window,
                                                 options=options)
                    return
                except SimulatedCrash:
                    tally.crashes += 1
                except IngestionFailed:
                    pass
                except HydroServerProviderError:
                    pass
                finally:
                    client.close()
            raise AssertionError(f"run {i} still failing after {MAX_ATTEMPTS} attempts")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=attempt_all, args=(i, run), daemon=True)
               for i, run in enumerate(phase.runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(t.is_alive() for t in threads), "a run never finished"
    if errors:
        raise errors[0]
    tally.runs += len(phase.runs)
    return [s for s in summaries if s is not None]


def _describe(schedule: Schedule, phase: Phase) -> str:
    runs = ", ".join(
        ("reload " if r.explicit else "") +
        (f"{r.window[0]:%H:%M}-{r.window[1]:%H:%M}" if r.window else "incremental") +
        (f" crash@{r.crash[0]}{'+' if r.crash[1] else ''}" if r.crash else "")
        for r in phase.runs)
    return (f"{'windowed' if schedule.windowed else 'incremental'}, lookback "
            f"{schedule.lookback}, chunk {schedule.chunk_rows}, faults {phase.fault_rate}, "
            f"runs [{runs}], source changes {phase.changes}")


def _compare(actual: Series, expected: Series, context: str) -> None:
    if actual == expected:
        return
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    wrong = sorted(t for t in set(actual) & set(expected) if actual[t] != expected[t])
    show = lambda ts: [f"{t:%H:%M:%S}" for t in ts[:6]]  # noqa: E731
    raise AssertionError(f"{context}: stored series differs from the model: missing "
                         f"{show(missing)} ({len(missing)}), extra {show(extra)} "
                         f"({len(extra)}), other value {show(wrong)} ({len(wrong)})")


def _check_counts(summary: dict, context: str) -> None:
    assert summary["status"] == "SUCCESS", context
    for d in summary["datastreams"]:
        assert d["loaded"] + d["skipped"] + d["dropped_total"] == summary["rows_read"], (
            f"{context}: {d['name']}: loaded {d['loaded']} + skipped {d['skipped']} + dropped "
            f"{d['dropped_total']} != rows read {summary['rows_read']}")
        assert sum(d["skipped_reasons"].values()) == d["skipped"], context


def _check_exact_counts(summary: dict, before: dict[str, Series], after: dict[str, Series],
                        datastreams: dict[str, str], context: str) -> None:
    """One run alone, no faults: its numbers are exactly what changed."""
    by_id = {d["datastream_id"]: d for d in summary["datastreams"]}
    for f in FIELDS:
        d = by_id[datastreams[f]]
        added = set(after[f]) - set(before[f])
        revised = {t for t in set(after[f]) & set(before[f]) if after[f][t] != before[f][t]}
        removed = set(before[f]) - set(after[f])
        assert (d["loaded"], d["revised"], d["removed"]) == (
            len(added) + len(revised), len(revised), len(removed)), (
            f"{context}, {f}: summary says loaded {d['loaded']}, revised {d['revised']}, "
            f"removed {d['removed']}; the store changed by +{len(added)}, ~{len(revised)}, "
            f"-{len(removed)}")


# -------------------------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def servers():
    with LocalHydroServer() as hs, LocalSourceServer() as src:
        yield hs, src


def _seeds() -> list[int]:
    if ONLY_SEED is not None:
        return [int(ONLY_SEED)]
    return list(range(1, SCHEDULES + 1))


@pytest.mark.slow
@pytest.mark.timeout(1800)  # 400 schedules take 1-2 minutes on 2 idle cores; a loaded CI more
def test_generated_schedules_keep_the_store_equal_to_the_model(servers, tally):
    hs, src = servers
    figures = Tally()
    for seed in _seeds():
        try:
            execute(make_schedule(seed), hs, src, figures)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nreplay: HYDROSERVER_MODEL_SEED={seed} pytest "
                                 f"tests/reliability/test_load_model.py") from None
    tally.update({
        "model schedules": figures.schedules, "phases": figures.phases, "runs": figures.runs,
        "attempts": figures.attempts, "crashes": figures.crashes,
        "HydroServer faults": sum(figures.faults.values()), "faults by kind": dict(figures.faults),
        "observations compared": figures.compared,
        "phases with exact counts checked": figures.exact_counts,
    })
    assert figures.schedules == len(_seeds())
    assert figures.crashes > 0 and sum(figures.faults.values()) > 0 or ONLY_SEED is not None
