"""An incoming request and the validation of its path and query parameters (django-ninja's 422s)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, overload
from urllib.parse import parse_qs, urlsplit

from hydroserver_provider.testing.hydroserver.responses import HttpError
from hydroserver_provider.testing.hydroserver.values import canonical_uuid, to_us

if TYPE_CHECKING:  # pragma: no cover
    from hydroserver_provider.testing.hydroserver.access import Principal


class Request:
    def __init__(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> None:
        self.method = method
        self.raw_path = raw_path
        split = urlsplit(raw_path)
        self.path = split.path
        self.query = parse_qs(split.query, keep_blank_values=True)
        self.headers = headers  # lower-cased names
        self.body = body
        self.params: dict[str, str] = {}
        self.principal: Principal | None = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json_body(self) -> Any:
        """The JSON body like django-ninja reads it (``None`` when the body is empty)."""
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            raise HttpError(400, "Cannot parse request body") from None


_BOOL_TRUE = {"1", "true", "t", "yes", "y", "on"}


_BOOL_FALSE = {"0", "false", "f", "no", "n", "off"}


class Params:
    """Validates path and query parameters; collects pydantic-style errors and raises one 422."""

    def __init__(self, req: Request) -> None:
        self.req = req
        self.errors: list[dict] = []

    def _raw(self, name: str) -> list[str]:
        return [v.strip() for v in self.req.query.get(name, [])]

    def path_uuid(self, name: str) -> str:
        raw = self.req.params[name]
        value = canonical_uuid(raw) if len(raw.replace("-", "")) == 32 else None
        if value is None:
            self.errors.append(
                {
                    "type": "uuid_parsing",
                    "loc": ["path", name],
                    "msg": "Input should be a valid UUID, invalid character or length",
                    "input": raw,
                }
            )
            return raw
        return value

    @overload
    def integer(
        self, name: str, default: int, ge: int | None = None, le: int | None = None
    ) -> int: ...

    @overload
    def integer(
        self, name: str, default: None, ge: int | None = None, le: int | None = None
    ) -> int | None: ...

    def integer(
        self, name: str, default: int | None, ge: int | None = None, le: int | None = None
    ) -> int | None:
        raw = self._raw(name)
        if not raw:
            return default
        text = raw[-1]
        if text.lower() == "null" or text == "":
            return default  # "null" means unset (HydroServer maps it to None, then to the default)
        try:
            value = int(text)
        except ValueError:
            self.errors.append(
                {
                    "type": "int_parsing",
                    "loc": ["query", name],
                    "msg": "Input should be a valid integer, unable to parse string as an integer",
                    "input": text,
                }
            )
            return default
        if ge is not None and value < ge:
            self.errors.append(
                {
                    "type": "greater_than_equal",
                    "loc": ["query", name],
                    "msg": f"Input should be greater than or equal to {ge}",
                    "input": text,
                    "ctx": {"ge": ge},
                }
            )
        if le is not None and value > le:
            self.errors.append(
                {
                    "type": "less_than_equal",
                    "loc": ["query", name],
                    "msg": f"Input should be less than or equal to {le}",
                    "input": text,
                    "ctx": {"le": le},
                }
            )
        return value

    def page(self) -> tuple[int, int]:
        """``page`` and ``page_size`` the way every list endpoint reads them."""
        return self.integer("page", 1, ge=1), self.integer("page_size", 100, ge=0, le=100000)

    def boolean(self, name: str) -> bool | None:
        raw = self._raw(name)
        if not raw:
            return None
        text = raw[-1].lower()
        if text in _BOOL_TRUE:
            return True
        if text in _BOOL_FALSE:
            return False
        if text == "null":
            return None
        self.errors.append(
            {
                "type": "bool_parsing",
                "loc": ["query", name],
                "msg": "Input should be a valid boolean, unable to interpret input",
                "input": raw[-1],
            }
        )
        return None

    def strings(self, name: str) -> list[str | None] | None:
        raw = self.req.query.get(name)
        if raw is None:
            return None
        return [None if v.strip().lower() == "null" else v.strip() for v in raw]

    def uuids(self, name: str) -> list[str] | None:
        raw = self.req.query.get(name)
        if raw is None:
            return None
        values = []
        for i, text in enumerate(raw):
            value = canonical_uuid(text.strip())
            if value is None:
                self.errors.append(
                    {
                        "type": "uuid_parsing",
                        "loc": ["query", name, i],
                        "msg": "Input should be a valid UUID, invalid character or length",
                        "input": text,
                    }
                )
            else:
                values.append(value)
        return values

    def literal(self, name: str, allowed: Iterable[str]) -> str | None:
        raw = self._raw(name)
        if not raw:
            return None
        allowed = tuple(allowed)
        if raw[-1].lower() == "null":
            return None
        if raw[-1] not in allowed:
            self.errors.append(literal_error(["query", name], raw[-1], allowed))
            return None
        return raw[-1]

    def literals(self, name: str, allowed: Iterable[str]) -> list[str]:
        allowed = tuple(allowed)
        values = []
        for i, text in enumerate(self._raw(name)):
            if text not in allowed:
                self.errors.append(literal_error(["query", name, i], text, allowed))
            else:
                values.append(text)
        return values

    def datetime_us(self, name: str) -> int | None:
        raw = self._raw(name)
        if not raw or raw[-1].lower() == "null":
            return None
        try:
            return to_us(raw[-1])
        except (TypeError, ValueError):
            self.errors.append(
                {
                    "type": "value_error",
                    "loc": ["query", name],
                    "msg": "Value error, Invalid ISO time format",
                    "input": raw[-1],
                    "ctx": {"error": "Invalid ISO time format"},
                }
            )
            return None

    def done(self) -> None:
        if self.errors:
            raise HttpError(422, self.errors)


def literal_error(loc: list, value: Any, allowed: tuple[str, ...]) -> dict:
    expected = (
        " or ".join([", ".join(f"'{a}'" for a in allowed[:-1]), f"'{allowed[-1]}'"])
        if len(allowed) > 1
        else f"'{allowed[0]}'"
    )
    return {
        "type": "literal_error",
        "loc": loc,
        "msg": f"Input should be {expected}",
        "input": value,
        "ctx": {"expected": expected},
    }


def missing(loc: list) -> dict:
    return {"type": "missing", "loc": loc, "msg": "Field required"}


def type_error(loc: list, kind: str, value: Any) -> dict:
    messages = {
        "string_type": "Input should be a valid string",
        "list_type": "Input should be a valid list",
        "dict_type": "Input should be a valid dictionary",
        "model_type": "Input should be a valid dictionary or object to extract fields from",
        "bool_type": "Input should be a valid boolean",
        "int_type": "Input should be a valid integer",
        "float_parsing": "Input should be a valid number, unable to parse string as a number",
        "float_type": "Input should be a valid number",
        "uuid_parsing": "Input should be a valid UUID, invalid character or length",
        "datetime_type": "Input should be a valid datetime",
        "datetime_from_date_parsing": "Input should be a valid datetime or date, invalid character",
    }
    return {"type": kind, "loc": loc, "msg": messages[kind], "input": value}


def check_order_repeats(order_by: list[str]) -> None:
    stripped = [f.lstrip("-") for f in order_by]
    if len(stripped) != len(set(stripped)):
        raise HttpError(400, "Fields cannot be repeated in order_by arguments")
