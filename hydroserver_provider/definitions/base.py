"""The base of every definition model, and how its validators report a problem.

A validator raises ``invalid(...)`` (or ``invalid_all([...])`` for several problems): a pydantic
error that carries the message, the expected and the found value, which the builders turn into
``DefinitionError``s naming the key as the user wrote it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo
from pydantic_core import PydanticCustomError

from .checks import strftime_problem
from .error_values import NOTHING

__all__ = [
    "FIELD_HINTS",
    "NORMALISED_CONTEXT",
    "DefinitionModel",
    "check_timestamp_format",
    "invalid",
    "invalid_all",
    "is_canonical",
]


class DefinitionModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# model_validate(..., context=NORMALISED_CONTEXT): the input is already canonical (built by
# the vocabulary), so the models skip their own normalisation.
_NORMALISED = "hydroserver_definition_normalised"
NORMALISED_CONTEXT = {_NORMALISED: True}


def is_canonical(info: ValidationInfo) -> bool:
    return bool(info.context) and bool(info.context.get(_NORMALISED))


def invalid(message: str, *, expected: str | None = None, found: Any = NOTHING,
            field: tuple = (), relative_to: str = "field") -> PydanticCustomError:
    """One problem raised from a validator, carrying the parts of a ``DefinitionError``.

    ``field`` is relative to what the validator validates: the field for a field validator, the
    model for a model validator (``relative_to`` documents which).
    """
    return invalid_all([(field, message, expected, found)], relative_to=relative_to)


def invalid_all(problems: list[tuple], *, relative_to: str = "field") -> PydanticCustomError:
    return PydanticCustomError(
        "hydroserver_definition",
        "{message}",
        {"message": "; ".join(p[1] for p in problems), "problems": problems,
         "relative_to": relative_to},
    )


def check_timestamp_format(value: str | None, *, for_url: bool = False) -> str | None:
    """Normalise ``ISO8601`` (any case) to None and check a strftime format."""
    if value is None:
        return None
    if value.strip().replace("-", "").replace(" ", "").lower() in ("", "iso", "iso8601"):
        return None  # ISO 8601 (same spellings as timestamps.is_iso_format)
    problem = strftime_problem(value, needs_date=not for_url)
    if problem:
        raise invalid(
            f"the timestamp format {problem}",
            expected=("a strftime format, e.g. '%Y-%m-%dT%H:%M:%S'" if for_url else
                     "a strftime format with a date, e.g. '%Y-%m-%dT%H:%M:%S', or ISO8601"),
            found=value,
        )
    return value


# What a field expects, shown when it is missing.
FIELD_HINTS = {
    "name": "a name",
    "source_url": "the URL to fetch, e.g. https://example.com/data.csv",
    "source_identifier": "the column (CSV) or field (JSON) holding the values",
    "target_datastream_id": "the id of the HydroServer datastream to load",
    "mappings": "a list of {source_identifier, target_datastream_id}",
    "variable_type": "window_start, window_end, run_time, latest_observation_timestamp or per_task",
    "header_name": "the HTTP header name, e.g. X-Api-Key",
    "jmespath": "a JMESPath expression such as 'data[*]'",
    "data_connection": "the name or id of a data connection",
}
