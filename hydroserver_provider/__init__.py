"""Apache Airflow provider for HydroServer: load web time series into HydroServer on a schedule."""

from __future__ import annotations

__version__ = "0.1.0"


def get_provider_info() -> dict:
    """Provider metadata that Airflow's ProvidersManager reads.

    Airflow finds this function through the ``apache_airflow_provider`` entry point.
    """
    return {
        "package-name": "airflow-provider-hydroserver",
        "name": "HydroServer",
        "description": "Load time series from web sources and NASA Hydrocron into HydroServer.",
        "versions": [__version__],
        # hydroserver://<host>/datastreams/<id>: the datastream assets ingest tasks emit events
        # for (hydroserver_provider.assets); Airflow checks every such URI with the handler
        "asset-uris": [
            {
                "schemes": ["hydroserver"],
                "handler": "hydroserver_provider.assets.sanitize_uri",
                "factory": "hydroserver_provider.assets.create_asset",
                "to_openlineage_converter":
                    "hydroserver_provider.assets.convert_asset_to_openlineage",
            },
        ],
        "connection-types": [
            {
                "connection-type": "hydroserver",
                "hook-class-name": "hydroserver_provider.hooks.hydroserver.HydroServerHook",
                "hook-name": "HydroServer",
                # The API key is the standard password field, masked in the form's main section
                # (not an extra: extras sit in the collapsed "Extra Fields" section beside the
                # Extra JSON, which shows them in clear while typing). With an Email, the same
                # field holds the account password. The ``api_key`` extra of older connections
                # and of environment-variable connections is still read (HydroServerHook).
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "extra", "description"],
                    "relabeling": {
                        "host": "HydroServer URL",
                        "login": "Email (only for an account login)",
                        "password": "API key (or the account password)",
                    },
                    "placeholders": {
                        "host": "https://hydroserver.example.org",
                        "login": "empty to use an API key",
                        "password": "a workspace API key; with an Email, the account password",
                    },
                },
            },
            {
                "connection-type": "hydrocron",
                "hook-class-name": "hydroserver_provider.hooks.hydrocron.HydrocronHook",
                "hook-name": "NASA Hydrocron",
                "conn-fields": {
                    "requests_per_second": {
                        "label": "Requests per second",
                        "description": "Rate limit shared by the threads of one process "
                        "(default 5; 0 = no limit).",
                        "schema": {"type": ["number", "null"], "minimum": 0},
                    },
                    "burst": {
                        "label": "Burst",
                        "description": "Requests allowed back to back after an idle period.",
                        "schema": {"type": ["integer", "null"], "minimum": 1},
                    },
                    "retries": {
                        "label": "Retries",
                        "description": "Retries on 429 and 5xx answers (default 4).",
                        "schema": {"type": ["integer", "null"], "minimum": 0},
                    },
                    "retry_backoff": {
                        "label": "Retry backoff (s)",
                        "description": "Base of the exponential backoff between retries.",
                        "schema": {"type": ["number", "null"], "minimum": 0},
                    },
                    "timeout": {
                        "label": "Timeout (s)",
                        "description": "Timeout of one request (default 10 s connect, 120 s read).",
                        "schema": {"type": ["number", "null"], "exclusiveMinimum": 0},
                    },
                    "min_window_hours": {
                        "label": "Smallest window (hours)",
                        "description": "413/504 answers split the time window down to this size.",
                        "schema": {"type": ["number", "null"], "exclusiveMinimum": 0},
                    },
                    "max_window_days": {
                        "label": "Largest window (days)",
                        "description": "Split longer windows into requests of this size up front.",
                        "schema": {"type": ["number", "null"], "exclusiveMinimum": 0},
                    },
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "login", "extra", "description"],
                    "relabeling": {"host": "Hydrocron URL", "password": "API key"},
                    "placeholders": {
                        "host": "https://soto.podaac.earthdatacloud.nasa.gov/hydrocron/v1 "
                        "(empty = the public endpoint)",
                        "password": "optional, sent as x-hydrocron-key",
                    },
                },
            },
        ],
    }
