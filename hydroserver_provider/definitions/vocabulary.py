"""One definition dict in either vocabulary -> the canonical dict the models validate.

Definitions come as flat snake_case keys (the seed guide), with a nested ``payload:`` block, or as
HydroServer's camelCase export. ``DefinitionReader`` renames the keys, reports unknown, doubled,
conflicting and secret keys, and remembers how each key was spelt so that later errors name the
key as the user wrote it.
"""

from __future__ import annotations

from typing import Any, get_args

from pydantic import BaseModel

from .keys import (
    AUTH_KEYS,
    AUTH_SECRET_KEYS,
    CONNECTION_KEYS,
    CONNECTION_READ_ONLY,
    FLAT_SCHEDULE_KEYS,
    MAPPING_KEYS,
    MAPPING_READ_ONLY,
    NOTIFICATION_KEYS,
    PAYLOAD_FIELDS,
    PAYLOAD_KEYS,
    PAYLOAD_NULLS,
    PLACEHOLDER_KEYS,
    SCHEDULE_KEYS,
    SCHEDULE_READ_ONLY,
    SECRET_KEYS,
    TASK_KEYS,
    TASK_READ_ONLY,
    TIMESTAMP_KEYS,
)
from .parts import Mapping, PlaceholderVariable, Schedule, SourceAuth
from hydroserver_provider.errors import DefinitionError
from .error_values import HIDDEN, NOTHING, Shown, describe_found, suggest
from .payloads import PAYLOAD_MODELS

__all__ = [
    "DefinitionReader",
    "connection_location",
    "definition_name",
    "drop_nulls",
    "join_path",
    "normalise_connection",
    "normalise_task",
    "task_location",
]

_SECRET_MESSAGE = (
    "secret values are not accepted in definition files: store the value in an Airflow connection "
    "(as its password) or an Airflow Variable and reference it"
)
_SECRET_EXPECTED = "auth: {header_name: <header>, conn_id: <Airflow connection>} or auth: " \
                   "{header_name: <header>, variable: <Airflow Variable>}"


