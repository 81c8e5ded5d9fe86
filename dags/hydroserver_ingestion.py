"""Airflow DAG file: one DAG per HydroServer task defined under ``definitions/``.

The folder can be moved with the environment variable ``HYDROSERVER_DEFINITIONS_DIR``. Broken
definitions are skipped here (logged) and reported as an import error by
``hydroserver_definition_check.py``, so they never stop the other DAGs.
"""

from hydroserver_provider.factory import register_dags

register_dags(globals())
