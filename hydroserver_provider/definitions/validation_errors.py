"""pydantic's ``ValidationError`` -> ``DefinitionError``s naming the key as the user wrote it."""

from __future__ import annotations

from pydantic import ValidationError

from .base import FIELD_HINTS
from hydroserver_provider.errors import DefinitionError
from .error_values import NOTHING, describe_found
from .payloads import PAYLOAD_MODELS
from .vocabulary import DefinitionReader

__all__ = ["convert_validation_error"]

_TYPE_EXPECTED = {
    "string_type": "text", "string_sub_type": "text",
    "int_type": "a whole number", "int_parsing": "a whole number",
    "int_from_float": "a whole number", "float_type": "a number", "float_parsing": "a number",
    "bool_type": "true or false", "bool_parsing": "true or false",
    "list_type": "a list", "tuple_type": "a list", "dict_type": "a mapping (key: value)",
    "model_type": "a mapping (key: value)", "model_attributes_type": "a mapping (key: value)",
    "datetime_type": "a date-time such as 2025-01-01T00:00:00Z",
    "datetime_parsing": "a date-time such as 2025-01-01T00:00:00Z",
    "datetime_from_date_parsing": "a date-time such as 2025-01-01T00:00:00Z",
    "timezone_aware": "a date-time with a time zone",
}


def _clean_loc(loc: tuple) -> tuple:
    out: list = []
    for part in loc:
        if out and out[-1] == "payload" and part in PAYLOAD_MODELS:
            continue  # the discriminated union's tag
        if isinstance(part, str) and part.startswith("function-"):
            continue
        out.append(part)
    return tuple(out)


def convert_validation_error(exc: ValidationError, r: DefinitionReader) -> None:
    """Append a DefinitionError to ``r.errors`` for every error of ``exc``."""
    for e in exc.errors(include_url=False):
        loc = _clean_loc(tuple(e["loc"]))
        if any(loc[:i] in r.reported for i in range(1, len(loc) + 1)):
            continue
        ctx = e.get("ctx") or {}
        kind = e["type"]
        if kind == "hydroserver_definition":
            anchor = loc  # the validated field, or the model for a model validator
            for field, message, expected, found in ctx["problems"]:
                path = anchor + tuple(field)
                r.errors.append(DefinitionError(message, location=r.location,
                                                field=r.where(path) or None,
                                                expected=expected, found=found))
            continue
        field = r.where(loc) or None
        last = next((p for p in reversed(loc) if isinstance(p, str)), "")
        if kind == "missing":
            message, expected, found = "is required", FIELD_HINTS.get(last, "a value"), NOTHING
        elif kind == "extra_forbidden":
            message, expected, found = "unknown key", None, NOTHING
        elif kind == "literal_error":
            message, expected, found = "not an accepted value", ctx.get("expected"), \
                describe_found(e.get("input"))
        elif kind == "union_tag_invalid":
            message, expected, found = "unknown payload type", "CSV, JSON or HYDROCRON", \
                describe_found(ctx.get("tag"))
        elif kind in _TYPE_EXPECTED:
            value = e.get("input")
            message = "wrong type"
            if kind.startswith("string") and isinstance(value, (int, float)):
                message += " (write it in quotes so that YAML keeps it as text)"
            expected, found = _TYPE_EXPECTED[kind], describe_found(value)
        elif kind == "too_short":
            message, expected, found = "is empty", FIELD_HINTS.get(last, "at least one item"), \
                describe_found(e.get("input"))
        else:
            message, expected, found = e["msg"], None, NOTHING
        r.errors.append(DefinitionError(message, location=r.location, field=field,
                                        expected=expected, found=found))
