"""Units: recognise the common spellings, compare a source's unit with a datastream's, convert.

Hydrocron reports the unit of every field it returns (``wse_units`` = ``m``, ``slope_units`` =
``m/m``, ``area_total_units`` = ``m^2``, discharge ``m^3/s``, ``"1"`` for fractions), and a
HydroServer datastream has a unit (``unitId`` -> ``{symbol, name, ...}``). Loading metres into a
datastream kept in feet is a silent, lasting error, so the loader compares the two before writing.

The table is deliberately small: the units hydrologic series use. Each spelling maps to a
*canonical* symbol, a *dimension* and the factor to the dimension's base unit:

=============  =========================================================================
dimension      canonical symbols (spellings accepted)
=============  =========================================================================
length         ``m`` (m, meter(s), metre(s)), ``ft`` (ft, foot, feet, international foot),
               ``cm``, ``mm``, ``km``, ``in``
area           ``m^2`` (m^2, m2, m², sq m, square meter(s)/metre(s)), ``km^2`` (km^2, km2,
               km², square kilometer(s)), ``ft^2``, ``ha``, ``acre``, ``mi^2``
flow           ``m^3/s`` (m^3/s, m3/s, m³/s, cms, cumecs, cubic meters per second),
               ``ft^3/s`` (cfs, ft^3/s, ft3/s, ft³/s, cubic feet per second), ``L/s``
ratio          ``1`` (1, m/m, ft/ft, dimensionless, unitless, fraction, ratio, -), ``%``,
               ``m/km``, ``cm/km``, ``mm/km``
=============  =========================================================================

Matching ignores case, spaces and the difference between ``^2``, ``2``, ``²`` and ``**2``. A unit
this table does not know can only be compared by its spelling; :func:`check_units` reports that
instead of guessing. Conversions are linear (a factor): no unit here has an offset.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "UNITS",
    "Unit",
    "UnitCheck",
    "UnitError",
    "check_units",
    "conversion_factor",
    "describe_known_units",
    "find_unit",
    "target_unit_text",
]


@dataclass(frozen=True)
class Unit:
    """A canonical unit: its symbol, what it measures and the factor to that dimension's base."""

    symbol: str
    dimension: str
    factor: float  # value in this unit * factor = value in the base unit (m, m^2, m^3/s, 1)


class UnitError(ValueError):
    """A unit cannot be used as asked (unknown, or a conversion between different dimensions)."""


_FOOT = 0.3048
# canonical symbol -> (dimension, factor to the base unit, other spellings)
_TABLE: dict[str, tuple[str, float, tuple[str, ...]]] = {
    "m": ("length", 1.0, ("meter", "meters", "metre", "metres")),
    "ft": ("length", _FOOT, ("foot", "feet", "international foot", "ft (international)")),
    "cm": ("length", 0.01, ("centimeter", "centimeters", "centimetre", "centimetres")),
    "mm": ("length", 0.001, ("millimeter", "millimeters", "millimetre", "millimetres")),
    "km": ("length", 1000.0, ("kilometer", "kilometers", "kilometre", "kilometres")),
    "in": ("length", 0.0254, ("inch", "inches")),
    "m^2": ("area", 1.0, ("sq m", "square meter", "square meters", "square metre",
                          "square metres")),
    "km^2": ("area", 1e6, ("sq km", "square kilometer", "square kilometers",
                           "square kilometre", "square kilometres")),
    "ft^2": ("area", _FOOT ** 2, ("sq ft", "square foot", "square feet")),
    "mi^2": ("area", 1609.344 ** 2, ("sq mi", "square mile", "square miles")),
    "ha": ("area", 1e4, ("hectare", "hectares")),
    "acre": ("area", 4046.8564224, ("acres", "ac")),
    "m^3/s": ("flow", 1.0, ("cms", "cumec", "cumecs", "cubic meters per second",
                            "cubic metres per second", "cubic meter per second",
                            "cubic metre per second")),
    "ft^3/s": ("flow", _FOOT ** 3, ("cfs", "cubic feet per second", "cubic foot per second")),
    "L/s": ("flow", 0.001, ("l/s", "liters per second", "litres per second")),
    "1": ("ratio", 1.0, ("m/m", "ft/ft", "km/km", "dimensionless", "unitless", "fraction",
                         "ratio", "-", "none")),
    "%": ("ratio", 0.01, ("percent", "pct")),
    "m/km": ("ratio", 1e-3, ()),
    "cm/km": ("ratio", 1e-5, ()),
    "mm/km": ("ratio", 1e-6, ()),
}

_SUPERSCRIPTS = str.maketrans({"²": "^2", "³": "^3"})
_POWER = re.compile(r"\*\*|\^")
_BARE_POWER = re.compile(r"(?<=[a-z])([23])(?![0-9])")  # m2 -> m^2, ft3/s -> ft^3/s


def _key(text: str) -> str:
    """A spelling reduced for matching: lower case, single spaces, powers written ``^n``."""
    text = " ".join(str(text).strip().translate(_SUPERSCRIPTS).lower().split())
    text = _POWER.sub("^", text.replace(" / ", "/").replace(" ^ ", "^"))
    if " " not in text:
        text = _BARE_POWER.sub(r"^\1", text.replace("^", ""))
    return text


UNITS: dict[str, Unit] = {}
for _symbol, (_dimension, _factor, _spellings) in _TABLE.items():
    _unit = Unit(_symbol, _dimension, _factor)
    for _spelling in (_symbol, *_spellings):
        UNITS[_key(_spelling)] = _unit
