"""Ingestion speed and memory, side by side with hydroserverpy's ETL (run by hand).

    .venv/bin/python bench/bench_ingest.py            # prints the table (about 8 minutes)
    .venv/bin/python bench/bench_ingest.py --write    # ... and puts it into docs/benchmarks.md
    .venv/bin/python bench/bench_ingest.py --profile  # ... with where this provider's time goes

What is compared, on the same input and the same local HydroServer:

- parse: a logger CSV (``ingest_inputs.py``: 4 value columns, America/Denver local time, strftime
  format) -> per-column series; input rows/s and peak RSS, then peak RSS at several file sizes;
- body serialisation: the bulk-create bodies for 4 x 100k parsed rows, each side with its own
  default chunking, without the network; MB of body and rows per CPU-second;
- a whole run over local HTTP: the source served by ``LocalSourceServer`` (it honours
  ``?start=``), HydroServer by ``LocalHydroServer`` with ``api_key_cost`` seconds per API-key
  request like the real server; wall time, requests (from ``request_counts``) and rows stored;
- a no-op run: the same again right after, when the source has nothing new; and a no-op run into
  16 datastreams, where the per-datastream cost of reading the loaded-through time shows.

Every measurement runs in a fresh process (``ingest_ours.py`` in this virtualenv,
``ingest_hydroserverpy.py`` in hydroserverpy's own virtualenv, created here under ``bench/.work/``
from PyPI), so peak RSS is that measurement's own and runs cannot warm each other up. The two sides
alternate within each repeat, so a busy moment on the shared machine hits both.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import ingest_inputs as inputs

from hydroserver_provider.testing.hydroserver import LocalHydroServer
from hydroserver_provider.testing.sources import LocalSourceServer
from hydroserver_provider.testing.stations import parse_query_time

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / ".work"
VENV = WORK / "hydroserverpy-venv"
DOCS = REPO / "docs" / "benchmarks.md"
SECTION = "## Ingestion"
BEGIN, END = "<!-- bench_ingest: begin -->", "<!-- bench_ingest: end -->"
OURS, THEIRS = "ours", "hydroserverpy"
LAYOUT = {"timestamp_key": inputs.TIMESTAMP_KEY, "timestamp_format": inputs.TIMESTAMP_FORMAT,
          "zone": inputs.ZONE, "header_row": inputs.HEADER_ROW,
          "data_start_row": inputs.DATA_START_ROW, "columns": list(inputs.COLUMNS)}


# ---------------------------------------------------------------------------------- processes


def hydroserverpy_python() -> Path:
    """hydroserverpy's virtualenv (created and filled from PyPI on first use)."""
    python = VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {VENV.relative_to(REPO)} and installing hydroserverpy from PyPI ...",
              flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "hydroserverpy"],
                       check=True)
    return python


def versions(python: Path, packages: tuple[str, ...]) -> dict[str, str]:
    code = ("import importlib.metadata as m, json, sys; "
            f"print(json.dumps({{p: m.version(p) for p in {list(packages)!r}}}))")
    out = subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def worker(side: str, command: str, args: dict) -> dict:
    """Run one measurement in a fresh process; its answer is the last line it prints."""
    if side == OURS:
        cmd = [sys.executable, str(HERE / "ingest_ours.py")]
    else:
        cmd = [str(hydroserverpy_python()), str(HERE / "ingest_hydroserverpy.py")]
        args = {**args, "layout": LAYOUT}
    began = time.perf_counter()
    done = subprocess.run([*cmd, command, json.dumps(args)], capture_output=True, text=True,
                          cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"{side} {command} failed:\n{done.stderr[-3000:]}")
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    answer["process_seconds"] = time.perf_counter() - began
    return answer


# ------------------------------------------------------------------------------------ figures


