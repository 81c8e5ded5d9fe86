"""What definitions need from Airflow, and which of it Airflow has.

Each task needs its HydroServer connection, its source's ``auth`` connection or variable, a
Hydrocron connection it names, and the pool it names; a data connection with
``recipient_emails`` needs the SMTP connection for its failure alerts, and one with a digest
schedule the SMTP connection and the Airflow API connection (``airflow_api_default``) for its
digest. :func:`definition_needs` lists them, each with what uses it.

Where Airflow keeps them, two lookups:

* :func:`look_up` -- for ``hydroserver-airflow validate``, on a machine that may not run Airflow:
  environment variables (``AIRFLOW_CONN_<ID>``, ``AIRFLOW_VAR_<KEY>``) and Airflow's metadata
  database, read directly when ``[database] sql_alchemy_conn`` names one that exists; never a
  secrets backend (often a network service), and nothing else over the network. What it could
  not check is said (state ``unknown`` with the reason), never guessed.
* :func:`missing_at_parse_time` -- for ``dags/hydroserver_definition_check.py`` inside Airflow's
  dag-processor: asked the way a task asks (the Task SDK: environment, secrets backends, the
  metadata database), connections and variables only (the dag-processor cannot look up pools).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydroserver_provider.operators.preflight import (
    Requirement,
    airflow_api_connection,
    hydrocron_connection,
    hydroserver_connection,
    smtp_connection,
    source_auth_requirement,
)

if TYPE_CHECKING:
    from hydroserver_provider.definitions.files import DefinitionFile

__all__ = ["Found", "Need", "definition_needs", "look_up", "missing_at_parse_time",
           "pool_requirement"]


def pool_requirement(pool: str) -> Requirement:
    return Requirement("pool", pool, "a number of slots")


@dataclass
class Need:
    """A requirement and what uses it (``"task 'Station 42'"``, ``"failure alerts of task
    'Station 42'"``, ``"the digest of 'Station API'"``)."""

    requirement: Requirement
    uses: list[str] = field(default_factory=list)

    def uses_text(self, limit: int = 3) -> str:
        shown = self.uses[:limit]
        more = len(self.uses) - len(shown)
        return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def definition_needs(files: Iterable[DefinitionFile]) -> list[Need]:
    """Every Airflow connection, variable and pool the tasks and data connections of ``files``
    need, each once, in the order first needed."""
    from hydroserver_provider.factory.settings import task_settings
    from hydroserver_provider.notifications.mail import default_smtp_conn_id

    needs: dict[tuple[str, str], Need] = {}

    def need(requirement: Requirement | None, use: str) -> None:
        if requirement is None:
            return
        entry = needs.setdefault((requirement.kind, requirement.key), Need(requirement))
        if use not in entry.uses:
            entry.uses.append(use)

    smtp = default_smtp_conn_id()
    digests: set[str] = set()
    for loaded in files:
        for task in loaded.tasks:
            what = f"task '{task.name}'"
            settings = task_settings(task.airflow)
            connection = task.data_connection
            need(hydroserver_connection(settings.hydroserver_conn_id), what)
            need(source_auth_requirement(connection.auth), what)
            if connection.payload.type == "HYDROCRON":
                need(hydrocron_connection(task.airflow.hydrocron_conn_id
                                          or connection.payload.hydrocron_conn_id), what)
            if settings.operator.get("pool"):
                need(pool_requirement(settings.operator["pool"]), what)
            notification = connection.notification
            if notification is not None and notification.recipient_emails:
                need(smtp_connection(smtp), f"failure alerts of {what}")
                schedule = notification.schedule
                if schedule is not None and schedule.enabled and not schedule.is_manual \
                        and connection.name not in digests:
                    digests.add(connection.name)
                    need(smtp_connection(smtp), f"the digest of '{connection.name}'")
                    need(airflow_api_connection(), f"the digest of '{connection.name}'")
    return list(needs.values())


# --------------------------------------------------------------------------------------------
# validate: environment variables and the metadata database, read directly
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    """Whether Airflow has a requirement: ``state`` is ``"found"``, ``"missing"`` or
    ``"unknown"``; ``where`` says where it was found, or why it could not be checked."""

    state: str
    where: str = ""


_TABLES = {"connection": ("connection", "conn_id"), "variable": ("variable", "key"),
           "pool": ("slot_pool", "pool")}


def _metadata_database() -> tuple[str | None, str]:
    """Airflow's metadata database URL when it can be read without creating it, else None and
    why not."""
    try:
        from airflow.configuration import conf

        url = conf.get("database", "sql_alchemy_conn")
    except Exception as exc:  # Airflow not configured here
        return None, f"Airflow's configuration could not be read ({type(exc).__name__})"
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1].split("?", 1)[0] if "///" in url else ""
        if not path or path == ":memory:" or not Path(path).is_file():
            return None, f"there is no metadata database at {path or url} (AIRFLOW_HOME " \
                         f"{os.environ.get('AIRFLOW_HOME', '~/airflow')})"
    return url, ""


