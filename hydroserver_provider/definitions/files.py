"""Definition files: YAML or JSON documents holding data connections and tasks.

```yaml
defaults: {hydroserver_conn_id: hydroserver_default, retries: 3}   # Airflow settings, every task
data_connections: [{name: Station API, source_url: ..., payload_type: CSV, ...}]
tasks: [{name: Station 42, data_connection: Station API, mappings: [...], airflow: {retries: 5}}]
```

``load_definitions(folder)`` reads every ``*.yaml`` / ``*.yml`` / ``*.json`` below a folder. One
broken file never hides the others, and one broken task never hides the good tasks of its file:
each ``DefinitionFile`` carries the tasks that loaded and the errors of the rest. Across the
folder, two tasks with the same name (or HydroServer id) or two tasks writing the same datastream
are refused together, each error naming the other task.

This module imports no Airflow, no pandas and no requests: the DAG file calls it on every parse.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterable
from collections.abc import Mapping as AbcMapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, get_args

import yaml

from .airflow_settings import AIRFLOW_SETTINGS, check_airflow_settings
from .builders import ConnectionLookup, build_data_connection, build_task
from .keys import (
    AUTH_KEYS,
    CONNECTION_KEYS,
    CONNECTION_READ_ONLY,
    FLAT_SCHEDULE_KEYS,
    MAPPING_KEYS,
    MAPPING_READ_ONLY,
    NOTIFICATION_KEYS,
    PAYLOAD_FIELDS,
    PAYLOAD_KEYS,
    PLACEHOLDER_KEYS,
    SCHEDULE_KEYS,
    SCHEDULE_READ_ONLY,
    SECRET_KEYS,
    TASK_KEYS,
    TASK_READ_ONLY,
)
from .models import DataConnection, Task, TimezoneType
from .parts import IntervalPeriod, Schedule, VariableType
from .durations import DURATION_EXPECTED
from .error_values import describe_found, suggest
from .payloads import DELIMITERS, PAYLOAD_MODELS, PAYLOAD_TYPES
from .vocabulary import connection_location, task_location
from hydroserver_provider.errors import DefinitionError, DefinitionErrors

__all__ = [
    "DEFINITION_SUFFIXES",
    "SCHEMA_PATH",
    "DefinitionFile",
    "definition_json_schema",
    "definition_paths",
    "load_definition_file",
    "load_definition_paths",
    "load_definitions",
    "parse_definitions",
    "write_definition_json_schema",
]

DEFINITION_SUFFIXES = (".yaml", ".yml", ".json")
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "definition.schema.json"
FILE_KEYS = {
    "$schema": "$schema",
    "defaults": "defaults",
    "data_connections": "data_connections",
    "dataConnections": "data_connections",
    "tasks": "tasks",
}


@dataclass(frozen=True)
class DefinitionFile:
    """One definition file: what loaded, and what did not.

    ``tasks`` are resolved (``Task.data_connection`` is the model, ``Task.airflow`` the file's
    defaults merged with the task's own ``airflow:`` block). ``errors`` holds every problem of the
    file: file-level ones and those of the data connections and tasks that did not load.
    """

    source: str
    tasks: tuple[Task, ...] = ()
    data_connections: tuple[DataConnection, ...] = ()
    defaults: dict = field(default_factory=dict)
    errors: tuple[DefinitionError, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors

    def raise_for_errors(self) -> None:
        """Raise every problem of the file together as ``DefinitionErrors``."""
        if self.errors:
            raise DefinitionErrors(self.errors)


# --------------------------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------------------------

_YAMLBase: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _UniqueKeyLoader(_YAMLBase):  # type: ignore[misc, valid-type]
    """Safe YAML loader (libyaml when available) that refuses a key written twice in a mapping."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(
                        key_node, yaml.ScalarNode):
                    continue
                key = (key_node.tag, key_node.value)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None,
                        f"the key '{key_node.value}' is written twice in this mapping (first on "
                        f"line {seen[key].line + 1}); YAML would silently keep only the last one",
                        key_node.start_mark)
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:map", _UniqueKeyLoader.construct_yaml_map)


