"""The ingestion benchmark's profile names functions that exist, and refuses one that does not.

Its report shows the cumulative time of a few functions by file name and function name; after a
module was moved or renamed it once printed 0 s for loading instead of failing.
"""

from __future__ import annotations

import ast
import cProfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "hydroserver_provider"


def _package_functions() -> set[tuple[str, str]]:
    found = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                found.add((path.name, node.name))
    return found


def test_every_profiled_function_of_ours_exists_under_that_file_name(bench):
    ours = _package_functions()
    named = [fn for _, *functions in (*bench.PARSE_PARTS, *bench.RUN_PARTS)
             for fn in functions]
    # pandas' reader and to_datetime, and concurrent.futures' result iterator: not ours
    theirs = {"c_parser_wrapper.py", "datetimes.py", "_base.py"}
    mine = [(file_end, name) for file_end, name in named if file_end not in theirs]
    assert len(mine) == len(named) - 3
    for file_end, name in mine:
        assert (file_end, name) in ours, f"{name} is not defined in any {file_end}"


def test_a_part_no_profiled_call_matches_fails_instead_of_showing_zero(bench, tmp_path):
    def work():
        return sum(range(1000))

    profile = cProfile.Profile()
    profile.runcall(work)
    dump = tmp_path / "profile.pstats"
    profile.dump_stats(str(dump))
    here = Path(__file__).name
    lines = bench.profile_lines("test", dump, (here, "work"), (("work", (here, "work")),))
    assert lines[0].startswith("- test, ") and lines[1].startswith("  - work: ")
    with pytest.raises(RuntimeError, match="moved_away"):
        bench.profile_lines("test", dump, (here, "work"),
                            (("gone", (here, "moved_away")),))