del _symbol, _dimension, _factor, _spellings, _unit, _spelling


def _kind(unit: Unit) -> str:
    return {"length": "a length", "area": "an area", "flow": "a flow rate",
            "ratio": "a ratio"}.get(unit.dimension, unit.dimension)


def find_unit(text: Any) -> Unit | None:
    """The canonical unit of a spelling (``"metre"`` -> m, ``"cfs"`` -> ft^3/s), or None."""
    if text is None:
        return None
    text = str(text).strip()
    if not text:
        return None
    return UNITS.get(_key(text))


def describe_known_units() -> str:
    """``m, ft, cm, ...``: for error messages that list what is understood."""
    return ", ".join(_TABLE)


def conversion_factor(source: str, target: str) -> float:
    """The factor turning values in ``source`` into values in ``target`` (both in the table)."""
    a, b = find_unit(source), find_unit(target)
    for text, unit in ((source, a), (target, b)):
        if unit is None:
            raise UnitError(f"unknown unit {text!r}; known units: {describe_known_units()}")
    assert a is not None and b is not None
    if a.dimension != b.dimension:
        raise UnitError(f"{source!r} is {_kind(a)} and {target!r} {_kind(b)}: no conversion "
                        "between them")
    return a.factor / b.factor


def target_unit_text(unit: Mapping[str, Any] | None) -> str | None:
    """How a HydroServer unit object reads for matching: its symbol, else its name."""
    if not unit:
        return None
    for key in ("symbol", "name"):
        value = unit.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _same(a: str, b: str) -> bool:
    ua, ub = find_unit(a), find_unit(b)
    if ua is not None and ub is not None:
        return ua.symbol == ub.symbol
    return _key(a) == _key(b)


@dataclass(frozen=True)
class UnitCheck:
    """What to do with one series before loading it into one datastream.

    ``error``: refuse the datastream (the message says why and how to fix it). Otherwise load the
    values multiplied by ``factor``; ``note`` says what could not be checked, when anything.
    """

    factor: float = 1.0
    error: str | None = None
    note: str | None = None


def check_units(
    field: str,
    source: str | None,
    target: Mapping[str, Any] | None,
    conversion: Mapping[str, str] | str | None = None,
    *,
    datastream: str = "the datastream",
) -> UnitCheck:
    """Compare the source unit of ``field`` with the target datastream's unit.

    ``source``: the unit the source reported (None: not reported, nothing to check).
    ``target``: HydroServer's unit object (``symbol``/``name``), None when unknown.
    ``conversion``: the definition's ``{"from": ..., "to": ...}`` for this field (``from``
    optional: the source's unit), or None.

    Same unit -> load as is. Different units -> refused, unless ``conversion`` goes from the
    source unit to the target unit, then values are converted. A unit the table does not know is
    compared by spelling only; when that is all that can be said, the load goes on with a note.
    """
    target_text = target_unit_text(target)
    shown_target = f"{datastream} is in {target_text!r}" if target_text else \
        f"{datastream} has no unit HydroServer would tell"
    if isinstance(conversion, str):  # the short form: the unit to convert to
        conversion = {"to": conversion}
    if conversion:
        to = conversion.get("to")
        if to is None:  # definitions require it; only a direct call can get here without
            return UnitCheck(error=(
                f"the conversion of {field!r} names no unit to convert to; write "
                f"conversions: {{{field}: {{to: <unit>}}}}"))
        frm = conversion.get("from") or source
        if frm is None:
            return UnitCheck(error=(
                f"the conversion of {field!r} has no 'from' and the source reported no unit "
                f"for it; write conversions: {{{field}: {{from: <unit>, to: {to}}}}}"))
        if source is not None and not _same(frm, source):
            return UnitCheck(error=(
                f"the conversion of {field!r} starts from {frm!r} but the source reports "
                f"{field} in {source!r}; fix 'from' in conversions"))
        if target_text is not None and not _same(to, target_text):
            return UnitCheck(error=(
                f"the conversion of {field!r} goes to {to!r} but {shown_target}; fix 'to' in "
                f"conversions, or map {field} to a datastream in {to!r}"))
        try:
            factor = conversion_factor(frm, to)
        except UnitError as exc:
            return UnitCheck(error=f"cannot convert {field!r}: {exc}")
        note = None if target_text is not None else (
            f"{field} converted from {frm} to {to}; {shown_target}, so 'to' was not checked")
        return UnitCheck(factor=factor, note=note)
    if source is None:
        return UnitCheck()
    if target_text is None:
        return UnitCheck(note=f"the source reports {field} in {source!r} and {shown_target}: "
                              "units not checked")
    if _same(source, target_text):
        return UnitCheck()
    a, b = find_unit(source), find_unit(target_text)
    if a is not None and b is not None:
        if a.dimension == b.dimension:
            return UnitCheck(error=(
                f"the source reports {field} in {source!r} but {shown_target}; add "
                f"conversions: {{{field}: {{from: {a.symbol}, to: {b.symbol}}}}} to the data "
                f"connection to convert, or map {field} to a datastream in {a.symbol!r}"))
        return UnitCheck(error=(
            f"the source reports {field} in {source!r} ({_kind(a)}) but {shown_target} "
            f"({_kind(b)}): is {field} mapped to the right datastream?"))
    unknown = target_text if b is None else source
    return UnitCheck(note=(
        f"the source reports {field} in {source!r} and {shown_target}; {unknown!r} is not a "
        f"unit this provider knows ({describe_known_units()}), so they were not compared"))
