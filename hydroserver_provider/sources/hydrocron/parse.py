"""Reading Hydrocron answers: every answer form -> one table -> per-field series, with hygiene.

Hydrocron answers one request in one of four shapes (see ``reference/hydrocron-api.md``):

* the JSON envelope ``{"status", "time", "hits", "results": {"csv": "...", "geojson": {...}}}``;
* raw CSV (``Accept: text/csv``), observed JSON-quoted as one string with ``\\n`` escapes;
* a GeoJSON FeatureCollection, non-compact (one Feature per pass, every value a string) or
  compact (one Feature whose properties hold one list per field, in pass order).

:func:`decode_answer` turns any of them into a :class:`HydrocronTable` (column name -> list of
strings, in pass order). :class:`HydrocronAssembler` then builds the per-field series the loader
wants, dropping and counting per field and reason:

* ``"no_observation"``: the pass has ``time_str`` ``no_data`` (SWOT flew over, saw nothing);
* ``"unparsable_timestamp"``: a ``time_str`` that is neither a time nor ``no_data``;
* ``"fill_value"``: ``-999999999999`` in any spelling (``.0``, ``-1e12``), ``-999`` in integer flag
  fields, ``-99999999`` in bit flags and ids, the string ``no_data``;
* ``"empty"``, ``"not_a_number"``, ``"infinite"``: as for every other payload type;
* ``"quality"``: the pass fails the quality filter (:class:`QualityRule`), or its quality flag is
  itself missing;
* ``"duplicate_timestamp"``: the same ``time_str`` twice in one answer (the last row wins).

The same pass returned by two requests (overlapping or adjacent windows) is one pass: it is kept
once and counted in :attr:`HydrocronAssembler.duplicate_passes`, not as a drop.
"""

from __future__ import annotations

import csv
import io
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any, BinaryIO, Literal

import numpy as np
import orjson
import pandas as pd

from hydroserver_provider.errors import DefinitionError, ParseError
from hydroserver_provider.sources.parse import ParsedSeries, ParseResult
from hydroserver_provider.timestamps.columns import NAT, TimestampParser

__all__ = [
    "BIT_FLAG_FILL",
    "FEATURES",
    "FILL_VALUE",
    "FLAG_FILL",
    "HydrocronAssembler",
    "HydrocronTable",
    "ID_FIELDS",
    "NO_DATA",
    "QualityRule",
    "decode_answer",
    "default_quality_rules",
    "is_flag_field",
    "parse_answer",
    "parse_hydrocron",
    "parse_quality_rules",
    "units_of",
]

Feature = Literal["Reach", "Node", "PriorLake"]
FEATURES: tuple[str, ...] = ("Reach", "Node", "PriorLake")
ID_FIELDS: dict[str, str] = {"Reach": "reach_id", "Node": "node_id", "PriorLake": "lake_id"}

NO_DATA = "no_data"
FILL_VALUE = -999999999999.0  # floats; also written -999999999999 and -1e12
_FILL_BELOW = FILL_VALUE + 0.5  # anything at or below this is the float fill value
FLAG_FILL = -999.0  # integer flags (reach_q, ice_clim_f, dschg_c_q, n_good_nod, ...)
BIT_FLAG_FILL = -99999999.0  # bit flags and ids (reach_q_b, qual_f_b, p_dam_id, ...)

# Integer-valued fields (flags, counts, ids) whose missing value is -999 or -99999999. Everything
# else is a float whose missing value is -999999999999. Written from the field lists of the
# Hydrocron documentation (reach, node and lake products, versions 2.0 and D).
_FLAG_FIELDS = frozenset({
    "reach_q", "node_q", "quality_f", "ice_clim_f", "ice_dyn_f", "partial_f", "xovr_cal_q",
    "n_good_nod", "n_good_pix", "n_reach_up", "n_reach_dn", "p_n_nodes", "p_n_ch_max",
    "p_n_ch_mod", "p_low_slp", "n_overlap", "cycle_id", "pass_id", "continent_id", "wse_sm_q",
    "p_dam_id", "p_res_id", "dschg_q_b", "dschg_gq_b",
})
_FLAG_PATTERNS = (
    re.compile(r"^dschg_g?[a-z]_q$"),  # discharge algorithm quality: dschg_c_q, dschg_gm_q, ...
    re.compile(r"_q_b$|_f_b$"),  # bit flags: reach_q_b, node_q_b, qual_f_b, wse_sm_q_b
)


