"""What the file readers yield: batches of records, and the records rejected locally."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple


class Rejection(NamedTuple):
    line: int
    field: str             # "" when no single field is at fault
    reason: str

    def __str__(self) -> str:
        where = f"{self.field}: " if self.field else ""
        return f"line {self.line}: {where}{self.reason}"


Columns = tuple[list[str], dict[str, Any]]   # (ids, {field: column}) for batch_from_columns


@dataclass
class Batch:
    """Records read from the file, with the line each starts on, and the local rejections.

    JSON Lines fill `records`; CSV fills `columns` instead (aligned with `lines`)."""
    records: list[dict[str, Any]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    progress: int = 0      # records-worth of lines consumed so far (for the progress bar)
    columns: Columns | None = None
