"""A local Hydrocron: ``GET /hydrocron/v1/timeseries`` replayed from recorded answers, on 127.0.0.1.

``with LocalHydrocron(fixtures_dir) as hc: hc.url`` gives a base URL ending in ``/hydrocron/v1``
that behaves like the real service for everything a loader meets:

* the recorded fixtures (reach 18180900091; nodes 45311101670065 and 44404000150591; lakes
  8510353162 and 7230381002; the unobserved lake 9120274662) indexed by feature, id and
  collection (``*_d_*`` files are version D, the default collection; the others 2.0), plus any
  synthetic feature added with :meth:`LocalHydrocron.add_feature`;
* the window selects rows on ``range_start_time`` when a row has one, else on ``time_str`` (a
  stand-in for the pass start time the real service uses);
* only the requested fields come back (a valid field the stored rows lack is left out), followed
  by the ``<field>_units`` columns;
* parameter validation with Hydrocron's messages; the Accept logic (JSON envelope with ``output``
  and ``compact``; ``text/csv`` raw CSV, JSON-quoted as observed; ``application/geo+json`` bare,
  compact by default; ``output`` with either of those is a 400; anything else a 415);
* the 400 "Results with the specified Feature ID ... were not found" for unknown ids and empty
  windows; 413 above ``max_rows`` rows; 504 for windows longer than ``max_window``; injected
  failures (:meth:`fail_next`, e.g. 429 with ``Retry-After``);
* a request log (:attr:`requests`: raw query string, decoded parameters, headers including
  ``x-hydrocron-key``, status) and a counter.
"""

from __future__ import annotations

import bisect
import csv
import io
import json
import os
import random
import re
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from hydroserver_provider.testing.background import BackgroundHTTPServer, QuietHandler

__all__ = ["LocalHydrocron", "ReplayRequest", "default_fixtures_dir", "synthetic_passes"]

PATH = "/hydrocron/v1/timeseries"
FEATURES = ("Reach", "Node", "PriorLake")
ID_FIELDS = {"Reach": "reach_id", "Node": "node_id", "PriorLake": "lake_id"}
_PRODUCT = {
    "Reach": "SWOT_L2_HR_RiverSP_",
    "Node": "SWOT_L2_HR_RiverSP_",
    "PriorLake": "SWOT_L2_HR_LakeSP_",
}
DEFAULT_VERSION = "D"  # Hydrocron's default collection since 1.8.0