def join_path(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _nullable_fields(model: type[BaseModel]) -> frozenset[str]:
    out = set()
    for name, info in model.model_fields.items():
        if info.annotation is None or type(None) in get_args(info.annotation):
            out.add(name)
    return frozenset(out)


_NULLABLE: dict[type, frozenset[str]] = {}


def drop_nulls(model: type[BaseModel], data: dict, keep: frozenset = frozenset()) -> dict:
    """``null`` means "not set": drop it unless the field itself takes None (or is in keep)."""
    nullable = _NULLABLE.get(model)
    if nullable is None:
        nullable = _NULLABLE[model] = _nullable_fields(model)
    return {k: v for k, v in data.items() if v is not None or k in nullable or k in keep}


class DefinitionReader:
    """Normalises one definition: collects problems and remembers how each key was spelt."""

    __slots__ = ("location", "errors", "origin", "reported")

    def __init__(self, location: str | None) -> None:
        self.location = location
        self.errors: list[DefinitionError] = []
        self.origin: dict[tuple, str] = {}  # canonical path -> the key path as written
        self.reported: set[tuple] = set()  # canonical paths already reported (no pydantic dupes)

    def error(self, cpath: tuple, field: str | None, message: str, expected: str | None = None,
              found: Any = NOTHING) -> None:
        self.errors.append(DefinitionError(message, location=self.location, field=field or None,
                                           expected=expected, found=found))
        self.reported.add(cpath)

    def where(self, cpath: tuple) -> str:
        """The field path as the user wrote it."""
        for i in range(len(cpath), 0, -1):
            spelt = self.origin.get(cpath[:i])
            if spelt is not None:
                text = spelt
                for part in cpath[i:]:
                    text = join_path(text, part)
                return text
        text = ""
        for part in cpath:
            text = join_path(text, part)
        return text

    def mapping(self, raw: Any, keys: dict[str, str], path: str, cpath: tuple, what: str, *,
                read_only: frozenset = frozenset(), secrets: frozenset = frozenset()) -> dict:
        """Rename the keys of ``raw`` to canonical ones; report unknown, doubled, secret keys."""
        if isinstance(raw, BaseModel):  # a model given directly: already canonical
            raw = raw.model_dump()
        if not isinstance(raw, dict):
            self.error(cpath, path, f"{what} must be a mapping of keys to values",
                       "a mapping (key: value)", describe_found(raw))
            return {}
        out: dict = {}
        for key, value in raw.items():
            if not isinstance(key, str):
                self.error(cpath, path, "keys are text", "a text key", describe_found(key))
                continue
            canonical = keys.get(key)
            if canonical is None:
                if key in read_only:
                    continue
                if key in secrets:
                    if value is None or value == "":
                        continue  # an export with no secret set
                    self.error(cpath + (key,), join_path(path, key), _SECRET_MESSAGE,
                               _SECRET_EXPECTED, HIDDEN)
                    self.reported.add(("auth",))  # says it all: no "missing reference" too
                    continue
                hint = suggest(key, keys)
                known = ", ".join(dict.fromkeys(keys.values()))
                self.error(cpath + (key,), join_path(path, key),
                           f"unknown key in {what}"
                           + (f" (did you mean '{hint}'?)" if hint else ""),
                           f"'{hint}'" if hint else f"one of {known}", key)
                continue
            if canonical in out:
                self.error(cpath + (canonical,), join_path(path, key),
                           f"'{key}' repeats '{self.origin[cpath + (canonical,)]}'",
                           "the setting given once", describe_found(value))
                continue
            out[canonical] = value
            self.origin[cpath + (canonical,)] = join_path(path, key)
        return out

    def take(self, dest: tuple, *sources: tuple[dict, tuple, str]) -> Any:
        """Pop one setting that may be written in several places; report conflicting values."""
        found: list[tuple[Any, str]] = []
        nulls: list[str] = []
        for data, cpath, key in sources:
            if key in data:
                value = data.pop(key)
                if value is None:  # null: not set
                    nulls.append(self.where(cpath + (key,)))
                else:
                    found.append((value, self.where(cpath + (key,))))
        if not found:
            if nulls:
                self.origin[dest] = nulls[0]
                return None
            return NOTHING
        value, spelt = found[0]
        for other, other_spelt in found[1:]:
            if other != value:
                self.error(dest, other_spelt,
                           f"set twice with different values (also as '{spelt}')",
                           f"the value of '{spelt}' ({value!r}) or only one of them",
                           describe_found(other))
        self.origin[dest] = spelt
        return value

    def items(self, raw: Any, path: str, cpath: tuple, what: str) -> list:
        if raw is None:
            return []
        if isinstance(raw, tuple):
            return list(raw)
        if not isinstance(raw, list):
            self.error(cpath, path, f"{what} must be a list", "a list", describe_found(raw))
            return []
        return raw


def normalise_schedule(r: DefinitionReader, raw: Any, path: str, cpath: tuple) -> dict:
    s = r.mapping(raw, SCHEDULE_KEYS, path, cpath, "a schedule", read_only=SCHEDULE_READ_ONLY)
    return drop_nulls(Schedule, s)


def normalise_connection(r: DefinitionReader, raw: Any) -> dict:
    """The canonical data connection dict; the caller drops the nulls ``DataConnection`` does
    not take (``drop_nulls``)."""
    cpath: tuple = ()
    c = r.mapping(raw, CONNECTION_KEYS, "", cpath, "a data connection",
                  read_only=CONNECTION_READ_ONLY, secrets=SECRET_KEYS)

    # payload: `payload_type` + flat keys (seed guide) or a `payload:` block (either spelling)
    block = c.pop("payload", None)
    block_path = r.where(cpath + ("payload",))
    if isinstance(block, str):
        p: dict = {"type": block}
        r.origin[cpath + ("payload", "type")] = block_path
    elif block is None:
        p = {}
    else:
        p = r.mapping(block, PAYLOAD_KEYS, block_path, cpath + ("payload",), "the payload",
                      secrets=SECRET_KEYS)
    ptype = r.take(cpath + ("payload", "type"), (c, cpath, "payload_type"),
                   (p, cpath + ("payload",), "type"))
    where_type = r.where(cpath + ("payload", "type"))
    kind: str | None = None
    if ptype is NOTHING or ptype is None:
        r.error(cpath + ("payload",),
                "payload_type" if not p and block is None else join_path(block_path, "type"),
                "the payload type is required", "CSV, JSON or HYDROCRON", NOTHING)
    elif not isinstance(ptype, str) or ptype.strip().upper() not in PAYLOAD_MODELS:
        hint = suggest(str(ptype).upper(), PAYLOAD_MODELS) if isinstance(ptype, str) else None
        r.error(cpath + ("payload",), where_type,
                "unknown payload type" + (f" (did you mean '{hint}'?)" if hint else ""),
                "CSV, JSON or HYDROCRON", describe_found(ptype))
    else:
        kind = ptype.strip().upper()

    for key in TIMESTAMP_KEYS:
        value = r.take(cpath + (key,), (c, cpath, key), (p, cpath + ("payload",), key))
        if value is not NOTHING:
            c[key] = value
    window = p.pop("data_ingestion_window", None)
    if window:
        r.error(cpath + ("payload", "data_ingestion_window"),
                r.where(cpath + ("payload", "data_ingestion_window")),
                "HydroServer's data ingestion window is not used by the Airflow provider: a "
                "scheduled DAG's data interval is the window; put {start}/{end} placeholders "
                "of type window_start/window_end in source_url",
                "no dataIngestionWindow", describe_found(window))

    payload: dict = {}
    for field, kinds in PAYLOAD_FIELDS.items():
        value = r.take(cpath + ("payload", field), (c, cpath, field),
                       (p, cpath + ("payload",), field))
        if value is NOTHING:
            continue
        if kind is not None and kind not in kinds:
            r.error(cpath + ("payload", field), r.where(cpath + ("payload", field)),
                    f"this setting applies to {' and '.join(kinds)} payloads, not {kind}",
                    f"no {field} for a {kind} payload", describe_found(value))
            continue
        payload[field] = value
    if kind is not None:
        # the payload models turn null delimiter/data_start_row/jmespath into their defaults
        c["payload"] = {"type": kind, **drop_nulls(PAYLOAD_MODELS[kind], payload,
                                                    PAYLOAD_NULLS)}
        r.origin.setdefault(cpath + ("payload",), block_path)

    # placeholder variables (`variable_type` or `type`)
    pv_path = r.where(cpath + ("placeholder_variables",))
    variables = []
    for i, item in enumerate(r.items(c.pop("placeholder_variables", None), pv_path,
                                     cpath + ("placeholder_variables",),
                                     "placeholder_variables")):
        variables.append(drop_nulls(PlaceholderVariable, r.mapping(
            item, PLACEHOLDER_KEYS, join_path(pv_path, i), cpath + ("placeholder_variables", i),
            "a placeholder variable")))
    c["placeholder_variables"] = variables

    # source auth: a header name plus a reference to an Airflow connection or Variable
    flat_header = c.pop("auth_header_name", None)
    block = c.pop("auth", None)
    if block is not None:
        a = r.mapping(block, AUTH_KEYS, r.where(cpath + ("auth",)), cpath + ("auth",),
                      "the auth block", secrets=AUTH_SECRET_KEYS)
        if flat_header not in (None, ""):
            if a.get("header_name") not in (None, flat_header):
                r.error(cpath + ("auth", "header_name"), r.where(cpath + ("auth_header_name",)),
                        "the header name is set twice with different values",
                        f"the same name as auth.header_name ({a['header_name']!r})",
                        describe_found(flat_header))
            a.setdefault("header_name", flat_header)
            r.origin.setdefault(cpath + ("auth", "header_name"),
                                r.where(cpath + ("auth_header_name",)))
        c["auth"] = drop_nulls(SourceAuth, a)
    elif flat_header not in (None, "") and cpath + ("auth",) not in r.reported:
        r.error(cpath + ("auth",), r.where(cpath + ("auth_header_name",)),
                "the header's value is not referenced; " + _SECRET_MESSAGE,
                f"auth: {{header_name: {flat_header}, conn_id: <Airflow connection>}} or "
                f"auth: {{header_name: {flat_header}, variable: <Airflow Variable>}}",
                Shown("a header name without a value reference"))

    # workspace: `workspace_id`, or `workspace` as an id or as HydroServer's {id, name, ...}
    workspace = c.pop("workspace", None)
    if isinstance(workspace, dict):
        workspace = workspace.get("id")
    if workspace is not None:
        if c.get("workspace_id") not in (None, workspace):
            r.error(cpath + ("workspace_id",), r.where(cpath + ("workspace",)),
                    "the workspace is set twice with different values",
                    f"the same id as workspace_id ({c['workspace_id']!r})",
                    describe_found(workspace))
        c.setdefault("workspace_id", workspace)
        r.origin.setdefault(cpath + ("workspace_id",), r.where(cpath + ("workspace",)))
    if c.get("workspace_id") is not None and not isinstance(c["workspace_id"], str):
        c["workspace_id"] = str(c["workspace_id"])

    notification = c.pop("notification", None)
    if notification is not None:
        n_path = r.where(cpath + ("notification",))
        n = r.mapping(notification, NOTIFICATION_KEYS, n_path, cpath + ("notification",),
                      "the notification")
        if n.get("schedule") is not None:
            n["schedule"] = normalise_schedule(r, n["schedule"],
                                               r.where(cpath + ("notification", "schedule")),
                                               cpath + ("notification", "schedule"))
        if n.get("recipient_emails") is None:
            n.pop("recipient_emails", None)
        c["notification"] = n
    return c


def normalise_task(r: DefinitionReader, raw: Any) -> tuple[dict, Any, Any]:
    """The canonical task dict (without data_connection and airflow; the caller drops the
    nulls ``Task`` does not take), the data connection reference, the airflow block."""
    t = r.mapping(raw, TASK_KEYS, "", (), "a task", read_only=TASK_READ_ONLY)
    reference = r.take(("data_connection",), (t, (), "data_connection"),
                       (t, (), "data_connection_id"))

    block = t.pop("schedule", None)
    if block is None:
        schedule: dict = {}
        r.origin[("schedule",)] = ""  # flat keys: name them without a "schedule." prefix
    else:
        schedule = normalise_schedule(r, block, r.where(("schedule",)), ("schedule",))
    for key in FLAT_SCHEDULE_KEYS:
        if key in t:
            value = t.pop(key)
            spelt = r.where((key,))
            if value is None:
                continue  # null: not set
            if key in schedule:
                r.error(("schedule", key), spelt,
                        f"set both at task level and in schedule ('{r.where(('schedule', key))}')",
                        "the setting in one place", describe_found(value))
            else:
                schedule[key] = value
                r.origin[("schedule", key)] = spelt
    t["schedule"] = schedule

    m_path = r.where(("mappings",))
    mappings = []
    for i, item in enumerate(r.items(t.pop("mappings", None), m_path, ("mappings",),
                                     "mappings")):
        m = r.mapping(item, MAPPING_KEYS, join_path(m_path, i), ("mappings", i), "a mapping",
                      read_only=MAPPING_READ_ONLY)
        target = m.pop("target_datastream", None)
        if target is not None:  # HydroServer's detail answer: {targetDatastream: {id, ...}}
            target_id = target.get("id") if isinstance(target, dict) else target
            spelt = r.where(("mappings", i, "target_datastream"))
            if m.get("target_datastream_id") not in (None, target_id):
                r.error(("mappings", i, "target_datastream_id"), spelt,
                        "the target datastream is set twice with different values",
                        f"the same id as target_datastream_id ({m['target_datastream_id']!r})",
                        describe_found(target_id))
            m.setdefault("target_datastream_id", target_id)
            r.origin.setdefault(("mappings", i, "target_datastream_id"), spelt)
        mappings.append(drop_nulls(Mapping, m))
    t["mappings"] = mappings

    variables = t.pop("task_variables", None)
    if variables is not None:
        if isinstance(variables, dict):
            for key, value in variables.items():
                if not isinstance(value, str) and value is not None:
                    hint = (" (write it in quotes so that YAML keeps it as text, e.g. "
                            f"{key}: \"{value}\")" if isinstance(value, (int, float)) else "")
                    r.error(("task_variables", key), join_path(r.where(("task_variables",)), key),
                            "task variable values are text" + hint, "a text value",
                            describe_found(value))
            # reported above; as text, they do not also count as missing per_task values
            variables = {k: v if isinstance(v, str) else str(v)
                         for k, v in variables.items() if v is not None}
        t["task_variables"] = variables
    airflow = t.pop("airflow", None)
    return t, reference, airflow


def definition_name(raw: Any, fallback: str) -> str:
    name = raw.get("name") if isinstance(raw, dict) else None
    return name if isinstance(name, str) and name.strip() else fallback


def connection_location(raw: Any, source: str | None = None, index: int | None = None) -> str:
    name = definition_name(raw, f"#{index + 1}" if index is not None else "(unnamed)")
    what = f"data connection '{name}'" if not name.startswith("#") else f"data connection {name}"
    return f"{source}: {what}" if source else what


def task_location(raw: Any, source: str | None = None, index: int | None = None) -> str:
    name = definition_name(raw, f"#{index + 1}" if index is not None else "(unnamed)")
    what = f"task '{name}'" if not name.startswith("#") else f"task {name}"
    return f"{source}: {what}" if source else what