@dataclass
class Figure:
    """One line of the table: each side's repeated values, and how to judge the ratio."""

    label: str
    unit: str
    values: dict[str, list[float]] = field(default_factory=lambda: {OURS: [], THEIRS: []})
    goal: str = ""
    judge: Callable[[float, float], bool] | None = None  # (ours, theirs) -> met
    digits: int = 0

    def add(self, side: str, value: float) -> None:
        self.values[side].append(value)

    def median(self, side: str) -> float:
        return statistics.median(self.values[side])

    def cell(self, side: str) -> str:
        vals = self.values[side]
        if not vals:
            return "–"
        text = _fmt(self.median(side), self.digits)
        if len(vals) > 1 and min(vals) != max(vals):
            text += f" ({_fmt(min(vals), self.digits)}–{_fmt(max(vals), self.digits)})"
        return text

    def ratio(self) -> str:
        ours, theirs = self.median(OURS), self.median(THEIRS)
        if not ours or not theirs:
            return "–"
        r = ours / theirs
        return f"{r:.3g}×" if r < 1 else f"{r:.2f}×" if r < 10 else f"{r:.0f}×"

    def verdict(self) -> str:
        if self.judge is None:
            return ""
        return "met" if self.judge(self.median(OURS), self.median(THEIRS)) else "**missed**"

    def best_ratio(self) -> float:
        """Ratio of the best runs of a rate (noise on a shared machine only ever slows a run)."""
        return max(self.values[OURS]) / max(self.values[THEIRS])

    def row(self) -> str:
        return (f"| {self.label} ({self.unit}) | {self.cell(OURS)} | {self.cell(THEIRS)} | "
                f"{self.ratio()} | {self.goal} | {self.verdict()} |")


def _fmt(value: float, digits: int) -> str:
    if digits == 0 and abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


# ------------------------------------------------------------------------------- measurements


def input_file(rows: int) -> Path:
    return inputs.write_logger_csv(WORK / f"logger-{rows}.csv", rows)


def measure_parse(rows: int, repeats: int, figures: dict[str, Figure]) -> dict[str, dict]:
    """Parse the same file in fresh processes; returns the median memory figures per side."""
    path = input_file(rows)
    bases: dict[str, list[float]] = {OURS: [], THEIRS: []}
    for _ in range(repeats):
        for side in (OURS, THEIRS):
            answer = worker(side, "parse", {"path": str(path), "rows": rows})
            figures["parse_cpu"].add(side, answer["rows"] / answer["cpu_seconds"])
            figures["parse_wall"].add(side, answer["rows"] / answer["seconds"])
            figures["parse_peak"].add(side, answer["peak_mib"])
            bases[side].append(answer["base_mib"])
    return {side: {"peak_mib": figures["parse_peak"].median(side),
                   "base_mib": statistics.median(bases[side])} for side in (OURS, THEIRS)}


def measure_memory_growth(sizes: list[int], known: dict[int, dict]) -> dict:
    """Peak and starting RSS per file size and side (one run each; a repeated size is reused)."""
    memory: dict[int, dict] = {}
    for rows in sizes:
        if rows in known:
            memory[rows] = known[rows]
            continue
        path = input_file(rows)
        memory[rows] = {side: worker(side, "parse", {"path": str(path), "rows": rows})
                        for side in (OURS, THEIRS)}
    return memory


def measure_serialisation(rows: int, repeats: int, figures: dict[str, Figure]) -> dict:
    """Bulk-create bodies for the parsed file, without the network; returns the last answers."""
    path = input_file(rows)
    examples = {}
    for _ in range(repeats):
        for side in (OURS, THEIRS):
            answer = worker(side, "serialize", {"path": str(path)})
            figures["ser_speed"].add(side, answer["bytes"] / answer["cpu_seconds"] / 1e6)
            figures["ser_rate"].add(side, answer["rows"] / answer["cpu_seconds"])
            examples[side] = answer
    return examples