def is_flag_field(name: str) -> bool:
    """True for integer flag / count / id fields (missing value -999 or -99999999)."""
    return name in _FLAG_FIELDS or any(p.search(name) for p in _FLAG_PATTERNS)


# --------------------------------------------------------------------------------------------
# Quality filter
# --------------------------------------------------------------------------------------------

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "<=": operator.le, "<": operator.lt, "==": operator.eq, "=": operator.eq,
    "!=": operator.ne, ">=": operator.ge, ">": operator.gt,
}
_RULE_RE = re.compile(
    r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|==|!=|<|>|=)\s*([-+]?\d+(?:\.\d+)?)\s*$"
)


@dataclass(frozen=True)
class QualityRule:
    """Keep a pass only when ``field op value`` holds, e.g. ``reach_q <= 1``.

    ``required=False`` ("where present"): when the answer has no such column the rule is skipped
    and noted; a required rule whose column is missing is an error. A pass whose flag is itself a
    fill value fails the rule.
    """

    field: str
    op: str
    value: float
    required: bool = True

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise DefinitionError(
                "unknown comparison in Hydrocron quality rule", field="quality_filter",
                expected="one of <=, <, ==, !=, >=, >", found=self.op,
            )
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.field or ""):
            raise DefinitionError(
                "Hydrocron quality rule needs a field name", field="quality_filter",
                expected="a SWOT field such as 'reach_q'", found=self.field,
            )

    @classmethod
    def parse(cls, text: str | QualityRule, *, required: bool = True) -> QualityRule:
        """``"reach_q <= 1"`` -> QualityRule("reach_q", "<=", 1.0)."""
        if isinstance(text, QualityRule):
            return text
        match = _RULE_RE.match(str(text))
        if match is None:
            raise DefinitionError(
                "Hydrocron quality rule cannot be read", field="quality_filter",
                expected="'<field> <op> <number>' such as 'reach_q <= 1' or 'ice_clim_f == 0'",
                found=text,
            )
        name, op, value = match.groups()
        return cls(name, "==" if op == "=" else op, float(value), required)

    def check(self, values: np.ndarray) -> np.ndarray:
        """Boolean mask of the passes that satisfy the rule (NaN never does)."""
        with np.errstate(invalid="ignore"):
            return np.asarray(_OPS[self.op](values, self.value), dtype=bool) & ~np.isnan(values)

    def __str__(self) -> str:
        return f"{self.field} {self.op} {self.value:g}"


def default_quality_rules(feature: str) -> tuple[QualityRule, ...]:
    """The filter the Hydrocron maintainers recommend, applied where the flags are present.

    Reaches ``reach_q <= 1``, nodes ``node_q <= 1``, lakes ``quality_f <= 1``; all three also
    ``ice_clim_f == 0`` (no ice climatologically expected).
    """
    flag = {"Reach": "reach_q", "Node": "node_q", "PriorLake": "quality_f"}[feature]
    return (QualityRule(flag, "<=", 1.0, required=False),
            QualityRule("ice_clim_f", "==", 0.0, required=False))


def parse_quality_rules(
    rules: Iterable[str | QualityRule] | Mapping[str, str] | None, feature: str
) -> tuple[QualityRule, ...]:
    """``None`` -> the default filter; ``[]`` -> no filter; strings/rules/mapping -> rules.

    A mapping reads ``{"reach_q": "<= 1", "ice_clim_f": "== 0"}``.
    """
    if rules is None:
        return default_quality_rules(feature)
    if isinstance(rules, str):
        rules = [part for part in re.split(r"\s*(?:,|;|\band\b)\s*", rules) if part.strip()]
    elif isinstance(rules, Mapping):
        rules = [f"{name} {cond}" for name, cond in rules.items()]
    return tuple(QualityRule.parse(rule) for rule in rules)


# --------------------------------------------------------------------------------------------
# Answer forms -> table
# --------------------------------------------------------------------------------------------