# The fields the public documentation lists per feature, plus version-D additions seen in the
# recorded answers. Anything stored for a feature is accepted as well.
_COMMON = (
    "time time_tai time_str wse wse_u wse_r_u width width_u area_total area_tot_u area_detct "
    "area_det_u area_wse layovr_val node_dist xtrk_dist dark_frac ice_clim_f ice_dyn_f "
    "partial_f xovr_cal_q geoid_hght solid_tide load_tidef load_tideg pole_tide dry_trop_c "
    "wet_trop_c iono_c xovr_cal_c cycle_id pass_id continent_id range_start_time "
    "range_end_time crid geometry collection_shortname collection_version granuleUR "
    "ingest_time river_name p_wse p_wse_var p_width p_wid_var p_dist_out p_length p_dam_id "
    "p_n_ch_max p_n_ch_mod"
)
_REACH = (
    "reach_id p_lat p_lon wse_c wse_c_u slope slope_u slope_r_u slope2 slope2_u slope2_r_u "
    "width_c width_c_u d_x_area d_x_area_u loc_offset dschg_q_b dschg_gq_b reach_q reach_q_b "
    "n_good_nod obs_frac_n geoid_slop n_reach_up n_reach_dn rch_id_up rch_id_dn p_n_nodes p_maf "
    "p_low_slp sword_version "
    + " ".join(
        f"dschg_{g}{a}{s}" for g in ("", "g") for a in "cmbhosi" for s in ("", "_u", "sf", "_q")
    )
)
_NODE = (
    "reach_id node_id lat lon lat_u lon_u flow_angle node_q node_q_b n_good_pix rdr_sig0 "
    "rdr_sig0_u rdr_pol sword_version wse_sm wse_sm_u wse_sm_q wse_sm_q_b"
)
_LAKE = (
    "lake_id reach_id obs_id overlap n_overlap time time_tai time_str wse wse_u wse_r_u wse_std "
    "area_total area_tot_u area_detct area_det_u layovr_val xtrk_dist ds1_l ds1_l_u ds1_q "
    "ds1_q_u ds2_l ds2_l_u ds2_q ds2_q_u quality_f qual_f_b dark_frac ice_clim_f ice_dyn_f "
    "partial_f xovr_cal_q geoid_hght solid_tide load_tidef load_tideg pole_tide dry_trop_c "
    "wet_trop_c iono_c xovr_cal_c lake_name p_res_id p_lon p_lat p_ref_wse p_ref_area p_date_t0 "
    "p_ds_t0 p_storage cycle_id pass_id continent_id range_start_time range_end_time crid "
    "geometry PLD_version collection_shortname collection_version granuleUR ingest_time"
)
VALID_FIELDS = {
    "Reach": frozenset((_COMMON + " " + _REACH).split()),
    "Node": frozenset((_COMMON + " " + _NODE).split()),
    "PriorLake": frozenset(_LAKE.split()),
}
DEFAULT_UNITS = {
    "wse": "m",
    "wse_u": "m",
    "wse_r_u": "m",
    "width": "m",
    "width_u": "m",
    "slope": "m/m",
    "slope_u": "m/m",
    "slope2": "m/m",
    "area_total": "m^2",
    "area_tot_u": "m^2",
    "area_detct": "m^2",
    "d_x_area": "m^2",
    "dschg_c": "m^3/s",
    "dschg_c_u": "m^3/s",
    "dschg_m": "m^3/s",
    "dschg_b": "m^3/s",
    "dark_frac": "1",
    "wse_sm": "m",
}

_TIME_RE = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(Z?)((?:[+-]\d{2}:?\d{2})?)$")
MSG_MISSING = "400: This required parameter is missing: '{name}'"
MSG_FEATURE = "400: feature parameter should be Reach, Node, or PriorLake, not: {value}"
MSG_FEATURE_ID = "400: feature_id cannot contain letters: {value}"
MSG_TIME = (
    "400: start_time and end_time parameters must conform to format: "
    "YYYY-MM-DDTHH:MM:SSZ or YYYY-MM-DDTHH:MM:SS-00:00"
)
MSG_OUTPUT = "400: output parameter should be csv or geojson, not: {value}"
MSG_COMPACT = "400: compact parameter should be true or false, not: {value}"
MSG_FIELDS = "400: fields parameter should contain valid SWOT fields"
MSG_COMBINATION = "400: Invalid combination of Accept header and output request parameter"
MSG_NOT_FOUND = "400: Results with the specified Feature ID {value} were not found"
MSG_UNSUPPORTED = "415: Unsupported media type in Accept request header: {value}."
MSG_TOO_LARGE = "413: The response is larger than the 6 MB limit; request a shorter time window"
MSG_TIMEOUT = "Endpoint request timed out"
MSG_START_AFTER_END = "500: Internal server error"


def default_fixtures_dir() -> Path | None:
    """``$HYDROCRON_FIXTURES``, else ``<repo>/../shared/fixtures/hydrocron`` when it exists."""
    env = os.environ.get("HYDROCRON_FIXTURES")
    if env:
        return Path(env)
    candidate = (
        Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "hydrocron"
    ).resolve()
    return candidate if candidate.is_dir() else None


def collection_shortname(feature: str, collection: str) -> str:
    """``("Reach", "D")`` -> ``SWOT_L2_HR_RiverSP_D``; full names pass through."""
    return collection if collection.startswith("SWOT_") else _PRODUCT[feature] + collection


def _parse_time(text: str | None) -> datetime | None:
    if not text or text == "no_data":
        return None
    match = _TIME_RE.match(text.strip())
    if match is None:
        return None
    base, _, offset = match.groups()
    moment = datetime.fromisoformat(base)
    if offset:
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        moment -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return moment.replace(tzinfo=UTC)


