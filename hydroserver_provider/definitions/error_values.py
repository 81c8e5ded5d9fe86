"""How a value shows in a ``DefinitionError``: the ``found`` side and "did you mean" hints."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from datetime import datetime
from typing import Any

__all__ = ["HIDDEN", "NOTHING", "Shown", "describe_found", "suggest"]


class Shown(str):
    """A ``found`` value printed as-is (no quotes) in a ``DefinitionError`` message.

    A ``str`` subclass, so errors stay JSON-serialisable and comparable with plain text.
    """

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
    if len(text) > 100:
        text = text[:97] + "..."
    kinds = {dict: "a mapping", list: "a list", tuple: "a list"}
    kind = kinds.get(type(value), type(value).__name__)
    return Shown(f"{kind} {text}")


def suggest(word: str, choices: Iterable[str]) -> str | None:
    """The choice closest to ``word`` (case-insensitive), if any is close enough."""
    choices = list(choices)
    folded = {c.casefold(): c for c in choices}
    if word.casefold() in folded:
        return folded[word.casefold()]
    match = difflib.get_close_matches(word.casefold(), list(folded), n=1, cutoff=0.6)
    return folded[match[0]] if match else None
