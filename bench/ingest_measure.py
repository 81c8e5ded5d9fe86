"""Measurement helpers shared by both ingestion-benchmark workers (standard library only).

Each worker runs in its own process (this project's virtualenv or hydroserverpy's), so its peak
resident memory is its own; it reports one JSON line on stdout for ``bench_ingest.py`` to read.
"""

from __future__ import annotations

import json
import resource
import sys


def rss_mib() -> float:
    """Current resident memory of this process."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    """Highest resident memory this process has had (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def emit(result: dict) -> None:
    """The worker's answer: one JSON line, always the last line of stdout."""
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def read_args() -> tuple[str, dict]:
    """``worker.py COMMAND JSON`` -> (command, arguments)."""
    if len(sys.argv) != 3:
        raise SystemExit(f"usage: {sys.argv[0]} parse|serialize|run JSON-ARGUMENTS")
    return sys.argv[1], json.loads(sys.argv[2])
