"""Fixtures of the reliability tests (helpers live in ``reliability_support.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hydroserver_provider.testing.sources import LocalSourceServer


@pytest.fixture
def source() -> Iterator[LocalSourceServer]:
    """A station web service on 127.0.0.1, stopped after the test."""
    with LocalSourceServer() as server:
        yield server


@pytest.fixture(scope="module")
def tally() -> Iterator[dict]:
    """Figures a module adds up over its tests and prints at the end (run pytest with -s)."""
    figures: dict = {}
    yield figures
    if figures:
        print("\n" + "\n".join(f"  {key}: {value}" for key, value in figures.items()))
