"""Apache Airflow provider for HydroServer: load web time series into HydroServer on a schedule."""

from __future__ import annotations

__version__ = "0.1.0"


def get_provider_info() -> dict:
    """Metadata Airflow's ProvidersManager reads through the ``apache_airflow_provider`` entry point."""
    return {
        "package-name": "airflow-provider-hydroserver",
        "name": "HydroServer",
        "description": "Load time series from web sources and NASA Hydrocron into HydroServer.",
        "versions": [__version__],
        "connection-types": [
            {
                "connection-type": "hydroserver",
                "hook-class-name": "hydroserver_provider.hooks.hydroserver.HydroServerHook",
                "hook-name": "HydroServer",
                "conn-fields": {
                    "api_key": {
                        "label": "API key",
                        "description": "Workspace API key (sent as X-Api-Key). Leave empty to log in with email and password.",
                        "schema": {"type": ["string", "null"], "format": "password"},
                    },
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "extra", "description"],
                    "relabeling": {"host": "HydroServer URL", "login": "Email"},
                    "placeholders": {
                        "host": "https://hydroserver.example.org",
                        "login": "you@example.org (only with a password)",
                        "password": "account password (only with an email)",
                    },
                },
            },
        ],
    }
