"""The ingestion benchmark's input is what its report says: local Denver time, exact values."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import numpy as np

from hydroserver_provider.definitions import parse_data_connection
from hydroserver_provider.sources.parse import parse_payload


def parse(inputs, data: bytes):
    connection = parse_data_connection(inputs.connection_definition("http://127.0.0.1/x.csv"))
    return parse_payload(io.BytesIO(data), connection, list(inputs.COLUMNS))


def test_written_file_holds_the_stated_rows_in_local_time(inputs, tmp_path):
    rows = 30_000  # reaches past the first autumn change (2000-10-29, row ~29,000)
    path = inputs.write_logger_csv(tmp_path / "logger.csv", rows)
    data = path.read_bytes()
    lines = data.split(b"\r\n")
    assert lines[0] == b"Date Time,Water Level,Water Temp,Discharge,Gage Height"
    assert lines[1].startswith(b"MST/MDT,")
    assert lines[2].startswith(b"1999-12-31 17:00:00,")  # 2000-01-01T00:00Z in Denver (MST)
    assert len(lines) == 2 + rows + 1 and lines[-1] == b""
    assert data.count(b"2000-10-29 01:15:00,") == 2  # the repeated autumn hour is written twice

    result = parse(inputs, data)
    assert result.rows_read == rows
    expected_ts = inputs.utc_grid(rows).view("M8[us]")
    expected_values = inputs.values(inputs.utc_grid(rows))
    for column in inputs.COLUMNS:
        series = result.series[column]
        np.testing.assert_array_equal(series.timestamps, expected_ts)
        np.testing.assert_array_equal(series.values, expected_values[column])
    assert result.timestamps.ambiguous_by_order == 8  # 01:00-01:45 twice


def test_incremental_source_answers_only_rows_after_start(inputs):
    source = inputs.logger_file(1_000)
    assert parse(inputs, source.preamble + source.body).rows_read == 1_000
    cut = datetime(2000, 1, 5, 12, tzinfo=UTC)
    newer = parse(inputs, source.after(int(cut.timestamp()) * 1_000_000))
    times = newer.series["Discharge"].timestamps
    assert newer.rows_read == 1_000 - (4 * 96 + 12 * 4 + 1)  # 4.5 days of rows, and the cut
    assert times[0] == np.datetime64("2000-01-05T12:15:00")
    assert source.after(int(source.utc_us[-1])) == source.preamble  # nothing new: header only
