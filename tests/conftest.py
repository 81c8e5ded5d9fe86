"""Test-wide settings: an isolated AIRFLOW_HOME so tests never touch a user's Airflow."""

from __future__ import annotations

import os
import tempfile

_home = tempfile.mkdtemp(prefix="hydroserver-provider-tests-")
os.environ.setdefault("AIRFLOW_HOME", _home)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")

# The local stand-ins' fixtures (local_hydroserver, ...): opt-in, as for users' own tests.
pytest_plugins = ["hydroserver_provider.testing.pytest_plugin"]

# Session fixture ``airflow_history``: an Airflow API server with a seeded run history.
from airflow_history import airflow_history  # noqa: E402,F401


def pytest_collection_modifyitems(items):
    """Tests reading the seeded run history start an Airflow API server: slow."""
    import pytest

    for item in items:
        if "airflow_history" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
