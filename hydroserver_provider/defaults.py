"""Defaults shared by the core and the Airflow side; a light module (no imports) that the DAG file
and the factory may import at parse time."""

HYDROSERVER_CONN_ID = "hydroserver_default"
"""The Airflow connection a task uses unless its definition names another."""

HYDROCRON_CONN_ID = "hydrocron_default"
"""The Airflow connection of the Hydrocron endpoint unless a payload names another."""

CHUNK_ROWS = 50_000
"""Observations per HydroServer bulk-create request: one request costs a real server about a
second of API-key hashing, a row ~0.07 ms (see docs/benchmarks.md)."""
