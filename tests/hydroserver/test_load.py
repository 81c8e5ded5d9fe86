"""One datastream's load against the local HydroServer: what a run writes, reads and counts.

The interleavings here are fixed on purpose (the metadata a run saw is handed to it, another
writer acts between its read and its writes), so each rule is shown on its own; the generated
schedules of ``tests/reliability/test_load_model.py`` mix them all.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from hydroserver_provider.hydroserver.client import Credentials, HydroServerClient
from hydroserver_provider.hydroserver.load import (
    SETTLE_ATTEMPTS,
    DatastreamOutcome,
    load_datastream,
)
from hydroserver_provider.retries import RetryPolicy
from hydroserver_provider.sources.parse import ParsedSeries

UTC = UTC
T0 = datetime(2025, 6, 2, tzinfo=UTC)
STEP = timedelta(minutes=15)
FAST = RetryPolicy(tries=3, backoff=0.001, max_delay=0.002)


def rows(first: int, count: int, offset: float = 0.0) -> list[tuple[datetime, float]]:
    return [(T0 + (first + i) * STEP, float(first + i) + offset) for i in range(count)]


def series(data: list[tuple[datetime, float]]) -> ParsedSeries:
    return ParsedSeries(
        np.array([t.replace(tzinfo=None) for t, _ in data], dtype="datetime64[us]"),
        np.array([v for _, v in data], dtype="float64"))


@pytest.fixture
def hs(local_hydroserver):
    return local_hydroserver


@pytest.fixture
def client(hs):
    with HydroServerClient(hs.url, Credentials(api_key=hs.api_key), retry=FAST) as c:
        yield c


def load(client, hs, ds, data, *, window=None, metadata=None, chunk_rows=4, **kwargs):
    outcome = DatastreamOutcome(ds, "level")
    return load_datastream(client, outcome, series(data),
                           metadata if metadata is not None else hs.datastream(ds),
                           window=window, chunk_rows=chunk_rows, **kwargs)


def writes(hs) -> list[tuple[str, str]]:
    """The observation requests a load sent: ``("POST", "bulk-create insert")``, ..."""
    sent = []
    for method, path, _ in hs.requests_log:
        if "/observations" not in path:
            continue
        name, _, query = path.rsplit("/", 1)[-1].partition("?")
        mode = [p.split("=")[1] for p in query.split("&") if p.startswith("mode=")]
        sent.append((method, " ".join([name, *mode])))
    return sent


def hours(first: int, last: int) -> tuple[datetime, datetime]:
    return T0 + timedelta(hours=first), T0 + timedelta(hours=last)


# --------------------------------------------------------------------------------- windowed


def test_a_window_whose_later_neighbour_landed_first_still_stores_its_rows(hs, client):
    """The backfill bug: window 1 saw an empty datastream, window 2's rows landed before window
    1 wrote. Window 1 must not take the refusal for its own rows (it used to append, then skip)."""
    ds = hs.create_datastream(name="Level")
    before = hs.datastream(ds)  # what window 1's run read, before window 2 stored anything
    assert load(client, hs, ds, rows(4, 4), window=hours(1, 2)).loaded == 4
    outcome = load(client, hs, ds, rows(0, 4), window=hours(0, 1), metadata=before)
    assert (outcome.error, outcome.loaded, outcome.skipped) == (None, 4, 0)
    assert hs.observations(ds) == rows(0, 8)


def test_a_first_window_into_an_empty_datastream_only_inserts(hs, client):
    ds = hs.create_datastream(name="Level")
    hs.reset_counts()
    outcome = load(client, hs, ds, rows(0, 10), window=hours(0, 3), chunk_rows=4)
    assert outcome.loaded == 10 and outcome.mode == "windowed"
    assert writes(hs) == [("POST", "bulk-create insert")] * 3  # no read, no delete: 3 chunks


def test_reloading_an_unchanged_window_reads_once_and_writes_nothing(hs, client):
    ds = hs.create_datastream(name="Level", observations=rows(0, 12))
    hs.reset_counts()
    outcome = load(client, hs, ds, rows(0, 12), window=hours(0, 3))
    assert (outcome.loaded, outcome.skipped_reasons) == (0, {"already_stored": 12})
    assert writes(hs) == [("GET", "observations")]


def test_a_revised_value_replaces_only_its_chunk(hs, client):
    ds = hs.create_datastream(name="Level", observations=rows(0, 12))
    revised = rows(0, 12)
    revised[5] = (revised[5][0], 99.5)
    hs.reset_counts()
    outcome = load(client, hs, ds, revised, window=hours(0, 3), chunk_rows=4)
    assert (outcome.loaded, outcome.revised, outcome.removed) == (1, 1, 0)
    assert outcome.skipped_reasons == {"already_stored": 11}
    assert writes(hs) == [("GET", "observations"), ("POST", "bulk-create replace")]
    assert hs.observations(ds) == revised


def test_rows_the_source_no_longer_has_are_removed_from_its_window_only(hs, client):
    ds = hs.create_datastream(name="Level", observations=rows(0, 16))
    source = [r for i, r in enumerate(rows(0, 16)) if i not in (0, 5, 11)]  # inside 00:00-03:00
    outcome = load(client, hs, ds, source[:9], window=hours(0, 3), chunk_rows=4)
    assert (outcome.loaded, outcome.removed) == (0, 3)
    assert hs.observations(ds) == source[:9] + rows(12, 4)  # 03:00 onwards untouched


def test_an_empty_source_window_clears_the_window(hs, client):
    ds = hs.create_datastream(name="Level", observations=rows(0, 12))
    outcome = load(client, hs, ds, [], window=hours(1, 2))
    assert outcome.removed == 4
    assert hs.observations(ds) == rows(0, 4) + rows(8, 4)


def test_a_data_loader_key_loads_new_windows_and_says_why_it_cannot_revise(hs):
    ds = hs.create_datastream(name="Level")
    key = hs.create_api_key(role="Data Loader")
    with HydroServerClient(hs.url, Credentials(api_key=key), retry=FAST) as loader:
        assert load(loader, hs, ds, rows(0, 8), window=hours(0, 2)).loaded == 8
        assert load(loader, hs, ds, rows(0, 8), window=hours(0, 2)).error is None
        revised = rows(0, 8, offset=0.5)
        outcome = load(loader, hs, ds, revised, window=hours(0, 2))
    assert "403" in outcome.error and "may delete" in outcome.error
    assert "Data Loader key may only add rows" in outcome.error
    assert hs.observations(ds) == rows(0, 8)  # nothing half-written


# ------------------------------------------------------------------------------ incremental


def test_an_append_refused_because_of_a_later_row_inserts_its_own_rows(hs, client):
    """Another writer stored a later row after this run read the end time: the append is
    refused, the run reads its chunk's span back, finds its rows missing and inserts them."""
    ds = hs.create_datastream(name="Level", observations=rows(0, 4))
    seen = hs.datastream(ds)
    hs.add_observations(ds, rows(20, 1))
    outcome = load(client, hs, ds, rows(0, 12), metadata=seen)
    assert (outcome.error, outcome.loaded) == (None, 8)
    assert outcome.skipped_reasons == {"not_after_latest_observation": 4}
    assert hs.observations(ds) == rows(0, 12) + rows(20, 1)