def _read_database(url: str, requirements: Sequence[Requirement]) -> dict[tuple[str, str], bool]:
    """Which of ``requirements`` the metadata database holds (raises when it cannot be read)."""
    from sqlalchemy import bindparam, create_engine, text

    args: dict[str, Any] = {"timeout": 5} if url.startswith("sqlite") else {"connect_timeout": 5}
    engine = create_engine(url, connect_args=args)
    present: dict[tuple[str, str], bool] = {}
    try:
        with engine.connect() as db:
            for kind, (table, column) in _TABLES.items():
                keys = [r.key for r in requirements if r.kind == kind]
                if not keys:
                    continue
                query = text(f"SELECT {column} FROM {table} WHERE {column} IN :keys"
                             ).bindparams(bindparam("keys", expanding=True))
                stored = {row[0] for row in db.execute(query, {"keys": keys})}
                present.update({(kind, key): key in stored for key in keys})
    finally:
        engine.dispose()
    return present


def _secrets_backend() -> str:
    try:
        from airflow.configuration import conf

        return conf.get("secrets", "backend", fallback="") or ""
    except Exception:
        return ""


def look_up(requirements: Sequence[Requirement], *, database: bool = True
            ) -> dict[tuple[str, str], Found]:
    """Where Airflow keeps each requirement, by ``(kind, key)``, read from the environment and
    (``database``) the metadata database; see the module docstring."""
    found: dict[tuple[str, str], Found] = {}
    rest: list[Requirement] = []
    for requirement in requirements:
        if requirement.kind != "pool" and os.environ.get(requirement.env_var):
            found[(requirement.kind, requirement.key)] = Found(
                "found", f"environment variable {requirement.env_var}")
        else:
            rest.append(requirement)
    if not rest:
        return found
    why = "the metadata database was not read (--no-database)"
    present: dict[tuple[str, str], bool] | None = None
    if database:
        url, why = _metadata_database()
        if url is not None:
            try:
                present = _read_database(url, rest)
            except Exception as exc:
                why = f"the metadata database could not be read ({type(exc).__name__})"
    backend = _secrets_backend()
    for requirement in rest:
        key = (requirement.kind, requirement.key)
        if present is not None and present.get(key):
            found[key] = Found("found", "metadata database")
        elif present is None:
            where = "not in the environment; " + why
            found[key] = Found("unknown", where)
        elif backend and requirement.kind != "pool":
            found[key] = Found("unknown", "not in the environment or the metadata database; the "
                                          f"secrets backend {backend.rsplit('.', 1)[-1]} was not "
                                          "asked")
        else:
            found[key] = Found("missing")
    return found


# --------------------------------------------------------------------------------------------
# The definition check file, in the dag-processor
# --------------------------------------------------------------------------------------------


def in_dag_processor() -> bool:
    """Whether this code runs in Airflow's dag-processor (a process Airflow supervises), where
    connections and variables can be looked up as a task would -- not in a bare ``DagBag`` of a
    test, which has no Airflow to ask."""
    try:
        from airflow.sdk.execution_time import task_runner
    except ImportError:  # pragma: no cover - the Task SDK ships with Airflow 3
        return False
    return getattr(task_runner, "SUPERVISOR_COMMS", None) is not None


def missing_at_parse_time(needs: Sequence[Need]) -> list[Need]:
    """The connections and variables of ``needs`` Airflow does not have, asked as a task asks."""
    from hydroserver_provider.operators.preflight import missing

    absent = {(r.kind, r.key) for r in missing(
        n.requirement for n in needs if n.requirement.kind != "pool")}
    return [n for n in needs if (n.requirement.kind, n.requirement.key) in absent]