@dataclass
class HydrocronTable:
    """One answer as columns of strings in pass order (``form`` names the shape it came in)."""

    columns: dict[str, list[str]] = field(default_factory=dict)
    n_rows: int = 0
    form: str = "empty"
    hits: int | None = None  # the envelope's "hits", when there was an envelope

    def units(self) -> dict[str, str]:
        return units_of(self)


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return repr(value)
    return orjson.dumps(value).decode()


def _decode_csv(text: str) -> HydrocronTable:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header: list[str] | None = None
        rows: list[list[str]] = []
        for line_no, row in enumerate(reader, start=1):
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if header is None:
                header = [name.strip() for name in row]
                continue
            if len(row) != len(header):
                raise ParseError(
                    f"Hydrocron CSV line {line_no}: expected {len(header)} fields like the header "
                    f"({','.join(header)}), found {len(row)}; the answer may be truncated"
                )
            rows.append(row)
    except csv.Error as exc:
        raise ParseError(f"Hydrocron CSV answer cannot be read: {exc}") from None
    if header is None:
        return HydrocronTable(form="csv")
    columns = {name: [row[i] for row in rows] for i, name in enumerate(header)}
    return HydrocronTable(columns, len(rows), "csv")


def _decode_geojson(collection: Mapping[str, Any]) -> HydrocronTable:
    features = collection.get("features")
    if features is None:
        return HydrocronTable(form="geojson")
    if not isinstance(features, list):
        raise ParseError(
            f"Hydrocron GeoJSON: expected 'features' to be a list, found {type(features).__name__}"
        )
    columns: dict[str, list[str]] = {}
    n = 0
    compact = False
    for index, feature in enumerate(features):
        props = feature.get("properties") if isinstance(feature, Mapping) else None
        if not isinstance(props, Mapping):
            raise ParseError(f"Hydrocron GeoJSON: feature {index} has no 'properties' object")
        times = props.get("time_str")
        if isinstance(times, list):  # compact: one feature, one list per field
            compact = True
            rows = len(times)
            for name, value in props.items():
                if isinstance(value, list):
                    if len(value) != rows:
                        raise ParseError(
                            f"Hydrocron compact GeoJSON: field {name!r} has {len(value)} values "
                            f"but time_str has {rows}"
                        )
                    cells = [_as_text(v) for v in value]
                else:
                    cells = [_as_text(value)] * rows
                columns.setdefault(name, [""] * n).extend(cells)
        else:
            rows = 1
            for name, value in props.items():
                columns.setdefault(name, [""] * n).append(_as_text(value))
        n += rows
        for cells in columns.values():  # fields this feature lacked
            if len(cells) < n:
                cells.extend([""] * (n - len(cells)))
    return HydrocronTable(columns, n, "geojson-compact" if compact else "geojson")


def _decode_json(doc: Any, preview: str) -> HydrocronTable:
    if isinstance(doc, Mapping):
        if isinstance(doc.get("results"), Mapping):
            results = doc["results"]
            hits = doc.get("hits") if isinstance(doc.get("hits"), int) else None
            text = results.get("csv")
            if isinstance(text, str) and text.strip():
                table = _decode_csv(text)
            elif isinstance(results.get("geojson"), Mapping) and results["geojson"].get("features"):
                table = _decode_geojson(results["geojson"])
            else:
                table = HydrocronTable(form="empty")
            table.hits = hits
            return table
        if doc.get("type") == "FeatureCollection":
            return _decode_geojson(doc)
        if "error" in doc or "message" in doc:
            raise ParseError(f"Hydrocron answered an error instead of data: {preview}")
    raise ParseError(
        "expected a Hydrocron answer (JSON envelope with 'results', a GeoJSON FeatureCollection "
        f"or CSV), found: {preview}"
    )


