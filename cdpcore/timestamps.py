"""Timestamps are int64 microseconds since the Unix epoch, UTC.

Accepted inputs, at ingest and in query literals: epoch seconds (int or float),
ISO-8601 strings (naive means UTC; `Z` and offsets are honoured), `datetime`/`date`
objects, and numpy datetime64 values. The range is that of `datetime`: years 1–9999,
so every stored value can be handed back as a `datetime`.
"""
from __future__ import annotations

import datetime as _dt
import math
import warnings
from typing import Any, Sequence

import numpy as np

UTC = _dt.timezone.utc
EPOCH = _dt.datetime(1970, 1, 1, tzinfo=UTC)
MIN_US = -62135596800 * 1_000_000          # 0001-01-01T00:00:00Z
MAX_US = 253402300799 * 1_000_000 + 999_999  # 9999-12-31T23:59:59.999999Z


def from_datetime(value: _dt.datetime | _dt.date) -> int:
    if not isinstance(value, _dt.datetime):
        value = _dt.datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_iso(text: str) -> int:
    """Parse one ISO-8601 string; raises ValueError naming the text."""
    try:
        return from_datetime(_dt.datetime.fromisoformat(text.strip()))
    except (ValueError, OverflowError):
        raise ValueError(f"not an ISO-8601 timestamp: {text!r}") from None


def from_epoch_seconds(value: float) -> int:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"timestamp out of range: {value!r}")
    us = round(value * 1_000_000) if isinstance(value, float) else int(value) * 1_000_000
    if not MIN_US <= us <= MAX_US:
        raise ValueError(f"timestamp out of range: {value!r}")
    return us


def to_micros(value: Any) -> int:
    """One value of any accepted kind → microseconds; ValueError/TypeError otherwise."""
    if isinstance(value, bool) or value is None:
        raise TypeError(f"expected a timestamp, got {type(value).__name__}")
    if isinstance(value, (int, float, np.integer, np.floating)):
        return from_epoch_seconds(value.item() if isinstance(value, np.generic) else value)
    if isinstance(value, str):
        us = from_iso(value)
    elif isinstance(value, (_dt.datetime, _dt.date)):
        us = from_datetime(value)
    elif isinstance(value, np.datetime64):
        us = int(value.astype("datetime64[us]").astype(np.int64))
    else:
        raise TypeError(f"expected a timestamp, got {type(value).__name__}")
    if not MIN_US <= us <= MAX_US:
        raise ValueError(f"timestamp out of range: {value!r}")
    return us


def to_datetime(us: int) -> _dt.datetime:
    return EPOCH + _dt.timedelta(microseconds=int(us))


def iso_array_to_micros(values: np.ndarray) -> np.ndarray | None:
    """Vectorised parse of a numpy string array of plain ISO dates/times (no zone).

    Returns None when the fast path does not apply (zones, words such as 'today'
    that numpy would accept, empty strings); callers then parse value by value.
    """
    if values.dtype.kind != "U" or values.size == 0 or values.dtype.itemsize == 0:
        return None
    width = values.dtype.itemsize // 4
    if width < 10:  # 'YYYY-MM-DD' at least; numpy would also take '2026'
        return None
    chars = values.view(np.uint32).reshape(-1, width)
    year = chars[:, :4]
    # four-digit years only: numpy parses '584556-01-01' and overflows µs silently
    if not (np.all((year >= ord("0")) & (year <= ord("9"))) and np.all(chars[:, 4] == ord("-"))):
        return None
    if np.any(np.strings.str_len(values) < 10):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out = values.astype("datetime64[us]").view(np.int64)
    except (ValueError, Warning):
        return None
    if np.any(out == np.iinfo(np.int64).min):
        return None
    return out


def micros_of_sequence(values: Sequence[Any]) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Convert non-null values one by one; returns (micros, [(position, reason)])."""
    out = np.zeros(len(values), dtype=np.int64)
    errors: list[tuple[int, str]] = []
    for i, v in enumerate(values):
        try:
            out[i] = to_micros(v)
        except (TypeError, ValueError, OverflowError) as e:
            errors.append((i, str(e)))
    return out, errors
