"""How numbers, counts and tables read, the same in task logs, summaries, e-mails and the CLI."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["format_table", "number", "plural"]


def number(value: Any) -> str:
    """``16841`` -> ``"16,841"``: every count a person reads has thousands separators."""
    return f"{int(value or 0):,}"


def plural(count: int, word: str, many: str | None = None) -> str:
    """``plural(1, "datastream")`` -> ``"1 datastream"``, ``plural(2, ...)`` -> ``"2 datastreams"``.

    ``many`` overrides the plural form (default: ``word + "s"``).
    """
    return f"{number(count)} {word if count == 1 else (many or word + 's')}"


def format_table(headers: Sequence[str], rows: Iterable[Sequence[Any]],
                 right: Sequence[int] = (), indent: str = "") -> str:
    """A plain aligned text table (columns in ``right`` are right-aligned, e.g. counts), each
    line starting with ``indent``: the CLI's tables and the text part of the e-mails."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return indent + "  ".join(c.rjust(w) if i in right else c.ljust(w)
                                  for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    return "\n".join([line(cells[0]), line(["-" * w for w in widths])]
                     + [line(r) for r in cells[1:]])
