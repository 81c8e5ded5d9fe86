"""Airflow DAG-less file: shows every broken HydroServer definition as one import error.

It defines no DAG on purpose. Airflow marks every DAG of a file with an import error as stale, so
the errors of ``definitions/`` are raised here, where they name the definition file, the task and
the field, while ``hydroserver_ingestion.py`` keeps loading and scheduling the valid tasks. The
error also names the DAGs a broken definition keeps out of Airflow, and the Airflow connections
and variables the definitions need that Airflow does not have.
"""

from hydroserver_provider.factory import raise_definition_errors

raise_definition_errors(dag_file=__file__)