def measure_runs(rows: int, repeats: int, api_key_cost: float, wide: int,
                 figures: dict[str, Figure], profile: bool, row_cost: float = 0.0) -> dict:
    """Whole runs, then no-op runs, into fresh datastreams; returns request counts by endpoint.

    Each repeat: a whole run of the 4 columns into 4 empty datastreams, then the same again (the
    source now has nothing new); then a no-op run into ``wide`` datastreams (each column mapped to
    several) seeded directly with the source's last instant.
    """
    source = inputs.logger_file(rows)
    last = datetime.fromtimestamp(int(source.utc_us[-1]) / 1e6, UTC)

    def answer(query: dict[str, str]) -> bytes:
        start = parse_query_time(query.get("start"))
        if start is None:
            return source.preamble + source.body
        return source.after(int(start.timestamp()) * 1_000_000 + start.microsecond)

    detail: dict[str, dict] = {}
    with LocalHydroServer(api_key_cost=api_key_cost, row_cost=row_cost) as hs, \
            LocalSourceServer() as src:
        src.add("/logger.csv", answer)
        base = {"url": hs.url, "api_key": hs.api_key, "workspace_id": hs.workspace_id,
                "source_url": src.url + "/logger.csv?start={start}"}

        def run(side: str, kind: str, mappings: list[list[str]], rep: int) -> dict:
            hs.reset_counts()
            args = {**base, "mappings": mappings}
            if profile and side == OURS and rep == 0:
                args["profile"] = str(WORK / f"profile-{kind}.txt")
            result = worker(side, "run", args)
            if result.get("error") or result["status"] != "SUCCESS":
                raise RuntimeError(f"{side} {kind} run failed: {result}")
            counts = hs.request_counts
            figures[f"{kind}_seconds"].add(side, result["seconds"])
            figures[f"{kind}_requests"].add(side, sum(counts.values()))
            detail[f"{side} {kind}"] = dict(counts)
            return result

        for rep in range(repeats):
            for side in (OURS, THEIRS):
                mappings = [[column, hs.create_datastream(name=f"{side} {rep} {column}", unit="ft")]
                            for column in inputs.COLUMNS]
                run(side, "run", mappings, rep)
                stored = sum(hs.datastream(d)["valueCount"] or 0 for _, d in mappings)
                figures["run_stored"].add(side, stored)
                run(side, "noop", mappings, rep)
                columns = inputs.COLUMNS
                wide_mappings = [[columns[i % len(columns)],
                                  hs.create_datastream(name=f"{side} {rep} wide {i}", unit="ft",
                                                       observations=[(last, 0.0)])]
                                 for i in range(wide)]
                run(side, "wide", wide_mappings, rep)
        if hs.errors:
            raise RuntimeError(f"the local HydroServer failed: {hs.errors[0]}")
    return detail


# ------------------------------------------------------------------------------------- report

# Where our time goes: (label, (file name ending, function name), ...) whose cumulative time is
# shown. Datastreams load in worker threads, which cProfile does not see: their time is the main
# thread's wait for them (``Executor.map``'s result iterator), or ``load_datastream`` itself when
# one datastream loads on the main thread.
PARSE_PARTS = (
    ("pandas' C reader (tokenising, 4 float columns, 1 string column)",
     ("c_parser_wrapper.py", "read")),
    ("  of which our comment-line filter feeding it", ("csv_reader.py", "readinto")),
    ("timestamp text to datetime (pandas to_datetime)", ("datetimes.py", "to_datetime")),
    ("DST-aware localisation of the whole column", ("columns.py", "localize")),
    ("growing the result arrays", ("parse.py", "append")),
)
RUN_PARTS = (
    ("HydroServer metadata (the one list request)", ("pipeline.py", "_metadata")),
    ("source request", ("fetch.py", "open_source")),
    ("parse", ("parse.py", "parse_payload")),
    ("loading (bulk-create requests, up to 4 datastreams at once)",
     ("_base.py", "result_iterator"), ("load.py", "load_datastream")),
)


def profile_lines(title: str, path: Path, total: tuple[str, str], parts: tuple) -> list[str]:
    """Cumulative time of a few functions of a cProfile dump, as shares of ``total``."""
    stats = pstats.Stats(str(path)).stats  # (file, line, name) -> (cc, nc, tt, ct, callers)

    def cumulative(file_end: str, name: str) -> float:
        return sum(v[3] for (f, _, n), v in stats.items() if f.endswith(file_end) and n == name)

    whole = cumulative(*total)
    if not whole:
        return []
    lines = []
    for label, *functions in parts:
        if not any(f.endswith(file_end) and n == name
                   for f, _, n in stats for file_end, name in functions):
            # a renamed or moved function would otherwise show as 0 s
            raise RuntimeError(f"profile of {title}: none of {functions} was called")
        spent = sum(cumulative(file_end, name) for file_end, name in functions)
        indent = "    " if label.startswith(" ") else "  "
        lines.append(f"{indent}- {label.strip()}: {spent:.2f} s ({spent / whole:.0%})")
    return [f"- {title}, {whole:.2f} s under cProfile:", *lines]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{mem_kib / 1024**2:.0f} GiB"
    except OSError:
        memory = "unknown memory"
    return f"{cpu}, {os.cpu_count()} cores, {memory}, Linux {platform.release()}"


