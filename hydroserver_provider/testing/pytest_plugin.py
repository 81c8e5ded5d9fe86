"""pytest fixtures for the local HydroServer (registered through the ``pytest11`` entry point).

* ``local_hydroserver`` - a fresh :class:`~hydroserver_provider.testing.LocalHydroServer` per test.
* ``local_hydroserver_session`` - one server shared by the whole session (faster; tests share data,
  so use their own datastreams; faults, throttle and counters are reset before each test that
  requests it).

The server module is imported only when a fixture is used, so the plugin costs nothing otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # imported by the fixtures themselves, only when one is used
    from hydroserver_provider.testing.hydroserver import LocalHydroServer


@pytest.fixture
def local_hydroserver() -> Iterator[LocalHydroServer]:
    """A running local HydroServer, stopped after the test."""
    from hydroserver_provider.testing.hydroserver import LocalHydroServer

    with LocalHydroServer() as hs:
        yield hs


@pytest.fixture(scope="session")
def _local_hydroserver_shared() -> Iterator[LocalHydroServer]:
    from hydroserver_provider.testing.hydroserver import LocalHydroServer

    with LocalHydroServer() as hs:
        yield hs


@pytest.fixture
def local_hydroserver_session(_local_hydroserver_shared) -> LocalHydroServer:
    """The session-wide local HydroServer with faults, throttle and counters reset."""
    hs = _local_hydroserver_shared
    hs.faults.clear()
    hs.throttle = None
    hs.reset_counts()
    return hs
