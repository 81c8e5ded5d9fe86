"""Definition files: YAML or JSON documents holding data connections and tasks.

```yaml
defaults: {hydroserver_conn_id: hydroserver_default, retries: 3}   # Airflow settings, every task
data_connections: [{name: Station API, source_url: ..., payload_type: CSV, ...}]
tasks: [{name: Station 42, data_connection: Station API, mappings: [...], airflow: {retries: 5}}]
```

``load_definitions(folder)`` reads every ``*.yaml`` / ``*.yml`` / ``*.json`` below a folder. One
broken file never hides the others, and one broken task never hides the good tasks of its file:
each ``DefinitionFile`` carries the tasks that loaded and the errors of the rest, each problem
once. Across the folder, two tasks with the same name (or HydroServer id) or two tasks writing the
same datastream are refused together, each error naming the other task.

This module imports no Airflow, no pandas and no requests: the DAG file calls it on every parse.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from collections.abc import Mapping as AbcMapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import AliasChoices, AliasPath
from pydantic_core import PydanticUndefined

from hydroserver_provider.definitions.airflow import AirflowSettings
from hydroserver_provider.definitions.base import DefinitionModel, describe_found, suggest
from hydroserver_provider.definitions.build import (
    ConnectionLookup,
    build_defaults,
    build_task,
    connection_location,
    id_key,
    task_location,
    validate,
)
from hydroserver_provider.definitions.models import DataConnection, Task
from hydroserver_provider.definitions.parts import Mapping
from hydroserver_provider.errors import DefinitionError, DefinitionErrors

__all__ = [
    "DEFINITION_SUFFIXES", "DefinitionFile", "claimed_dag_ids", "definition_paths",
    "load_definition_file", "load_definition_paths", "load_definitions", "load_one_task",
    "parse_definitions",
]

DEFINITION_SUFFIXES = (".yaml", ".yml", ".json")
FILE_KEYS = {"$schema": "$schema", "defaults": "defaults", "data_connections": "data_connections",
             "dataConnections": "data_connections", "tasks": "tasks"}


@dataclass(frozen=True)
class DefinitionFile:
    """One definition file: what loaded, and what did not.

    ``tasks`` are resolved (``Task.data_connection`` is the model, ``Task.airflow`` the file's
    defaults under the task's own ``airflow:`` block). ``errors`` holds every problem of the
    file: file-level ones and those of the data connections and tasks that did not load.
    """

    source: str
    tasks: tuple[Task, ...] = ()
    data_connections: tuple[DataConnection, ...] = ()
    defaults: AirflowSettings = AirflowSettings()
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


class _UniqueKeyLoader(_YAMLBase):
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
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}, line {mark.line + 1}, column {mark.column + 1}" if mark else source
        raise DefinitionError(f"not valid YAML: {exc.problem or exc.context or 'syntax error'}",
                              location=where) from None
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
        found += [Path(directory) / name for name in sorted(files)
                  if not name.startswith(".") and name.lower().endswith(DEFINITION_SUFFIXES)]
    return sorted(found, key=lambda p: p.relative_to(root).parts)


# --------------------------------------------------------------------------------------------
# A file
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
                                                        else ""), location=source, field=str(key),
                expected=f"'{hint}'" if hint else "defaults, data_connections or tasks",
                found=describe_found(key)))
        elif canonical in top:
            errors.append(DefinitionError("written twice (data_connections and dataConnections)",
                                          location=source, field=str(key),
                                          expected="one list of data connections", found=key))
        else:
            top[canonical] = value

    defaults, problems = build_defaults(top.get("defaults"), source)
    errors += problems
    lookup = ConnectionLookup()
    connections: list[DataConnection] = []
    for i, raw in enumerate(_list(top.get("data_connections"), "data_connections", source,
                                  errors)):
        location = connection_location(raw, source, i)
        connection, problems = validate(DataConnection, raw, location)
        errors += problems
        name, ident = (raw.get("name"), raw.get("id")) if isinstance(raw, dict) else (None, None)
        if isinstance(name, str) and name in lookup.names:
            errors.append(DefinitionError(
                "two data connections have this name", location=location, field="name",
                expected="unique data connection names in a file", found=name))
            lookup.add(name, f"two data connections are named '{name}'", ident, raw)
        elif id_key(ident) and id_key(ident) in lookup.ids:
            errors.append(DefinitionError(
                "two data connections have this id", location=location, field="id",
                expected="unique ids in a file", found=describe_found(ident)))
            lookup.add(None, f"two data connections have the id '{ident}'", ident, raw)
        elif connection is None:
            lookup.add(name, "it has errors (reported for the data connection)", ident, raw)
        else:
            lookup.add(name, connection, ident, raw)
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


_CONFLICTS = {  # what two tasks may not share: field, message, expected
    "name": ("name", "another task has the same name, so their DAGs would collide; neither is "
             "loaded", "a task name used once in the folder"),
    "id": ("id", "another task has the same HydroServer id; neither is loaded",
           "a task id used once in the folder"),
    "target": ("mappings", "datastream {} is the target of more than one task; two tasks "
               "writing one datastream would race, so neither is loaded",
               "each datastream loaded by one task"),
}


def _check_conflicts(files: list[DefinitionFile]) -> list[DefinitionFile]:
    """Refuse tasks sharing a name or id, or writing the same datastream, across ``files``."""
    claims: dict[tuple[str, str], list[tuple[int, Task]]] = defaultdict(list)
    for i, f in enumerate(files):
        for task in f.tasks:
            for claim in _task_claims(task):
                claims[claim].append((i, task))
    refused: dict[tuple[int, int], list[DefinitionError]] = defaultdict(list)
    for (kind, value), entries in claims.items():
        field_name, message, expected = _CONFLICTS[kind]
        for i, task in entries if len(entries) > 1 else ():
            others = "; ".join(f"task '{t.name}' in {files[j].source}" for j, t in entries
                               if t is not task)
            refused[(i, id(task))].append(DefinitionError(
                f"{message.format(value)} (also {others})", field=field_name, expected=expected,
                location=f"{files[i].source}: task '{task.name}'",
                found=entries[0][1].name if kind == "name" else value))
    return [replace(f, tasks=tuple(t for t in f.tasks if (i, id(t)) not in refused),
                    errors=(*f.errors, *(e for t in f.tasks for e in refused.get((i, id(t)), ()))))
            for i, f in enumerate(files)] if refused else files


def _task_claims(task: Task) -> set[tuple[str, str]]:
    """What a loaded task may share with no other task of the folder."""
    claims = {("name", _name_key(task.name))} | {("target", t)
                                                  for t in task.target_datastream_ids}
    return claims | ({("id", task.id.strip().lower())} if task.id else set())


def parse_definitions(data: Any, source: str = "<definitions>") -> DefinitionFile:
    """A ``DefinitionFile`` from an in-memory document (a dict as read from YAML or JSON)."""
    return _check_conflicts([_parse(data, source)])[0]


def load_definition_file(path: str | os.PathLike) -> DefinitionFile:
    """Read and check one YAML or JSON definition file; problems are in ``.errors``."""
    return _check_conflicts([_load_unchecked(Path(path))])[0]


def _load_unchecked(path: Path) -> DefinitionFile:
    """One file read and validated on its own (no checks against other files yet)."""
    data, error = _read_file(path)
    if error is not None:
        return DefinitionFile(str(path), errors=(error,))
    return _parse(data, str(path))


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
    return load_definition_paths([root])


def load_definition_paths(paths: Iterable[str | os.PathLike]) -> tuple[list[DefinitionFile],
                                                                       list[DefinitionError]]:
    """Definition files named one by one or found below folders, checked across all of them.

    :func:`load_definitions` for a command line naming several files and folders. A path that
    does not exist, or a file that is not YAML or JSON, is one more error; a file named twice is
    read once.
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


# --------------------------------------------------------------------------------------------
# One task of a folder (a worker's fast path)
# --------------------------------------------------------------------------------------------


def _raw_values(model: type[DefinitionModel], name: str, data: Any) -> list[Any]:
    """Every value ``data`` gives the field under any of its spellings (as pydantic reads it)."""
    if not isinstance(data, dict):
        return []
    alias = model.model_fields[name].validation_alias
    values = [c.search_dict_for_path(data) if isinstance(c, AliasPath) else data.get(
        c, PydanticUndefined) for c in (alias.choices if isinstance(alias, AliasChoices)
                                        else [name])]
    return [v for v in values if v is not PydanticUndefined and v is not None]


def _raw_claims(raw: Any, dag_id: Callable[[str, str | None], str]) -> set[tuple[str, str]]:
    """What a task as written could share with another task (name, id, datastreams, DAG id):
    a superset of what the full load compares, never less."""
    claims: set[tuple[str, str]] = set()
    name = next(iter(_raw_values(Task, "name", raw)), None)
    if isinstance(name, str):
        claims.add(("name", _name_key(name)))
    claims |= {("id", str(v).strip().lower()) for v in _raw_values(Task, "id", raw)}
    airflow = next(iter(_raw_values(Task, "airflow", raw)), None)
    explicit = airflow.get("dag_id") if isinstance(airflow, dict) else None
    if isinstance(explicit, str) and explicit:
        claims.add(("dag_id", explicit))
    elif isinstance(name, str) and name.strip():
        claims.add(("dag_id", dag_id(name, None)))
    for mappings in _raw_values(Task, "mappings", raw):
        for mapping in mappings if isinstance(mappings, list) else ():
            claims |= {("target", str(v).strip().lower())
                       for v in _raw_values(Mapping, "target_datastream_id", mapping)
                       if not isinstance(v, dict)}
    return claims


def _one_task_document(document: dict, raw_task: dict) -> dict:
    """The document reduced to one task and the data connections it may name (all of them when
    the reference matches none, so that the error lists them)."""
    reduced = {**document, "tasks": [raw_task]}
    reference = next(iter(_raw_values(Task, "data_connection", raw_task)), None)
    if isinstance(reference, dict):
        reference = reference.get("id")
    if not isinstance(reference, str):
        return reduced
    for key in (k for k, v in FILE_KEYS.items() if v == "data_connections"):
        connections = document.get(key)
        if isinstance(connections, list):
            named = [c for c in connections if isinstance(c, dict) and (
                c.get("name") == reference or id_key(c.get("id")) == id_key(reference))]
            reduced[key] = named or connections
    return reduced


def load_one_task(folder: str | os.PathLike, wanted: str,
                  dag_id: Callable[[str, str | None], str]) -> DefinitionFile | None:
    """The task whose DAG id (``dag_id(name, explicit dag_id)``) is ``wanted``, validated alone
    with its file's defaults and data connection: what a worker running one task needs.

    Every file is read, but only that task is validated. None -- load everything instead --
    unless exactly one task claims the id and nothing it could conflict on (name, HydroServer
    id, target datastream, DAG id) appears in another task: then the full load would accept or
    refuse it exactly like this. A file without tasks when no task has the id.
    """
    root = Path(folder)
    if not root.is_dir():
        return None
    target, seen = None, Counter[tuple[str, str]]()
    for path in definition_paths(root):
        data, error = _read_file(path)
        if error is not None or data is None:
            continue
        tasks = data.get("tasks", []) if isinstance(data, dict) else None
        if not isinstance(tasks, list):
            return None
        for raw in tasks:
            claims = _raw_claims(raw, dag_id)
            if ("dag_id", wanted) in claims:
                if target is not None:
                    return None
                target = (path, data, raw)
            seen.update(claims)
    if target is None:
        return DefinitionFile(str(root))
    path, data, raw = target
    if any(seen[claim] > 1 for claim in _raw_claims(raw, dag_id)):
        return None
    return parse_definitions(_one_task_document(data, raw), str(path))


# --------------------------------------------------------------------------------------------
# The DAG ids a file's tasks claim, broken or not (what a broken file keeps out of Airflow)
# --------------------------------------------------------------------------------------------

_TASKS_KEY = re.compile(r"^(tasks|Tasks)\s*:")
_TOP_KEY = re.compile(r"^[A-Za-z_$\"']")
_ITEM_NAME = re.compile(r"^\s*-\s*(?:\{\s*)?name\s*:\s*(.+?)\s*(?:,.*)?$")


def _names_in_text(text: str) -> list[str]:
    """Task names read from a YAML file's text when it does not parse: the ``name`` of each
    list item (``- name: X`` or ``- {name: X, ...}``) under the top-level ``tasks:`` key."""
    names: list[str] = []
    inside = False
    for line in text.splitlines():
        if _TASKS_KEY.match(line):
            inside = True
            continue
        if inside and _TOP_KEY.match(line):
            inside = False
        match = _ITEM_NAME.match(line) if inside else None
        if match:
            value = match.group(1).split(" #", 1)[0].strip().strip("\"'")
            if value:
                names.append(value)
    return names


def claimed_dag_ids(path: str | os.PathLike, dag_id: Callable[[str, str | None], str]
                    ) -> tuple[list[str], bool]:
    """The DAG ids the tasks of a definition file ask for (``dag_id(name, explicit dag_id)``),
    valid or not, and whether they were read from the parsed file (True) or -- the file does
    not parse -- guessed from the task names in its text (False)."""
    path = Path(path)
    data, error = _read_file(path)
    if error is None:
        ids: list[str] = []
        tasks = data.get("tasks") if isinstance(data, dict) else None
        for raw in tasks if isinstance(tasks, list) else ():
            ids += sorted(claim for kind, claim in _raw_claims(raw, dag_id) if kind == "dag_id")
        return list(dict.fromkeys(ids)), True
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return [], False
    if path.suffix.lower() == ".json":
        return [], False
    return list(dict.fromkeys(dag_id(name, None) for name in _names_in_text(text))), False
