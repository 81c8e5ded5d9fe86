"""Filling URL placeholders: formats, zones, URL-encoding, missing values, redaction."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hydroserver_provider.definitions import CSVPayload, DataConnection, PlaceholderVariable
from hydroserver_provider.errors import DefinitionError
from hydroserver_provider.sources.placeholders import RunWindow, redact_url, resolve_url

START = datetime(2025, 1, 1, 6, 0, tzinfo=UTC)
END = datetime(2025, 1, 1, 7, 0, tzinfo=UTC)


def connection(url: str, *variables: dict, **extra) -> DataConnection:
    return DataConnection(
        name="Station", source_url=url, payload=CSVPayload(),
        placeholder_variables=tuple(PlaceholderVariable(**v) for v in variables), **extra,
    )


def test_window_dates_default_to_iso_utc():
    conn = connection("https://x.org/d?from={a}&to={b}",
                      {"name": "a", "variable_type": "window_start"},
                      {"name": "b", "variable_type": "window_end"})
    resolved = resolve_url(conn, RunWindow(START, END))
    assert resolved.url == "https://x.org/d?from=2025-01-01T06:00:00Z&to=2025-01-01T07:00:00Z"
    assert resolved.values == {"a": "2025-01-01T06:00:00Z", "b": "2025-01-01T07:00:00Z"}


def test_plus_offsets_are_percent_encoded_once():
    conn = connection("https://x.org/d?start={s}",
                      {"name": "s", "variable_type": "window_start",
                       "timestamp_format": "%Y-%m-%dT%H:%M:%S%z"})
    assert resolve_url(conn, RunWindow(START, END)).url.endswith("start=2025-01-01T06:00:00%2B0000")


def test_dates_are_formatted_in_the_connection_zone():
    conn = connection("https://x.org/d?start={s}",
                      {"name": "s", "variable_type": "window_start",
                       "timestamp_format": "%Y-%m-%d %H:%M"},
                      timezone_type="iana", timezone="America/Denver")
    assert resolve_url(conn, RunWindow(START, END)).url.endswith("start=2024-12-31%2023:00")
    fixed = connection("https://x.org/d?start={s}",
                       {"name": "s", "variable_type": "window_start",
                        "timestamp_format": "%H:%M%z"},
                       timezone_type="offset", timezone="+05:30")
    assert resolve_url(fixed, RunWindow(START, END)).url.endswith("start=11:30%2B0530")


def test_run_time_is_when_the_run_started_not_its_window():
    """The guide: run_time is "the time the task started running" -- a run for the 15:00
    interval that started at 16:53 sends 16:53 (window_end is the reproducible choice)."""
    conn = connection("https://x.org/d?asof={t}&end={e}",
                      {"name": "t", "variable_type": "run_time"},
                      {"name": "e", "variable_type": "window_end"})
    started = datetime(2025, 1, 1, 16, 53, tzinfo=UTC)
    values = resolve_url(conn, RunWindow(START, END, started_at=started)).values
    assert values == {"t": "2025-01-01T16:53:00Z", "e": "2025-01-01T07:00:00Z"}
    started = datetime(2025, 3, 1, 12, 30, tzinfo=UTC)
    assert resolve_url(conn.model_copy(update={"source_url": "https://x.org/d?asof={t}"}),
                       RunWindow(started_at=started)).values["t"] == "2025-03-01T12:30:00Z"


def test_per_task_values_are_encoded_and_missing_ones_fail_naming_them():
    conn = connection("https://x.org/{station}/data.csv",
                      {"name": "station", "variable_type": "per_task"})
    assert resolve_url(conn, RunWindow(), task_variables={"station": "A&B 1"}).url == \
        "https://x.org/A%26B%201/data.csv"
    with pytest.raises(DefinitionError, match="'station'") as info:
        resolve_url(conn, RunWindow(), task_variables={"other": "x"})
    assert info.value.field == "task_variables"


def test_latest_observation_is_asked_only_when_used_and_falls_back_to_epoch():
    calls = []
    conn = connection("https://x.org/d?since={since}",
                      {"name": "since", "variable_type": "latest_observation_timestamp",
                       "timestamp_format": "%Y%m%d%H%M"})

    def latest():
        calls.append(1)
        return None

    assert resolve_url(conn, RunWindow(), latest_observation=latest).values["since"] == "197001010000"
    assert calls == [1]
    plain = connection("https://x.org/d")
    resolve_url(plain, RunWindow(), latest_observation=latest)
    assert calls == [1]


def test_window_placeholder_without_a_data_interval_fails_before_any_request():
    conn = connection("https://x.org/d?from={a}", {"name": "a", "variable_type": "window_start"})
    with pytest.raises(DefinitionError, match="needs the run's data interval"):
        resolve_url(conn, RunWindow())


def test_placeholder_without_a_variable_is_an_error():
    with pytest.raises(ValueError, match=r"\{station\} but no placeholder variable"):
        connection("https://x.org/{station}")
    unchecked = DataConnection.model_construct(
        name="Station", source_url="https://x.org/{station}", payload=CSVPayload(),
        placeholder_variables=(), timezone_type=None, timezone=None)
    with pytest.raises(DefinitionError, match="'station'"):
        resolve_url(unchecked, RunWindow())


def test_secrets_are_redacted_in_the_shown_url():
    conn = connection("https://x.org/d?api_key={key}&site={site}",
                      {"name": "key", "variable_type": "per_task"},
                      {"name": "site", "variable_type": "per_task"})
    resolved = resolve_url(conn, RunWindow(), task_variables={"key": "s3cr3t/+", "site": "42"})
    assert "s3cr3t" not in resolved.redacted_url and "api_key=***" in resolved.redacted_url
    assert "site=42" in resolved.redacted_url
    assert resolved.values == {"key": "***", "site": "42"}
    assert redact_url("https://user:pw123@x.org/a?token=abc&b=1") == \
        "https://user:***@x.org/a?token=***&b=1"
    assert redact_url("https://x.org/AKIA-77/a", {"AKIA-77"}) == "https://x.org/***/a"


def test_run_window_needs_both_ends_in_order():
    with pytest.raises(ValueError, match="both"):
        RunWindow(START, None)
    with pytest.raises(ValueError, match="after its end"):
        RunWindow(END, START)
