"""CSV payloads, streamed in chunks so memory stays flat as the file grows.

Rows are counted as HydroServer counts them: ``header_row`` and ``data_start_row`` are 1-based
numbers of *physical lines* of the file, every line counted (blank, comment, units lines too).
Everything before ``data_start_row`` other than the header line is skipped (metadata preambles,
units rows). From ``data_start_row`` on, blank lines and lines starting with ``#`` are skipped and
not counted in ``rows_read``.

The delimiter is the character the definition's ``CSVPayload`` validated (the guide's names --
comma, pipe, tab, semicolon, space -- become characters there); a space means one or more blanks,
so column-aligned files work. Fields may be quoted with ``"``. A UTF-8 byte order mark and CRLF
line ends are handled; a header that is not UTF-8 is read as Latin-1 (and so is the data).

Identifiers are column names (case-sensitive; surrounding blanks in the header are ignored), or,
when ``header_row`` is unset, 1-based column numbers written as strings ("1", "3"); the same holds
for ``timestamp_key``. A row with fewer fields than the header counts its missing values as
``"empty"``; fields beyond the header are ignored.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, BinaryIO

import pandas as pd

from hydroserver_provider.definitions import CSVPayload
from hydroserver_provider.errors import DefinitionError, ParseError
from hydroserver_provider.sources.parse import (
    PARSE_CHUNK_ROWS,
    ParseResult,
    SeriesBuilder,
    not_found_message,
)
from hydroserver_provider.timestamps.columns import TimestampParser

if TYPE_CHECKING:  # pragma: no cover
    from hydroserver_provider.definitions import DataConnection

__all__ = ["parse_csv"]

WHITESPACE = "whitespace"  # the definition's " " (space): one or more blanks
_BOM = b"\xef\xbb\xbf"
_BLOCK = 1 << 20
_BINARY_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_HTML_RE = re.compile(r"^\s*<(!doctype\s+html|html|head|body|\?xml)", re.IGNORECASE)


class _ByteSource:
    """Physical lines off a binary stream, then the rest of it as a comment-free stream."""

    def __init__(self, stream: BinaryIO, block_size: int = _BLOCK) -> None:
        self._stream = stream
        self._block = block_size
        self._buf = b""
        self._pos = 0
        self._eof = False
        self._started = False

    def _read(self) -> bytes:
        if self._eof:
            return b""
        data = self._stream.read(self._block)
        if not data:
            self._eof = True
            return b""
        if isinstance(data, str):
            data = data.encode("utf-8")
        return bytes(data)

    def _fill(self) -> bool:
        data = self._read()
        if not self._started:
            while len(data) < len(_BOM) and not self._eof:
                data += self._read()
            if data.startswith(_BOM):
                data = data[len(_BOM) :]
                if not data:
                    data = self._read()
            self._started = True
        if not data:
            return False
        self._buf = self._buf[self._pos :] + data
        self._pos = 0
        return True

    def readline(self) -> bytes | None:
        """The next physical line without its line end, or None at the end of the stream."""
        while True:
            end = self._buf.find(b"\n", self._pos)
            if end >= 0:
                line = self._buf[self._pos : end]
                self._pos = end + 1
                return line.rstrip(b"\r")
            if not self._fill():
                if self._pos < len(self._buf):
                    line = self._buf[self._pos :]
                    self._pos = len(self._buf)
                    return line.rstrip(b"\r")
                return None

    def peek_data_line(self) -> bytes | None:
        """The next non-blank, non-comment line, left unread."""
        offset = 0
        while True:
            end = self._buf.find(b"\n", self._pos + offset)
            if end < 0:
                if self._fill():
                    continue
                line = self._buf[self._pos + offset :]
                if not line.strip() or line.startswith(b"#"):
                    return None
                return line.rstrip(b"\r")
            line = self._buf[self._pos + offset : end]
            offset = end + 1 - self._pos
            if line.strip() and not line.startswith(b"#"):
                return line.rstrip(b"\r")

    def take_block(self) -> bytes:
        """The buffered remainder, then the stream block by block; b"" at the end."""
        if self._pos < len(self._buf):
            data = self._buf[self._pos :]
            self._buf, self._pos = b"", 0
            return data
        self._buf, self._pos = b"", 0
        if not self._started:
            self._fill()
            return self.take_block() if self._buf else b""
        return self._read()

    def remainder(self) -> io.BufferedReader:
        return io.BufferedReader(_CommentFreeRaw(self), buffer_size=1 << 16)


def _drop_comment_lines(complete: bytes) -> bytes:
    """``complete`` starts at a line start; remove the lines that begin with '#'."""
    # A one-byte search (memchr) clears most blocks ~100x faster than looking for b"\n#".
    if b"#" not in complete or (not complete.startswith(b"#") and b"\n#" not in complete):
        return complete
    return b"\n".join(line for line in complete.split(b"\n") if not line.startswith(b"#"))


class _CommentFreeRaw(io.RawIOBase):
    def __init__(self, source: _ByteSource) -> None:
        self._source = source
        self._carry = b""
        self._out = memoryview(b"")
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not len(self._out):
            if self._done:
                return 0
            block = self._source.take_block()
            if not block:
                self._done = True
                tail, self._carry = self._carry, b""
                if tail and not tail.startswith(b"#"):
                    self._out = memoryview(tail)
                continue
            data = self._carry + block if self._carry else block
            cut = data.rfind(b"\n")
            if cut < 0:
                self._carry = data
                continue
            self._carry = data[cut + 1 :]
            self._out = memoryview(_drop_comment_lines(data[: cut + 1]))
        n = min(len(target), len(self._out))
        target[:n] = self._out[:n]
        self._out = self._out[n:]
        return n


def _decode(line: bytes) -> tuple[str, str]:
    try:
        return line.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return line.decode("latin-1"), "latin-1"


def _split_fields(line: str, delimiter: str, where: str) -> list[str]:
    try:
        if delimiter == WHITESPACE:
            if '"' not in line:
                return line.split()
            line = re.sub(r"\s", " ", line.strip())
            return next(csv.reader([line], delimiter=" ", skipinitialspace=True), [])
        return next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error as exc:
        hint = ""
        if "\r" in line:
            hint = ("; the line holds a carriage return (CR): lines that end with CR alone (old "
                    "Mac style) are not supported, convert them to LF or CRLF")
        raise ParseError(
            f"{where}: the line could not be split into fields ({exc}){hint}"
        ) from None


def _check_not_binary(text: str, line_no: int, where: str) -> None:
    """Refuse bytes that are not text (a zip, a spreadsheet, an image) before guessing columns."""
    control = _BINARY_RE.search(text)
    if control:
        raise ParseError(
            f"{where}: binary data was received instead of CSV text (line {line_no} holds the "
            f"control byte {control.group()!r}); the source may be compressed (zip), a "
            "spreadsheet (xlsx) or another binary file"
        )


def _check_not_html(text: str, line_no: int, where: str) -> None:
    if _HTML_RE.match(text):
        snippet = text.strip()[:80]
        raise ParseError(
            f"{where}: an HTML page was received instead of CSV (line {line_no}: {snippet!r}); the "
            "source URL may point to a web page, a login page or an error page"
        )


def dedupe_names(header: Sequence[str]) -> list[str]:
    """Column names as pandas -- and so HydroServer's own loader -- reads a header that repeats a
    name: the first keeps it, the next ones become ``name.1``, ``name.2``, ... (never a name the
    header already has)."""
    taken = set(header)
    counts: dict[str, int] = {}
    names = []
    for name in header:
        if name not in counts:
            counts[name] = 1
            names.append(name)
            continue
        k = counts[name]
        while f"{name}.{k}" in taken:
            k += 1
        counts[name] = k + 1
        taken.add(f"{name}.{k}")
        names.append(f"{name}.{k}")
    return names


def _repeated_column_notes(header: Sequence[str], names: Sequence[str],
                           positions: dict[str, int], line_no: int) -> list[str]:
    """One note per repeated header name a mapping reads: which column it got."""
    notes = []
    for original in dict.fromkeys(h for h in header if header.count(h) > 1):
        columns = [i for i, h in enumerate(header) if h == original]
        used = sorted({pos for pos in positions.values() if pos in columns})
        if not used:
            continue
        read_as = ", ".join(f"column {i + 1} as {names[i]!r}" for i in columns)
        notes.append(f"header (line {line_no}): column {original!r} appears {len(columns)} "
                     f"times ({read_as}), as HydroServer's own loader names them")
    return notes


def _header_positions(
    header: list[str], wanted: list[str], connection: DataConnection, delimiter: str, line_no: int
) -> dict[str, int]:
    exact: dict[str, list[int]] = {}
    stripped: dict[str, list[int]] = {}
    for pos, name in enumerate(dedupe_names(header)):
        exact.setdefault(name, []).append(pos)
        stripped.setdefault(name.strip(), []).append(pos)
    positions: dict[str, int] = {}
    missing: list[tuple[str, str]] = []
    problems: list[str] = []
    for name in wanted:
        found = exact.get(name) or stripped.get(name.strip())
        if not found:
            label = "timestamp column" if name == connection.timestamp_key else "column"
            missing.append((label, name))
        elif len(found) > 1:  # only names that differ in surrounding blanks get here
            problems.append(
                f"column {name!r} matches {len(found)} columns of the header when blanks are "
                f"ignored (columns {', '.join(str(p + 1) for p in found)}): write it exactly."
            )
        else:
            positions[name] = found[0]
    if missing or problems:
        hint = ""
        if len(header) == 1:
            for other, label in ((";", "';'"), ("\t", "tab"), ("|", "'|'"), (",", "','")):
                if other != delimiter and other in header[0]:
                    hint = f". The header has a single column: is the delimiter {label}?"
                    break
        if missing:
            available = [h.strip() for h in header]
            problems.insert(0, not_found_message("column", missing, available, suggest=not hint))
        raise ParseError(
            f"data connection '{connection.name}', header (line {line_no}): "
            + " ".join(problems)
            + hint
        )
    return positions


def _index_positions(wanted: list[str], connection: DataConnection) -> dict[str, int]:
    positions: dict[str, int] = {}
    for name in wanted:
        text = name.strip()
        if not text.isdigit() or int(text) < 1:
            what = "timestamp_key" if name == connection.timestamp_key else "source identifier"
            raise DefinitionError(
                f"header_row is not set, so the {what} must be a 1-based column number",
                location=f"data connection '{connection.name}'",
                expected="a column number such as '1' or '3'",
                found=name,
            )
        positions[name] = int(text) - 1
    return positions


def parse_csv(
    stream: BinaryIO,
    connection: DataConnection,
    identifiers: Sequence[str],
    *,
    chunk_rows: int = PARSE_CHUNK_ROWS,
) -> ParseResult:
    payload = connection.payload  # validated: rows >= 1, data after the header, a delimiter
    assert isinstance(payload, CSVPayload), "parse_csv reads CSV payloads"
    delimiter = WHITESPACE if payload.delimiter == " " else payload.delimiter
    header_row = payload.header_row
    data_start = payload.data_start_row
    where = f"data connection '{connection.name}'"
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be positive, found {chunk_rows}")

    parser = TimestampParser.for_connection(connection)
    ts_key = connection.timestamp_key
    wanted = list(dict.fromkeys([ts_key, *identifiers]))
    # rows are named by their place among the data rows (blank and comment lines not counted)
    builder = SeriesBuilder(identifiers, parser, where=f"column {ts_key!r}",
                            row_label=lambda i: f"data row {i + 1:,}")

    source = _ByteSource(stream)
    header_line: bytes | None = None
    for line_no in range(1, data_start):
        line = source.readline()
        if line is None:
            if header_row is not None and line_no <= header_row:
                lines = line_no - 1
                raise ParseError(
                    f"{where}: header_row is {header_row} but the file has only {lines} line"
                    f"{'' if lines == 1 else 's'}" + (" (it is empty)" if lines == 0 else "")
                )
            return builder.finish()  # a header (and units row) but no data: nothing new
        if line_no == 1 or line_no == header_row:
            _check_not_html(_decode(line)[0], line_no, where)
            _check_not_binary(_decode(line)[0], line_no, where)
        if line_no == header_row:
            header_line = line

    encoding = "utf-8"
    if header_line is not None:
        assert header_row is not None  # the header line was read at header_row
        text, encoding = _decode(header_line)
        header = _split_fields(text, delimiter, f"{where}, header (line {header_row})")
        header_names = set(dedupe_names(header)) | {h.strip() for h in dedupe_names(header)}
        absent = [i for i in builder.identifiers
                  if i != ts_key and i not in header_names and i.strip() not in header_names]
        if absent and len(absent) < len(builder.identifiers) and ts_key.strip() in header_names:
            available = [h.strip() for h in header]
            builder.mark_missing(absent, lambda name: (
                f"{where}, header (line {header_row}): "
                + not_found_message("column", [("column", name)], available)))
            wanted = [w for w in wanted if w not in absent]
        positions = _header_positions(header, wanted, connection, delimiter, header_row)
        for note in _repeated_column_notes(header, dedupe_names(header), positions, header_row):
            builder.note(note)
        width = len(header)
    else:
        positions = _index_positions(wanted, connection)
        first = source.peek_data_line()
        if first is None:
            return builder.finish()
        first_text = _decode(first)[0]
        if data_start == 1:
            _check_not_html(first_text, 1, where)
        _check_not_binary(first_text, data_start, where)
        width = len(_split_fields(first_text, delimiter, f"{where}, first data row"))
        too_far = [n for n, p in positions.items() if p >= width]
        if too_far:
            raise ParseError(
                f"{where}: column number(s) {', '.join(repr(n) for n in too_far)} requested, but "
                f"the first data row (line {data_start} or later) has only {width} field"
                f"{'' if width == 1 else 's'}"
            )

    ts_pos = positions[ts_key]
    usecols = sorted(set(positions.values()))
    names = list(range(max(width, usecols[-1] + 1)))
    options: dict[str, Any] = dict(
        header=None,
        names=names,
        usecols=usecols,
        index_col=False,
        dtype={ts_pos: "str"},
        keep_default_na=False,
        na_values=[""],
        skip_blank_lines=True,
        chunksize=chunk_rows,
        encoding=encoding,
        encoding_errors="replace",
        engine="c",
        quotechar='"',
    )
    if delimiter == WHITESPACE:
        options["sep"] = r"\s+"
    else:
        options["sep"] = delimiter
        options["skipinitialspace"] = True
    try:
        with pd.read_csv(source.remainder(), **options) as reader:
            for chunk in reader:
                builder.add(
                    chunk[ts_pos],
                    {ident: chunk[positions[ident]] for ident in builder.identifiers},
                )
    except pd.errors.EmptyDataError:
        pass
    except pd.errors.ParserError as exc:
        hint = ""
        if str(exc).startswith("Too many columns specified"):
            hint = ("; no data row has as many fields as the header: do the data rows use "
                    "another delimiter?")
        raise ParseError(
            f"{where}: the CSV data could not be read: {exc} (line numbers count from "
            f"data_start_row {data_start}, skipped comment lines excluded){hint}"
        ) from None
    return builder.finish()
