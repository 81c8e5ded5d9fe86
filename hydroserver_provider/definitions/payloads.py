"""The payload of a data connection: how to read a CSV file, a JSON document or NASA Hydrocron."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import Field, ValidationInfo, field_validator, model_validator

from .checks import (
    hydrocron_field_problem,
    hydrocron_id_problem,
    jmespath_problem,
)
from .base import DefinitionModel, invalid, invalid_all
from .error_values import describe_found
from ..defaults import HYDROCRON_CONN_ID

__all__ = [
    "DELIMITERS",
    "PAYLOAD_MODELS",
    "PAYLOAD_TYPES",
    "CSVPayload",
    "HydrocronPayload",
    "JSONPayload",
    "Payload",
]

# Accepted spellings of a CSV delimiter -> the character.
DELIMITERS: dict[str, str] = {
    ",": ",", "|": "|", "\t": "\t", ";": ";", " ": " ", "\\t": "\t",
    "comma": ",", "pipe": "|", "tab": "\t", "semicolon": ";", "space": " ",
}
_DELIMITER_EXPECTED = "one of ',' '|' '\\t' ';' ' ' or comma, pipe, tab, semicolon, space"


class CSVPayload(DefinitionModel):
    type: Literal["CSV"] = "CSV"
    header_row: int | None = 1  # 1-based; None: the file has no header, identifiers are indexes
    data_start_row: int = 2  # 1-based
    delimiter: str = ","

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        # HydroServer exports null for unset rows/delimiter; the first data row follows the header.
        if isinstance(data, dict):
            if data.get("delimiter", ",") is None:
                data = {**data, "delimiter": ","}
            if data.get("data_start_row") is None:
                header = data.get("header_row", 1)
                if header is None or (isinstance(header, int) and not isinstance(header, bool)):
                    data = {**data, "data_start_row": (header or 0) + 1}
        return data

    @field_validator("header_row")
    @classmethod
    def _header_row(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise invalid("rows are counted from 1",
                          expected="a row number >= 1, or null for a file without header",
                          found=value)
        return value

    @field_validator("data_start_row")
    @classmethod
    def _data_start_row(cls, value: int, info: ValidationInfo) -> int:
        if value < 1:
            raise invalid("rows are counted from 1", expected="a row number >= 1", found=value)
        header = info.data.get("header_row")
        if header is not None and value <= header:
            raise invalid("the data must start after the header row",
                          expected=f"a row number > header_row ({header})", found=value)
        return value

    @field_validator("delimiter")
    @classmethod
    def _delimiter(cls, value: str) -> str:
        char = DELIMITERS.get(value) or DELIMITERS.get(value.strip().lower())
        if char is None:
            raise invalid("unknown delimiter", expected=_DELIMITER_EXPECTED, found=value)
        return char


class JSONPayload(DefinitionModel):
    type: Literal["JSON"] = "JSON"
    jmespath: str  # selects the list of records; "@" when the document itself is the list

    @field_validator("jmespath", mode="before")
    @classmethod
    def _root(cls, value: Any) -> Any:
        return "@" if value is None else value

    @field_validator("jmespath")
    @classmethod
    def _compile(cls, value: str) -> str:
        problem = jmespath_problem(value)
        if problem:
            raise invalid(f"invalid JMESPath expression: {problem}",
                          expected="a JMESPath expression such as 'data[*]'", found=value)
        return value


_HYDROCRON_FEATURES = {"reach": "Reach", "node": "Node", "priorlake": "PriorLake",
                       "prior_lake": "PriorLake", "lake": "PriorLake"}
_HYDROCRON_RULE = re.compile(
    r"\s*[A-Za-z_][A-Za-z0-9_]*\s*(<=|>=|==|!=|<|>|=)\s*[-+]?\d+(\.\d+)?\s*\Z")


class HydrocronPayload(DefinitionModel):
    """NASA Hydrocron SWOT time series of one river reach, river node or prior lake.

    The values are Hydrocron *fields* (``wse``, ``width``, ``slope``, ``area_total``,
    ``dschg_c``...): mappings name them as source identifiers; ``time_str`` is the timestamp.
    ``feature_id`` is fixed here, or comes from the task (``task_variables: {feature_id: ...}``),
    or from each mapping (``feature_id`` on every mapping: one DAG fanning out over the features).
    ``fields``: what to request (default: the mapped fields). ``quality_filter``: None for the
    recommended filter (``reach_q``/``node_q``/``quality_f`` <= 1 and ``ice_clim_f == 0`` where
    present), ``[]`` for none, or rules such as ``["reach_q <= 0"]``. ``mode``: ``incremental``
    (each run asks from the newest stored observation minus ``overlap_hours`` until now: SWOT
    passes reach Hydrocron days after the overpass) or ``windowed`` (each run owns its data
    interval, widened by ``overlap_hours`` for the request and trimmed exactly when loading).
    ``conversions``: ``{wse: {from: m, to: ft}}`` or ``{wse: ft}`` (from what Hydrocron reports).
    ``requests_per_second``: the request rate of the whole task, fan-out included.
    """

    type: Literal["HYDROCRON"] = "HYDROCRON"
    feature: Literal["Reach", "Node", "PriorLake"] = "Reach"
    feature_id: str | None = None
    collection_name: str | None = None
    fields: tuple[str, ...] = ()
    quality_filter: Union[str, tuple[str, ...], None] = None
    overlap_hours: float = 24.0
    mode: Literal["incremental", "windowed"] = "incremental"
    hydrocron_conn_id: str = HYDROCRON_CONN_ID
    min_window_hours: float | None = None
    max_window_days: float | None = None
    conversions: dict[str, Union[str, dict[str, str]]] = Field(default_factory=dict)
    requests_per_second: float | None = None

    @field_validator("feature", mode="before")
    @classmethod
    def _feature(cls, value: Any) -> Any:
        if isinstance(value, str):
            return _HYDROCRON_FEATURES.get(value.strip().replace(" ", "").lower(), value)
        return value

    @field_validator("feature_id", mode="before")
    @classmethod
    def _feature_id_text(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value.strip() or None if isinstance(value, str) else value

    @field_validator("feature_id")
    @classmethod
    def _feature_id(cls, value: str | None, info: ValidationInfo) -> str | None:
        feature = info.data.get("feature")
        problem = hydrocron_id_problem(value, feature) if value and feature else None
        if problem:
            raise invalid(problem[0], expected=problem[1], found=value)
        return value

    @field_validator("collection_name")
    @classmethod
    def _collection(cls, value: str | None) -> str | None:
        value = value.strip() if value else None
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_.\-]+", value):
            raise invalid("a Hydrocron collection name is one word",
                          expected="e.g. SWOT_L2_HR_RiverSP_D", found=value)
        return value

    @field_validator("fields", mode="before")
    @classmethod
    def _fields_text(cls, value: Any) -> Any:
        return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) \
            else value

    @field_validator("fields")
    @classmethod
    def _fields(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        problems = [((i,), problem, "a SWOT field such as wse, width, slope, area_total", name)
                    for i, name in enumerate(value)
                    if (problem := hydrocron_field_problem(name))]
        if problems:
            raise invalid_all(problems)
        return tuple(dict.fromkeys(value))

    @field_validator("quality_filter")
    @classmethod
    def _quality(cls, value: str | tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = tuple(p.strip() for p in re.split(r"\s*(?:,|;|\band\b)\s*", value)
                          if p.strip())
        problems = [((i,), "a quality rule is '<field> <comparison> <number>'",
                     "e.g. 'reach_q <= 1' or 'ice_clim_f == 0'", rule)
                    for i, rule in enumerate(value) if not _HYDROCRON_RULE.match(rule)]
        if problems:
            raise invalid_all(problems)
        return tuple(value)

    @field_validator("overlap_hours")
    @classmethod
    def _overlap(cls, value: float) -> float:
        if not 0 <= value < float("inf"):
            raise invalid("the overlap is a number of hours >= 0",
                          expected="e.g. 24 (Hydrocron selects passes by their start time)",
                          found=value)
        return value

    @field_validator("mode", mode="before")
    @classmethod
    def _mode(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
            return "windowed" if value in ("window", "interval", "data_interval") else value
        return value

    @field_validator("hydrocron_conn_id")
    @classmethod
    def _conn_id(cls, value: str) -> str:
        if not value.strip():
            raise invalid("the Airflow connection id is empty",
                          expected="an Airflow connection id such as hydrocron_default",
                          found=value)
        return value.strip()

    @field_validator("min_window_hours", "max_window_days", "requests_per_second")
    @classmethod
    def _positive(cls, value: float | None) -> float | None:
        if value is not None and not 0 < value < float("inf"):
            raise invalid("must be a positive number", expected="a number > 0", found=value)
        return value

    @field_validator("conversions")
    @classmethod
    def _conversions(cls, value: dict) -> dict:
        from hydroserver_provider.sources.hydrocron.units import UnitError, conversion_factor, describe_known_units  # noqa: PLC0415

        problems: list[tuple] = []
        out: dict[str, dict[str, str]] = {}
        for name, spec in value.items():
            problem = hydrocron_field_problem(name)
            if problem:
                problems.append(((name,), problem, "a SWOT field such as wse", name))
                continue
            if isinstance(spec, str):
                spec = {"to": spec}
            unknown = sorted(set(spec) - {"from", "to"})
            if unknown or not spec.get("to"):
                problems.append(((name,), "a conversion names the unit to convert to",
                                 "{to: ft} or {from: m, to: ft}", describe_found(spec)))
                continue
            try:
                conversion_factor(spec.get("from") or spec["to"], spec["to"])
                if spec.get("from"):
                    conversion_factor(spec["from"], spec["to"])
            except UnitError as exc:
                problems.append(((name,), f"cannot convert: {exc}",
                                 f"units of one kind among {describe_known_units()}",
                                 describe_found(spec)))
                continue
            out[name] = {k: spec[k] for k in ("from", "to") if spec.get(k)}
        if problems:
            raise invalid_all(problems)
        return out

    @model_validator(mode="after")
    def _windows(self) -> HydrocronPayload:
        if (self.min_window_hours is not None and self.max_window_days is not None
                and self.max_window_days * 24 < self.min_window_hours):
            raise invalid("the longest window is shorter than the smallest one",
                          expected=f"max_window_days >= min_window_hours / 24 "
                                   f"({self.min_window_hours / 24:g})",
                          found=self.max_window_days, field=("max_window_days",),
                          relative_to="model")
        return self


Payload = Annotated[Union[CSVPayload, JSONPayload, HydrocronPayload], Field(discriminator="type")]
PAYLOAD_MODELS: dict[str, type[DefinitionModel]] = {
    "CSV": CSVPayload, "JSON": JSONPayload, "HYDROCRON": HydrocronPayload,
}
PAYLOAD_TYPES = tuple(PAYLOAD_MODELS)
