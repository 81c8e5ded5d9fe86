"""JSON payloads: a JMESPath expression selects the list of records.

The body is read whole (its size is bounded by the extractor). ``payload.jmespath`` must select a
list of objects; an empty list means "no data" (zero rows). ``timestamp_key`` and the identifiers
name a field of each record: a key present in the records as written is used literally (so a key
containing a dot still works); otherwise the name is a path -- ``"properties.time"`` or any
JMESPath expression evaluated on each record.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO

import jmespath
import jmespath.exceptions
import orjson
import pandas as pd

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

__all__ = ["parse_json", "select_records"]

_BOM = b"\xef\xbb\xbf"
_SIMPLE_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+$")
_MISSING = object()
_PROBE = 1000  # records looked at to decide whether a key is literal


def _read_all(stream: BinaryIO) -> bytes:
    parts = []
    while True:
        block = stream.read(1 << 20)
        if not block:
            break
        parts.append(block.encode("utf-8") if isinstance(block, str) else bytes(block))
    return b"".join(parts)


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        keys = ", ".join(repr(k) for k in list(value)[:15])
        more = f", ... ({len(value) - 15} more)" if len(value) > 15 else ""
        return f"an object with keys {keys}{more}" if value else "an empty object"
    if isinstance(value, list):
        return f"a list of {len(value)} items"
    if value is None:
        return "null"
    text = repr(value)
    return f"a {type(value).__name__} ({text[:60]})"


def _load(data: bytes, where: str) -> Any:
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    body = data.lstrip()
    if not body:
        raise ParseError(f"{where}: the response body is empty; expected a JSON document")
    if body[:1] == b"<":
        snippet = body[:80].decode("utf-8", "replace")
        kind = "an HTML page" if b"html" in body[:1000].lower() else "an HTML/XML document"
        raise ParseError(
            f"{where}: {kind} was received instead of JSON ({snippet!r}); the source URL may "
            "point to a web page, a login page or an error page"
        )
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        # Python's json (behind many web APIs) writes NaN, Infinity and -Infinity, and numbers
        # beyond float range such as 1e400: read those documents too, their values are then
        # dropped and counted like any other value that is not a finite number.
        try:
            return json.loads(data)
        except (ValueError, RecursionError):
            pass
        pos = getattr(exc, "pos", None)
        detail = getattr(exc, "msg", str(exc))
        if "UTF-8" in detail:  # orjson checks the encoding first and reports position 0
            try:
                data.decode("utf-8")
            except UnicodeDecodeError as bad:
                pos = bad.start
        location = ""
        if pos is not None:
            lineno = data.count(b"\n", 0, pos) + 1
            column = pos - (data.rfind(b"\n", 0, pos) + 1) + 1
            location = f" at line {lineno}, column {column} (byte {pos} of {len(data)})"
            if pos >= len(data.rstrip()) - 1:
                location += "; the document ends early: is it truncated?"
            else:
                near = data[max(0, pos - 30) : pos + 30].decode("utf-8", "replace")
                location += f" near {near!r}"
        raise ParseError(f"{where}: the response is not valid JSON: {detail}{location}") from None


def select_records(document: Any, expression: str, where: str) -> list:
    """Apply the JMESPath ``expression``; return the list of records or raise ParseError."""
    try:
        compiled = jmespath.compile(expression)
    except jmespath.exceptions.JMESPathError as exc:
        raise DefinitionError(
            f"invalid JMESPath expression: {exc}", location=where, field="jmespath",
            expected="an expression such as 'data[*]'", found=expression,
        ) from None
    selected = compiled.search(document)
    if selected is None:
        raise ParseError(
            f"{where}: jmespath {expression!r} matched nothing; the document is "
            f"{_describe(document)}"
        )
    if isinstance(selected, dict):
        hint = ""
        lists = [k for k, v in selected.items() if isinstance(v, list)]
        if lists:
            hint = f"; did you mean '{expression}.{lists[0]}[*]'?"
        raise ParseError(
            f"{where}: jmespath {expression!r} selected {_describe(selected)}, expected a list "
            f"of records{hint}"
        )
    if not isinstance(selected, list):
        raise ParseError(
            f"{where}: jmespath {expression!r} selected {_describe(selected)}, expected a list "
            "of records (objects)"
        )
    # The cheap probe of the first records comes first; the full scan only runs if it fails.
    if (
        selected
        and not any(isinstance(r, dict) for r in selected[:_PROBE])
        and not any(isinstance(r, dict) for r in selected)
    ):
        raise ParseError(
            f"{where}: jmespath {expression!r} selected a list of "
            f"{type(selected[0]).__name__} values (first: {repr(selected[0])[:60]}), "
            "expected a list of records (objects) such as "
            '[{"timestamp": ..., "value": ...}]'
        )
    return selected


def _field_names(records: list) -> list[str]:
    """Keys of the first record, nested objects one level deep as 'a.b'."""
    first = next((r for r in records if isinstance(r, dict)), {})
    names = []
    for key, value in first.items():
        names.append(str(key))
        if isinstance(value, dict):
            names.extend(f"{key}.{sub}" for sub in value)
    return names


def _get_key(name: str) -> Callable[[Any], Any]:
    def get_key(record: Any) -> Any:
        return record.get(name, _MISSING) if isinstance(record, dict) else _MISSING

    return get_key


def _get_path(parts: list[str]) -> Callable[[Any], Any]:
    def get_path(record: Any) -> Any:
        for part in parts:
            if not isinstance(record, dict):
                return _MISSING
            record = record.get(part, _MISSING)
            if record is _MISSING:
                return _MISSING
        return record

    return get_path


def _extractor(name: str, records: list) -> tuple[Callable[[Any], Any], bool]:
    """(value getter for one record, whether it tells an absent field from null).

    A key present as written in the records wins; then ``a.b.c`` is a path of keys; then any
    other JMESPath expression (``values[0].v``) is evaluated per record; else the name is a key.
    """
    if any(isinstance(r, dict) and name in r for r in records[:_PROBE]):
        return _get_key(name), True
    if _SIMPLE_PATH.match(name):
        return _get_path(name.split(".")), True
    if any(c in name for c in ".[]|@(){}*`'"):
        try:
            return jmespath.compile(name).search, False
        except jmespath.exceptions.JMESPathError:
            pass
    return _get_key(name), True


def parse_json(
    stream: BinaryIO,
    connection: DataConnection,
    identifiers: Sequence[str],
    *,
    chunk_rows: int = PARSE_CHUNK_ROWS,
) -> ParseResult:
    where = f"data connection '{connection.name}'"
    payload = connection.payload
    assert payload.type == "JSON", f"{where} is not a JSON connection"
    expression = payload.jmespath
    parser = TimestampParser.for_connection(connection)
    ts_key = connection.timestamp_key
    builder = SeriesBuilder(identifiers, parser, where=f"field {ts_key!r}",
                            row_label=lambda i: f"record {i + 1:,}")
    document = _load(_read_all(stream), where)
    records = select_records(document, expression, where)
    del document
    if not records:
        return builder.finish()

    columns: dict[str, list] = {}
    missing: list[tuple[str, str]] = []
    for name in dict.fromkeys([ts_key, *builder.identifiers]):
        getter, knows_missing = _extractor(name, records)
        column = [getter(r) for r in records]
        if knows_missing:
            if all(v is _MISSING for v in column):
                missing.append(("timestamp field" if name == ts_key else "field", name))
                continue
            column = [None if v is _MISSING else v for v in column]
        columns[name] = column
    only_values = all(label == "field" for label, _ in missing)
    if missing and only_values and len(missing) < len(builder.identifiers):
        fields = _field_names(records)
        builder.mark_missing([name for _, name in missing], lambda name: (
            f"{where}: in the {len(records)} records selected by "
            f"{expression!r}: "
            + not_found_message("field", [("field", name)], fields)))
        missing = []
    if missing:
        raise ParseError(
            f"{where}: in the {len(records)} records selected by {expression!r}: "
            + not_found_message("field", missing, _field_names(records))
        )

    # Timestamps are text; numbers (e.g. 20240115) are read as their text, null as missing.
    raw_ts = pd.Series(columns[ts_key], dtype=object).astype("str")
    for start in range(0, len(records), chunk_rows):
        stop = start + chunk_rows
        builder.add(
            raw_ts.iloc[start:stop],
            {
                ident: pd.Series(columns[ident][start:stop], dtype=object)
                for ident in builder.identifiers
            },
        )
    return builder.finish()
