"""Validation of ETL bodies (data connections, tasks, schedules); HydroServer's schedule rules."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hydroserver_provider.testing.hydroserver.json_shapes import schedule_response
from hydroserver_provider.testing.hydroserver.request import literal_error, missing, type_error
from hydroserver_provider.testing.hydroserver.responses import HttpError
from hydroserver_provider.testing.hydroserver.values import UTC, canonical_uuid, iso, to_us

_PAYLOAD_TYPES = ("CSV", "JSON")


_PLACEHOLDER_TYPES = (
    "run_time",
    "latest_observation_timestamp",
    "per_task",
    "window_start",
    "window_end",
)


_INTERVAL_PERIODS = ("minutes", "hours", "days")


_DELIMITERS = (",", "|", "\t", ";", " ")


_WINDOW_ANCHORS = ("latest_observation_timestamp", "run_time", "fixed_timestamp")


def _check_type(
    errors: list[dict], loc: list, value: Any, kind: str, nullable: bool = False
) -> bool:
    if value is None and nullable:
        return True
    checks = {
        "string_type": lambda v: isinstance(v, str),
        "dict_type": lambda v: isinstance(v, dict),
        "list_type": lambda v: isinstance(v, list),
        "bool_type": lambda v: isinstance(v, bool),
        "int_type": lambda v: isinstance(v, int) and not isinstance(v, bool),
    }
    if not checks[kind](value):
        errors.append(type_error(loc, kind, value))
        return False
    return True


def _check_enum(
    errors: list[dict], loc: list, value: Any, allowed: tuple, nullable: bool = True
) -> None:
    if value is None and nullable:
        return
    if value not in allowed:
        errors.append(literal_error(loc, value, allowed))


def _check_datetime(errors: list[dict], loc: list, value: Any) -> str | None:
    if value is None:
        return None
    try:
        if not isinstance(value, str):
            raise TypeError
        return iso(to_us(value))
    except (TypeError, ValueError):
        errors.append(type_error(loc, "datetime_from_date_parsing", value))
        return None


def _validate_schedule_body(body: Any, loc: list, errors: list[dict]) -> dict:
    """Validate a SchedulePostBody/SchedulePatchBody; returns only the keys that were sent."""
    out: dict[str, Any] = {}
    if not _check_type(errors, loc, body, "dict_type"):
        return out
    if "enabled" in body and _check_type(errors, [*loc, "enabled"], body["enabled"], "bool_type"):
        out["enabled"] = body["enabled"]
    if "startTime" in body:
        out["startTime"] = _check_datetime(errors, [*loc, "startTime"], body["startTime"])
    if "crontab" in body and _check_type(
        errors, [*loc, "crontab"], body["crontab"], "string_type", nullable=True
    ):
        out["crontab"] = body["crontab"] or None
    if "interval" in body and _check_type(
        errors, [*loc, "interval"], body["interval"], "int_type", nullable=True
    ):
        if body["interval"] is not None and body["interval"] < 1:
            errors.append(
                {
                    "type": "greater_than_equal",
                    "loc": [*loc, "interval"],
                    "msg": "Input should be greater than or equal to 1",
                    "input": body["interval"],
                    "ctx": {"ge": 1},
                }
            )
        out["interval"] = body["interval"]
    if "intervalPeriod" in body:
        _check_enum(errors, [*loc, "intervalPeriod"], body["intervalPeriod"], _INTERVAL_PERIODS)
        out["intervalPeriod"] = body["intervalPeriod"]
    return out


def apply_schedule(current: dict | None, changes: dict) -> dict | None:
    """HydroServer's schedule update rules.

    A schedule has a crontab XOR an interval; clearing both removes the schedule.
    """
    crontab = changes.get("crontab", ...)
    interval = changes.get("interval", ...)
    if crontab not in (None, ...) and interval not in (None, ...):
        raise HttpError(400, "Only one of crontab or interval can be set on a schedule.")
    if crontab not in (None, ...) and len(crontab.split()) != 5:
        raise HttpError(400, f"Invalid crontab schedule {crontab}.")
    if interval not in (None, ...) and "intervalPeriod" not in changes:
        raise HttpError(400, "interval_period is required when setting an interval schedule.")
    has_new = crontab not in (None, ...) or interval not in (None, ...)
    touches_kind = crontab is not ... or interval is not ...
    now_iso = datetime.now(UTC).isoformat()
    if current is not None:
        if touches_kind and not has_new:
            return None
        schedule = dict(current)
        if touches_kind:
            schedule["crontab"] = crontab if crontab not in (None, ...) else None
            schedule["interval"] = interval if interval not in (None, ...) else None
            schedule["intervalPeriod"] = (
                changes.get("intervalPeriod") if schedule["interval"] else None
            )
        elif "intervalPeriod" in changes and schedule.get("interval"):
            schedule["intervalPeriod"] = changes["intervalPeriod"]
        if "enabled" in changes:
            schedule["enabled"] = changes["enabled"]
        if "startTime" in changes:
            schedule["startTime"] = changes["startTime"] or now_iso
        return schedule
    if not has_new:
        return None
    return {
        "enabled": changes.get("enabled", True),
        "startTime": changes.get("startTime") or now_iso,
        "crontab": crontab if crontab not in (None, ...) else None,
        "interval": interval if interval not in (None, ...) else None,
        "intervalPeriod": changes.get("intervalPeriod") if interval not in (None, ...) else None,
    }


def validate_data_connection(body: Any) -> dict:
    """Validate a DataConnectionPostBody and normalise it into the stored response shape."""
    errors: list[dict] = []
    loc = ["body", "data"]
    if body is None:
        raise HttpError(422, [missing(loc)])
    if not isinstance(body, dict):
        raise HttpError(422, [type_error(loc, "model_type", body)])
    for name in ("name", "sourceUrl", "workspaceId", "payload", "placeholderVariables"):
        if name not in body:
            errors.append(missing([*loc, name]))
    for name in ("name", "sourceUrl"):
        if name in body:
            _check_type(errors, [*loc, name], body[name], "string_type")
    for name in ("description", "authHeaderName", "authHeaderValue", "timezone"):
        if name in body:
            _check_type(errors, [*loc, name], body[name], "string_type", nullable=True)
    workspace_id = canonical_uuid(body.get("workspaceId"))
    if "workspaceId" in body and workspace_id is None:
        errors.append(type_error([*loc, "workspaceId"], "uuid_parsing", body.get("workspaceId")))
    _check_enum(errors, [*loc, "timezoneType"], body.get("timezoneType"), ("offset", "iana"))
    payload = body.get("payload")
    normalised_payload: dict = {}
    if "payload" in body and _check_type(errors, [*loc, "payload"], payload, "dict_type"):
        assert isinstance(payload, dict)  # what _check_type just checked
        p_loc = [*loc, "payload"]
        kind = payload.get("type")
        if kind not in _PAYLOAD_TYPES:
            errors.append(literal_error([*p_loc, "type"], kind, _PAYLOAD_TYPES))
        if "timestampKey" not in payload:
            errors.append(missing([*p_loc, "timestampKey"]))
        else:
            _check_type(errors, [*p_loc, "timestampKey"], payload["timestampKey"], "string_type")
        normalised_payload = {
            "type": kind,
            "timestampKey": payload.get("timestampKey"),
            "timestampFormat": payload.get("timestampFormat"),
        }
        if kind == "CSV":
            for name in ("headerRow", "dataStartRow"):
                _check_type(errors, [*p_loc, name], payload.get(name), "int_type", nullable=True)
                normalised_payload[name] = payload.get(name)
            _check_enum(errors, [*p_loc, "delimiter"], payload.get("delimiter"), _DELIMITERS)
            normalised_payload["delimiter"] = payload.get("delimiter")
        else:
            _check_type(
                errors, [*p_loc, "jmespath"], payload.get("jmespath"), "string_type", nullable=True
            )
            normalised_payload["jmespath"] = payload.get("jmespath")
        normalised_payload["dataIngestionWindow"] = _normalise_window(
            payload.get("dataIngestionWindow"), [*p_loc, "dataIngestionWindow"], errors
        )
    variables = body.get("placeholderVariables")
    normalised_variables = []
    if "placeholderVariables" in body and _check_type(
        errors, [*loc, "placeholderVariables"], variables, "list_type"
    ):
        assert isinstance(variables, list)  # what _check_type just checked
        for i, var in enumerate(variables):
            v_loc = [*loc, "placeholderVariables", i]
            if not _check_type(errors, v_loc, var, "dict_type"):
                continue
            if "name" not in var:
                errors.append(missing([*v_loc, "name"]))
            _check_enum(
                errors, [*v_loc, "type"], var.get("type"), _PLACEHOLDER_TYPES, nullable=False
            )
            normalised_variables.append(
                {
                    "name": var.get("name"),
                    "type": var.get("type"),
                    "timestampFormat": var.get("timestampFormat"),
                }
            )
    notification = body.get("notification")
    normalised_notification: dict[str, Any] | None = None
    if notification is not None and _check_type(
        errors, [*loc, "notification"], notification, "dict_type"
    ):
        n_loc = [*loc, "notification"]
        emails = notification.get("recipientEmails")
        if "recipientEmails" not in notification:
            errors.append(missing([*n_loc, "recipientEmails"]))
        elif _check_type(errors, [*n_loc, "recipientEmails"], emails, "list_type"):
            for i, email in enumerate(emails):
                if not isinstance(email, str) or "@" not in email:
                    errors.append(
                        {
                            "type": "value_error",
                            "loc": [*n_loc, "recipientEmails", i],
                            "msg": "value is not a valid email address",
                            "input": email,
                        }
                    )
        if "schedule" not in notification:
            errors.append(missing([*n_loc, "schedule"]))
        schedule = _validate_schedule_body(
            notification.get("schedule", {}), [*n_loc, "schedule"], errors
        )
        if not errors:
            normalised_notification = {
                "schedule": schedule_response(apply_schedule(None, {"enabled": True, **schedule})),
                "recipientEmails": list(emails or []),
            }
            if normalised_notification["schedule"] is not None:
                normalised_notification["schedule"]["nextRunAt"] = None
    if "id" in body and canonical_uuid(body["id"]) is None:
        errors.append(type_error([*loc, "id"], "uuid_parsing", body["id"]))
    if errors:
        raise HttpError(422, errors)
    return {
        "id": canonical_uuid(body["id"]) if body.get("id") else None,
        "name": body["name"],
        "description": body.get("description") or None,
        "sourceUrl": body["sourceUrl"],
        "authHeaderName": body.get("authHeaderName") or None,
        "authHeaderValue": body.get("authHeaderValue") or None,
        "timezoneType": body.get("timezoneType"),
        "timezone": body.get("timezone") or None,
        "workspaceId": workspace_id,
        "payload": normalised_payload,
        "placeholderVariables": normalised_variables,
        "notification": normalised_notification,
    }


def _normalise_window(window: Any, loc: list, errors: list[dict]) -> dict | None:
    if window is None:
        return None
    if not _check_type(errors, loc, window, "dict_type"):
        return None
    out: dict[str, dict | None] = {"start": None, "end": None}
    for side in ("start", "end"):
        boundary = window.get(side)
        if boundary is None or not _check_type(errors, [*loc, side], boundary, "dict_type"):
            continue
        _check_enum(errors, [*loc, side, "anchor"], boundary.get("anchor"), _WINDOW_ANCHORS)
        _check_enum(
            errors, [*loc, side, "lookbackUnits"], boundary.get("lookbackUnits"), _INTERVAL_PERIODS
        )
        _check_type(
            errors, [*loc, side, "lookback"], boundary.get("lookback"), "int_type", nullable=True
        )
        if boundary.get("anchor"):
            out[side] = {
                "anchor": boundary.get("anchor"),
                "lookback": boundary.get("lookback"),
                "lookbackUnits": boundary.get("lookbackUnits"),
                "timestamp": _check_datetime(
                    errors, [*loc, side, "timestamp"], boundary.get("timestamp")
                ),
            }
    return out if out["start"] or out["end"] else None


def validate_task_body(body: Any, errors: list[dict], partial: bool) -> dict:
    """Validate an EtlTaskPostBody (with ``partial``, an EtlTaskPatchBody); return the sent keys."""
    loc = ["body", "data"]
    out: dict[str, Any] = {}
    if body is None:
        errors.append(missing(loc))
        return out
    if not isinstance(body, dict):
        errors.append(type_error(loc, "model_type", body))
        return out
    if not partial:
        for name in ("name", "dataConnectionId"):
            if name not in body:
                errors.append(missing([*loc, name]))
        if "dataConnectionId" in body:
            dc_id = canonical_uuid(body["dataConnectionId"])
            if dc_id is None:
                errors.append(
                    type_error([*loc, "dataConnectionId"], "uuid_parsing", body["dataConnectionId"])
                )
            out["dataConnectionId"] = dc_id
        if body.get("id") is not None:
            out["id"] = canonical_uuid(body["id"])
            if out["id"] is None:
                errors.append(type_error([*loc, "id"], "uuid_parsing", body["id"]))
    if "name" in body and _check_type(errors, [*loc, "name"], body["name"], "string_type"):
        out["name"] = body["name"]
    if "description" in body and _check_type(
        errors, [*loc, "description"], body["description"], "string_type", nullable=True
    ):
        out["description"] = body["description"] or None
    if "taskVariables" in body and _check_type(
        errors, [*loc, "taskVariables"], body["taskVariables"], "dict_type"
    ):
        out["taskVariables"] = body["taskVariables"]
    if "schedule" in body:
        if body["schedule"] is None:
            out["schedule"] = None
        else:
            out["schedule"] = _validate_schedule_body(body["schedule"], [*loc, "schedule"], errors)
    if "mappings" in body and _check_type(
        errors, [*loc, "mappings"], body["mappings"], "list_type"
    ):
        mappings = []
        for i, m in enumerate(body["mappings"]):
            m_loc = [*loc, "mappings", i]
            if not _check_type(errors, m_loc, m, "dict_type"):
                continue
            if "sourceIdentifier" not in m:
                errors.append(missing([*m_loc, "sourceIdentifier"]))
            elif not isinstance(m["sourceIdentifier"], str):
                errors.append(
                    type_error([*m_loc, "sourceIdentifier"], "string_type", m["sourceIdentifier"])
                )
            target = canonical_uuid(m.get("targetDatastreamId"))
            if "targetDatastreamId" not in m:
                errors.append(missing([*m_loc, "targetDatastreamId"]))
            elif target is None:
                errors.append(
                    type_error(
                        [*m_loc, "targetDatastreamId"], "uuid_parsing", m["targetDatastreamId"]
                    )
                )
            mappings.append(
                {"sourceIdentifier": m.get("sourceIdentifier"), "targetDatastreamId": target}
            )
        out["mappings"] = mappings
    return out