def _wkt(geometry: Mapping[str, Any] | None) -> str:
    if not geometry:
        return ""
    kind = str(geometry.get("type", "")).upper()
    coords = geometry.get("coordinates") or []
    if kind == "POINT" and len(coords) >= 2:
        return f"POINT ({coords[0]} {coords[1]})"
    if kind == "LINESTRING":
        return "LINESTRING (" + ", ".join(f"{x} {y}" for x, y, *_ in coords) + ")"
    return ""


@dataclass(frozen=True)
class ReplayRequest:
    """One request as received: raw query string, decoded parameters, headers, answer status."""

    path: str
    query: str
    params: dict[str, str]
    headers: dict[str, str]
    status: int
    rows: int = 0

    @property
    def api_key(self) -> str | None:
        for name, value in self.headers.items():
            if name.lower() == "x-hydrocron-key":
                return value
        return None

    @property
    def window(self) -> tuple[str, str]:
        return self.params.get("start_time", ""), self.params.get("end_time", "")


@dataclass
class _Series:
    feature: str
    feature_id: str
    collection: str
    rows: list[dict[str, str]] = field(default_factory=list)
    geometries: list[dict | None] = field(default_factory=list)
    keys: list[datetime] = field(default_factory=list)
    units: dict[str, str] = field(default_factory=dict)
    columns: dict[str, None] = field(default_factory=dict)  # ordered set of stored fields

    def add_rows(
        self, rows: Iterable[Mapping[str, Any]], geometries: Iterable[dict | None]
    ) -> None:
        for row, geometry in zip(rows, geometries):
            clean = {
                str(k): "" if v is None else str(v)
                for k, v in row.items()
                if not str(k).endswith("_units")
            }
            clean.setdefault(ID_FIELDS[self.feature], self.feature_id)
            for name in clean:
                self.columns.setdefault(name, None)
            key = _parse_time(clean.get("range_start_time")) or _parse_time(clean.get("time_str"))
            if key is None:
                continue  # never selected by a window
            at = bisect.bisect_right(self.keys, key)
            self.keys.insert(at, key)
            self.rows.insert(at, clean)
            self.geometries.insert(at, geometry)

    def select(self, start: datetime, end: datetime) -> tuple[list[dict[str, str]], list]:
        lo = bisect.bisect_left(self.keys, start)
        hi = bisect.bisect_right(self.keys, end)
        return self.rows[lo:hi], self.geometries[lo:hi]


