"""pydantic's ``ValidationError`` -> ``DefinitionError``s naming the key as the user wrote it.

pydantic's error locations already use the spelling of the input (aliases). Two things are added
here by reading the raw input along the location: where a key was really written when the models
moved it (a flat payload or schedule key, a timestamp key written in the payload block), and
why a key is not accepted (unknown, with "did you mean"; a secret; written twice; a setting of
another payload type).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple, get_args

from pydantic import BaseModel, ValidationError

from hydroserver_provider.definitions.base import (
    HIDDEN,
    NOTHING,
    DefinitionModel,
    Shown,
    describe_found,
    suggest,
)
from hydroserver_provider.definitions.payloads import PAYLOAD_MODELS
from hydroserver_provider.errors import DefinitionError

__all__ = ["SECRET_MESSAGE", "definition_errors"]

SECRET_MESSAGE = (
    "secret values are not accepted in definition files: store the value in an Airflow connection "
    "(as its password) or an Airflow Variable and reference it")
_SECRET_EXPECTED = "auth: {header_name: <header>, conn_id: <Airflow connection>} or auth: " \
                   "{header_name: <header>, variable: <Airflow Variable>}"
_UNREFERENCED = Shown("a header name without a value reference")
_TYPES = {
    "string": "text", "int": "a whole number", "float": "a number", "bool": "true or false",
    "list": "a list", "tuple": "a list", "dict": "a mapping (key: value)",
    "model": "a mapping (key: value)", "datetime": "a date-time such as 2025-01-01T00:00:00Z",
}
_PAYLOAD_EXPECTED = "CSV, JSON or HYDROCRON"


class _Spot(NamedTuple):
    """Where a location leads in the models and in the raw input."""

    text: str  # the path as the user wrote it
    base: str  # the same, without the last field
    owner: Any  # the model holding the last field
    name: str | None  # that field
    node: Any  # the model (or {tag: model}) inside it, or None
    data: Any  # the raw value there (None when absent)
    parent: Any  # the raw mapping holding it


def _join(text: str, part: Any) -> str:
    if isinstance(part, int):
        return f"{text}[{part}]"
    return f"{text}.{part}" if text else str(part)


@functools.cache
def _inner(model: type[DefinitionModel], name: str) -> Any:
    """The model inside a field (``{tag: model}`` for the payload union), or None."""
    field = model.model_fields.get(name)

    def models(annotation: Any) -> list[Any]:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return [annotation]
        return [m for arg in get_args(annotation) for m in models(arg)]

    found = models(field.annotation) if field is not None else []
    if len(found) > 1:
        return {m.model_fields["type"].default: m for m in found}
    return found[0] if found else None


def _spelt(model: Any, name: str, data: Any) -> str | None:
    """The key under which ``data`` holds the field ``name``, if it does."""
    if not isinstance(data, dict):
        return None
    return next((s for s in model.spellings.get(name, (name,)) if s in data), None)


def _is_model(node: Any) -> bool:
    return isinstance(node, type) and issubclass(node, DefinitionModel)


def _walk(model: type[DefinitionModel], raw: Any, loc: tuple) -> _Spot:
    """Follow ``loc`` (pydantic's location, or field names) through the models and ``raw``."""
    text, base, owner, name, node, data, parent = "", "", None, None, model, raw, None
    i = 0
    while i < len(loc):
        part = loc[i]
        i += 1
        if isinstance(node, dict):  # the payload union: skip its tag
            node = node.get(part)
            if node is not None:
                continue
        if isinstance(part, int):
            text = _join(text, part)
            fits = isinstance(data, (list, tuple)) and -len(data) <= part < len(data)
            parent, data = data, data[part] if fits else None
            continue
        if not _is_model(node):  # inside a plain value: a key, or a union member's label
            if isinstance(data, dict) and part in data:
                text, parent, data = _join(text, part), data, data[part]
            elif "[" not in part and part not in ("str", "int", "float", "bool", "list"):
                text, parent, data = _join(text, part), data, None
            continue
        field = node.keys.get(part, part)
        spelt, sub = _spelt(node, field, data), _inner(node, field)
        if any(block == field for block, _ in node.moved.values()):  # keys may be written flat
            inner, j = sub, i
            if isinstance(inner, dict) and j < len(loc) and loc[j] in inner:
                inner, j = inner[loc[j]], j + 1
            key = inner.keys.get(loc[j], loc[j]) if _is_model(inner) and j < len(loc) else None
            flat = next((k for k, target in node.moved.items()
                         if target == (field, key) and isinstance(data, dict) and k in data),
                        None) if key else None
            if flat and key and not _spelt(inner, key, data.get(spelt) if spelt else None):
                base, owner, name = text, inner, key
                text, parent, data, node, i = _join(text, flat), data, data[flat], \
                    _inner(inner, key), j + 1
                if owner.value_message:
                    break
                continue
            if spelt is None:  # no block: its keys are written here
                node = sub
                continue
        if spelt is None and field in node.lifted and isinstance(data, dict):
            block = data.get(node.lifted[field]) or {}
            inside = _spelt(node, field, block)
            if inside:
                base, owner, name = text, node, field
                text = _join(_join(text, node.lifted[field]), inside)
                parent, data, node = block, block[inside], sub
                continue
        base, owner, name = text, node, field
        text = _join(text, spelt or part)
        parent, data = data, data.get(spelt) if spelt and isinstance(data, dict) else None
        node = sub
        if owner.value_message:
            break  # one setting is one value: its path ends there
    return _Spot(text, base, owner, name, node, data, parent)


def definition_errors(exc: ValidationError, model: type[DefinitionModel], raw: Any,
                      location: str | None, prefix: str = "",
                      ignore: tuple = ()) -> list[DefinitionError]:
    """Every problem of ``exc`` (raised validating ``raw`` as ``model``), each once; ``prefix``
    is where ``raw`` sits (``defaults`` for a file's Airflow settings); a field missing at a
    location in ``ignore`` was reported already."""
    out: dict[str, DefinitionError] = {}
    for e in exc.errors(include_url=False):
        if e["type"] == "missing" and tuple(e["loc"]) in ignore:
            continue
        for message, field, expected, found in _convert(e, model, raw):
            field = _join(prefix, field) if prefix and field else field or prefix
            error = DefinitionError(message, location=location, field=field or None,
                                    expected=expected, found=found)
            out.setdefault(str(error), error)
    errors = list(out.values())
    if any(e.found is HIDDEN for e in errors):  # a secret in the file says it all about auth
        errors = [e for e in errors if e.found is not _UNREFERENCED]
    return errors


def _convert(e: Any, model: type[DefinitionModel], raw: Any) -> list[tuple]:
    kind, loc, ctx = e["type"], tuple(e["loc"]), e.get("ctx") or {}
    if kind == "definition":
        return [(message, _walk(model, raw, loc + tuple(at)).text, expected, found)
                for at, message, expected, found in ctx["problems"]]
    if kind == "extra_forbidden":
        return [_extra(_walk(model, raw, loc[:-1]), loc[-1], e.get("input"))]
    if kind.startswith("union_tag"):
        return [_payload_type(_walk(model, raw, loc[:-1]))]
    if kind == "invalid_key" or loc[-1:] == ("[key]",):  # YAML reads `1: x` as a number key
        return [("keys are text", _walk(model, raw, loc[:-2 if kind != "invalid_key" else -1])
                 .text, "a text key", describe_found(e.get("input")))]
    spot = _walk(model, raw, loc)
    field = spot.owner.model_fields.get(spot.name) if spot.owner and spot.name else None
    found = describe_found(e.get("input"))
    if spot.owner is not None and spot.owner.value_message:
        return [(spot.owner.value_message, spot.text, field and field.description,
                 describe_found(spot.data))]
    if kind == "missing":
        hint = (field and field.description) or ("a name" if spot.name == "name" else "a value")
        return [("is required", spot.text, hint, NOTHING)]
    if kind == "literal_error":
        return [("not an accepted value", spot.text, ctx.get("expected"), found)]
    if kind == "too_short":
        return [("is empty", spot.text, (field and field.description) or "at least one item",
                 found)]
    expected = _TYPES.get(kind.split("_")[0])
    if expected is None:
        return [(e["msg"], spot.text, None, NOTHING)]
    message = "wrong type"
    if expected == "text" and isinstance(e.get("input"), (int, float)):
        message += (" (write it in quotes so that YAML keeps it as text, e.g. "
                    f"{_last_key(loc)}: \"{e['input']}\")")
    return [(message, spot.text, expected, found)]


def _last_key(loc: tuple) -> str:
    return next((str(p) for p in reversed(loc) if isinstance(p, str)), "key")


def _extra(spot: _Spot, key: str, value: Any) -> tuple:
    """Why ``key`` (written in the mapping at ``spot``) is not accepted."""
    node, data, here = spot.node, spot.data if isinstance(spot.data, dict) else {}, spot.text
    field = _join(here, key)
    if not _is_model(node):
        return ("unknown key", field, None, NOTHING)
    if key in node.secrets:
        return (SECRET_MESSAGE, field, _SECRET_EXPECTED, HIDDEN)
    same = node.keys.get(key)
    other = next((s for s in node.spellings.get(same, ()) if s != key and s in data), None)
    if other:
        return (f"'{key}' repeats '{other}'", field, "the setting given once",
                describe_found(value))
    if key in node.moved:  # a flat key whose block sets it too
        block, target = node.moved[key]
        spelt = _spelt(node, block, data)
        if spelt is None:  # only the auth header name stays without its block
            return ("the header's value is not referenced; " + SECRET_MESSAGE, field,
                    f"auth: {{header_name: {value}, conn_id: <Airflow connection>}} or "
                    f"auth: {{header_name: {value}, variable: <Airflow Variable>}}",
                    _UNREFERENCED)
        inner = data[spelt]
        inside = _inside(_inner(node, block), target, inner)
        where = _join(_join(here, spelt), inside) if inside else _join(here, spelt)
        if block == "schedule":
            return (f"set both at task level and in schedule ('{where}')", field,
                    "the setting in one place", describe_found(value))
        return _twice(field, where, inner.get(inside) if inside else inner, value)
    owner = spot.owner
    lifted = [s for f, b in (owner.lifted if owner else {}).items() if b == spot.name
              for s in owner.spellings[f]]
    if key in lifted:  # written in its block and beside it, differently
        outside = _spelt(owner, owner.keys[key], spot.parent)
        return _twice(field, _join(spot.base, outside), spot.parent[outside], value)
    if key == "data_ingestion_window" or key == "dataIngestionWindow":
        return ("HydroServer's data ingestion window is not used by the Airflow provider: a "
                "scheduled DAG's data interval is the window; put {start}/{end} placeholders "
                "of type window_start/window_end in source_url", field, "no dataIngestionWindow",
                describe_found(value))
    kinds = [k for k, m in PAYLOAD_MODELS.items() if key in m.keys]
    if kinds and node in PAYLOAD_MODELS.values():
        return (f"this setting applies to {' and '.join(kinds)} payloads, not "
                f"{node.model_fields['type'].default}",
                field, f"no {key} for a {node.model_fields['type'].default} payload",
                describe_found(value))
    choices = [*node.keys, *node.moved, *lifted]
    hint = suggest(key, choices)
    known = ", ".join(dict.fromkeys([*node.model_fields, *(k for k in [*node.moved, *lifted]
                                                           if k.islower())]))
    message = node.unknown or f"unknown key in {node.what}"
    return (message + (f" (did you mean '{hint}'?)" if hint else ""), field,
            f"'{hint}'" if hint else f"one of {known}", key)


def _inside(block: Any, target: str, data: Any) -> str | None:
    """The key under which a block (a model, or the payload union) holds ``target``."""
    if target == "type":
        return "type" if isinstance(data, dict) and "type" in data else None
    models = block.values() if isinstance(block, dict) else [block]
    return next((s for m in models if (s := _spelt(m, target, data))), None)


def _twice(field: str, other: str, other_value: Any, value: Any) -> tuple:
    return (f"set twice with different values (also as '{other}')", field,
            f"the value of '{other}' ({other_value!r}) or only one of them",
            describe_found(value))


def _payload_type(spot: _Spot) -> tuple:
    """A data connection's payload type is missing or unknown: name where it was written."""
    data = spot.data if isinstance(spot.data, dict) else {}
    block = data.get("payload")
    flat = next((k for k in ("payload_type", "payloadType") if k in data), None)
    if flat:
        field, value = flat, data[flat]
    elif isinstance(block, dict):
        field, value = "payload.type", block.get("type")
    elif isinstance(block, str):
        field, value = "payload", block
    else:
        field, value = "payload_type", None
    field = _join(spot.text, field)
    if value is None:
        return ("the payload type is required", field, _PAYLOAD_EXPECTED, NOTHING)
    hint = suggest(value.upper(), PAYLOAD_MODELS) if isinstance(value, str) else None
    return ("unknown payload type" + (f" (did you mean '{hint}'?)" if hint else ""), field,
            _PAYLOAD_EXPECTED, describe_found(value))
