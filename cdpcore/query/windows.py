"""Windows represent spans of time in query text: event windows and INTERVAL literals.

Two spellings reach this module:

- window strings such as `'30d'` (event functions' look-back windows): a positive integer
  and one unit letter, `s`, `m`, `h`, `d` or `w`;
- INTERVAL literals: `'14 days'`, `'1 hour'`, `'1 day 2 hours'`, or sqlglot's split form
  (value `'14'`, unit `DAYS`).

Both become integer microseconds. Months and years are refused: they have no fixed
length, and every window here must be a fixed number of microseconds so that a query's
meaning does not depend on the calendar. Errors are ValueErrors with a message meant for
the user; the parser adds the position.
"""
from __future__ import annotations

import re

SECOND_US = 1_000_000

# canonical unit → microseconds; _canonical() maps aliases and plurals onto these keys.
_UNIT_BASE = {
    "microsecond": 1,
    "millisecond": 1_000,
    "second": SECOND_US,
    "minute": 60 * SECOND_US,
    "hour": 3600 * SECOND_US,
    "day": 86400 * SECOND_US,
    "week": 7 * 86400 * SECOND_US,
}
_UNIT_ALIASES = {
    "us": "microsecond", "usec": "microsecond", "ms": "millisecond", "msec": "millisecond",
    "s": "second", "sec": "second", "m": "minute", "min": "minute", "h": "hour", "hr": "hour",
    "d": "day", "w": "week",
}
_UNFIXED_UNITS = ("month", "mon", "quarter", "year", "yr", "decade", "century", "millennium")

WINDOW_UNITS = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week"}
_WINDOW_RE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_NUMBER_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_PART_RE = re.compile(r"([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*([A-Za-z]+)")


def parse_window(text: str) -> int:
    """`'30d'` → microseconds; the event functions' windows must be positive."""
    match = _WINDOW_RE.match(text)
    if not match:
        raise ValueError(
            f"bad window {text!r}: expected a whole number and a unit "
            "s, m, h, d or w (e.g. '30d')")
    count = int(match.group(1))
    if count == 0:
        raise ValueError(f"bad window {text!r}: must be longer than zero")
    return count * _UNIT_BASE[WINDOW_UNITS[match.group(2)]]


def unit_micros(unit: str) -> int:
    """Microseconds in one `unit` (any accepted spelling, any case, singular or plural)."""
    name = _canonical(unit)
    if name in _UNIT_BASE:
        return _UNIT_BASE[name]
    if name in _UNFIXED_UNITS:
        raise ValueError(f"bad INTERVAL: {unit} has no fixed length; use days or weeks")
    raise ValueError(
        f"bad INTERVAL: unknown unit {unit!r} (use seconds, minutes, hours, days or weeks)")


def _canonical(word: str) -> str:
    word = word.strip().lower()
    if word in _UNIT_ALIASES:
        return _UNIT_ALIASES[word]
    plurals = {"centuries": "century", "millennia": "millennium"}
    if word in plurals:
        return plurals[word]
    stem = word[:-1] if word.endswith("s") else word
    return stem if stem in _UNIT_BASE or stem in _UNFIXED_UNITS else word


def parse_interval(value: str, unit: str | None = None) -> int:
    """An INTERVAL → microseconds (rounded to whole microseconds).

    With `unit` (sqlglot's split form, `INTERVAL '3' DAY`) `value` is a number; without
    it `value` is the whole text, one or more `<number> <unit>` parts ('1 day 2 hours').
    """
    if unit is not None:
        if not _NUMBER_RE.match(value.strip()):
            raise ValueError(f"bad INTERVAL: {value!r} is not a number")
        return round(float(value) * unit_micros(unit))
    return _parse_interval_text(value)


def _parse_interval_text(text: str) -> int:
    parts = _PART_RE.findall(text)
    leftover = _PART_RE.sub("", text).strip()
    if not parts or leftover:
        raise ValueError(
            f"bad INTERVAL {text!r}: expected a number and a unit, e.g. '14 days'")
    return sum(round(float(number) * unit_micros(name)) for number, name in parts)