def _no_duplicate_pairs(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key '{key}' is written twice in one object")
        out[key] = value
    return out


def _read(text: str, source: str, suffix: str) -> Any:
    """Parse the text of a definition file; syntax problems raise ``DefinitionError``."""
    if suffix == ".json":
        try:
            return json.loads(text, object_pairs_hook=_no_duplicate_pairs)
        except json.JSONDecodeError as exc:
            raise DefinitionError(f"not valid JSON: {exc.msg}",
                                  location=f"{source}, line {exc.lineno}, column {exc.colno}",
                                  expected="a JSON object", found=None) from None
        except ValueError as exc:
            raise DefinitionError(str(exc), location=source) from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a safe loader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}, line {mark.line + 1}, column {mark.column + 1}" if mark else source
        problem = exc.problem or exc.context or "syntax error"
        raise DefinitionError(f"not valid YAML: {problem}", location=where) from None
    except yaml.YAMLError as exc:
        raise DefinitionError(f"not valid YAML: {exc}", location=source) from None


def _read_file(path: Path) -> tuple[Any, DefinitionError | None]:
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return None, DefinitionError(f"the file is not UTF-8 text ({exc.reason})", location=source)
    except OSError as exc:
        return None, DefinitionError(f"cannot read the file: {exc.strerror or exc}",
                                     location=source)
    try:
        return _read(text, source, path.suffix.lower()), None
    except DefinitionError as exc:
        return None, exc


def definition_paths(folder: str | os.PathLike) -> list[Path]:
    """The definition files below ``folder``, sorted; hidden files and folders are skipped."""
    root = Path(folder)
    found: list[Path] = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith((".", "__")))
        for name in sorted(files):
            if not name.startswith(".") and name.lower().endswith(DEFINITION_SUFFIXES):
                found.append(Path(directory) / name)
    return sorted(found, key=lambda p: p.relative_to(root).parts)


# --------------------------------------------------------------------------------------------
# Building a file
# --------------------------------------------------------------------------------------------


def _parse(data: Any, source: str) -> DefinitionFile:
    if data is None:
        return DefinitionFile(source)  # an empty file
    if not isinstance(data, AbcMapping):
        return DefinitionFile(source, errors=(DefinitionError(
            "a definition file is a mapping with defaults, data_connections and tasks",
            location=source, expected="data_connections: [...] and tasks: [...]",
            found=describe_found(data)),))
    errors: list[DefinitionError] = []
    top: dict[str, Any] = {}
    for key, value in data.items():
        canonical = FILE_KEYS.get(key) if isinstance(key, str) else None
        if canonical is None:
            hint = suggest(str(key), FILE_KEYS)
            errors.append(DefinitionError(
                "unknown key at the top of the file" + (f" (did you mean '{hint}'?)" if hint
                                                        else ""),
                location=source, field=str(key),
                expected=f"'{hint}'" if hint else "defaults, data_connections or tasks",
                found=describe_found(key)))
        elif canonical in top:
            errors.append(DefinitionError("written twice (data_connections and dataConnections)",
                                          location=source, field=str(key),
                                          expected="one list of data connections", found=key))
        else:
            top[canonical] = value

    defaults, problems = check_airflow_settings(top.get("defaults"), location=source,
                                                field="defaults", defaults=True)
    errors += problems

    lookup = ConnectionLookup()
    connections: list[DataConnection] = []
    seen_names: dict[str, str] = {}
    seen_ids: dict[str, str] = {}
    for i, raw in enumerate(_list(top.get("data_connections"), "data_connections", source,
                                  errors)):
        location = connection_location(raw, source, i)
        connection, problems = build_data_connection(raw, location)
        errors += problems
        name = raw.get("name") if isinstance(raw, dict) else None
        ident = raw.get("id") if isinstance(raw, dict) else None
        entry: DataConnection | str = connection if connection is not None else \
            "it has errors (reported for the data connection)"
        if isinstance(name, str) and name in seen_names:
            errors.append(DefinitionError(
                "two data connections have this name", location=location, field="name",
                expected="unique data connection names in a file", found=name))
            lookup.add(name, f"two data connections are named '{name}'")
            continue
        if ident is not None and str(ident).strip().lower() in seen_ids:
            errors.append(DefinitionError(
                "two data connections have this id", location=location, field="id",
                expected="unique ids in a file", found=describe_found(ident)))
            lookup.add(None, f"two data connections have the id '{ident}'", ident)
            continue
        if isinstance(name, str):
            seen_names[name] = location
        if ident is not None:
            seen_ids[str(ident).strip().lower()] = location
        lookup.add(name, entry, ident)
        if connection is not None:
            connections.append(connection)

    tasks: list[Task] = []
    for i, raw in enumerate(_list(top.get("tasks"), "tasks", source, errors)):
        task, problems = build_task(raw, task_location(raw, source, i), lookup, defaults)
        errors += problems
        if task is not None:
            tasks.append(task)
    return DefinitionFile(source, tuple(tasks), tuple(connections), defaults, tuple(errors))


