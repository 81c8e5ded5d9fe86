"""One definition at a time: validate it, resolve a task's data connection, merge the defaults.

``parse_data_connection`` / ``parse_task`` read a dict in either vocabulary and raise every
problem of it together as ``DefinitionErrors``; the definition loader (``files.py``) uses the same
functions for each definition of a file, so that one broken definition never hides another.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping as AbcMapping
from typing import Any

from pydantic import ValidationError

from hydroserver_provider.definitions.airflow import AirflowSettings
from hydroserver_provider.definitions.base import NOTHING, DefinitionModel, describe_found, suggest
from hydroserver_provider.definitions.errors import definition_errors
from hydroserver_provider.definitions.models import REFERENCE_KEYS, DataConnection, Task
from hydroserver_provider.errors import DefinitionError, DefinitionErrors

__all__ = ["ConnectionLookup", "build_defaults", "build_task", "connection_location", "id_key",
           "parse_data_connection", "parse_task", "task_location", "validate"]


def _location(kind: str, raw: Any, source: str | None, index: int | None) -> str:
    name = raw.get("name") if isinstance(raw, dict) else None
    if isinstance(name, str) and name.strip():
        what = f"{kind} '{name}'"
    else:
        what = f"{kind} #{index + 1}" if index is not None else f"{kind} '(unnamed)'"
    return f"{source}: {what}" if source else what


def connection_location(raw: Any, source: str | None = None, index: int | None = None) -> str:
    return _location("data connection", raw, source, index)


def task_location(raw: Any, source: str | None = None, index: int | None = None) -> str:
    return _location("task", raw, source, index)


def validate(model: type[DefinitionModel], data: Any, location: str | None, *, raw: Any = None,
             prefix: str = "", ignore: tuple = ()) -> tuple[Any, list[DefinitionError]]:
    """The model, or None and every problem (``raw``: the input as written, when ``data`` was
    prepared from it; ``ignore``: locations already reported)."""
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        return None, definition_errors(exc, model, data if raw is None else raw, location,
                                       prefix, ignore)


def id_key(value: Any) -> str:
    return str(value).strip().lower() if value is not None else ""


class ConnectionLookup:
    """Data connections by name, then by HydroServer id: the model, or why it cannot be used."""

    def __init__(self) -> None:
        self.names: dict[str, DataConnection | str] = {}
        self.ids: dict[str, tuple[DataConnection | str, Any]] = {}  # and as written

    def add(self, name: Any, entry: DataConnection | str, ident: Any = None,
            raw: Any = None) -> None:
        if isinstance(name, str) and name:
            self.names[name] = entry
        if id_key(ident):
            self.ids[id_key(ident)] = (entry, raw)

    def get(self, reference: Any) -> DataConnection | str | None:
        if isinstance(reference, dict):  # a task's inline copy of a listed connection is that
            entry, raw = self.ids.get(id_key(reference.get("id")), (None, None))  # one: its
            return entry if raw == reference else None  # problems are reported once, there
        if reference in self.names:
            return self.names[reference]
        return self.ids.get(id_key(reference), (None, None))[0]


def _connection(raw: dict, location: str,
                lookup: ConnectionLookup) -> tuple[DataConnection | None, list[DefinitionError]]:
    """The task's data connection (by name or id, or inline), or None and why not."""
    given = [(k, raw[k]) for k in REFERENCE_KEYS if raw.get(k) is not None]
    (key, value) = given[0] if given else ("data_connection", None)
    errors: list[DefinitionError] = []

    def error(message: str, expected: str, found: Any, field: str = key) -> None:
        errors.append(DefinitionError(message, location=location, field=field,
                                      expected=expected, found=found))

    for other, other_value in given[1:]:
        if not _identities(other_value) & _identities(value):
            error(f"set twice with different values (also as '{key}')", f"the value of '{key}' "
                  f"({_reference(value)!r}) or only one of them", _reference(other_value), other)
    entry = value if isinstance(value, DataConnection) else (
        lookup.get(value) if isinstance(value, (dict, str)) else None)
    if isinstance(value, dict) and entry is None:
        connection, errors[len(errors):] = validate(
            DataConnection, value, f"{location}, {connection_location(value)}")
        return connection, errors
    if isinstance(entry, DataConnection):
        return entry, errors
    if value is None:
        error("a task needs a data connection",
              "data_connection: <name or id of a data connection>", NOTHING)
    elif isinstance(entry, str):
        error(f"this data connection cannot be used: {entry}", "a valid data connection",
              _reference(value))
    elif not isinstance(value, str) or not value.strip():
        error("wrong type", "the name or id of a data connection, or a data connection",
              describe_found(value))
    else:
        names = list(lookup.names)
        hint = suggest(value, names)
        listed = ", ".join(f"'{n}'" for n in names[:10]) + (", ..." if len(names) > 10 else "")
        error("no data connection with this name or id in this file" + (
            f" (did you mean '{hint}'?)" if hint else ""), f"'{hint}'" if hint else (
            f"one of {listed}" if names else "a data connection defined in the file's "
                                             "data_connections"), value)
    return None, errors


