"""Column represents one field's values for every row of a shard.

Three storage shapes, one per kind of field:
- `NumericColumn` (int, float, bool, timestamp): a numpy value array + presence mask;
  predicates scan it, vectorised and memory-bandwidth bound.
- `StringColumn`: dictionary codes (-1 = null) + a bitmap per value; the code array is
  int8 until the dictionary outgrows it, then int16, then int32 (most CDP strings —
  gender, plan, country — have a handful of values, so this saves 3 bytes a row each).
- `TagSetColumn`: presence mask + a bitmap per tag (a row's tags live only in bitmaps).
All arrays grow by capacity doubling (`ensure`); batch writes take unique rows.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .arrays import grown, widened
from .bitmap_index import BitmapIndex, bitmap_of, rows_of
from .dictionary import StringDictionary
from .schema import Field, FieldType
from .timestamps import to_datetime

STORAGE_DTYPE = {
    FieldType.INT: np.int64,
    FieldType.FLOAT: np.float64,
    FieldType.BOOL: np.bool_,
    FieldType.TIMESTAMP: np.int64,
}


class NumericColumn:
    """int columns start as int8 and widen when a value needs it: ages and counts then
    cost 1–2 bytes a row, and scans read 4–8x less memory."""

    def __init__(self, field: Field) -> None:
        self.field = field
        self.values = np.zeros(0, dtype=np.int8 if field.type is FieldType.INT else STORAGE_DTYPE[field.type])
        self.present = np.zeros(0, dtype=bool)
        self.max_abs = 0  # largest |value| ever written: tells when an int64 sum is exact

    def ensure(self, capacity: int) -> None:
        self.values = grown(self.values, capacity)
        self.present = grown(self.present, capacity)

    def write(self, rows: np.ndarray, values: np.ndarray, null: np.ndarray) -> None:
        keep = ~null
        written = values[keep]
        if written.size and written.dtype.kind == "i":
            lo, hi = int(written.min()), int(written.max())
            self.max_abs = max(self.max_abs, -lo, hi)
            if self.field.type is FieldType.INT:
                self.values = widened(self.values, lo, hi)
        self.values[rows[keep]] = written
        self.present[rows] = keep

    def present_mask(self, n: int) -> np.ndarray:
        return self.present[:n]

    def state(self, n: int) -> dict:
        return {"values": self.values[:n].copy(), "present": self.present[:n].copy(),
                "max_abs": self.max_abs}

    def load(self, state: dict) -> None:
        self.values, self.present, self.max_abs = state["values"], state["present"], state["max_abs"]

    def clear(self, rows: np.ndarray) -> None:
        self.present[rows] = False

    def value(self, row: int) -> Any:
        if not self.present[row]:
            return None
        v = self.values[row].item()
        return to_datetime(v) if self.field.type is FieldType.TIMESTAMP else v


class StringColumn:
    def __init__(self, field: Field) -> None:
        self.field = field
        self.codes = np.zeros(0, dtype=np.int8)
        self.dictionary = StringDictionary()
        self.index = BitmapIndex()

    def ensure(self, capacity: int) -> None:
        self.codes = grown(self.codes, capacity, fill=-1)

    def present_mask(self, n: int) -> np.ndarray:
        return self.codes[:n] >= 0

    def state(self, n: int) -> dict:
        return {"codes": self.codes[:n].copy(), **_dictionary_state(self)}

    def load(self, state: dict) -> None:
        self.codes = state["codes"]
        _load_dictionary(self, state)

    def translate(self, codes: np.ndarray, categories: list[str]) -> np.ndarray:
        """Batch codes over `categories` → this shard's codes (only used ones get added)."""
        table = self.dictionary.translation(codes, categories)
        self.index.ensure(len(self.dictionary))
        self.codes = widened(self.codes, -1, len(self.dictionary) - 1)
        return table[codes]

    def write(self, rows: np.ndarray, codes: np.ndarray) -> None:
        """Set rows to shard codes (-1 clears), moving them between value bitmaps."""
        old = self.codes[rows]
        changed = old != codes
        rows, old, codes = rows[changed], old[changed], codes[changed]
        had = old >= 0
        self.index.remove(old[had], rows[had])
        has = codes >= 0
        self.index.add(codes[has], rows[has])
        self.codes[rows] = codes

    def clear(self, rows: np.ndarray) -> None:
        self.write(rows, np.full(len(rows), -1, dtype=np.int32))

    def value(self, row: int) -> Any:
        c = int(self.codes[row])
        return self.dictionary.values[c] if c >= 0 else None