def _list(value: Any, key: str, source: str, errors: list[DefinitionError]) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        errors.append(DefinitionError(f"{key} is a list", location=source, field=key,
                                      expected="a list of mappings", found=describe_found(value)))
        return []
    return value


def _name_key(name: str) -> str:
    return " ".join(name.split()).casefold()


def _check_conflicts(files: list[DefinitionFile]) -> list[DefinitionFile]:
    """Refuse tasks sharing a name or id, or writing the same datastream, across ``files``."""
    by_name: dict[str, list[tuple[int, Task]]] = defaultdict(list)
    by_id: dict[str, list[tuple[int, Task]]] = defaultdict(list)
    by_target: dict[str, list[tuple[int, Task]]] = defaultdict(list)
    for i, f in enumerate(files):
        for task in f.tasks:
            by_name[_name_key(task.name)].append((i, task))
            if task.id:
                by_id[task.id.strip().lower()].append((i, task))
            for target in task.target_datastream_ids:
                by_target[target].append((i, task))

    refused: dict[tuple[int, int], list[DefinitionError]] = defaultdict(list)

    def describe(i: int, task: Task) -> str:
        return f"task '{task.name}' in {files[i].source}"

    def refuse(entries: list[tuple[int, Task]], field_name: str, message: str, expected: str,
               found: Any) -> None:
        for i, task in entries:
            others = "; ".join(describe(j, t) for j, t in entries if t is not task)
            refused[(i, id(task))].append(DefinitionError(
                f"{message} (also {others})", location=f"{files[i].source}: task '{task.name}'",
                field=field_name, expected=expected, found=found))

    for entries in by_name.values():
        if len(entries) > 1:
            refuse(entries, "name", "another task has the same name, so their DAGs would "
                   "collide; neither is loaded", "a task name used once in the folder",
                   entries[0][1].name)
    for ident, entries in by_id.items():
        if len(entries) > 1:
            refuse(entries, "id", "another task has the same HydroServer id; neither is loaded",
                   "a task id used once in the folder", ident)
    for target, entries in by_target.items():
        if len(entries) > 1:
            refuse(entries, "mappings",
                   f"datastream {target} is the target of more than one task; two tasks "
                   "writing one datastream would race, so neither is loaded",
                   "each datastream loaded by one task", target)

    if not refused:
        return files
    out = []
    for i, f in enumerate(files):
        keep, errors = [], list(f.errors)
        for task in f.tasks:
            problems = refused.get((i, id(task)))
            if problems:
                errors += problems
            else:
                keep.append(task)
        out.append(replace(f, tasks=tuple(keep), errors=tuple(errors)))
    return out


def parse_definitions(data: Any, source: str = "<definitions>") -> DefinitionFile:
    """A ``DefinitionFile`` from an in-memory document (a dict as read from YAML or JSON)."""
    return _check_conflicts([_parse(data, source)])[0]


