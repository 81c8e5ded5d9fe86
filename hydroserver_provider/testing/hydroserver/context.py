"""What an endpoint needs from the running server: its database and the simulated costs."""

from __future__ import annotations

from dataclasses import dataclass

from hydroserver_provider.testing.hydroserver.store import Store


@dataclass(frozen=True)
class Context:
    """Read from the server once per request: changing ``hs.row_cost`` applies to the next one."""

    store: Store
    api_key_cost: float = 0.0
    bearer_cost: float = 0.0
    row_cost: float = 0.0
