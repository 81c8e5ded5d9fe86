"""Build data connections and tasks from dicts in either vocabulary, collecting every problem.

``build_*`` return the model or the ``DefinitionError``s of one definition (the definition loader
reports the problems of a whole file together); ``parse_*`` raise them as ``DefinitionErrors``.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping as AbcMapping
from typing import Any

from pydantic import ValidationError

from .airflow_settings import check_airflow_settings
from .base import NORMALISED_CONTEXT
from .models import DataConnection, Task
from hydroserver_provider.errors import DefinitionError, DefinitionErrors
from .error_values import NOTHING, describe_found, suggest
from .validation_errors import convert_validation_error
from .vocabulary import (
    DefinitionReader,
    connection_location,
    definition_name,
    drop_nulls,
    normalise_connection,
    normalise_task,
    task_location,
)

__all__ = [
    "ConnectionLookup",
    "build_data_connection",
    "build_task",
    "parse_data_connection",
    "parse_task",
]


def build_data_connection(raw: Any, location: str) -> tuple[DataConnection | None,
                                                            list[DefinitionError]]:
    """Normalise and validate one data connection; never raises for definition problems."""
    r = DefinitionReader(location)
    canonical = drop_nulls(DataConnection, normalise_connection(r, raw))
    try:
        connection = DataConnection.model_validate(canonical, context=NORMALISED_CONTEXT)
    except ValidationError as exc:
        convert_validation_error(exc, r)
        return None, r.errors
    return (None, r.errors) if r.errors else (connection, [])


class ConnectionLookup:
    """Data connections by name, then by HydroServer id.

    An entry is a ``DataConnection``, or a text saying why the name or id cannot be used (the
    connection has errors, two connections share the name, ...).
    """

    def __init__(self) -> None:
        self.by_name: dict[str, DataConnection | str] = {}
        self.by_id: dict[str, DataConnection | str] = {}

    def add(self, name: Any, connection: DataConnection | str, id: Any = None) -> None:
        if isinstance(name, str) and name:
            self.by_name[name] = connection
        if id is not None and str(id).strip():
            self.by_id[str(id).strip().lower()] = connection

    def get(self, reference: str) -> DataConnection | str | None:
        """The connection, why it is unusable, or None when nothing has this name or id."""
        if reference in self.by_name:
            return self.by_name[reference]
        return self.by_id.get(reference.strip().lower())


def build_task(raw: Any, location: str, connections: ConnectionLookup | None = None,
               defaults: dict | None = None) -> tuple[Task | None, list[DefinitionError]]:
    """Normalise and validate one task, resolving its data connection; never raises."""
    r = DefinitionReader(location)
    fields, reference, airflow = normalise_task(r, raw)
    canonical = drop_nulls(Task, fields)
    connection: DataConnection | None = None
    if isinstance(reference, DataConnection):
        connection = reference
    elif isinstance(reference, dict):  # an inline data connection (HydroServer's task detail)
        connection, errors = build_data_connection(
            reference, f"{location}, data connection '{definition_name(reference, '(inline)')}'")
        r.errors.extend(errors)
        if connection is None:
            r.reported.add(("data_connection",))
    elif isinstance(reference, str) and reference.strip():
        lookup = connections or ConnectionLookup()
        found = lookup.get(reference)
        spelt = r.where(("data_connection",))
        if found is None:
            names = list(lookup.by_name)
            hint = suggest(reference, names)
            if len(names) > 10:
                names = [*names[:10], "..."]
            r.error(("data_connection",), spelt,
                    "no data connection with this name or id in this file"
                    + (f" (did you mean '{hint}'?)" if hint else ""),
                    f"'{hint}'" if hint else ("one of " + ", ".join(f"'{n}'" for n in names)
                                              if names else "a data connection defined in the "
                                                            "file's data_connections"),
                    reference)
        elif isinstance(found, str):
            r.error(("data_connection",), spelt, f"this data connection cannot be used: {found}",
                    "a valid data connection", reference)
        else:
            connection = found
    elif reference is NOTHING or reference is None:
        r.error(("data_connection",), "data_connection", "a task needs a data connection",
                "data_connection: <name or id of a data connection>", NOTHING)
    else:
        r.error(("data_connection",), r.where(("data_connection",)),
                "wrong type", "the name or id of a data connection, or a data connection",
                describe_found(reference))

    settings, errors = check_airflow_settings(airflow, location=location,
                                              field=r.where(("airflow",)) or "airflow")
    r.errors.extend(errors)
    canonical["airflow"] = {**(defaults or {}), **settings}

    if connection is not None:
        canonical["data_connection"] = connection
        try:
            task = Task.model_validate(canonical, context=NORMALISED_CONTEXT)
        except ValidationError as exc:
            convert_validation_error(exc, r)
            return None, r.errors
        return (None, r.errors) if r.errors else (task, [])
    # Without a connection, still check the task's own fields so all problems show at once.
    try:
        _TaskFields.model_validate(canonical, context=NORMALISED_CONTEXT)
    except ValidationError as exc:
        convert_validation_error(exc, r)
    return None, r.errors


class _TaskFields(Task):
    """Task without its data connection: checks the rest when the connection is unusable."""

    data_connection: DataConnection | None = None  # type: ignore[assignment]


def parse_data_connection(data: AbcMapping, *, location: str | None = None) -> DataConnection:
    """A ``DataConnection`` from a dict in either vocabulary; raises ``DefinitionErrors``."""
    connection, errors = build_data_connection(dict(data) if isinstance(data, AbcMapping)
                                               else data, location or connection_location(data))
    if errors:
        raise DefinitionErrors(errors)
    assert connection is not None
    return connection


def parse_task(data: AbcMapping, data_connections: Iterable[DataConnection] = (), *,
               location: str | None = None, defaults: AbcMapping | None = None) -> Task:
    """A ``Task`` from a dict in either vocabulary; raises ``DefinitionErrors``.

    ``data_connection`` (or ``dataConnectionId``) is looked up by name, then by id, among
    ``data_connections``; an inline data connection dict is accepted too. ``defaults`` are
    Airflow settings the task's ``airflow:`` block overrides.
    """
    lookup = ConnectionLookup()
    for connection in data_connections:
        lookup.add(connection.name, connection, connection.id)
    errors: list[DefinitionError] = []
    settings: dict = {}
    if defaults:
        settings, errors = check_airflow_settings(dict(defaults), field="defaults", defaults=True)
    task, task_errors = build_task(dict(data) if isinstance(data, AbcMapping) else data,
                                   location or task_location(data), lookup, settings)
    errors += task_errors
    if errors:
        raise DefinitionErrors(errors)
    assert task is not None
    return task
