"""`cdp ingest`: load profiles from a JSON Lines or CSV file over one UpsertStream.

Records are read and checked here (JSON syntax and shape; CSV cells converted by the
field's declared type, or by a type inferred from the whole column), sent in batches
through one client-streaming `UpsertStream`, and the server's per-record errors, which
index records across the stream, are mapped back to file line numbers. The engine
judges values; this module only turns text into values.
"""
from __future__ import annotations

import contextlib
import csv
import heapq
import itertools
import json
import math
import re
import sys
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, ContextManager, Iterable, Iterator, NamedTuple

import click
import numpy as np
from tqdm import tqdm

from cdpcore import timestamps as ts
from cdpcore.errors import BatchError
from cdpcore.schema import ID_FIELD
from server import codec
from server.cli.client import Client, with_client
from server.pb.cdp.v1 import profile_store_pb2 as pb

FORMATS: dict[str, str] = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv"}
SHOWN = 20                 # rejections listed in the summary
INFER_CHUNK = 10_000       # CSV rows per step of the type-inference pass


class Rejection(NamedTuple):
    line: int
    field: str             # "" when no single field is at fault
    reason: str

    def __str__(self) -> str:
        where = f"{self.field}: " if self.field else ""
        return f"line {self.line}: {where}{self.reason}"


@dataclass
class Batch:
    """Records read from the file, with the line each starts on, and the local rejections."""
    records: list[dict[str, Any]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    progress: int = 0      # records-worth of lines consumed so far (for the progress bar)


@click.command()
@click.argument("file")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]),
              help="File format; default from the extension (.jsonl/.ndjson/.json, .csv).")
@click.option("--batch", "batch_size", default=5000, show_default=True, type=click.IntRange(min=1),
              help="Profiles per streamed request.")
@with_client
def ingest(client: Client, file: str, fmt: str | None, batch_size: int) -> None:
    """Load profiles from FILE (JSON Lines or CSV; - reads JSON Lines from stdin)."""
    fmt = format_of(file, fmt)
    read_batches = batch_reader(client, file, fmt, batch_size)
    with open_input(file, fmt) as stream:
        load = Load(None if file == "-" else line_count(file) - (1 if fmt == "csv" else 0))
        started = time.perf_counter()
        reply = load.run(client, read_batches(stream))
    report(reply, load, time.perf_counter() - started)


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


def batch_reader(client: Client, file: str, fmt: str, size: int) -> Callable[[IO], Iterator[Batch]]:
    """How to read the opened file in batches; for CSV, the header is checked and every
    column's type settled (declared in the schema, or inferred) before anything is sent."""
    if fmt == "jsonl":
        return lambda stream: jsonl_batches(stream, size)
    header = read_header(file)
    parsers = column_parsers(file, header, fetch_schema(client))
    return lambda stream: csv_batches(stream, header, parsers, size)


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


def open_input(path: str, fmt: str) -> ContextManager[IO]:
    if path == "-":
        return contextlib.nullcontext(sys.stdin.buffer)
    return open_file(path, "rb") if fmt == "jsonl" else open_csv(path)


def fetch_schema(client: Client) -> dict[str, str]:
    reply = client.store.GetSchema(pb.GetSchemaRequest())
    return {f.name: f.type for f in reply.fields}


# ---- the stream -------------------------------------------------------------------------
class Load:
    """One UpsertStream over a file's batches; remembers the file line of every record sent."""

    def __init__(self, total: int | None) -> None:
        self.lines = array("q")            # lines[i]: file line of the i-th record streamed
        self.rejected: list[Rejection] = []
        self.failure: Exception | None = None
        self.bar = tqdm(total=total, unit="profiles", file=sys.stderr, desc="ingest")

    def run(self, client: Client, batches: Iterator[Batch]) -> pb.UpsertResponse:
        try:
            return client.store.UpsertStream(self.requests(batches))
        finally:
            self.bar.close()

    def requests(self, batches: Iterator[Batch]) -> Iterator[pb.UpsertRequest]:
        # gRPC reads this generator on its own thread and would hide an exception raised
        # here behind a bare CANCELLED, so a reading error ends the stream and is kept.
        try:
            for batch in batches:
                profiles = self.encode(batch)
                self.bar.update(batch.progress - self.bar.n)
                if profiles:
                    yield pb.UpsertRequest(profiles=profiles)
        except Exception as e:  # noqa: BLE001 - re-raised by `report` after the summary
            self.failure = e

    def encode(self, batch: Batch) -> list[pb.Profile]:
        """The batch's records as Profile messages; records with no wire form are rejected."""
        self.rejected += batch.rejected
        try:
            profiles = codec.profiles_from_records(batch.records)
            self.lines.extend(batch.lines)
            return profiles
        except BatchError:
            return self.encode_each(batch)

    def encode_each(self, batch: Batch) -> list[pb.Profile]:
        profiles = []
        for record, line in zip(batch.records, batch.lines):
            problem = unencodable(record)
            if problem:
                self.rejected.append(Rejection(line, *problem))
            else:
                profiles += codec.profiles_from_records([record])
                self.lines.append(line)
        return profiles


