"""Vectors represents the leaf tests shared by attribute columns and event properties:
a comparison or IN over a numeric array with a presence mask, and string tests turned
into dictionary code sets (never a scan of strings).
"""
from __future__ import annotations

import math
import operator
from typing import Callable

import numpy as np

from ..dictionary import StringDictionary
from .ir import InSet, Like, Predicate

_OPS: dict[str, Callable] = {
    "=": operator.eq, "!=": operator.ne, "<": operator.lt,
    "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}
SCAN_CODES = 8  # code sets up to this size are tested by equality scans (np.isin sorts)


def leaf_codes(d: StringDictionary, p: Predicate) -> tuple[np.ndarray, bool]:
    if isinstance(p, Like):
        return d.codes_like(p.pattern, p.case_insensitive), p.negated
    if isinstance(p, InSet):
        return d.codes_in(p.values), p.negated
    if p.op in ("=", "!="):
        c = d.code(p.value)
        return np.array([c] if c >= 0 else [], dtype=np.int32), p.op == "!="
    return d.codes_compare(p.op, p.value), False


def codes_equal(codes: np.ndarray, target: np.ndarray) -> np.ndarray:
    """codes ∈ target; a few equality scans for short targets (np.isin sorts)."""
    if len(target) <= SCAN_CODES:
        out = np.zeros(len(codes), dtype=bool)
        for c in target.tolist():
            out |= codes == c
        return out
    return np.isin(codes, target)


def compare_values(op: str, value, vals: np.ndarray, present: np.ndarray) -> np.ndarray:
    op, value = int_literal(op, value, vals.dtype) if vals.dtype.kind == "i" else (op, value)
    if value is None:  # literal outside the column's domain
        return present.copy() if op == "!=" else np.zeros(len(vals), dtype=bool)
    return present & _OPS[op](vals, value)


def int_literal(op: str, value, dtype: np.dtype):
    """Rewrite an int-column comparison with a float literal, or one outside the
    column's (possibly narrow) dtype, into an exact comparison within the dtype
    (floats lose precision past 2**53; numpy must never wrap the literal).
    value None: nothing matches (or, for !=, every present value does)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return op, value
    lo, hi = int(np.iinfo(dtype).min), int(np.iinfo(dtype).max)
    if isinstance(value, float) and math.isinf(value):
        value = hi + 1 if value > 0 else lo - 1
    elif isinstance(value, float):
        if value != value:
            return op, None
        if op in ("=", "!="):
            if not value.is_integer():
                return op, None
            value = int(value)
        elif op in (">", ">="):
            value = math.floor(value) + 1 if op == ">" or not value.is_integer() else int(value)
            op = ">="
        else:
            value = math.ceil(value) - 1 if op == "<" or not value.is_integer() else int(value)
            op = "<="
    if value > hi:
        return ("<=", hi) if op in ("<", "<=") else (("!=", None) if op == "!=" else (op, None))
    if value < lo:
        return (">=", lo) if op in (">", ">=") else (("!=", None) if op == "!=" else (op, None))
    return op, value


def inset_values(p: InSet, vals: np.ndarray, present: np.ndarray) -> np.ndarray:
    wanted = []
    for v in p.values:
        op, v2 = int_literal("=", v, vals.dtype) if vals.dtype.kind == "i" else ("=", v)
        if v2 is not None:
            wanted.append(v2)
    hit = np.isin(vals, np.array(wanted, dtype=vals.dtype)) if wanted else np.zeros(len(vals), dtype=bool)
    return present & (~hit if p.negated else hit)
