"""The JSON Schema (draft 2020-12) of a definition file, generated from the models.

pydantic writes the models' schema; this adds what the models accept beyond their fields: every
spelling of a key (snake_case and camelCase), the flat keys moved into blocks, ``null`` for "not
set", the payload type in any case, HydroServer's read-only keys (ignored) and secret keys
(refused unless empty). The loader checks more than a schema can say (placeholders against
variables, time zones, formats, cron, references between tasks and connections).

Regenerate the published copy with ``python -m hydroserver_provider.definitions.schema``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, AliasPath
from pydantic.json_schema import models_json_schema

from hydroserver_provider.definitions.airflow import AirflowSettings
from hydroserver_provider.definitions.base import DefinitionModel
from hydroserver_provider.definitions.files import FILE_KEYS
from hydroserver_provider.definitions.models import DataConnection, Task
from hydroserver_provider.definitions.payloads import PAYLOAD_MODELS, PAYLOAD_TYPES

__all__ = ["SCHEMA_PATH", "definition_json_schema", "write_definition_json_schema"]

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "definition.schema.json"
_NULL = {"type": "null"}


def _ref(name: str) -> dict:
    return {"$ref": f"#/$defs/{name}"}


def _nullable(schema: dict) -> dict:
    if schema.get("type") == "null" or _NULL in schema.get("anyOf", ()):
        return schema
    if set(schema) == {"anyOf"}:
        return {"anyOf": [*schema["anyOf"], _NULL]}
    return {"anyOf": [schema, _NULL]}


def _any_case(schema: Any) -> Any:
    """String enums and constants in any case (the models fold them), titles left out."""
    if isinstance(schema, list):
        return [_any_case(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _any_case(v) for k, v in schema.items()
           if k != "title" and not (k == "default" and v is None)}
    values = out.pop("enum", None) or ([out.pop("const")] if "const" in out else None)
    if values is not None:
        out["enum"] = list(dict.fromkeys(
            [*values, *(v.lower() for v in values if isinstance(v, str)),
             *(v.upper() for v in values if isinstance(v, str))]))
    return out


def _property(model: type[DefinitionModel], name: str, schema: dict) -> dict[str, dict]:
    """The schema of one field under each of its spellings (an ``AliasPath`` nests it)."""
    alias = model.model_fields[name].validation_alias
    choices = alias.choices if isinstance(alias, AliasChoices) else [name]
    if not model.model_fields[name].is_required():
        schema = _nullable(schema)
    out: dict[str, dict] = {}
    for choice in choices:
        if isinstance(choice, AliasPath):
            key, inner = str(choice.path[0]), str(choice.path[1])
            nested = {"type": "object", "properties": {inner: schema}, "required": [inner]}
            out[key] = {"anyOf": [*out.get(key, {}).get("anyOf", []), nested]}
        elif choice in out:  # a plain spelling of the AliasPath's key: either form
            out[choice] = {"anyOf": [*out[choice]["anyOf"], schema]}
        else:
            out[choice] = schema
    return out


def _object(model: type[DefinitionModel], generated: dict, extra: dict[str, dict]) -> dict:
    properties: dict[str, dict] = {}
    for name, schema in generated["properties"].items():
        properties.update(_property(model, name, schema))
    properties.update(extra)
    for key in sorted(model.read_only):
        properties.setdefault(key, {"description": "read-only HydroServer field, ignored"})
    for key in sorted(model.secrets):
        properties.setdefault(key, {
            "description": "refused when set: keep secrets in an Airflow connection or Variable "
                           "and reference them with auth", "anyOf": [_NULL, {"const": ""}]})
    out = {k: v for k, v in generated.items() if k not in ("properties", "required", "title")}
    out["properties"] = properties
    required = [{"anyOf": [{"required": [s]} for s in model.spellings[name]]}
                for name in generated.get("required", ()) if name not in
                {block for block, _ in model.moved.values()}]
    if required:
        out["allOf"] = required
    return out


def _subclasses(cls: type) -> list[type]:
    out: list[type] = []
    sub: type
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


def definition_json_schema() -> dict:
    """The JSON Schema of a definition file, accepting both vocabularies."""
    _, generated = models_json_schema(
        [(m, "validation") for m in (DataConnection, Task, AirflowSettings)], by_alias=False,
        ref_template="#/$defs/{model}")
    defs = generated["$defs"]
    models = {m.__name__: m for m in _subclasses(DefinitionModel)}
    connection = defs["DataConnection"]["properties"]
    connection["payload"] = {"anyOf": [{"enum": list(PAYLOAD_TYPES)},
                                       *(_ref(n) for n in ("CSVPayload", "JSONPayload",
                                                           "HydrocronPayload"))]}
    defs["Task"]["properties"]["data_connection"] = {"anyOf": [
        {"type": "string", "minLength": 1, "description": "name or id of a data connection"},
        _ref("DataConnection")]}
    payload_keys = {k: v for m in PAYLOAD_MODELS.values()
                    for k, v in defs[m.__name__]["properties"].items()}
    flat = {"DataConnection": {k: {"enum": list(PAYLOAD_TYPES)} if f == "type" else
                               _nullable(payload_keys.get(f, {"type": "string"}))
                               for k, (_, f) in DataConnection.moved.items()},
            "Task": {k: defs["Schedule"]["properties"][f] for k, (_, f) in Task.moved.items()}}
    lifted = {k: _nullable(connection[f]) for f in DataConnection.lifted
              for k in DataConnection.spellings[f]}
    window = {"description": "HydroServer's ingestion window is not used: put window_start/"
                             "window_end placeholders in source_url",
              "anyOf": [_NULL, {"type": "object", "maxProperties": 0}]}
    for name, schema in list(defs.items()):
        model = models[name]
        extra = flat.get(name, {})
        if model in PAYLOAD_MODELS.values():
            extra = {**lifted, "data_ingestion_window": window, "dataIngestionWindow": window}
        defs[name] = _object(model, schema, extra)
    # source_url is required, except for HYDROCRON (the endpoint is the Airflow connection's)
    hydrocron = {"enum": ["HYDROCRON"]}
    defs["DataConnection"].setdefault("allOf", []).append({"anyOf": [
        *({"required": [s]} for s in DataConnection.spellings["source_url"]),
        *({"required": [k], "properties": {k: hydrocron}} for k, (_, f)
          in DataConnection.moved.items() if f == "type"),
        {"required": ["payload"], "properties": {"payload": {"anyOf": [hydrocron, {
            "type": "object", "required": ["type"], "properties": {"type": hydrocron}}]}}}]})
    nullable_list = {"anyOf": [{"type": "array", "items": _ref("DataConnection")}, _NULL]}
    top = {key: nullable_list for key, canonical in FILE_KEYS.items()
           if canonical == "data_connections"}
    return _any_case({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "HydroServer provider for Apache Airflow: definition file",
        "description": "Data connections and tasks in hydroserverpy's vocabulary (or "
                       "HydroServer's camelCase export), plus Airflow settings.",
        "type": "object",
        "properties": {
            "$schema": {"type": "string"},
            "defaults": {"anyOf": [_NULL, {"allOf": [_ref("AirflowSettings"), {"not": {
                "required": sorted(AirflowSettings.task_only)}}]}],
                "description": "Airflow settings for every task of the file"},
            **top,
            "tasks": {"anyOf": [{"type": "array", "items": _ref("Task")}, _NULL]},
        },
        "additionalProperties": False,
        "$defs": defs,
    })


def write_definition_json_schema(path: str | os.PathLike = SCHEMA_PATH) -> Path:
    """Write ``definition_json_schema()`` to ``path`` (the published copy by default)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(definition_json_schema(), indent=2, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    return path


if __name__ == "__main__":  # python -m hydroserver_provider.definitions.schema
    print(write_definition_json_schema())
