"""Test helpers: a local HydroServer stand-in and its pytest fixtures.

``from hydroserver_provider.testing import LocalHydroServer`` gives a real HTTP server on
127.0.0.1 that answers like HydroServer 1.11.2 (see
:mod:`hydroserver_provider.testing.hydroserver`).
The pytest fixtures ``local_hydroserver`` and ``local_hydroserver_session`` are registered
automatically through the ``pytest11`` entry point. From a shell::

    python -m hydroserver_provider.testing serve --port 8000

Importing this package is cheap: the server module is loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["LocalHydroServer", "Faults"]

if TYPE_CHECKING:  # pragma: no cover
    from hydroserver_provider.testing.hydroserver import Faults, LocalHydroServer


def __getattr__(name: str) -> Any:
    if name in __all__:
        from hydroserver_provider.testing import hydroserver

        return getattr(hydroserver, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
