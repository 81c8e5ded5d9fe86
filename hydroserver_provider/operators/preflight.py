"""Before a task does anything: the Airflow connections and variables it needs exist.

Without this check a missing connection surfaces deep inside a hook as Airflow's
``AirflowNotFoundException: The conn_id 'hydroserver_default' isn't defined``, which Airflow
retries: a new DAG of an enabled task failed through all its retries (minutes) with no hint of
what to do. Here the task fails at once, without retries (``AirflowFailException``), with one
line per missing item naming it and how to create it::

    Airflow connection 'hydroserver_default' does not exist: create it (Admin > Connections,
    type HydroServer) or set AIRFLOW_CONN_HYDROSERVER_DEFAULT

:class:`Requirement` is also what ``hydroserver-airflow validate`` lists for a folder of
definitions (:mod:`hydroserver_provider.factory.requirements`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hydroserver_provider.defaults import HYDROSERVER_CONN_ID

__all__ = [
    "AIRFLOW_API_CONN_ID",
    "HYDROCRON_DEFAULT_CONN_ID",
    "Requirement",
    "airflow_api_connection",
    "fail_if_missing",
    "hydrocron_connection",
    "hydroserver_connection",
    "ingest_requirements",
    "missing",
    "smtp_connection",
    "source_auth_requirement",
]

AIRFLOW_API_CONN_ID = "airflow_api_default"
HYDROCRON_DEFAULT_CONN_ID = "hydrocron_default"  # optional: the public endpoint without it


@dataclass(frozen=True)
class Requirement:
    """An Airflow connection or variable a definition needs.

    :param kind: ``"connection"``, ``"variable"`` or ``"pool"`` (only ``validate`` checks pools:
        a task waiting for a missing pool never starts, so it cannot check it).
    :param key: the connection id, the variable's key or the pool's name.
    :param form: how to fill it in (the connection form's type and what goes where).
    """

    kind: str
    key: str
    form: str = ""

    @property
    def env_var(self) -> str:
        """The environment variable Airflow reads it from: ``AIRFLOW_CONN_<ID>`` /
        ``AIRFLOW_VAR_<KEY>`` (upper case)."""
        prefix = "AIRFLOW_CONN_" if self.kind == "connection" else "AIRFLOW_VAR_"
        return prefix + self.key.upper()

    @property
    def label(self) -> str:
        return f"{self.kind} '{self.key}'"

    def how_to_create(self) -> str:
        form = f", {self.form}" if self.form else ""
        if self.kind == "pool":  # Airflow reads no pool from the environment
            return (f"create it (Admin > Pools{form}) or run: airflow pools set {self.key} 4 "
                    "'HydroServer writes'")
        where = "Admin > Connections" if self.kind == "connection" else "Admin > Variables"
        return f"create it ({where}{form}) or set {self.env_var}"

    def missing_text(self) -> str:
        """One line: what is missing and how to create it."""
        return f"Airflow {self.label} does not exist: {self.how_to_create()}"


def hydroserver_connection(conn_id: str = HYDROSERVER_CONN_ID) -> Requirement:
    return Requirement("connection", conn_id, "type HydroServer")


def source_auth_requirement(auth: Any) -> Requirement | None:
    """The connection or variable holding a data connection's source auth header value."""
    if auth is None:
        return None
    if auth.conn_id:
        return Requirement("connection", auth.conn_id,
                           f"its password is the {auth.header_name} header's value")
    return Requirement("variable", auth.variable, f"the {auth.header_name} header's value")


def hydrocron_connection(conn_id: str | None) -> Requirement | None:
    """A Hydrocron connection a definition names; None for ``hydrocron_default``, without which
    the public endpoint is used anonymously."""
    if not conn_id or conn_id == HYDROCRON_DEFAULT_CONN_ID:
        return None
    return Requirement("connection", conn_id, "type NASA Hydrocron")


def smtp_connection(conn_id: str) -> Requirement:
    return Requirement("connection", conn_id, "type SMTP, with a from_email extra")


def airflow_api_connection(conn_id: str = AIRFLOW_API_CONN_ID) -> Requirement:
    return Requirement("connection", conn_id,
                       "type HTTP: the API server's URL as host, a user allowed to read DAG runs "
                       "and XComs")


def ingest_requirements(operator: Any) -> list[Requirement]:
    """What an ingest task (:class:`~hydroserver_provider.operators.ingest.HydroIngestOperator`)
    reads from Airflow: its HydroServer connection, its source's auth connection or variable,
    and a Hydrocron connection it names."""
    connection = operator.data_connection
    found = [hydroserver_connection(operator.hydroserver_conn_id),
             source_auth_requirement(connection.auth)]
    if connection.payload.type == "HYDROCRON":
        found.append(hydrocron_connection(operator.hydrocron_conn_id
                                          or connection.payload.hydrocron_conn_id))
    return [r for r in found if r is not None]


_NOT_FOUND = re.compile(r"VARIABLE_NOT_FOUND|not found|isn't defined", re.IGNORECASE)


def _exists(requirement: Requirement) -> bool:
    """Whether Airflow has it, asked the way a task asks (the Task SDK: environment, secrets
    backends, then the metadata database through the API server)."""
    from hydroserver_provider.compat import AirflowNotFoundException, Connection, Variable

    if requirement.kind == "connection":
        try:
            Connection.get(requirement.key)
        except AirflowNotFoundException:
            return False
        return True
    try:
        return Variable.get(requirement.key, default=None) is not None
    except Exception as exc:  # an older Task SDK raises instead of returning the default
        if _NOT_FOUND.search(str(exc)):
            return False
        raise


def missing(requirements: Iterable[Requirement]) -> list[Requirement]:
    """Those of ``requirements`` Airflow does not have (each key once)."""
    seen: dict[tuple[str, str], Requirement] = {}
    for requirement in requirements:
        seen.setdefault((requirement.kind, requirement.key), requirement)
    return [r for r in seen.values() if not _exists(r)]


def fail_if_missing(requirements: Iterable[Requirement], what: str = "") -> None:
    """Raise ``AirflowFailException`` (no retries: retrying cannot create a connection) with one
    line naming every missing connection and variable and how to create it."""
    absent = missing(requirements)
    if absent:
        from hydroserver_provider.compat import AirflowFailException

        text = "; ".join(r.missing_text() for r in absent)
        raise AirflowFailException(f"{what}: {text}" if what else text)
