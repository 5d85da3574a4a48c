"""Reading and typing CSV: the header, each column's type (declared or inferred from all
its cells), and blocks of rows as the typed columns of one ColumnBatch."""
from __future__ import annotations

import csv
import itertools
import math
import re
from typing import IO, Any, Callable, Iterable, Iterator

import click
import numpy as np

from cdpcore import timestamps as ts
from cdpcore.schema import ID_FIELD
from server import codec

from .batch import Batch, Rejection
from .files import open_file

INFER_CHUNK = 10_000       # CSV rows per step of the type-inference pass


# ---- CSV: cell parsers ----------------------------------------------------------------------
# Each takes a non-empty cell (an empty cell is null) and returns the value, or raises ValueError.
_NUMBER = re.compile(r"[+-]?(\d[\d_]*\.?\d*|\.\d+)([eE][+-]?\d+)?")
_BOOLS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


def parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)             # "42.0", as exporters write ints next to nulls
    except ValueError:
        number = math.nan
    if not number.is_integer():
        raise ValueError(f"expected int, got {text!r}")
    return int(number)


def parse_float(text: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"expected float, got {text!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"float must be finite, got {text!r}")
    return number


def parse_bool(text: str) -> bool:
    try:
        return _BOOLS[text.strip().lower()]
    except KeyError:
        raise ValueError(f"expected bool (true/false/1/0/yes/no), got {text!r}") from None


def parse_true_false(text: str) -> bool:
    """Inference only: a column is bool when every cell is true or false."""
    value = text.strip().lower()
    if value not in ("true", "false"):
        raise ValueError(text)
    return value == "true"


def parse_timestamp(text: str) -> int:
    """Epoch seconds or ISO-8601 text → microseconds, by the engine's own rules and reasons."""
    text = text.strip()
    if _NUMBER.fullmatch(text):
        number = parse_float(text)
        value: int | float | str = int(number) if number.is_integer() else number
    else:
        value = text
    return ts.to_micros(value)


def parse_tags(text: str) -> list[str]:
    return [tag for tag in text.split("|") if tag]


def parse_text(text: str) -> str:
    return text


PARSERS: dict[str, Callable[[str], Any]] = {
    "int": parse_int, "float": parse_float, "bool": parse_bool, "string": parse_text,
    "timestamp": parse_timestamp, "string_set": parse_tags,
}
# Undeclared columns: the first of these that parses every non-empty cell, else string.
INFERENCE: tuple[tuple[str, Callable[[str], Any]], ...] = (
    ("int", int), ("float", parse_float), ("bool", parse_true_false))


def iso_column(cells: list[str]) -> np.ndarray | None:
    """A timestamp column of plain ISO-8601 text as datetime64[us] (empty cells masked),
    parsed at once by the engine's own vectorised parser; None when that does not settle
    it (zones, numbers, bad cells, years the engine's range refuses), for `parse_timestamp`."""
    present = np.fromiter(map(bool, cells), dtype=bool, count=len(cells))
    micros = np.zeros(len(cells), dtype=np.int64)
    if present.any():
        parsed = ts.iso_array_to_micros(np.array([c for c in cells if c]))
        if parsed is None or not np.all((parsed >= ts.MIN_US) & (parsed <= ts.MAX_US)):
            return None
        micros[present] = parsed
    return np.ma.MaskedArray(micros.view("datetime64[us]"), mask=~present)


COLUMN_PARSERS: dict[Callable[[str], Any], Callable[[list[str]], np.ndarray | None]] = {
    parse_timestamp: iso_column,
}


def convert_column(parse: Callable[[str], Any], cells: Iterable[str]
                   ) -> tuple[list[Any] | np.ndarray, dict[int, str]]:
    """Cells → values (None for empty; or a whole typed column), and {position: reason}
    for cells that do not parse."""
    cells = list(cells)
    whole = COLUMN_PARSERS.get(parse)
    values = whole(cells) if whole else None
    if values is not None:
        return values, {}
    try:
        return [None if c == "" else parse(c) for c in cells], {}
    except (ValueError, OverflowError):
        return _convert_each(parse, cells)


def _convert_each(parse: Callable[[str], Any], cells: list[str]) -> tuple[list[Any], dict[int, str]]:
    values: list[Any] = [None] * len(cells)
    errors: dict[int, str] = {}
    for i, cell in enumerate(cells):
        try:
            values[i] = None if cell == "" else parse(cell)
        except (ValueError, OverflowError) as e:
            errors[i] = str(e)
    return values, errors


def parses_all(parse: Callable[[str], Any], cells: Iterable[str]) -> bool:
    try:
        for cell in filter(None, cells):
            parse(cell)
    except (ValueError, OverflowError):
        return False
    return True


# ---- CSV: the file ---------------------------------------------------------------------------
def open_csv(path: str) -> IO[str]:
    # utf-8-sig: spreadsheets often start the file with a byte-order mark
    return open_file(path, "r", newline="", encoding="utf-8-sig")


def read_header(path: str) -> list[str]:
    with open_csv(path) as f:
        header = [name.strip() for name in next(csv.reader(f), [])]
    if ID_FIELD not in header:
        raise click.ClickException(f"{path}: the header row must name a {ID_FIELD} column")
    duplicates = sorted({n for n in header if header.count(n) > 1})
    if duplicates or "" in header:
        raise click.ClickException(f"{path}: header has empty or repeated column names {duplicates}")
    return header


def infer_types(path: str, header: list[str], names: list[str],
                candidates: tuple[tuple[str, Callable[[str], Any]], ...] = INFERENCE) -> dict[str, str]:
    """Types of undeclared columns from all their cells (one pass, stopping when all are
    strings): the first of `candidates` that parses every non-empty cell, else string."""
    left = {header.index(n): list(candidates) for n in names}
    with open_csv(path) as f:
        rows = (row for row in itertools.islice(csv.reader(f), 1, None) if len(row) == len(header))
        while any(left.values()) and (chunk := list(itertools.islice(rows, INFER_CHUNK))):
            columns = list(zip(*chunk))
            for j, candidates in left.items():
                candidates[:] = [(t, p) for t, p in candidates if parses_all(p, columns[j])]
    return {header[j]: candidates[0][0] if candidates else "string" for j, candidates in left.items()}


def column_parsers(path: str, header: list[str], schema: dict[str, str]) -> list[Callable[[str], Any]]:
    undeclared = [n for n in header if n != ID_FIELD and n not in schema]
    types = {**schema, **(infer_types(path, header, undeclared) if undeclared else {})}
    return [parse_text if n == ID_FIELD else PARSERS.get(types[n], parse_text) for n in header]


def csv_batches(stream: IO[str], header: list[str], parsers: list[Callable[[str], Any]],
                size: int) -> Iterator[Batch]:
    """Batches of `size` records from a CSV file whose header row names the fields."""
    reader = csv.reader(stream)
    next(reader, None)
    rows: list[list[str]] = []
    lines: list[int] = []
    rejected: list[Rejection] = []
    end = reader.line_num
    for row in reader:
        line, end = end + 1, reader.line_num     # a quoted cell may span lines
        if len(row) == len(header):
            rows.append(row)
            lines.append(line)
        elif row:                                # csv yields [] for a blank line: skipped
            rejected.append(Rejection(line, "", f"expected {len(header)} fields, got {len(row)}"))
        if len(rows) == size:
            yield csv_batch(header, parsers, rows, lines, rejected, end - 1)
            rows, lines, rejected = [], [], []
    yield csv_batch(header, parsers, rows, lines, rejected, end - 1)


def csv_batch(header: list[str], parsers: list[Callable[[str], Any]], rows: list[list[str]],
              lines: list[int], rejected: list[Rejection], progress: int) -> Batch:
    """Convert a block of rows column by column into the typed columns of one ColumnBatch;
    a record with a bad cell (or a value the wire cannot carry) is left out, rejected whole."""
    columns = list(zip(*rows)) or [()] * len(header)
    ids = list(columns[header.index(ID_FIELD)])
    bad: dict[int, Rejection] = {i: Rejection(lines[i], ID_FIELD, "missing")
                                 for i, pid in enumerate(ids) if not pid}
    converted = []
    for name, parse, cells in zip(header, parsers, columns):
        if name == ID_FIELD:
            continue
        values, errors = convert_column(parse, cells)
        for i, reason in errors.items():
            bad.setdefault(i, Rejection(lines[i], name, reason))
        converted.append((name, parse, values))
    typed: dict[str, Any] = {}
    for name, parse, values in converted:      # after every cell's own problems, as rows did
        typed[name], errors = wire_column(parse, values)
        for i, reason in errors.items():
            bad.setdefault(i, Rejection(lines[i], name, reason))
    if bad:
        keep = [i for i in range(len(ids)) if i not in bad]
        ids, lines = [ids[i] for i in keep], [lines[i] for i in keep]
        typed = {name: col[keep] if isinstance(col, np.ndarray) else [col[i] for i in keep]
                 for name, col in typed.items()}
    return Batch(lines=lines, rejected=sorted(rejected + list(bad.values())), progress=progress,
                 columns=(ids, typed))


# Converted values → numpy columns (nulls masked); strings and tags stay lists.
WIRE_DTYPES: dict[Callable[[str], Any], Any] = {
    parse_int: np.int64, parse_float: np.float64, parse_bool: np.bool_, parse_timestamp: np.int64}


def wire_column(parse: Callable[[str], Any], values: list[Any] | np.ndarray) -> tuple[Any, dict[int, str]]:
    """One converted column as batch_from_columns takes it, and {position: reason} for the
    values it cannot carry (ints past int64, refused by the row codec alike)."""
    dtype = WIRE_DTYPES.get(parse)
    if dtype is None or isinstance(values, np.ndarray):
        return values, {}
    null = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
    filled = [0 if v is None else v for v in values]
    errors: dict[int, str] = {}
    try:
        data = np.array(filled, dtype=dtype)
    except OverflowError:
        errors = {i: f"int out of range for int64: {v}" for i, v in enumerate(filled)
                  if not codec.INT64_MIN <= v <= codec.INT64_MAX}
        data = np.array([0 if i in errors else v for i, v in enumerate(filled)], dtype=dtype)
    if parse is parse_timestamp:
        data = data.view("datetime64[us]")
    return np.ma.MaskedArray(data, mask=null), errors
