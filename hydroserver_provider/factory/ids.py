"""DAG ids of task definitions: stable, readable, within Airflow's limits."""

from __future__ import annotations

import hashlib
import re
import unicodedata

__all__ = ["DAG_ID_PREFIX", "INGEST_TASK_ID", "dag_id_for", "slugify"]

DAG_ID_PREFIX = "hydroserver_"
INGEST_TASK_ID = "ingest"
MAX_DAG_ID = 250  # Airflow's key length limit
_SLUG_RUN = re.compile(r"[^a-z0-9]+")


def slugify(name: str) -> str:
    """``"Río Grande @ Station 42"`` -> ``"rio_grande_station_42"``.

    The result uses only ``[a-z0-9_]`` and may be empty.
    """
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return _SLUG_RUN.sub("_", folded.lower()).strip("_")


def dag_id_for(task_name: str, explicit: str | None = None) -> str:
    """The DAG id of a task: ``explicit`` (``airflow.dag_id``) as given, else
    ``hydroserver_<slug>``; a name with no ASCII letter or digit gets a short hash instead, and an
    id longer than Airflow's 250 characters is cut and suffixed with a hash (stable either way)."""
    if explicit:
        return explicit
    slug = slugify(task_name)
    digest = hashlib.sha1(task_name.encode("utf-8")).hexdigest()[:10]
    if not slug:
        slug = f"task_{digest}"
    dag_id = DAG_ID_PREFIX + slug
    if len(dag_id) > MAX_DAG_ID:
        dag_id = f"{dag_id[:MAX_DAG_ID - 11].rstrip('_')}_{digest}"
    return dag_id