def _read_fixture(path: Path) -> tuple[list[dict[str, str]], list[dict | None], dict[str, str]]:
    """Rows, geometries and units of one recorded answer (envelope+CSV or FeatureCollection)."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    units: dict[str, str] = {}
    rows: list[dict[str, str]] = []
    geometries: list[dict | None] = []
    if isinstance(doc, dict) and "results" in doc:
        text = doc["results"].get("csv") or ""
        for row in csv.DictReader(io.StringIO(text)):
            rows.append(dict(row))
            geometries.append(None)
    else:
        for feature in doc.get("features", []):
            rows.append(dict(feature.get("properties") or {}))
            geometries.append(feature.get("geometry"))
    for row in rows:
        for name, value in list(row.items()):
            if name.endswith("_units"):
                if value:
                    units.setdefault(name[:-6], value)
                del row[name]
    return rows, geometries, units


class LocalHydrocron(BackgroundHTTPServer):
    """A Hydrocron stand-in on 127.0.0.1 (a free port); use as a context manager.

    ``max_rows``: answer 413 when a request would return more rows. ``max_window``: answer 504
    when a request's window is longer. ``latency``: seconds to wait before each answer.
    """

    thread_name = "local-hydrocron"

    def __init__(
        self,
        fixtures_dir: str | Path | None = None,
        *,
        load_fixtures: bool = True,
        max_rows: int | None = None,
        max_window: timedelta | None = None,
        latency: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.max_rows = max_rows
        self.max_window = max_window
        self.latency = latency
        self.requests: list[ReplayRequest] = []
        self._series: dict[tuple[str, str, str], _Series] = {}
        self._failures: deque[tuple[int, str | None, dict[str, str]]] = deque()
        self._lock = threading.Lock()
        self._count = 0
        if load_fixtures:
            directory = Path(fixtures_dir) if fixtures_dir else default_fixtures_dir()
            if directory is not None:
                self.load_fixtures(directory)
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True

    # -- data --------------------------------------------------------------------------------

    def load_fixtures(self, directory: str | Path) -> None:
        """Index the recorded answers under ``directory``.

        That is ``ops/<feature>/*`` and the lake pass.
        """
        directory = Path(directory)
        kinds = {"reach": "Reach", "node": "Node", "priorlake": "PriorLake"}
        paths = sorted(directory.glob("ops/*/*.csv")) + sorted(directory.glob("ops/*/*.geojson"))
        for path in paths:
            feature = kinds.get(path.parent.name)
            if feature is None:
                continue
            version = "D" if "_d_" in path.name else "2.0"
            rows, geometries, units = _read_fixture(path)
            self._merge(feature, version, rows, geometries, units)
        unobserved = directory / "geojson_lakes_unobserved.json"
        if unobserved.exists():
            rows, geometries, units = _read_fixture(unobserved)
            self._merge("PriorLake", "2.0", rows, geometries, units)

    def _merge(
        self,
        feature: str,
        version: str,
        rows: list[dict[str, str]],
        geometries: list,
        units: dict[str, str],
    ) -> None:
        """Several recordings of one feature (basic, comprehensive, discharge) -> one table."""
        id_field = ID_FIELDS[feature]
        by_id: dict[str, list[tuple[dict[str, str], Any]]] = {}
        for row, geometry in zip(rows, geometries):
            by_id.setdefault(row.get(id_field, ""), []).append((row, geometry))
        with self._lock:
            for feature_id, items in by_id.items():
                key = (feature, feature_id, collection_shortname(feature, version))
                series = self._series.get(key)
                if series is None:
                    series = self._series[key] = _Series(feature, feature_id, key[2])
                series.units.update({k: v for k, v in units.items() if k not in series.units})
                index = {
                    (r.get("range_start_time"), r.get("time_str")): i
                    for i, r in enumerate(series.rows)
                }
                new_rows, new_geoms = [], []
                for row, geometry in items:
                    at = index.get((row.get("range_start_time"), row.get("time_str")))
                    if at is None:
                        new_rows.append(row)
                        new_geoms.append(geometry)
                        continue
                    series.rows[at].update(row)
                    for name in row:
                        series.columns.setdefault(name, None)
                    if geometry is not None:
                        series.geometries[at] = geometry
                series.add_rows(new_rows, new_geoms)

    def add_feature(
        self,
        feature: str,
        feature_id: str | int,
        rows: Iterable[Mapping[str, Any]],
        *,
        collection: str = DEFAULT_VERSION,
        units: Mapping[str, str] | None = None,
        geometry: Mapping[str, Any] | None = None,
    ) -> str:
        """Serve synthetic passes for ``feature_id`` (each row needs ``time_str``); returns the
        collection short name. Units default to :data:`DEFAULT_UNITS` for the fields present."""
        if feature not in FEATURES:
            raise ValueError(f"feature must be one of {FEATURES}, found {feature!r}")
        rows = list(rows)
        name = collection_shortname(feature, collection)
        present = {k for row in rows for k in row}
        with self._lock:
            key = (feature, str(feature_id), name)
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = _Series(feature, str(feature_id), name)
            series.units.update({k: v for k, v in DEFAULT_UNITS.items() if k in present})
            if feature == "PriorLake" and "area_total" in present:
                series.units["area_total"] = "km^2"
            series.units.update(units or {})
            series.add_rows(rows, [dict(geometry) if geometry else None] * len(rows))
        return name

    def features(self) -> list[tuple[str, str, str]]:
        """(feature, feature_id, collection) of every series served."""
        with self._lock:
            return sorted(self._series)

    # -- failures and log ----------------------------------------------------------------------

    def fail_next(
        self,
        times: int = 1,
        status: int = 429,
        *,
        retry_after: str | float | None = None,
        body: str | None = None,
    ) -> None:
        """The next ``times`` requests answer ``status`` (429 carries ``Retry-After``)."""
        headers = {}
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        elif status == 429:
            headers["Retry-After"] = "1"
        with self._lock:
            for _ in range(times):
                self._failures.append((status, body, headers))

    @property
    def request_count(self) -> int:
        with self._lock:
            return self._count

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()
            self._count = 0

    # -- server --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        assert isinstance(host, str)  # an IPv4/IPv6 server's address is (host, port, ...)
        return f"http://{host}:{port}/hydrocron/v1"

    # -- the service ---------------------------------------------------------------------------

    def answer(
        self, params: Mapping[str, str], accept: str | None
    ) -> tuple[int, str, bytes, dict[str, str], int]:
        """(status, content type, body, headers, rows) for one request; no network involved."""
        started = time.perf_counter()

        def error(status: int, message: str, key: str = "error") -> tuple:
            return status, "application/json", json.dumps({key: message}).encode(), {}, 0

        media = [m.split(";")[0].strip().lower() for m in (accept or "").split(",") if m.strip()]
        kind = "json" if not media else None
        for m in media:
            if m == "application/json" or m in ("*/*", "application/*"):
                kind = "json"
            elif m == "text/csv":
                kind = "csv"
            elif m == "application/geo+json":
                kind = "geo"
            if kind:
                break
        if kind is None:
            return error(415, MSG_UNSUPPORTED.format(value=accept))
        for name in ("feature", "feature_id", "start_time", "end_time", "fields"):
            if not params.get(name):
                return error(400, MSG_MISSING.format(name=name))
        feature = params["feature"]
        if feature not in FEATURES:
            return error(400, MSG_FEATURE.format(value=feature))
        feature_id = params["feature_id"]
        if not feature_id.isdigit():
            return error(400, MSG_FEATURE_ID.format(value=feature_id))
        start, end = _parse_time(params["start_time"]), _parse_time(params["end_time"])
        if start is None or end is None:
            return error(400, MSG_TIME)
        output = params.get("output")
        if output is not None and output not in ("csv", "geojson"):
            return error(400, MSG_OUTPUT.format(value=output))
        compact_param = params.get("compact")
        if compact_param is not None and compact_param.lower() not in ("true", "false"):
            return error(400, MSG_COMPACT.format(value=compact_param))
        fields = params["fields"].split(",")
        collection = collection_shortname(feature, params.get("collection_name") or DEFAULT_VERSION)
        with self._lock:
            series = self._series.get((feature, feature_id, collection))
            known = VALID_FIELDS[feature] | set(series.columns if series else ())
        if any(f not in known for f in fields):
            return error(400, MSG_FIELDS)
        if kind != "json" and output is not None:
            return error(400, MSG_COMBINATION)
        if start > end:
            return error(500, MSG_START_AFTER_END)
        if self.max_window is not None and end - start > self.max_window:
            return error(504, MSG_TIMEOUT, key="message")
        with self._lock:
            rows, geometries = series.select(start, end) if series else ([], [])
            columns = [
                f
                for f in dict.fromkeys(fields)
                if series and (f in series.columns or f == "geometry")
            ]
            units = {f: series.units[f] for f in columns if series and f in series.units}
        if not rows:
            return error(400, MSG_NOT_FOUND.format(value=feature_id))
        if self.max_rows is not None and len(rows) > self.max_rows:
            return error(413, MSG_TOO_LARGE)
        compact = (compact_param or ("true" if kind == "geo" else "false")).lower() == "true"
        if kind == "csv" or (kind == "json" and output == "csv"):
            text = self._csv(columns, units, rows, geometries)
            if kind == "csv":
                return 200, "text/csv", json.dumps(text).encode(), {}, len(rows)
            result = {"csv": text, "geojson": {}}
        else:
            collection_doc = self._geojson(feature, columns, units, rows, geometries, compact)
            if kind == "geo":
                return (
                    200,
                    "application/geo+json",
                    json.dumps(collection_doc).encode(),
                    {},
                    len(rows),
                )
            result = {"csv": "", "geojson": collection_doc}
        envelope = {
            "status": "200 OK",
            "time": round((time.perf_counter() - started) * 1000, 3),
            "hits": len(rows),
            "results": result,
        }
        return 200, "application/json", json.dumps(envelope).encode(), {}, len(rows)

    @staticmethod
    def _csv(
        columns: Sequence[str],
        units: Mapping[str, str],
        rows: list[dict[str, str]],
        geometries: list,
    ) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([*columns, *(f"{f}_units" for f in units)])
        for row, geometry in zip(rows, geometries):
            cells = [_wkt(geometry) if f == "geometry" else row.get(f, "") for f in columns]
            writer.writerow([*cells, *units.values()])
        return out.getvalue()

    @staticmethod
    def _geojson(
        feature: str,
        columns: Sequence[str],
        units: Mapping[str, str],
        rows: list[dict[str, str]],
        geometries: list,
        compact: bool,
    ) -> dict:
        props_fields = [f for f in columns if f != "geometry"]
        empty_geometry: dict[str, Any] = {
            "type": "Point" if feature != "Reach" else "LineString",
            "coordinates": [],
        }
        if compact:
            properties: dict[str, list[str]] = {
                f: [row.get(f, "") for row in rows] for f in props_fields
            }
            for f, unit in units.items():
                properties[f"{f}_units"] = [unit] * len(rows)
            geometry = next((g for g in geometries if g), None) or empty_geometry
            return {
                "type": "FeatureCollection",
                "features": [
                    {"id": "0", "type": "Feature", "properties": properties, "geometry": geometry}
                ],
            }
        features = []
        for i, (row, geometry) in enumerate(zip(rows, geometries)):
            feature_properties = {f: row.get(f, "") for f in props_fields}
            feature_properties.update({f"{f}_units": unit for f, unit in units.items()})
            features.append(
                {
                    "id": str(i),
                    "type": "Feature",
                    "properties": feature_properties,
                    "geometry": geometry or empty_geometry,
                }
            )
        return {"type": "FeatureCollection", "features": features}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class HydrocronHandler(QuietHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                params = {
                    k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()
                }
                headers = dict(self.headers.items())
                with server._lock:
                    server._count += 1
                    failure = server._failures.popleft() if server._failures else None
                if server.latency:
                    time.sleep(server.latency)
                extra: dict[str, str] = {}
                rows = 0
                if failure is not None:
                    status, body, extra = failure
                    key = "message" if status in (429, 504) else "error"
                    default = {429: "Too Many Requests", 504: MSG_TIMEOUT}.get(
                        status, f"{status}: injected failure"
                    )
                    content_type = "application/json"
                    data = json.dumps({key: body if body is not None else default}).encode()
                elif parts.path.rstrip("/") != PATH:
                    status, content_type = 403, "application/json"
                    data = json.dumps({"message": "Missing Authentication Token"}).encode()
                else:
                    status, content_type, data, extra, rows = server.answer(
                        params, self.headers.get("Accept")
                    )
                with server._lock:
                    server.requests.append(
                        ReplayRequest(parts.path, parts.query, params, headers, status, rows)
                    )
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return HydrocronHandler


def synthetic_passes(
    count: int,
    *,
    start: datetime = datetime(2024, 1, 1, tzinfo=UTC),
    every: timedelta = timedelta(days=10, hours=12),
    feature: str = "Reach",
    seed: int = 0,
) -> list[dict[str, str]]:
    """``count`` plausible passes (wse, width, slope or area_total, quality flags all good)."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        moment = start + i * every + timedelta(seconds=rng.randrange(0, 600))
        row = {
            "time_str": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "wse": f"{1000 + rng.uniform(-5, 5):.4f}",
            "ice_clim_f": "0",
        }
        if feature == "PriorLake":
            row.update(area_total=f"{rng.uniform(0.01, 5):.6f}", quality_f="0")
        else:
            row.update(width=f"{rng.uniform(50, 500):.6f}", slope=f"{rng.uniform(0, 1e-3):.10f}")
            row["reach_q" if feature == "Reach" else "node_q"] = "0"
        rows.append(row)
    return rows
