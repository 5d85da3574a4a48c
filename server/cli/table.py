"""Readable result tables for the terminal."""
from __future__ import annotations

from typing import Any


def format_table(columns: list[str], rows: list) -> str:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]

    def line(values: list[str]) -> str:
        return " | ".join(v.ljust(w) for v, w in zip(values, widths))
    return "\n".join([line(columns), "-+-".join("-" * w for w in widths)] + [line(r) for r in cells])


def _cell(v: Any) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, float):
        return f"{v:,.2f}"
    if isinstance(v, list):
        return "{" + ", ".join(v) + "}"
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return str(v)
