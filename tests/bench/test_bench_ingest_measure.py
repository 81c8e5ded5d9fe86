"""The benchmark's memory figures are the measured process's own, not its parent's."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

CHILD = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, sys.argv[1])
    from ingest_measure import peak_rss_mib, rss_mib
    before = rss_mib()
    block = bytearray(int(sys.argv[2]) << 20)
    block[::4096] = b"\\x01" * len(block[::4096])  # touch every page
    print(json.dumps({"before": before, "peak": peak_rss_mib()}))
""")


def _child_figures(bench_dir: Path, allocate_mib: int) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(bench_dir), str(allocate_mib)],
                          capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout)


def test_peak_of_a_worker_started_by_a_large_parent_is_its_own(bench_dir):
    """Linux keeps ``ru_maxrss`` over fork + exec: a 400 MiB parent must not show in the child."""
    parent_block = bytearray(400 << 20)
    parent_block[::4096] = b"\x01" * len(parent_block[::4096])
    small = _child_figures(bench_dir, 0)
    assert small["peak"] < 200, small  # a bare interpreter, not the 400+ MiB parent
    big = _child_figures(bench_dir, 300)
    grown = big["peak"] - big["before"]
    assert 290 < grown < 340, big  # the child's own 300 MiB, counted once
    del parent_block