def report(args, figures: dict[str, Figure], growth: dict, requests: dict, examples: dict,
           our_versions: dict, their_versions: dict, seconds: float, profiles: list[str]) -> str:
    lines = [
        f"Measured {date.today().isoformat()} on {machine()} (shared with other work), "
        f"Python {platform.python_version()}. This provider: pandas {our_versions['pandas']}, "
        f"numpy {our_versions['numpy']}, orjson {our_versions['orjson']}. hydroserverpy "
        f"{their_versions['hydroserverpy']} from PyPI in its own virtualenv (pandas "
        f"{their_versions['pandas']}, numpy {their_versions['numpy']}), default settings.",
        "",
        f"Reproduce: `{' '.join(_cli(args))}` ({seconds / 60:.1f} minutes in all; the "
        "defaults are the sizes shown).",
        "",
        f"Medians of {args.parse_repeats} parses and serialisations and {args.repeats} runs, "
        "(min–max) where they differ; each measurement a fresh process. Parse and serialisation "
        "are single-threaded CPU work, so they are also given per CPU-second of their process: "
        "on this shared machine the wall clock also counts time spent waiting for the CPU. "
        "Source and HydroServer are local; HydroServer sleeps "
        f"{args.api_key_cost:g} s per API-key request, as the real one spends that long hashing "
        "the key" + (f", and {args.row_cost * 1000:g} ms per bulk-created row."
                     if args.row_cost else ", and nothing per row."),
        "",
        "| Measurement | this provider | hydroserverpy | this ÷ hydroserverpy | goal | |",
        "|---|---|---|---|---|---|",
        *(figure.row() for figure in figures.values()),
        "",
        "Ratio of the best runs (load on the machine only ever slows a run down): "
        + ", ".join(f"{figures[k].label} ({figures[k].unit}) {figures[k].best_ratio():.2f}×"
                    for k in ("parse_cpu", "parse_wall", "ser_speed")) + ".",
        "",
        "Peak RSS of the parse process as the input grows, in MiB, and in brackets its growth "
        "over the RSS before parsing (interpreter and imports, 80–90 MiB):",
        "",
        "| rows | file | this provider | hydroserverpy |",
        "|---|---|---|---|",
    ]
    for rows, memory in sorted(growth.items()):
        size = input_file(rows).stat().st_size / 1e6
        cells = [f"{memory[side]['peak_mib']:.0f} "
                 f"(+{memory[side]['peak_mib'] - memory[side]['base_mib']:.0f})"
                 for side in (OURS, THEIRS)]
        lines.append(f"| {rows:,} | {size:.0f} MB | {cells[0]} | {cells[1]} |")
    lines += ["", "HydroServer requests by endpoint (last repeat):", ""]
    for name, counts in requests.items():
        shown = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "none"
        lines.append(f"- {name}: {shown}")
    lines += ["", "Bulk-create bodies: " + "; ".join(
        f"{side}: {examples[side]['bodies']} bodies, {examples[side]['bytes'] / 1e6:.1f} MB, "
        f"starting `{examples[side]['example'][:60]}…`" for side in (OURS, THEIRS))]
    if profiles:
        lines += ["", "Where this provider's time goes (cProfile, one extra run each):", "",
                  *profiles]
    return "\n".join(lines)


def _cli(args) -> list[str]:
    return [".venv/bin/python", "bench/bench_ingest.py",
            f"--parse-rows {args.parse_rows}",
            f"--growth-rows {','.join(map(str, args.growth_rows))}",
            f"--run-rows {args.run_rows}", f"--repeats {args.repeats}",
            f"--parse-repeats {args.parse_repeats}", f"--noop-datastreams {args.noop_datastreams}",
            f"--api-key-cost {args.api_key_cost}",
            *([f"--row-cost {args.row_cost}"] if args.row_cost else []),
            *(["--profile"] if args.profile else []),
            "--write"]