def unencodable(record: dict[str, Any]) -> tuple[str, str] | None:
    """(field, reason) for the first value of a record that has no wire form."""
    for name, value in record.items():
        if name == ID_FIELD:
            continue
        try:
            codec.value_of(value)
        except (TypeError, ValueError) as e:
            return name, str(e)
    return None


def report(reply: pb.UpsertResponse, load: Load, elapsed: float) -> None:
    """Print the summary; exit 1 when records were read but none was accepted."""
    rejected = len(load.rejected) + len(reply.errors)
    seen = reply.accepted + rejected
    click.echo(f"accepted {reply.accepted}, rejected {rejected} "
               f"in {elapsed:.2f} s ({seen / max(elapsed, 1e-9):,.0f} profiles/s)")
    server = (Rejection(load.lines[e.index], e.field, e.reason) for e in reply.errors)
    for r in heapq.nsmallest(SHOWN, itertools.chain(load.rejected, server)):
        click.echo(f"  {r}")
    if rejected > SHOWN:
        click.echo(f"  ... and {rejected - SHOWN} more")
    if load.failure is not None:
        raise click.ClickException(f"reading stopped early: {load.failure}")
    if seen and not reply.accepted:
        raise SystemExit(1)


# ---- JSON Lines -------------------------------------------------------------------------
def jsonl_batches(stream: IO[bytes], size: int) -> Iterator[Batch]:
    """Batches of `size` records from JSON Lines; blank lines are skipped."""
    batch, number = Batch(), 0
    for number, line in enumerate(stream, 1):
        if line.isspace():
            continue
        record, problem = parse_json_line(line)
        if problem:
            batch.rejected.append(Rejection(number, *problem))
        else:
            batch.records.append(record)
            batch.lines.append(number)
        if len(batch.records) == size:
            batch.progress = number
            yield batch
            batch = Batch()
    batch.progress = number
    yield batch


def parse_json_line(line: bytes) -> tuple[dict[str, Any], tuple[str, str] | None]:
    """A line as a profile record, or the (field, reason) it is rejected for."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        return {}, ("", f"invalid JSON: {e.msg} (column {e.colno})")
    except ValueError as e:      # bytes that are not UTF-8
        return {}, ("", f"invalid JSON: {e}")
    if not isinstance(record, dict):
        return {}, ("", f"expected a JSON object, got {type(record).__name__}")
    pid = record.get(ID_FIELD)
    if pid is None:
        return {}, (ID_FIELD, "missing")
    if not isinstance(pid, str):
        return {}, (ID_FIELD, f"must be a string, got {type(pid).__name__}")
    return record, None


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


def parse_timestamp(text: str) -> int | float | str:
    """Epoch seconds as a number, ISO-8601 as its text (checked here, stored by the engine)."""
    text = text.strip()
    if _NUMBER.fullmatch(text):
        number = parse_float(text)
        value: int | float | str = int(number) if number.is_integer() else number
    else:
        value = text
    ts.to_micros(value)                  # ValueError with the engine's own reason
    return value


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


def iso_column(cells: list[str]) -> list[Any] | None:
    """A timestamp column of plain ISO-8601 text, checked at once by the engine's own
    vectorised parser; None when that does not settle it (zones, numbers, bad cells)."""
    present = [c for c in cells if c]
    if present and ts.iso_array_to_micros(np.array(present)) is None:
        return None
    return [c or None for c in cells]


COLUMN_PARSERS: dict[Callable[[str], Any], Callable[[list[str]], list[Any] | None]] = {
    parse_timestamp: iso_column,
}


def convert_column(parse: Callable[[str], Any], cells: Iterable[str]) -> tuple[list[Any], dict[int, str]]:
    """Cells → values (None for empty), and {position: reason} for cells that do not parse."""
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


def infer_types(path: str, header: list[str], names: list[str]) -> dict[str, str]:
    """Types of undeclared columns from all their cells (one pass, stopping when all are strings)."""
    left = {header.index(n): list(INFERENCE) for n in names}
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
    """Convert a block of rows column by column; a record with a bad cell is rejected whole."""
    columns = list(zip(*rows)) or [()] * len(header)
    bad: dict[int, Rejection] = {i: Rejection(lines[i], ID_FIELD, "missing")
                                 for i, pid in enumerate(columns[header.index(ID_FIELD)]) if not pid}
    values = []
    for name, parse, cells in zip(header, parsers, columns):
        converted, errors = convert_column(parse, cells)
        for i, reason in errors.items():
            bad.setdefault(i, Rejection(lines[i], name, reason))
        values.append(converted)
    records = [dict(zip(header, row)) for row in zip(*values)]
    if bad:
        keep = [i for i in range(len(records)) if i not in bad]
        records, lines = [records[i] for i in keep], [lines[i] for i in keep]
    return Batch(records, lines, sorted(rejected + list(bad.values())), progress)
