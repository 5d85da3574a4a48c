"""The input file: its format, opening it with a readable error, counting its lines."""
from __future__ import annotations

from pathlib import Path
from typing import IO, Any

import click

FORMATS: dict[str, str] = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv"}


def format_of(file: str, fmt: str | None) -> str:
    if file == "-":
        if fmt == "csv":
            raise click.UsageError("stdin is read as JSON Lines; give a CSV file by name")
        return "jsonl"
    if not Path(file).exists():
        raise click.ClickException(f"cannot read {file}: no such file")
    if fmt is None:
        fmt = FORMATS.get(Path(file).suffix.lower())
    if fmt is None:
        raise click.UsageError(f"cannot tell the format of {file} from its extension; "
                               "pass --format jsonl or --format csv")
    return fmt


def line_count(path: str) -> int:
    """Lines in a file (a last line without a newline counts), read in 1 MiB blocks."""
    count, last = 0, b"\n"
    with open_file(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


def open_file(path: str, mode: str, **kwargs: Any) -> IO:
    try:
        return open(path, mode, **kwargs)
    except OSError as e:
        raise click.ClickException(f"cannot read {path}: {e.strerror}") from None
