"""The benchmark scripts under ``bench/`` are files, not a package: the tests load them by path."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@contextlib.contextmanager
def _bench_module(file_name: str) -> Iterator[ModuleType]:
    """``bench/<file_name>`` as a module, with ``bench/`` importable for its sibling imports."""
    spec = importlib.util.spec_from_file_location(f"bench_{Path(file_name).stem}_under_test",
                                                  BENCH / file_name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # a dataclass of the module looks itself up there
    sys.path.insert(0, str(BENCH))
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCH))
        sys.modules.pop(spec.name, None)


@pytest.fixture(scope="session")
def bench_dir() -> Path:
    """``bench/``, for a test that runs a script of it in a child process."""
    return BENCH


@pytest.fixture(scope="module")
def inputs() -> Iterator[ModuleType]:
    with _bench_module("ingest_inputs.py") as module:
        yield module


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    with _bench_module("bench_ingest.py") as module:
        yield module
