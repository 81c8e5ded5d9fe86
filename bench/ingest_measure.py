"""Measurement helpers shared by both ingestion-benchmark workers and the bounded-memory tests of
``tests/reliability/test_bad_input.py`` (standard library only).

Each worker runs in its own process (this project's virtualenv or hydroserverpy's), so its peak
resident memory is its own; it reports one JSON line on stdout for ``bench_ingest.py`` to read.
"""

from __future__ import annotations

import json
import math
import resource
import sys


def _status_mib(field: str) -> float:
    """A memory figure of this process from /proc/self/status (Linux), in MiB; NaN elsewhere."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def rss_mib() -> float:
    """Current resident memory of this process."""
    return _status_mib("VmRSS")


def peak_rss_mib() -> float:
    """Highest resident memory of this process since it started its program.

    Not ``getrusage().ru_maxrss``: Linux carries that over an exec from the process that forked
    the worker, so a worker started by a large parent would report the parent's peak.
    """
    peak = _status_mib("VmHWM")
    if math.isnan(peak):  # no /proc: the best figure left
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return peak


def emit(result: dict) -> None:
    """The worker's answer: one JSON line, always the last line of stdout."""
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def read_args() -> tuple[str, dict]:
    """``worker.py COMMAND JSON`` -> (command, arguments)."""
    if len(sys.argv) != 3:
        raise SystemExit(f"usage: {sys.argv[0]} parse|serialize|run JSON-ARGUMENTS")
    return sys.argv[1], json.loads(sys.argv[2])
