"""StringDictionary represents the value ↔ int32 code mapping of one string field.

Predicates on strings (=, IN, LIKE, ranges) are answered on the dictionary — a few
thousand values at most in CDP data — and turned into code sets, never by scanning rows.
"""
from __future__ import annotations

import operator
import re
from typing import Callable, Iterable, Sequence

import numpy as np

from .arrays import used_codes

_ORDER_OPS: dict[str, Callable[[str, str], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}


def like_regex(pattern: str, case_insensitive: bool = False) -> re.Pattern[str]:
    """Compile a SQL LIKE pattern: % any run, _ one character, no escape character
    (as in DuckDB without an ESCAPE clause; a backslash is an ordinary character)."""
    out = [".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern]
    return re.compile("".join(out), re.DOTALL | (re.IGNORECASE if case_insensitive else 0))


class StringDictionary:
    """Codes are dense and never reused, so a code stays valid for the life of the shard."""

    def __init__(self) -> None:
        self.values: list[str] = []
        self._codes: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.values)

    @classmethod
    def of(cls, values: list[str]) -> "StringDictionary":
        """A dictionary holding `values` with codes 0..n-1 (loading a snapshot)."""
        d = cls()
        d.encode(values)
        return d

    def code(self, value: str) -> int:
        """Code of `value`, or -1 when the dictionary has never seen it."""
        return self._codes.get(value, -1)

    def encode(self, values: Sequence[str]) -> np.ndarray:
        """Codes of `values` (a batch's distinct categories), adding new ones."""
        out = np.empty(len(values), dtype=np.int32)
        for i, v in enumerate(values):
            c = self._codes.get(v)
            if c is None:
                c = self._codes[v] = len(self.values)
                self.values.append(v)
            out[i] = c
        return out

    def translation(self, codes: np.ndarray, categories: Sequence[str]) -> np.ndarray:
        """Table from a batch's category codes to this dictionary's codes, adding only
        the categories the batch uses; its last entry is -1, so batch code -1 (null)
        maps to -1 by plain indexing."""
        used = used_codes(codes, len(categories))
        table = np.full(len(categories) + 1, -1, dtype=np.int32)
        table[used] = self.encode([categories[c] for c in used.tolist()])
        return table

    def codes_in(self, values: Iterable[str]) -> np.ndarray:
        found = [self._codes[v] for v in values if v in self._codes]
        return np.array(sorted(set(found)), dtype=np.int32)

    def codes_like(self, pattern: str, case_insensitive: bool = False) -> np.ndarray:
        rx = like_regex(pattern, case_insensitive)
        return np.array([c for c, v in enumerate(self.values) if rx.fullmatch(v)], dtype=np.int32)

    def codes_compare(self, op: str, value: str) -> np.ndarray:
        fn = _ORDER_OPS[op]
        return np.array([c for c, v in enumerate(self.values) if fn(v, value)], dtype=np.int32)

    def decode(self, codes: np.ndarray) -> list[str | None]:
        vals = self.values
        return [vals[c] if c >= 0 else None for c in np.asarray(codes).tolist()]
