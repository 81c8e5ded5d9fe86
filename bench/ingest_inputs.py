"""The ingestion benchmark's input: a logger CSV in America/Denver local time, any length.

Shaped like the station logger a HydroServer user meets (``testing/stations.py``): a header, a
units row, CRLF line ends, 15-minute rows written as local wall time with the strftime format
``%Y-%m-%d %H:%M:%S`` (so each autumn the repeated hour appears twice), and four value columns.
Everything is computed with numpy/pandas so millions of rows are written in seconds, and the
expected UTC instants and values can be recomputed exactly to check what a parser read.

Only this project's virtualenv runs this module; the hydroserverpy side reads the files it writes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

ZONE = "America/Denver"
TIMESTAMP_KEY = "Date Time"
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
COLUMNS = ("Water Level", "Water Temp", "Discharge", "Gage Height")
UNITS = ("MST/MDT", "ft", "degC", "cfs", "ft")
HEADER_ROW = 1
DATA_START_ROW = 3  # the units row sits between the header and the data
START = datetime(2000, 1, 1, tzinfo=UTC)
STEP_US = 15 * 60 * 1_000_000
_US = 1_000_000


def utc_grid(rows: int, start: datetime = START) -> np.ndarray:
    """The rows' instants: int64 microseconds since the epoch, every 15 minutes from ``start``."""
    first = int(start.timestamp()) * _US
    return first + np.arange(rows, dtype=np.int64) * STEP_US


def values(utc_us: np.ndarray) -> dict[str, np.ndarray]:
    """Smooth, exactly reproducible values per column (rounded as a logger writes them)."""
    hours = utc_us / (3600 * _US)
    level = np.round(4.0 + 0.5 * np.sin(hours / 24 * 2 * np.pi) + 0.001 * (hours % 97), 3)
    temp = np.round(9.0 + 3.0 * np.sin((hours - 6) / 24 * 2 * np.pi), 2)
    flow = np.round(120.0 + 35.0 * np.cos(hours / 48 * 2 * np.pi), 1)
    gage = np.round(2.0 + flow / 100.0, 3)
    return dict(zip(COLUMNS, (level, temp, flow, gage)))


def local_wall(utc_us: np.ndarray) -> np.ndarray:
    """UTC instants -> naive Denver wall-clock ``datetime64[s]`` (what the logger prints)."""
    index = pd.DatetimeIndex(utc_us.view("M8[us]")).tz_localize("UTC").tz_convert(ZONE)
    return index.tz_localize(None).as_unit("s").to_numpy()


@dataclass(frozen=True)
class LoggerFile:
    """A generated file: its bytes split into preamble and body, and where each data row starts."""

    preamble: bytes  # header and units lines
    body: bytes  # data lines
    utc_us: np.ndarray  # each data row's instant
    line_starts: np.ndarray  # offset of each data row in ``body``

    @property
    def rows(self) -> int:
        return len(self.utc_us)

    def after(self, moment_us: int) -> bytes:
        """The file holding only rows strictly after ``moment_us`` (an incremental source)."""
        first = int(np.searchsorted(self.utc_us, moment_us, side="right"))
        if first >= self.rows:
            return self.preamble
        return self.preamble + self.body[int(self.line_starts[first]):]


def _preamble() -> bytes:
    return ("\r\n".join([",".join((TIMESTAMP_KEY, *COLUMNS)), ",".join(UNITS)]) + "\r\n").encode()


def _body(utc_us: np.ndarray) -> bytes:
    frame = pd.DataFrame({TIMESTAMP_KEY: local_wall(utc_us), **values(utc_us)})
    out = io.StringIO()
    frame.to_csv(out, header=False, index=False, lineterminator="\r\n")
    return out.getvalue().encode("ascii")


def logger_file(rows: int, start: datetime = START) -> LoggerFile:
    utc_us = utc_grid(rows, start)
    body = _body(utc_us)
    ends = np.flatnonzero(np.frombuffer(body, dtype=np.uint8) == ord("\n"))
    line_starts = np.concatenate(([0], ends[:-1] + 1)).astype(np.int64)
    if len(line_starts) != rows:
        raise AssertionError(f"generated {len(line_starts)} lines for {rows} rows")
    return LoggerFile(_preamble(), body, utc_us, line_starts)


def write_logger_csv(path: Path, rows: int, *, block_rows: int = 500_000) -> Path:
    """Write a ``rows``-row logger file to ``path`` block by block (kept if already complete)."""
    path = Path(path)
    done = path.with_suffix(path.suffix + ".done")
    if path.exists() and done.exists() and done.read_text() == str(rows):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(_preamble())
        grid = utc_grid(rows)
        for start in range(0, rows, block_rows):
            handle.write(_body(grid[start:start + block_rows]))
    done.write_text(str(rows))
    return path


def connection_definition(source_url: str, workspace_id: str | None = None) -> dict:
    """The data connection both tools are configured with, in this project's vocabulary."""
    definition = {
        "name": "Benchmark logger",
        "source_url": source_url,
        "payload": {"type": "CSV", "header_row": HEADER_ROW, "data_start_row": DATA_START_ROW,
                    "delimiter": ","},
        "timestamp_key": TIMESTAMP_KEY,
        "timestamp_format": TIMESTAMP_FORMAT,
        "timezone_type": "iana",
        "timezone": ZONE,
    }
    if "{start}" in source_url:
        definition["placeholder_variables"] = [
            {"name": "start", "variable_type": "latest_observation_timestamp"}]
    if workspace_id:
        definition["workspace_id"] = workspace_id
    return definition
