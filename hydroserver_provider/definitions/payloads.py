"""The payload of a data connection: how to read a CSV file, a JSON document or NASA Hydrocron.

``Payload`` is a union discriminated by ``type``; a data connection accepts it as a ``payload:``
block, as flat keys beside ``payload_type`` (the guide's spelling), or as HydroServer's export.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from hydroserver_provider.defaults import HYDROCRON_CONN_ID
from hydroserver_provider.definitions.base import (
    ID_SCHEMA,
    DefinitionModel,
    as_text,
    check,
    describe_found,
    invalid,
)
from hydroserver_provider.definitions.checks import (
    hydrocron_field_problem,
    hydrocron_id_problem,
    jmespath_problem,
)

__all__ = ["DELIMITERS", "PAYLOAD_MODELS", "PAYLOAD_TYPES", "CSVPayload", "HydrocronPayload",
           "JSONPayload", "Payload"]

# The guide's delimiter names, and the characters themselves (a tab also as "\t" written out).
DELIMITERS: dict[str, str] = {
    "comma": ",", "pipe": "|", "tab": "\t", "semicolon": ";", "space": " ",
    ",": ",", "|": "|", "\t": "\t", ";": ";", " ": " ", "\\t": "\t",
}
DELIMITER_EXPECTED = "one of ',' '|' '\\t' ';' ' ' or comma, pipe, tab, semicolon, space"


class _Payload(DefinitionModel):
    what = "the payload"
    secrets: ClassVar[frozenset[str]] = frozenset({
        "auth_header_value", "authHeaderValue", "api_key", "apiKey", "apikey", "password",
        "token"})


class CSVPayload(_Payload):
    """A CSV file: rows are 1-based numbers of physical lines."""

    type: Literal["CSV"] = "CSV"
    header_row: int | None = Field(default=1, description="CSV: 1-based row of the column "
                                                          "names; null when there is no header")
    data_start_row: int = Field(default=2, description="CSV: 1-based first data row (default: "
                                                       "after the header)")
    delimiter: str = Field(default=",", description="CSV: the column separator",
                           json_schema_extra={"enum": list(DELIMITERS)})

    @classmethod
    def _adjust(cls, data: dict) -> dict:
        # unset (or null, as HydroServer exports it) data_start_row: the row after the header
        if data.get("data_start_row", data.get("dataStartRow")) is None:
            header = data.get("header_row", data.get("headerRow", 1))
            if header is None or (isinstance(header, int) and not isinstance(header, bool)):
                data = {k: v for k, v in data.items() if k not in ("data_start_row",
                                                                   "dataStartRow")}
                data["data_start_row"] = (header or 0) + 1
        return data

    @field_validator("header_row")
    @classmethod
    def _header_row(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise invalid("rows are counted from 1",
                          "a row number >= 1, or null for a file without header", value)
        return value

    @field_validator("data_start_row")
    @classmethod
    def _data_start_row(cls, value: int, info: ValidationInfo) -> int:
        if value < 1:
            raise invalid("rows are counted from 1", "a row number >= 1", value)
        header = info.data.get("header_row")
        if header is not None and value <= header:
            raise invalid("the data must start after the header row",
                          f"a row number > header_row ({header})", value)
        return value

    @field_validator("delimiter")
    @classmethod
    def _delimiter(cls, value: str) -> str:
        char = DELIMITERS.get(value) or DELIMITERS.get(value.strip().lower())
        if char is None:
            raise invalid("unknown delimiter", DELIMITER_EXPECTED, value)
        return char


class JSONPayload(_Payload):
    """A JSON document: ``jmespath`` selects the list of records (``@``: the document itself)."""

    type: Literal["JSON"] = "JSON"
    jmespath: str = Field(description="a JMESPath expression such as 'data[*]'")

    @classmethod
    def _adjust(cls, data: dict) -> dict:
        if "jmespath" in data and data["jmespath"] is None:  # HydroServer's export: the document
            data = {**data, "jmespath": "@"}
        return data

    @field_validator("jmespath")
    @classmethod
    def _compile(cls, value: str) -> str:
        problem = jmespath_problem(value)
        if problem:
            raise invalid(f"invalid JMESPath expression: {problem}",
                          "a JMESPath expression such as 'data[*]'", value)
        return value


_FEATURES = {"reach": "Reach", "node": "Node", "priorlake": "PriorLake", "prior_lake": "PriorLake",
             "lake": "PriorLake"}
_RULE = re.compile(r"\s*[A-Za-z_][A-Za-z0-9_]*\s*(<=|>=|==|!=|<|>|=)\s*[-+]?\d+(\.\d+)?\s*\Z")


class HydrocronPayload(_Payload):
    """NASA Hydrocron SWOT time series of one river reach, river node or prior lake.

    The values are Hydrocron *fields* (``wse``, ``width``, ``slope``, ``area_total``...) named by
    the mappings; ``time_str`` is the timestamp. ``mode``: ``incremental`` (each run asks from
    the datastreams' newest observation minus ``overlap_hours``: late passes reach Hydrocron days
    after the overpass) or ``windowed`` (each run owns its data interval, widened by
    ``overlap_hours`` for the request and trimmed exactly when loading). ``conversions``:
    ``{wse: {from: m, to: ft}}`` or ``{wse: ft}``. ``requests_per_second``: the request rate of
    the whole task, fan-out included.
    """

    type: Literal["HYDROCRON"] = "HYDROCRON"
    feature: Literal["Reach", "Node", "PriorLake"] = "Reach"
    feature_id: Annotated[str | None, ID_SCHEMA] = None
    collection_name: str | None = None
    fields: tuple[str, ...] = ()
    quality_filter: tuple[str, ...] | None = None
    overlap_hours: float = 24.0
    mode: Literal["incremental", "windowed"] = "incremental"
    hydrocron_conn_id: str = HYDROCRON_CONN_ID
    min_window_hours: float | None = None
    max_window_days: float | None = None
    conversions: dict[str, Any] = Field(default_factory=dict)
    requests_per_second: float | None = None

    @field_validator("feature", mode="before")
    @classmethod
    def _feature(cls, value: Any) -> Any:
        if isinstance(value, str):
            return _FEATURES.get(value.strip().replace(" ", "").lower(), value)
        return value

    @field_validator("feature_id", mode="before")
    @classmethod
    def _feature_id_text(cls, value: Any) -> Any:
        value = as_text(value)
        return (value.strip() or None) if isinstance(value, str) else value

    @field_validator("feature_id")
    @classmethod
    def _feature_id(cls, value: str | None, info: ValidationInfo) -> str | None:
        feature = info.data.get("feature")
        problem = hydrocron_id_problem(value, feature) if value and feature else None
        if problem:
            raise invalid(problem[0], problem[1], value)
        return value

    @field_validator("collection_name")
    @classmethod
    def _collection(cls, value: str | None) -> str | None:
        value = value.strip() if value else None
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_.\-]+", value):
            raise invalid("a Hydrocron collection name is one word", "e.g. SWOT_L2_HR_RiverSP_D",
                          value)
        return value

    @field_validator("fields", "quality_filter", mode="before")
    @classmethod
    def _text_list(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, str):
            return value
        split = r"\s*,\s*" if info.field_name == "fields" else r"\s*(?:,|;|\band\b)\s*"
        return [part for part in re.split(split, value.strip()) if part]

    @field_validator("fields")
    @classmethod
    def _fields(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        problems = [((i,), problem, "a SWOT field such as wse, width, slope, area_total", name)
                    for i, name in enumerate(value) if (problem := hydrocron_field_problem(name))]
        check(problems)
        return tuple(dict.fromkeys(value))

    @field_validator("quality_filter")
    @classmethod
    def _quality(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        problems = [((i,), "a quality rule is '<field> <comparison> <number>'",
                     "e.g. 'reach_q <= 1' or 'ice_clim_f == 0'", rule)
                    for i, rule in enumerate(value or ()) if not _RULE.match(rule)]
        check(problems)
        return value

    @field_validator("overlap_hours")
    @classmethod
    def _overlap(cls, value: float) -> float:
        if not 0 <= value < float("inf"):
            raise invalid("the overlap is a number of hours >= 0",
                          "e.g. 24 (Hydrocron selects passes by their start time)", value)
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
                          "an Airflow connection id such as hydrocron_default", value)
        return value.strip()

    @field_validator("min_window_hours", "max_window_days", "requests_per_second")
    @classmethod
    def _positive(cls, value: float | None) -> float | None:
        if value is not None and not 0 < value < float("inf"):
            raise invalid("must be a positive number", "a number > 0", value)
        return value

    @field_validator("conversions")
    @classmethod
    def _conversions(cls, value: dict) -> dict:
        from hydroserver_provider.sources.hydrocron.units import (
            UnitError,
            conversion_factor,
            describe_known_units,
        )

        problems: list[tuple] = []
        out: dict[str, dict[str, str]] = {}
        for name, spec in value.items():
            problem = hydrocron_field_problem(name)
            if problem:
                problems.append(((name,), problem, "a SWOT field such as wse", name))
                continue
            spec = {"to": spec} if isinstance(spec, str) else spec
            if not isinstance(spec, dict) or set(spec) - {"from", "to"} or not spec.get("to"):
                problems.append(((name,), "a conversion names the unit to convert to",
                                 "{to: ft} or {from: m, to: ft}", describe_found(spec)))
                continue
            try:
                conversion_factor(spec.get("from") or spec["to"], spec["to"])
            except UnitError as exc:
                problems.append(((name,), f"cannot convert: {exc}",
                                 f"units of one kind among {describe_known_units()}",
                                 describe_found(spec)))
                continue
            out[name] = {k: spec[k] for k in ("from", "to") if spec.get(k)}
        check(problems)
        return out

    @model_validator(mode="after")
    def _windows(self) -> HydrocronPayload:
        if (self.min_window_hours is not None and self.max_window_days is not None
                and self.max_window_days * 24 < self.min_window_hours):
            raise invalid("the longest window is shorter than the smallest one",
                          f"max_window_days >= min_window_hours / 24 "
                          f"({self.min_window_hours / 24:g})", self.max_window_days,
                          at=("max_window_days",))
        return self


Payload = Annotated[CSVPayload | JSONPayload | HydrocronPayload, Field(discriminator="type")]
PAYLOAD_MODELS: dict[str, type[_Payload]] = {
    "CSV": CSVPayload, "JSON": JSONPayload, "HYDROCRON": HydrocronPayload,
}
PAYLOAD_TYPES = tuple(PAYLOAD_MODELS)