def load_definition_file(path: str | os.PathLike) -> DefinitionFile:
    """Read and check one YAML or JSON definition file; problems are in ``.errors``."""
    path = Path(path)
    data, error = _read_file(path)
    if error is not None:
        return DefinitionFile(str(path), errors=(error,))
    return parse_definitions(data, str(path))


def load_definitions(folder: str | os.PathLike) -> tuple[list[DefinitionFile],
                                                          list[DefinitionError]]:
    """Every definition file below ``folder`` and all their problems.

    The files come back in path order, broken ones included (with their errors), so that the
    caller can build the good tasks and report the rest. Task names, ids and target datastreams
    are checked across the whole folder.
    """
    root = Path(folder)
    if not root.is_dir():
        return [], [DefinitionError("the definitions folder does not exist", location=str(root),
                                    expected="a folder of .yaml, .yml or .json files",
                                    found=str(root))]
    files = _check_conflicts([_load_unchecked(path) for path in definition_paths(root)])
    return files, [e for f in files for e in f.errors]


def load_definition_paths(paths: Iterable[str | os.PathLike]) -> tuple[list[DefinitionFile],
                                                                       list[DefinitionError]]:
    """Definition files named one by one or found below folders, checked across all of them.

    :func:`load_definitions` for a command line naming several files and folders: task names,
    ids and target datastreams are compared across everything given. A path that does not exist,
    or a file that is not YAML or JSON, is one more error; a file named twice is read once.
    """
    found: dict[Path, Path] = {}
    problems: list[DefinitionError] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            for inner in definition_paths(path):
                found.setdefault(inner.resolve(), inner)
        elif path.is_file() and path.suffix.lower() in DEFINITION_SUFFIXES:
            found.setdefault(path.resolve(), path)
        elif path.is_file():
            problems.append(DefinitionError(
                "not a definition file", location=str(path),
                expected="a .yaml, .yml or .json file, or a folder of them", found=path.name))
        else:
            problems.append(DefinitionError(
                "no such file or folder", location=str(path),
                expected="a definition file or a folder of them", found=str(path)))
    files = _check_conflicts([_load_unchecked(path) for path in found.values()])
    return files, problems + [e for f in files for e in f.errors]


def _load_unchecked(path: Path) -> DefinitionFile:
    """One file read and validated on its own (no checks against other files yet)."""
    data, error = _read_file(path)
    if error is not None:
        return DefinitionFile(str(path), errors=(error,))
    return _parse(data, str(path))


# --------------------------------------------------------------------------------------------
# JSON Schema of the file format
# --------------------------------------------------------------------------------------------


def _leaf(model: Any, name: str, *, nullable: bool = True) -> dict:
    """The JSON Schema of one scalar model field, from its annotation."""
    from pydantic import TypeAdapter  # noqa: PLC0415

    schema = TypeAdapter(model.model_fields[name].annotation).json_schema()
    schema.pop("title", None)
    if nullable and schema.get("type") != "null" and not any(
            s.get("type") == "null" for s in schema.get("anyOf", ())):
        schema = {"anyOf": [schema, {"type": "null"}]}
    return schema