def decode_answer(body: bytes | str, content_type: str | None = None) -> HydrocronTable:
    """Any Hydrocron answer body -> :class:`HydrocronTable`.

    The shape is read from the body itself (the content type only breaks ties), so a CSV saved
    under a ``.json`` name or an envelope saved as ``.csv`` reads correctly.
    """
    text = body.decode("utf-8", errors="replace") if isinstance(body, (bytes, bytearray)) else body
    start = text.lstrip("\ufeff \t\r\n")
    preview = start[:200].replace("\n", "\\n")
    if not start:
        return HydrocronTable(form="empty")
    first = start[0]
    if first in "{[":
        try:
            doc = orjson.loads(start)
        except orjson.JSONDecodeError:
            if "csv" not in (content_type or ""):
                raise ParseError(f"Hydrocron answer is not valid JSON: {preview}") from None
        else:
            return _decode_json(doc, preview)
    if first == '"':
        try:
            doc = orjson.loads(start)
        except orjson.JSONDecodeError:
            pass  # a CSV whose first header cell is quoted
        else:
            if isinstance(doc, str):  # the JSON-quoted text/csv answer
                return _decode_csv(doc)
    if first == "<":
        raise ParseError(f"Hydrocron answered an HTML page instead of data: {preview}")
    return _decode_csv(start)


def units_of(table: HydrocronTable) -> dict[str, str]:
    """``{"wse": "m", ...}`` from the ``<field>_units`` columns (first non-empty value)."""
    units: dict[str, str] = {}
    for name, cells in table.columns.items():
        if not name.endswith("_units") or name == "_units":
            continue
        base = name[: -len("_units")]
        for cell in cells:
            if cell and cell != NO_DATA:
                units[base] = cell
                break
    return units


# --------------------------------------------------------------------------------------------
# Tables -> series
# --------------------------------------------------------------------------------------------


def _numbers(cells: Sequence[str]) -> np.ndarray:
    return pd.to_numeric(pd.Series(cells, dtype=object), errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan
    )