def write_docs(text: str) -> None:
    """Replace the generated block of the Ingestion section (or its ``_pending_``)."""
    doc = DOCS.read_text()
    block = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in doc and END in doc:
        head, rest = doc.split(BEGIN, 1)
        doc = head + block + rest.split(END, 1)[1]
    else:
        start = doc.index(SECTION)
        pending = doc.index("_pending_", start)
        doc = doc[:pending] + block + doc[pending + len("_pending_"):]
    DOCS.write_text(doc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parse-rows", type=int, default=1_000_000)
    parser.add_argument("--growth-rows", type=lambda s: [int(x) for x in s.split(",")],
                        default=[250_000, 1_000_000, 3_000_000])
    parser.add_argument("--run-rows", type=int, default=100_000,
                        help="rows per column in the whole run (4 columns -> 4 datastreams)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the runs")
    parser.add_argument("--parse-repeats", type=int, default=5,
                        help="repeats of the parse and serialisation measurements")
    parser.add_argument("--noop-datastreams", type=int, default=16,
                        help="datastreams of the second no-op measurement")
    parser.add_argument("--api-key-cost", type=float, default=1.0,
                        help="seconds the local HydroServer spends per API-key request")
    parser.add_argument("--row-cost", type=float, default=0.0,
                        help="seconds the local HydroServer spends per bulk-created row")
    parser.add_argument("--profile", action="store_true",
                        help="also write cProfile summaries of our parse and runs to bench/.work/")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()

    began = time.perf_counter()
    WORK.mkdir(parents=True, exist_ok=True)
    their_versions = versions(hydroserverpy_python(), ("hydroserverpy", "pandas", "numpy"))
    our_versions = versions(Path(sys.executable), ("pandas", "numpy", "orjson"))
    n = args.parse_rows
    columns = len(inputs.COLUMNS)
    figures = {
        "parse_cpu": Figure(f"parse {n:,} rows × {columns} columns", "input rows per CPU-second",
                            goal="≥ 6×", judge=lambda o, t: o >= 6 * t),
        "parse_wall": Figure(f"parse {n:,} rows × {columns} columns", "input rows/s, wall clock",
                             goal="≥ 6×", judge=lambda o, t: o >= 6 * t),
        "parse_peak": Figure(f"parse {n:,} rows: peak RSS", "MiB", goal="≤ 0.5×",
                             judge=lambda o, t: o <= 0.5 * t),
        "ser_speed": Figure(f"bulk-create bodies for {columns} × {args.run_rows:,} rows",
                            "MB per CPU-second", digits=1, goal="≥ 40 MB/s",
                            judge=lambda o, t: o >= 40),
        "ser_rate": Figure("bulk-create bodies", "rows per CPU-second"),
        "run_seconds": Figure(f"whole run, {columns} × {args.run_rows:,} rows", "s", digits=1,
                              goal="≤ 0.33× (3× faster)", judge=lambda o, t: t >= 3 * o),
        "run_requests": Figure("whole run", "HydroServer requests"),
        "run_stored": Figure("whole run", "observations stored"),
        "noop_seconds": Figure(f"no-op run, {columns} datastreams", "s", digits=2,
                               goal="≤ 0.25×", judge=lambda o, t: o <= 0.25 * t),
        "noop_requests": Figure(f"no-op run, {columns} datastreams", "HydroServer requests",
                                goal="≤ 0.25×", judge=lambda o, t: o <= 0.25 * t),
        "wide_seconds": Figure(f"no-op run, {args.noop_datastreams} datastreams", "s", digits=2,
                               goal="≤ 0.25×", judge=lambda o, t: o <= 0.25 * t),
        "wide_requests": Figure(f"no-op run, {args.noop_datastreams} datastreams",
                                "HydroServer requests", goal="≤ 0.25×",
                                judge=lambda o, t: o <= 0.25 * t),
    }

    print(f"parse: {n:,} rows, {args.parse_repeats} repeats", flush=True)
    known = {n: measure_parse(n, args.parse_repeats, figures)}
    if args.profile:
        worker(OURS, "parse", {"path": str(input_file(n)),
                               "profile": str(WORK / "profile-parse.txt")})
    print("memory growth:", ", ".join(f"{r:,}" for r in args.growth_rows), flush=True)
    growth = measure_memory_growth(args.growth_rows, known)
    print("serialisation", flush=True)
    examples = measure_serialisation(args.run_rows, args.parse_repeats, figures)
    print(f"whole and no-op runs, api_key_cost {args.api_key_cost} s", flush=True)
    requests = measure_runs(args.run_rows, args.repeats, args.api_key_cost,
                            args.noop_datastreams, figures, args.profile, args.row_cost)

    profiles: list[str] = []
    if args.profile:
        profiles += [
            *profile_lines(f"parse of {n:,} rows", WORK / "profile-parse.txt.pstats",
                           ("parse.py", "parse_payload"), PARSE_PARTS),
            *profile_lines("whole run", WORK / "profile-run.txt.pstats",
                           ("pipeline.py", "run_ingestion"), RUN_PARTS),
            *profile_lines(f"no-op run, {columns} datastreams", WORK / "profile-noop.txt.pstats",
                           ("pipeline.py", "run_ingestion"), RUN_PARTS),
        ]
    text = report(args, figures, growth, requests, examples, our_versions, their_versions,
                  time.perf_counter() - began, profiles)
    print(text)
    if args.write:
        write_docs(text)
        print(f"\nwritten to {DOCS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
