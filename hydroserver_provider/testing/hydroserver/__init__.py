"""A local, offline stand-in for a HydroServer 1.11.2 instance.

:class:`LocalHydroServer` runs a real HTTP server on ``127.0.0.1`` (a free port by default) backed
by SQLite, and answers the HydroServer REST endpoints the provider uses the way the real
Django/django-ninja server does: the same JSON bodies (camelCase), the same status codes and error
bodies, the same pagination headers, the same bulk-create modes and their failures, API-key and
session (Bearer) authentication, anonymous fallback on public GETs, and the same ETL definitions.

On top of that it gives tests a few handles the real server does not have: direct seeding and
reading of observations, fault injection (errors, dropped connections, latency), a throttle, and
per-endpoint request counters.

Example::

    from hydroserver_provider.testing import LocalHydroServer

    with LocalHydroServer() as hs:
        ds = hs.create_datastream(name="Water temperature", unit="degC")
        requests.post(
            f"{hs.url}/api/data/datastreams/{ds}/observations/bulk-create",
            json={"fields": ["phenomenonTime", "result"], "data": [["2024-01-01T00:00:00Z", 4.2]]},
            headers={"X-Api-Key": hs.api_key},
        )
        assert hs.observations(ds)[0][1] == 4.2
        assert hs.request_counts["POST /api/data/datastreams/{id}/observations/bulk-create"] == 1

Only the standard library is used (``http.server``, ``sqlite3``, ``threading``); ``dateutil`` is
used for the rare timestamp forms :meth:`datetime.fromisoformat` does not read, when installed.
"""

from __future__ import annotations

from hydroserver_provider.testing.hydroserver.access import ROLES
from hydroserver_provider.testing.hydroserver.faults import Faults
from hydroserver_provider.testing.hydroserver.server import LocalHydroServer

__all__ = ["LocalHydroServer", "Faults", "ROLES"]