def test_rows_another_run_appended_first_count_as_already_stored(hs, client):
    ds = hs.create_datastream(name="Level", observations=rows(0, 4))
    seen = hs.datastream(ds)
    hs.add_observations(ds, rows(4, 4))  # a concurrent run's first chunk
    outcome = load(client, hs, ds, rows(0, 12), metadata=seen)
    assert (outcome.loaded, outcome.skipped_reasons) == (
        4, {"not_after_latest_observation": 4, "already_stored": 4})
    assert outcome.loaded + outcome.skipped == 12
    assert hs.observations(ds) == rows(0, 12)


def test_lookback_inserts_late_rows_and_revisions_but_keeps_what_the_source_lacks(hs, client):
    stored = [r for i, r in enumerate(rows(0, 12)) if i != 9]  # 02:15 never arrived
    ds = hs.create_datastream(name="Level", observations=stored)
    source = rows(0, 14)
    source[10] = (source[10][0], -1.0)  # revised
    del source[11]  # withdrawn at the source: kept in HydroServer (incremental)
    outcome = load(client, hs, ds, source, lookback=timedelta(hours=1))
    # the look-back span is 01:45 .. 02:45: 01:45 and 02:00 are stored, 02:15 is inserted, 02:30
    # revised; 03:00 and 03:15 are appended after the end; 00:00 .. 01:30 are older
    assert (outcome.loaded, outcome.revised) == (4, 1)
    assert outcome.skipped_reasons == {"not_after_latest_observation": 7,
                                       "already_stored": 2}
    expected = dict(rows(0, 14))
    expected[T0 + 10 * STEP] = -1.0
    assert hs.observations(ds) == sorted(expected.items())


def test_without_lookback_older_rows_are_skipped_like_hydroservers_loader(hs, client):
    ds = hs.create_datastream(name="Level", observations=rows(0, 4) + rows(5, 3))
    hs.reset_counts()
    outcome = load(client, hs, ds, rows(0, 8))  # 01:00 arrives late
    assert outcome.skipped_reasons == {"not_after_latest_observation": 8}
    assert writes(hs) == []  # a no-op costs nothing beyond the metadata the run already has


# ------------------------------------------------------------------------------- giving up


def test_a_span_that_keeps_changing_fails_naming_it(hs, client):
    ds = hs.create_datastream(name="Level")
    hs.faults.fail_next(SETTLE_ATTEMPTS + 1, status=409, path_contains="bulk-create")
    outcome = load(client, hs, ds, rows(0, 4), window=hours(0, 1))
    assert outcome.failed
    assert "2025-06-02T00:00:00Z .. 2025-06-02T00:45:00Z kept changing" in outcome.error
    assert "retry" in outcome.error
    assert hs.observations(ds) == []