def _identities(value: Any) -> set:
    """What a reference may be known by: a name or an id (any case)."""
    if isinstance(value, DataConnection):
        value = {"id": value.id, "name": value.name}
    if isinstance(value, dict):
        return {id_key(value.get("id")), value.get("name")} - {"", None}
    return {value, id_key(value)} if isinstance(value, str) else {repr(value)}


def _reference(value: Any) -> Any:
    """How a reference shows: a connection (inline or a model) by its name."""
    if isinstance(value, (dict, DataConnection)):
        name = value.get("name") if isinstance(value, dict) else value.name
        return describe_found(name)
    return describe_found(value)


def build_task(raw: Any, location: str, lookup: ConnectionLookup,
               defaults: AirflowSettings | None) -> tuple[Task | None, list[DefinitionError]]:
    """Validate one task, resolving its data connection; its own fields are checked even when
    the connection is unusable, so that every problem shows at once."""
    if not isinstance(raw, dict):
        return validate(Task, raw, location)
    data = {k: v for k, v in raw.items() if k not in REFERENCE_KEYS}
    connection, errors = _connection(raw, location, lookup)
    if connection is not None:
        data["data_connection"] = connection
    block = data.get("airflow")
    if defaults is not None and block is None:
        data["airflow"] = defaults
    elif defaults is not None and isinstance(block, dict):
        data["airflow"] = {**defaults.given(), **{k: v for k, v in block.items()
                                                  if v is not None}}
    task, problems = validate(Task, data, location, raw=raw, ignore=(("data_connection",),))
    errors += problems
    return (None, errors) if errors else (task, [])


def build_defaults(raw: Any, location: str | None,
                   prefix: str = "defaults") -> tuple[AirflowSettings, list[DefinitionError]]:
    """A file's ``defaults:``: the valid settings, and the problems of the others."""
    if raw is None:
        return AirflowSettings(), []
    settings, errors = validate(AirflowSettings, raw, location, prefix=prefix)
    if not isinstance(raw, dict):
        return AirflowSettings(), errors
    errors += [DefinitionError(f"'{key}' must differ per task: set it in each task's airflow: "
                               "block", location=location, field=f"{prefix}.{key}",
                               expected="a setting shared by every task", found=key)
               for key in AirflowSettings.task_only if key in raw]
    if settings is None or errors:  # keep what is valid: one wrong setting is reported once
        settings = AirflowSettings.model_validate({
            k: v for k, v in raw.items() if k not in AirflowSettings.task_only
            and validate(AirflowSettings, {k: v}, location)[0] is not None})
    return settings, errors


def parse_data_connection(data: AbcMapping, *, location: str | None = None) -> DataConnection:
    """A ``DataConnection`` from a dict in either vocabulary; raises ``DefinitionErrors``."""
    raw = dict(data) if isinstance(data, AbcMapping) else data
    connection, errors = validate(DataConnection, raw, location or connection_location(raw))
    if errors:
        raise DefinitionErrors(errors)
    return connection


def parse_task(data: AbcMapping, data_connections: Iterable[DataConnection] = (), *,
               location: str | None = None,
               defaults: AbcMapping | AirflowSettings | None = None) -> Task:
    """A ``Task`` from a dict in either vocabulary; raises ``DefinitionErrors``.

    ``data_connection`` (or ``dataConnectionId``) is looked up by name, then by id, among
    ``data_connections``; an inline data connection is accepted too. ``defaults`` are Airflow
    settings the task's ``airflow:`` block overrides.
    """
    lookup = ConnectionLookup()
    for connection in data_connections:
        lookup.add(connection.name, connection, connection.id)
    errors: list[DefinitionError] = []
    if defaults is not None and not isinstance(defaults, AirflowSettings):
        defaults, errors = build_defaults(dict(defaults), None)
    raw = dict(data) if isinstance(data, AbcMapping) else data
    task, problems = build_task(raw, location or task_location(raw), lookup, defaults)
    if errors + problems:
        raise DefinitionErrors(errors + problems)
    return task  # type: ignore[return-value]