class TagSetColumn:
    def __init__(self, field: Field) -> None:
        self.field = field
        self.present = np.zeros(0, dtype=bool)
        self.dictionary = StringDictionary()
        self.index = BitmapIndex()

    def ensure(self, capacity: int) -> None:
        self.present = grown(self.present, capacity)

    def present_mask(self, n: int) -> np.ndarray:
        return self.present[:n]

    def state(self, n: int) -> dict:
        return {"present": self.present[:n].copy(), **_dictionary_state(self)}

    def load(self, state: dict) -> None:
        self.present = state["present"]
        _load_dictionary(self, state)

    def write(self, rows: np.ndarray, null: np.ndarray, pair_rows: np.ndarray,
              pair_codes: np.ndarray, categories: list[str]) -> None:
        """Replace the sets of `rows`: (pair_rows[i], categories[pair_codes[i]]) are the
        new memberships; `null` (aligned with rows) marks rows set to null."""
        had = rows[self.present[rows]]
        if had.size:
            self.index.remove_everywhere(had)
        if pair_codes.size:
            table = self.dictionary.translation(pair_codes, categories)
            self.index.ensure(len(self.dictionary))
            self.index.add(table[pair_codes], pair_rows)
        self.present[rows] = ~null

    def clear(self, rows: np.ndarray) -> None:
        had = rows[self.present[rows]]
        if had.size:
            self.index.remove_everywhere(had)
        self.present[rows] = False

    def value(self, row: int) -> Any:
        if not self.present[row]:
            return None
        return sorted(self.dictionary.values[c] for c, bm in enumerate(self.index.bitmaps) if row in bm)

    def tag_pairs(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(position in `rows`, tag code) of every tag the sorted `rows` have, grouped
        by tag: one bitmap intersection per tag, no per-row work."""
        wanted = bitmap_of(rows)
        pos_parts, code_parts = [], []
        for code, bm in enumerate(self.index.bitmaps):
            hit = rows_of(bm & wanted)
            if hit.size:
                pos_parts.append(np.searchsorted(rows, hit))
                code_parts.append(np.full(hit.size, code, dtype=np.int64))
        if not pos_parts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return np.concatenate(pos_parts), np.concatenate(code_parts)

    def tags_of(self, rows: np.ndarray) -> list[list[str] | None]:
        """Sorted tag lists for many rows (output of listings), one bitmap pass per tag."""
        out: list[list[str] | None] = [[] if p else None for p in self.present[rows].tolist()]
        sel = bitmap_of(np.sort(rows))
        pos = {r: i for i, r in enumerate(rows.tolist())}
        for code, bm in enumerate(self.index.bitmaps):
            tag = self.dictionary.values[code]
            for r in (bm & sel).to_array():
                out[pos[r]].append(tag)
        for tags in out:
            if tags:
                tags.sort()
        return out


def _dictionary_state(col: "StringColumn | TagSetColumn") -> dict:
    return {"values": list(col.dictionary.values), "bitmaps": [bm.copy() for bm in col.index.bitmaps]}


def _load_dictionary(col: "StringColumn | TagSetColumn", state: dict) -> None:
    col.dictionary = StringDictionary.of(state["values"])
    col.index.bitmaps = state["bitmaps"]


def make_column(field: Field) -> NumericColumn | StringColumn | TagSetColumn:
    if field.type is FieldType.STRING:
        return StringColumn(field)
    if field.type is FieldType.STRING_SET:
        return TagSetColumn(field)
    return NumericColumn(field)
