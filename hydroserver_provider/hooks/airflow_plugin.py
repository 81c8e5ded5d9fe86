"""The provider's Airflow plugin: the API-server middleware that makes the connection form's Test
button work for ``hydroserver`` and ``hydrocron`` connections on Airflow 3.3
(:mod:`hydroserver_provider.hooks.connection_test` explains the bug and the fix).

Registered through the ``airflow.plugins`` entry point, so installing the provider is enough;
``airflow plugins`` lists it as ``hydroserver_connection_test``.
"""

from __future__ import annotations

from hydroserver_provider.compat import airflow_plugin_base
from hydroserver_provider.hooks.connection_test import ConnectionTestMiddleware


class HydroServerConnectionTestPlugin(airflow_plugin_base()):  # type: ignore[misc]
    """Adds :class:`ConnectionTestMiddleware` to Airflow's API server."""

    name = "hydroserver_connection_test"
    fastapi_root_middlewares = [
        {"middleware": ConnectionTestMiddleware, "args": [], "kwargs": {},
         "name": "HydroServer connection Test button (Airflow 3.3 port: 0 fix)"},
    ]
