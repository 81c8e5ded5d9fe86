"""Validation of bulk-create bodies in both forms the real server accepts (rows and columns)."""

from __future__ import annotations

from typing import Any

from hydroserver_provider.testing.hydroserver.request import literal_error, missing, type_error
from hydroserver_provider.testing.hydroserver.responses import ServerError
from hydroserver_provider.testing.hydroserver.values import to_us

BULK_FIELDS = ("phenomenonTime", "result", "resultQualifierCodes")


NOT_A_TIME = object()  # a non-string timestamp in the row form: the real server crashes on insert


def parse_bulk_body(
    body: Any, errors: list[dict]
) -> tuple[list[str], list, list, list | None] | None:
    """Validate a bulk-create body.

    Like ``ObservationBulkPostBody | ObservationBulkColumnarPostBody``.

    Returns ``(fields, times_us, results, qualifier_codes)``; on failure appends pydantic-style
    errors for both union members (as the real server lists them) and returns ``None``.
    """
    if body is None:
        errors.append(missing(["body", "data"]))
        return None
    row_loc = ["body", "data", "ObservationBulkPostBody"]
    col_loc = ["body", "data", "ObservationBulkColumnarPostBody"]
    if not isinstance(body, dict):
        errors.append(type_error(row_loc, "model_type", body))
        errors.append(type_error(col_loc, "model_type", body))
        return None
    row_errors: list[dict] = []
    parsed = _parse_row_form(body, row_loc, row_errors)
    if parsed is not None:
        return parsed
    col_errors: list[dict] = []
    parsed = _parse_column_form(body, col_loc, col_errors)
    if parsed is not None:
        return parsed
    errors.extend(row_errors)
    errors.extend(col_errors)
    return None


def _parse_row_form(body: dict, loc: list, errors: list[dict]):
    fields, data = body.get("fields"), body.get("data")
    if "fields" not in body:
        errors.append(missing([*loc, "fields"]))
    elif not isinstance(fields, list):
        errors.append(type_error([*loc, "fields"], "list_type", fields))
    else:
        for i, field in enumerate(fields):
            if field not in BULK_FIELDS:
                errors.append(literal_error([*loc, "fields", i], field, BULK_FIELDS))
    if "data" not in body:
        errors.append(missing([*loc, "data"]))
    elif not isinstance(data, list):
        errors.append(type_error([*loc, "data"], "list_type", data))
    else:
        for i, row in enumerate(data):
            if not isinstance(row, list):
                errors.append(type_error([*loc, "data", i], "list_type", row))
    if errors:
        return None
    assert isinstance(fields, list) and isinstance(data, list)  # no errors: both checked above
    index = {field: i for i, field in enumerate(fields)}
    i_time, i_result, i_codes = (
        index.get("phenomenonTime"),
        index.get("result"),
        index.get("resultQualifierCodes"),
    )
    times: list = []
    results: list = []
    codes: list | None = [] if i_codes is not None else None
    for row in data:
        try:
            if i_time is not None:
                value = row[i_time]
                times.append(to_us(value) if isinstance(value, str) else NOT_A_TIME)
            if i_result is not None:
                value = row[i_result]
                results.append(None if value is None else float(value))
            if codes is not None:
                codes.append(row[i_codes] or [])
        except IndexError:
            raise ServerError("row shorter than fields") from None
        except TypeError:
            raise ServerError("result cannot be read as a number") from None
        except ValueError as exc:
            message = "Invalid ISO time format" if "ISO" in str(exc) else str(exc)
            errors.append(
                {
                    "type": "value_error",
                    "loc": loc,
                    "msg": f"Value error, {message}",
                    "input": value,
                    "ctx": {"error": message},
                }
            )
            return None
    return list(fields), times, results, codes


def _parse_column_form(body: dict, loc: list, errors: list[dict]):
    times_in, results_in = body.get("phenomenonTime"), body.get("result")
    codes_in = body.get("resultQualifierCodes", [])
    times: list = []
    results: list = []
    for name, value in (("phenomenonTime", times_in), ("result", results_in)):
        if name not in body:
            errors.append(missing([*loc, name]))
        elif not isinstance(value, list):
            errors.append(type_error([*loc, name], "list_type", value))
    if isinstance(times_in, list):
        for i, value in enumerate(times_in):
            try:
                if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                    raise TypeError
                times.append(to_us(value))
            except TypeError:
                errors.append(type_error([*loc, "phenomenonTime", i], "datetime_type", value))
            except (ValueError, OverflowError):
                errors.append(
                    {
                        "type": "value_error",
                        "loc": [*loc, "phenomenonTime", i],
                        "msg": "Value error, Invalid ISO time format",
                        "input": value,
                        "ctx": {"error": "Invalid ISO time format"},
                    }
                )
    if isinstance(results_in, list):
        for i, value in enumerate(results_in):
            if value is None:
                results.append(None)
            elif isinstance(value, (int, float)):
                results.append(float(value))
            elif isinstance(value, str):
                try:
                    results.append(float(value.strip()))
                except ValueError:
                    errors.append(type_error([*loc, "result", i], "float_parsing", value))
            else:
                errors.append(type_error([*loc, "result", i], "float_type", value))
    if not isinstance(codes_in, list) or any(
        not isinstance(c, list) or any(not isinstance(x, str) for x in c) for c in codes_in
    ):
        errors.append(type_error([*loc, "resultQualifierCodes"], "list_type", codes_in))
    if errors:
        return None
    n = len(times)
    if len(results) != n:
        errors.append(
            {
                "type": "value_error",
                "loc": loc,
                "msg": "Value error, result must have the same length as phenomenonTime",
                "input": None,
                "ctx": {"error": "result must have the same length as phenomenonTime"},
            }
        )
        return None
    if codes_in and len(codes_in) != n:
        errors.append(
            {
                "type": "value_error",
                "loc": loc,
                "msg": (
                    "Value error, resultQualifierCodes must have the same length as "
                    "phenomenonTime"
                ),
                "input": None,
                "ctx": {
                    "error": "resultQualifierCodes must have the same length as phenomenonTime"
                },
            }
        )
        return None
    codes = codes_in or [[] for _ in range(n)]
    return list(BULK_FIELDS), times, results, codes
