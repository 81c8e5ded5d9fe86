"""The base of every definition model: how it spells its keys, and how a validator reports.

Every field is accepted in snake_case (hydroserverpy's guide) and camelCase (HydroServer's API
export) through validation aliases, so pydantic's error locations already carry the key as the
user wrote it. ``null`` means "not set" for a field that does not take None; read-only keys of an
export are dropped and empty secrets ignored before pydantic looks at the data. A validator raises
``invalid(...)``: a pydantic error carrying the message, expected and found value, which
``errors.py`` turns into a ``DefinitionError``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from datetime import datetime
from typing import Any, ClassVar, get_args

from pydantic import (
    AliasChoices,
    AliasGenerator,
    BaseModel,
    ConfigDict,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

__all__ = ["HIDDEN", "ID_SCHEMA", "NOTHING", "DefinitionModel", "Shown", "as_text", "check",
           "describe_found", "invalid", "merge_key", "not_blank", "suggest"]


class Shown(str):
    """A ``found`` value printed as-is (no quotes); a ``str``, so errors stay JSON-friendly."""

    __slots__ = ()

    def __repr__(self) -> str:
        return str.__str__(self)


NOTHING = Shown("nothing")
HIDDEN = Shown("a value written in the file (not shown)")


def describe_found(value: Any) -> Any:
    """A short, readable stand-in for ``value`` in an error message."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return value if len(value) <= 100 else Shown(repr(value[:97]) + "...")
    if isinstance(value, datetime):
        return Shown(f"the date-time {value.isoformat()}")
    text = repr(value)
    kinds: dict[type, str] = {dict: "a mapping", list: "a list", tuple: "a list"}
    kind = kinds.get(type(value), type(value).__name__)
    return Shown(f"{kind} {text if len(text) <= 100 else text[:97] + '...'}")


def suggest(word: str, choices: Iterable[str]) -> str | None:
    """The choice closest to ``word`` (case-insensitive), if any is close enough."""
    folded = {c.casefold(): c for c in choices}
    if word.casefold() in folded:
        return folded[word.casefold()]
    match = difflib.get_close_matches(word.casefold(), list(folded), n=1, cutoff=0.6)
    return folded[match[0]] if match else None


# ids and column indexes may be written as numbers: they are read as text
ID_SCHEMA = WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "integer", "minimum": 0}]})


def invalid(message: str, expected: str | None = None, found: Any = NOTHING, *,
            at: tuple = (), more: Iterable[tuple] = ()) -> PydanticCustomError:
    """One or more problems raised from a validator.

    ``at`` is relative to what the validator validates (the field, or the model for a model
    validator), in field names; ``more`` holds further problems as ``(at, message, expected,
    found)``.
    """
    problems = [(at, message, expected, found), *more]
    return PydanticCustomError("definition", "{message}",
                               {"message": "; ".join(p[1] for p in problems),
                                "problems": problems})


def check(problems: list[tuple]) -> None:
    """Raise ``problems`` (each ``(at, message, expected, found)``) together, if there is any."""
    if problems:
        raise invalid(*problems[0][1:], at=problems[0][0], more=problems[1:])


def not_blank(message: str, expected: str) -> Any:
    """A validator refusing blank text with ``message``."""
    def check_text(value: str) -> str:
        if not value.strip():
            raise invalid(message, expected, value)
        return value
    return check_text


def as_text(value: Any) -> Any:
    """Ids and column indexes are often written as numbers: they are text."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _spellings(name: str) -> AliasChoices | str:
    camel = to_camel(name)
    return AliasChoices(name, camel) if camel != name else name


class DefinitionModel(BaseModel):
    """Frozen, strict about unknown keys, and never echoing an input in its errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True,
                              alias_generator=AliasGenerator(validation_alias=_spellings))

    what: ClassVar[str] = "a definition"  # "unknown key in <what>"
    unknown: ClassVar[str] = ""  # another message for an unknown key
    value_message: ClassVar[str] = ""  # one message for every wrong value (expected: description)
    read_only: ClassVar[frozenset[str]] = frozenset()  # keys of HydroServer's export, ignored
    secrets: ClassVar[frozenset[str]] = frozenset()  # refused unless empty (an export's null)
    # keys written at this level that belong in a block: flat key -> (block field, key there)
    moved: ClassVar[dict[str, tuple[str, str]]] = {}
    lifted: ClassVar[dict[str, str]] = {}  # fields that may be written in a block: -> block
    # computed per class: every spelling -> field name; field name -> its spellings
    keys: ClassVar[dict[str, str]] = {}
    spellings: ClassVar[dict[str, tuple[str, ...]]] = {}
    _not_null: ClassVar[frozenset[str]] = frozenset()  # spellings where null means "not set"

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls.spellings = {
            name: tuple(c for c in (alias.choices if isinstance(alias, AliasChoices)
                                    else [alias or name]) if isinstance(c, str))
            for name, field in cls.model_fields.items() for alias in [field.validation_alias]}
        cls.keys = {s: name for name, spelt in cls.spellings.items() for s in spelt}
        cls._not_null = frozenset(s for name, field in cls.model_fields.items()
                                  if type(None) not in get_args(field.annotation)
                                  for s in cls.spellings[name])

    @model_validator(mode="before")
    @classmethod
    def _prepare(cls, data: Any) -> Any:
        if type(data) is not dict:
            return data
        data = cls._adjust(data)
        if any(k in cls.read_only or k in cls.secrets or (v is None and k in cls._not_null)
               for k, v in data.items()):
            data = {k: v for k, v in data.items() if not (
                k in cls.read_only or (v is None and k in cls._not_null)
                or (k in cls.secrets and v in (None, "")))}
        return data

    @classmethod
    def _adjust(cls, data: dict) -> dict:
        """Bring ``data`` to the fields' shape (moving flat keys into their blocks, filling
        defaults that depend on other keys); must not modify ``data`` itself."""
        return data


def merge_key(source: dict, key: str, target: dict, spelt: str, same: tuple[str, ...], *,
              equal_ok: bool = True) -> None:
    """Move ``source[key]`` to ``target[spelt]`` unless ``target`` already sets it (under one of
    the spellings ``same``): then an equal value (``equal_ok``) or a null is dropped, and a
    different one stays where it is, for pydantic to report as an extra key ("set twice")."""
    value = source[key]
    other = next((s for s in same if s in target), None)
    if other is None or target[other] is None:
        target.pop(other, None)
        target[spelt] = source.pop(key)
    elif value is None or (equal_ok and value == target[other]):
        del source[key]
