"""Columnar input types for `Store.upsert_columns`, the bulk path.

Besides plain numpy arrays (every value present), lists (None = explicit null) and
`numpy.ma.MaskedArray` (masked = explicit null), a column may be given pre-encoded:

- `Categorical(codes, categories)` for a string field: `codes[i]` indexes `categories`,
  -1 means null. Encoding on the client keeps millions of Python strings out of the
  hot path (the gRPC wire format carries the same shape).
- `TagSets(offsets, codes, categories, null)` for a string_set field: record i has the tags
  `categories[codes[offsets[i]:offsets[i+1]]]`; `null[i]` (optional) marks a null set.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .errors import BatchError


@dataclass(frozen=True)
class Categorical:
    codes: np.ndarray
    categories: Sequence[str]

    def __post_init__(self) -> None:
        codes = np.asarray(self.codes)
        if codes.ndim != 1 or codes.dtype.kind not in "iu":
            raise BatchError("Categorical codes must be a 1-d integer array")
        if codes.size and (codes.min() < -1 or codes.max() >= len(self.categories)):
            raise BatchError("Categorical codes must be -1 (null) or index categories")
        object.__setattr__(self, "codes", codes)

    def __len__(self) -> int:
        return len(self.codes)


@dataclass(frozen=True)
class TagSets:
    offsets: np.ndarray
    codes: np.ndarray
    categories: Sequence[str]
    null: np.ndarray | None = None

    def __post_init__(self) -> None:
        offsets = np.asarray(self.offsets, dtype=np.int64)
        codes = np.asarray(self.codes)
        if offsets.ndim != 1 or offsets.size < 1 or offsets[0] != 0 or offsets[-1] != codes.size:
            raise BatchError("TagSets offsets must start at 0 and end at len(codes)")
        if np.any(np.diff(offsets) < 0):
            raise BatchError("TagSets offsets must not decrease")
        if codes.size and (codes.min() < 0 or codes.max() >= len(self.categories)):
            raise BatchError("TagSets codes must index categories")
        object.__setattr__(self, "offsets", offsets)
        object.__setattr__(self, "codes", codes)
        if self.null is not None:
            null = np.asarray(self.null, dtype=bool)
            if null.shape != (offsets.size - 1,):
                raise BatchError("TagSets null mask must have one entry per record")
            object.__setattr__(self, "null", null)

    def __len__(self) -> int:
        return self.offsets.size - 1