def _nullable(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


def _enum(values: Any, *, cases: bool = True) -> dict:
    values = list(values)
    if cases:
        values = list(dict.fromkeys([*values, *(v.lower() for v in values),
                                     *(v.upper() for v in values)]))
    return {"type": "string", "enum": values}


def _ref(name: str) -> dict:
    return {"$ref": f"#/$defs/{name}"}


def _object(keys: dict[str, str], values: dict[str, dict], *, description: str,
            required: tuple[str, ...] = (), read_only: frozenset = frozenset(),
            secrets: frozenset = frozenset()) -> dict:
    properties: dict[str, Any] = {}
    for spelling, canonical in keys.items():
        properties[spelling] = values[canonical]
    for key in sorted(read_only):
        properties.setdefault(key, {"description": "read-only HydroServer field, ignored"})
    for key in sorted(secrets):
        properties.setdefault(key, {
            "description": "refused when set: keep secrets in an Airflow connection or Variable "
                           "and reference them with auth",
            "anyOf": [{"type": "null"}, {"const": ""}]})
    schema: dict[str, Any] = {"type": "object", "description": description,
                              "properties": properties, "additionalProperties": False}
    alternatives = []
    for canonical in required:
        spellings = [s for s, c in keys.items() if c == canonical]
        alternatives.append({"anyOf": [{"required": [s]} for s in spellings]}
                            if len(spellings) > 1 else {"required": spellings})
    if alternatives:
        schema["allOf"] = alternatives
    return schema


_SETTING_SCHEMAS = {
    "an Airflow connection id": {"type": "string", "minLength": 1},
    "a name": {"type": "string", "minLength": 1},
    "a whole number >= 0": {"type": "integer", "minimum": 0},
    "a whole number >= 1": {"type": "integer", "minimum": 1},
    "a whole number": {"type": "integer"},
    DURATION_EXPECTED: {"anyOf": [
        {"type": "number", "minimum": 0}, {"type": "string", "minLength": 1}]},
    "true, false or a multiplier such as 2": {"anyOf": [{"type": "boolean"},
                                                        {"type": "number", "minimum": 0}]},
    "a host name": {"type": "string", "minLength": 1},
    "true or false": {"type": "boolean"},
    "an Airflow pool name": {"type": "string", "minLength": 1},
    "an executor queue name": {"type": "string", "minLength": 1},
    "an address or a list of addresses": {"anyOf": [{"type": "string"}, {
        "type": "array", "items": {"type": "string"}}]},
    "a list of tags": {"type": "array", "items": {"type": "string"}},
    "a DAG id": {"type": "string", "minLength": 1},
}


def definition_json_schema() -> dict:
    """The JSON Schema (draft 2020-12) of a definition file, built from the models and key tables.

    It accepts both vocabularies (seed guide snake_case with flat payload keys, and HydroServer's
    camelCase export). The loader checks more than a schema can say (placeholders against
    variables, time zones, formats, cron, references between tasks and connections).
    """
    payload_values: dict[str, dict] = {
        "type": _enum(PAYLOAD_TYPES),
        "timestamp_key": {"type": "string", "minLength": 1,
                          "description": "the column (CSV) or field (JSON) holding timestamps"},
        "timestamp_format": _nullable({
            "type": "string",
            "description": "strftime format of the timestamps, or ISO8601 (the default)"}),
        "data_ingestion_window": {
            "description": "HydroServer's ingestion window is not used: put window_start/"
                           "window_end placeholders in source_url",
            "anyOf": [{"type": "null"}, {"type": "object", "maxProperties": 0}]},
    }
    for name, kinds in PAYLOAD_FIELDS.items():
        model = PAYLOAD_MODELS[kinds[0]]
        payload_values[name] = _leaf(model, name)
        payload_values[name]["description"] = f"{' and '.join(kinds)} payloads"
    payload_values["delimiter"] = _nullable({"type": "string", "enum": list(DELIMITERS),
                                             "description": "CSV payloads: the column separator"})
    payload_values["header_row"]["description"] = \
        "CSV payloads: 1-based row of the column names; null when the file has no header"
    payload_values["data_start_row"]["description"] = "CSV payloads: 1-based first data row"
    payload_values["jmespath"]["description"] = \
        "JSON payloads: JMESPath selecting the list of records (default '@': the document)"

    schedule_values = {
        "interval": _nullable({"type": "integer", "minimum": 1}),
        "interval_period": _nullable(_enum(get_args(IntervalPeriod))),
        "crontab": _nullable({"type": "string",
                              "description": "5 fields: minute hour day-of-month month "
                                             "day-of-week"}),
        "timezone": _leaf(Schedule, "timezone"),
        "start_time": _leaf(Schedule, "start_time"),
        "enabled": _leaf(Schedule, "enabled"),
    }
    schedule_values["timezone"]["description"] = "IANA zone of the crontab (UTC when unset)"

    connection_values: dict[str, dict] = {
        "name": {"type": "string", "minLength": 1},
        "id": _nullable({"type": "string", "description": "HydroServer id (imported)"}),
        "description": _nullable({"type": "string"}),
        "source_url": {"anyOf": [{"type": "string", "minLength": 1}, {"type": "null"}],
                       "description": "http(s):// or file:// URL; {name} placeholders are "
                                      "described in placeholder_variables (not used by "
                                      "HYDROCRON: hydrocron_conn_id names the endpoint)"},
        "payload": {"anyOf": [_enum(PAYLOAD_TYPES), _ref("Payload")]},
        "payload_type": _enum(PAYLOAD_TYPES),
        "timezone_type": _nullable(_enum(get_args(TimezoneType))),
        "timezone": _nullable({"type": "string",
                               "description": "offset (-0700, +05:30) or IANA zone name"}),
        "placeholder_variables": _nullable({"type": "array",
                                            "items": _ref("PlaceholderVariable")}),
        "auth": _nullable(_ref("SourceAuth")),
        "auth_header_name": _nullable({"type": "string"}),
        "workspace_id": _nullable({"type": "string"}),
        "workspace": {"anyOf": [{"type": "string"}, {"type": "null"}, {
            "type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}]},
        "notification": _nullable(_ref("Notification")),
        "lookback": _nullable({
            **_SETTING_SCHEMAS[DURATION_EXPECTED],
            "description": "incremental loads: how far before each datastream's newest "
                           "observation missing or revised rows are still loaded (late data; "
                           "unset: only rows after it, like HydroServer)"}),
        "timestamp_key": payload_values["timestamp_key"],
        "timestamp_format": payload_values["timestamp_format"],
    }
    for name in PAYLOAD_FIELDS:
        connection_values[name] = payload_values[name]

    flat_schedule = {k: schedule_values[k] for k in FLAT_SCHEDULE_KEYS}
    task_values: dict[str, dict] = {
        "name": {"type": "string", "minLength": 1},
        "id": _nullable({"type": "string", "description": "HydroServer id (imported)"}),
        "description": _nullable({"type": "string"}),
        "data_connection": {"anyOf": [{"type": "string", "minLength": 1,
                                       "description": "name or id of a data connection"},
                                      _ref("DataConnection")]},
        "data_connection_id": {"type": "string", "minLength": 1},
        "mappings": {"type": "array", "items": _ref("Mapping"), "minItems": 1},
        "task_variables": _nullable({"type": "object",
                                     "additionalProperties": {"type": "string"}}),
        "schedule": _nullable(_ref("Schedule")),
        "airflow": _nullable(_ref("AirflowSettings")),
        **flat_schedule,
    }
    mapping_values = {
        "source_identifier": {"anyOf": [{"type": "string", "minLength": 1},
                                        {"type": "integer", "minimum": 0}],
                              "description": "column (CSV) or field (JSON) name"},
        "target_datastream_id": {"type": "string", "minLength": 1},
        "target_datastream": {"anyOf": [{"type": "string"}, {
            "type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}]},
        "feature_id": {"anyOf": [{"type": "string", "pattern": "^[0-9]+$"},
                                 {"type": "integer", "minimum": 0}, {"type": "null"}],
                       "description": "HYDROCRON payloads: the reach, node or lake whose field "
                                      "this is; on every mapping, one DAG fans out over them"},
    }
    settings = {name: {**_SETTING_SCHEMAS[expected], "description": expected}
                for name, (_, expected) in AIRFLOW_SETTINGS.items()}

    defs = {
        "DataConnection": _object(
            CONNECTION_KEYS, connection_values, required=("name",),
            read_only=CONNECTION_READ_ONLY, secrets=SECRET_KEYS,
            description=(DataConnection.__doc__ or "").strip()),
        "Payload": _object(PAYLOAD_KEYS, payload_values, secrets=SECRET_KEYS,
                           description="the format of the source (CSV, JSON or HYDROCRON)"),
        "PlaceholderVariable": {
            **_object(PLACEHOLDER_KEYS, {
                "name": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
                "variable_type": {"type": "string", "enum": list(get_args(VariableType))},
                "timestamp_format": payload_values["timestamp_format"],
            }, required=("name", "variable_type"),
                description="one {name} of source_url and where its value comes from"),
        },
        "SourceAuth": _object(AUTH_KEYS, {
            "header_name": {"type": "string", "minLength": 1},
            "conn_id": _nullable({"type": "string", "minLength": 1,
                                  "description": "Airflow connection whose password is the "
                                                 "header value"}),
            "variable": _nullable({"type": "string", "minLength": 1,
                                   "description": "Airflow Variable holding the header value"}),
        }, required=("header_name",), description="an HTTP header sent to the source; its value "
                                                   "lives in Airflow, never in the file"),
        "Schedule": _object(SCHEDULE_KEYS, schedule_values, read_only=SCHEDULE_READ_ONLY,
                            description=(Schedule.__doc__ or "").strip()),
        "Notification": _object(NOTIFICATION_KEYS, {
            "recipient_emails": _nullable({"type": "array", "items": {"type": "string"}}),
            "schedule": _nullable(_ref("Schedule")),
        }, description="email digests of the runs"),
        "Mapping": _object(MAPPING_KEYS, mapping_values, read_only=MAPPING_READ_ONLY,
                           required=("source_identifier",),
                           description="which source field goes to which datastream"),
        "Task": _object(TASK_KEYS, task_values, required=("name",), read_only=TASK_READ_ONLY,
                        description=(Task.__doc__ or "").strip()),
        "AirflowSettings": {"type": "object", "properties": settings,
                            "additionalProperties": False,
                            "description": "Airflow settings of the task's DAG"},
    }
    # a mapping needs a target under one of its spellings
    defs["Mapping"]["allOf"].append({"anyOf": [
        {"required": [s]} for s, c in MAPPING_KEYS.items()
        if c in ("target_datastream_id", "target_datastream")]})
    # source_url is required, except for HYDROCRON (the endpoint is the Airflow connection's)
    hydrocron = {"enum": _enum(["HYDROCRON"])["enum"]}
    defs["DataConnection"]["allOf"].append({"anyOf": [
        *({"required": [s]} for s, c in CONNECTION_KEYS.items() if c == "source_url"),
        *({"required": [s], "properties": {s: hydrocron}}
          for s, c in CONNECTION_KEYS.items() if c == "payload_type"),
        {"required": ["payload"], "properties": {"payload": {"anyOf": [hydrocron, {
            "type": "object", "anyOf": [{"required": [s], "properties": {s: hydrocron}}
                                        for s, c in PAYLOAD_KEYS.items() if c == "type"]}]}}},
    ]})
    defs["Task"]["allOf"].append({"anyOf": [
        {"required": [s]} for s, c in TASK_KEYS.items()
        if c in ("data_connection", "data_connection_id")]})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "HydroServer provider for Apache Airflow: definition file",
        "description": "Data connections and tasks in hydroserverpy's vocabulary (or HydroServer's "
                       "camelCase export), plus Airflow settings.",
        "type": "object",
        "properties": {
            "$schema": {"type": "string"},
            "defaults": {"anyOf": [{"type": "null"}, {"allOf": [
                _ref("AirflowSettings"), {"not": {"required": ["dag_id"]}}]}],
                "description": "Airflow settings for every task of the file"},
            "data_connections": _nullable({"type": "array", "items": _ref("DataConnection")}),
            "dataConnections": _nullable({"type": "array", "items": _ref("DataConnection")}),
            "tasks": _nullable({"type": "array", "items": _ref("Task")}),
        },
        "additionalProperties": False,
        "$defs": defs,
    }


def write_definition_json_schema(path: str | os.PathLike = SCHEMA_PATH) -> Path:
    """Write ``definition_json_schema()`` to ``path`` (the published copy by default)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(definition_json_schema(), indent=2, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    return path


if __name__ == "__main__":  # python -m hydroserver_provider.definitions.files
    print(write_definition_json_schema())