def _fill_mask(name: str, cells: np.ndarray, values: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        fill = values <= _FILL_BELOW
    if is_flag_field(name):
        fill |= (values == FLAG_FILL) | (values == BIT_FLAG_FILL)
    fill |= cells == NO_DATA
    return fill


def _count(counts: dict[str, int], reason: str, mask: np.ndarray) -> None:
    hit = int(np.count_nonzero(mask))
    if hit:
        counts[reason] = counts.get(reason, 0) + hit


class HydrocronAssembler:
    """Accumulates the tables of one series (one feature, one collection) into a ParseResult.

    ``fields``: the value fields to return (the source identifiers). ``rules``: the quality filter.
    Call :meth:`add` once per answer, in request order, then :meth:`finish`.
    """

    def __init__(self, fields: Sequence[str], rules: Sequence[QualityRule] = ()) -> None:
        self.fields = list(dict.fromkeys(fields))
        self.rules = tuple(rules)
        self.parser = TimestampParser(None, UTC)
        self.rows_read = 0
        self.duplicate_passes = 0  # passes returned by more than one request, kept once
        self.units: dict[str, str] = {}
        self.collections: set[str] = set()
        self.notes: list[str] = []
        self._seen: set[int] = set()
        self._ts: dict[str, list[np.ndarray]] = {f: [] for f in self.fields}
        self._values: dict[str, list[np.ndarray]] = {f: [] for f in self.fields}
        self.dropped: dict[str, dict[str, int]] = {f: {} for f in self.fields}

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def add(self, table: HydrocronTable) -> None:
        n = table.n_rows
        self.rows_read += n
        for name, unit in units_of(table).items():
            self.units.setdefault(name, unit)
        if n == 0:
            return
        cols = table.columns
        if "time_str" not in cols:
            raise ParseError(
                "Hydrocron answer has no 'time_str' column (the pass time); found columns: "
                + ", ".join(cols)
            )
        for value in set(cols.get("collection_shortname", ())):
            if value and value != NO_DATA:
                self.collections.add(value)

        raw_time = np.array([t.strip() for t in cols["time_str"]], dtype=object)
        no_obs = raw_time == NO_DATA
        ts = np.full(n, NAT, dtype=np.int64)
        readable = np.flatnonzero(~no_obs)
        if readable.size:
            values, naive = self.parser.parse(raw_time[readable])
            ts[readable] = self.parser.localize(values, naive)
        bad_ts = ~no_obs & (ts == NAT)
        valid = ~no_obs & ~bad_ts

        # Same pass twice in this answer: the last row wins. Pass already taken from an earlier
        # answer (overlapping windows): skip it quietly, it is the same observation.
        dup_here = np.zeros(n, dtype=bool)
        repeat = np.zeros(n, dtype=bool)
        last_row: dict[int, int] = {}
        for i in np.flatnonzero(valid):
            t = int(ts[i])
            if t in self._seen:
                repeat[i] = True
                continue
            if t in last_row:
                dup_here[last_row[t]] = True
            last_row[t] = int(i)
        self.duplicate_passes += int(np.count_nonzero(repeat))
        self._seen.update(last_row)
        taken = valid & ~repeat & ~dup_here

        quality_ok = np.ones(n, dtype=bool)
        for rule in self.rules:
            cells = cols.get(rule.field)
            if cells is None:
                if rule.required:
                    raise ParseError(
                        f"Hydrocron quality rule '{rule}' needs field {rule.field!r}, which the "
                        f"answer does not contain (columns: {', '.join(cols)})"
                    )
                self._note(f"quality rule '{rule}' skipped: Hydrocron returned no {rule.field!r}")
                continue
            flags = _numbers(cells)
            flags[_fill_mask(rule.field, np.asarray(cells, dtype=object), flags)] = np.nan
            quality_ok &= rule.check(flags)

        for name in self.fields:
            counts = self.dropped[name]
            _count(counts, "no_observation", no_obs)
            _count(counts, "unparsable_timestamp", bad_ts)
            _count(counts, "duplicate_timestamp", dup_here)
            cells_list = cols.get(name)
            if cells_list is None:
                self._note(f"Hydrocron returned no {name!r} column; its passes count as 'empty'")
                _count(counts, "empty", taken)
                continue
            cell_array = np.asarray(cells_list, dtype=object)
            values = _numbers(cells_list)
            empty = np.fromiter((not c.strip() for c in cells_list), dtype=bool, count=n)
            fill = _fill_mask(name, cell_array, values) & ~empty
            not_number = np.isnan(values) & ~empty & ~fill
            infinite = np.isinf(values)
            _count(counts, "empty", taken & empty)
            _count(counts, "fill_value", taken & fill)
            _count(counts, "not_a_number", taken & not_number)
            _count(counts, "infinite", taken & infinite)
            good = taken & ~empty & ~fill & ~not_number & ~infinite
            _count(counts, "quality", good & ~quality_ok)
            keep = good & quality_ok
            self._ts[name].append(ts[keep])
            self._values[name].append(values[keep])

    def finish(self) -> ParseResult:
        series: dict[str, ParsedSeries] = {}
        for name in self.fields:
            ts = np.concatenate(self._ts[name]) if self._ts[name] else np.empty(0, np.int64)
            values = (np.concatenate(self._values[name]) if self._values[name]
                      else np.empty(0, np.float64))
            order = np.argsort(ts, kind="stable")
            ts, values = ts[order], values[order]
            ts.flags.writeable = False
            series[name] = ParsedSeries(timestamps=ts.view("M8[us]"),
                                        values=np.ascontiguousarray(values, dtype=np.float64))
        return ParseResult(
            series=series,
            rows_read=self.rows_read,
            dropped={name: dict(counts) for name, counts in self.dropped.items()},
            timestamps=self.parser.report,
        )


def parse_answer(
    body: bytes | str,
    fields: Sequence[str],
    *,
    feature: str = "Reach",
    quality: Iterable[str | QualityRule] | Mapping[str, str] | None = None,
    content_type: str | None = None,
) -> ParseResult:
    """One saved Hydrocron answer (any form) -> ParseResult, with the default or given filter."""
    assembler = HydrocronAssembler(fields, parse_quality_rules(quality, feature))
    assembler.add(decode_answer(body, content_type))
    return assembler.finish()


def parse_hydrocron(
    stream: BinaryIO, connection: Any, identifiers: Sequence[str], *, chunk_rows: int = 0
) -> ParseResult:
    """``parse_payload`` reader for an already fetched Hydrocron body (``payload.type`` HYDROCRON).

    Scheduled loads go through
    :func:`~hydroserver_provider.sources.hydrocron.client.fetch_timeseries`, which also splits
    windows; this reader serves previews and saved answers.
    """
    payload = connection.payload
    return parse_answer(
        stream.read(),
        identifiers,
        feature=getattr(payload, "feature", "Reach"),
        quality=getattr(payload, "quality_filter", None),
    )
