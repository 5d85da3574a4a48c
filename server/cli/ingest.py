"""`cdp ingest`: load profiles from a JSON Lines or CSV file over one UpsertStream.

Records are read and checked here (JSON syntax and shape; CSV cells converted by the
field's declared type, or by a type inferred from the whole column), sent in batches
through one client-streaming `UpsertStream`, and the server's per-record errors, which
index records across the stream, are mapped back to file line numbers. The engine
judges values; this module only turns text into values.

Wire form (DESIGN "Wire format for ingest": a columnar batch decodes >10x faster than rows):
- CSV: every record names every column, so each batch goes as one ColumnBatch of typed
  columns (numpy arrays with null masks, string and tag lists).
- JSON Lines: a record changes only the fields it names (absent is not null), so a batch's
  records are grouped by their exact key set; a group of at least `COLUMNAR_MIN` records
  goes as a ColumnBatch, smaller groups (and any group whose values a column cannot carry
  with the row form's exact meaning) go as rows. The groups of a batch are applied one
  after another, so the split is only made when that cannot change the outcome: no id in
  two groups, and no new field given values of different kinds in two groups (the type of
  a new field is inferred from the first value the engine sees).
A request's rows are indexed before its columnar records (`router_service._upsert`).
"""
from __future__ import annotations

import contextlib
import csv
import heapq
import itertools
import json
import math
import operator
import re
import sys
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, ContextManager, Iterable, Iterator, NamedTuple, Sequence

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
COLUMNAR_MIN = 100         # JSON Lines records of one key set that go as a ColumnBatch


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
    schema = fetch_schema(client)
    read_batches = batch_reader(file, fmt, batch_size, schema)
    with open_input(file, fmt) as stream:
        load = Load(None if file == "-" else line_count(file) - (1 if fmt == "csv" else 0), schema)
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


def batch_reader(file: str, fmt: str, size: int, schema: dict[str, str]) -> Callable[[IO], Iterator[Batch]]:
    """How to read the opened file in batches; for CSV, the header is checked and every
    column's type settled (declared in the schema, or inferred) before anything is sent."""
    if fmt == "jsonl":
        return lambda stream: jsonl_batches(stream, size)
    header = read_header(file)
    parsers = column_parsers(file, header, schema)
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

    def __init__(self, total: int | None, schema: dict[str, str]) -> None:
        self.lines = array("q")            # lines[i]: file line of the i-th record streamed
        self.rejected: list[Rejection] = []
        self.failure: Exception | None = None
        self.schema = schema               # field types when the load started
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
                self.rejected += batch.rejected
                requests = self.encode(batch)
                self.bar.update(batch.progress - self.bar.n)
                yield from requests
        except Exception as e:  # noqa: BLE001 - re-raised by `report` after the summary
            self.failure = e

    def encode(self, batch: Batch) -> list[pb.UpsertRequest]:
        """The batch as requests, recording the file line of each record in stream order
        (in each request its rows, then its columnar records)."""
        if batch.columns is not None:
            return self.encode_columns(batch.columns, batch.lines)
        rows, groups = split_records(batch.records, self.schema)
        profiles = self.encode_rows([batch.records[i] for i in rows], [batch.lines[i] for i in rows])
        requests = []
        for positions, message in groups:
            requests.append(pb.UpsertRequest(profiles=profiles, columns=message))
            self.lines.extend(batch.lines[i] for i in positions)
            profiles = []
        if profiles:
            requests.append(pb.UpsertRequest(profiles=profiles))
        return requests

    def encode_columns(self, columns: Columns, lines: list[int]) -> list[pb.UpsertRequest]:
        """CSV: typed columns whose every value has a wire form (see `wire_column`)."""
        ids, values = columns
        if not ids:
            return []
        message = column_batch(ids, values, self.schema)
        self.lines.extend(lines)
        return [pb.UpsertRequest(columns=message)]

    def encode_rows(self, records: list[dict[str, Any]], lines: list[int]) -> list[pb.Profile]:
        """Records as Profile messages; records with no wire form are rejected."""
        try:
            profiles = codec.profiles_from_records(records)
            self.lines.extend(lines)
            return profiles
        except (BatchError, ValueError):
            return self.encode_each(records, lines)

    def encode_each(self, records: list[dict[str, Any]], lines: list[int]) -> list[pb.Profile]:
        profiles = []
        for record, line in zip(records, lines):
            problem = unencodable(record)
            if problem:
                self.rejected.append(Rejection(line, *problem))
            else:
                profiles += codec.profiles_from_records([record])
                self.lines.append(line)
        return profiles


def unencodable(record: dict[str, Any]) -> tuple[str, str] | None:
    """(field, reason) for the first value of a record that has no wire form."""
    try:
        record[ID_FIELD].encode("utf-8")
    except UnicodeEncodeError:      # a lone surrogate from a JSON \ud800 escape
        return ID_FIELD, "profile_id is not valid UTF-8 text"
    for name, value in record.items():
        if name == ID_FIELD:
            continue
        try:
            codec.value_of(value)
        except (TypeError, ValueError) as e:
            return name, str(e)
    return None


def column_batch(ids: list[str], columns: dict[str, Any], schema: dict[str, str]) -> pb.ColumnBatch:
    """codec.batch_from_columns, except that raw int64 goes only to fields known to be int
    or float: for a timestamp field it would mean microseconds, so a field that is not
    known (one another client might declare a timestamp meanwhile) gets packed ints, which
    every field type reads as the row form's int (epoch seconds for a timestamp)."""
    message = codec.batch_from_columns(ids, columns)
    for col in message.columns:
        if col.WhichOneof("values") == "int64_le" and schema.get(col.name) not in ("int", "float"):
            col.ints.values.extend(np.frombuffer(col.int64_le, dtype="<i8").tolist())
    return message


# ---- JSON Lines as columns ---------------------------------------------------------------
Group = tuple[list[int], pb.ColumnBatch]   # positions in the batch, and their ColumnBatch


def split_records(records: list[dict[str, Any]], schema: dict[str, str]) -> tuple[list[int], list[Group]]:
    """(positions to send as rows, groups to send as ColumnBatches), positions in batch order.

    Records are grouped by their exact key set (a record sets only the fields it names);
    groups of COLUMNAR_MIN records or more go columnar when every column can carry its
    values with the row form's meaning. Sending groups one after another must not change
    the outcome, or everything goes as rows (see `order_free`)."""
    by_keys: dict[frozenset[str], list[int]] = {}
    for i, record in enumerate(records):
        by_keys.setdefault(frozenset(record), []).append(i)
    groups: list[Group] = []
    kinds: list[dict[str, set[type]]] = []
    rows: list[int] = []
    for keys, positions in by_keys.items():
        built = group_batch([records[i] for i in positions], keys, schema) \
            if len(positions) >= COLUMNAR_MIN else None
        if built is None:
            rows += positions
        else:
            groups.append((positions, built[0]))
            kinds.append(built[1])
    if not groups:
        return list(range(len(records))), []
    rows.sort()
    if not order_free(records, rows, groups, kinds):
        return list(range(len(records))), []
    return rows, groups


def group_batch(records: list[dict[str, Any]], keys: frozenset[str], schema: dict[str, str]
                ) -> tuple[pb.ColumnBatch, dict[str, set[type]]] | None:
    """Records naming exactly `keys` as a ColumnBatch, with the kinds of value of each field
    the schema does not know; None when some column should go as rows."""
    names = sorted(keys - {ID_FIELD})
    table = list(map(operator.itemgetter(*names), records)) if names else []
    columns: dict[str, Any] = {}
    texts: dict[str, Sequence[Any]] = {}
    new: dict[str, set[type]] = {}
    for name, values in zip(names, zip(*table) if len(names) > 1 else [table]):
        kind = set(map(type, values)) - {type(None)}
        ftype = schema.get(name)
        column = json_column(values, kind, ftype)
        if column is None:
            return None
        if column is TEXTS:
            texts[name] = values
        else:
            columns[name] = column
        if ftype is None:
            new[name] = kind
    try:
        message = column_batch([r[ID_FIELD] for r in records], columns, schema)
        for name, values in texts.items():
            put_texts(message.columns.add(name=name), values)
    except (BatchError, ValueError, TypeError):   # e.g. int past int64, tags not strings, bad UTF-8
        return None
    return message, new


TEXTS: Any = object()    # `json_column`'s answer for ISO text to a timestamp field


def json_column(values: Sequence[Any], kind: set[type], ftype: str | None) -> Any:
    """One column of a key-set group for codec.batch_from_columns (TEXTS: timestamp text),
    given the kinds of its non-null values and its field's type (None: not in the schema);
    None when only rows give these values their exact meaning: the engine reads a columnar
    int, float or bool column for a field of another type as a whole (rejecting even its
    nulls), infers a new field's type from its first value (not a widened one), and words
    its reasons for bad numbers per value only on the row path."""
    if not kind:
        return values                                   # all null: any field takes it
    if kind == {str}:
        return TEXTS if ftype == "timestamp" else values if ftype in (None, "string") else None
    if kind == {bool}:
        return values if ftype in (None, "bool") else None
    if kind == {list}:
        return values if ftype in (None, "string_set") else None
    if not kind <= {int, float}:
        return None
    if ftype == "timestamp":
        return epoch_seconds(values, kind)
    if kind == {int}:
        return values if ftype in (None, "int", "float") else None   # past int64: BatchError
    if ftype == "float" or (ftype is None and kind == {float}):
        return finite_floats(values, kind)
    return None


def _numbers(values: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    null = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
    return np.array([0 if v is None else v for v in values], dtype=np.float64), null


def epoch_seconds(values: Sequence[Any], kind: set[type]) -> np.ndarray | None:
    """Seconds for a timestamp field, all in the engine's range (or None: rows name the bad ones)."""
    numbers, null = _numbers(values)
    micros = numbers * 1e6
    if not np.all((micros >= ts.MIN_US) & (micros <= ts.MAX_US)):
        return None
    # ints stay ints (exact here: |seconds| < 2**38), which `column_batch` sends as packed ints
    return np.ma.MaskedArray(numbers.astype(np.int64) if kind == {int} else numbers, mask=null)


def finite_floats(values: Sequence[Any], kind: set[type]) -> np.ndarray | None:
    numbers, null = _numbers(values)
    if not np.all(np.isfinite(numbers)) or (int in kind and np.any(np.abs(numbers) >= 2.0 ** 63)):
        return None      # NaN/inf, or an int past int64, which the row codec refuses
    return np.ma.MaskedArray(numbers, mask=null)


def put_texts(col: pb.Column, values: Sequence[Any]) -> None:
    """ISO-8601 text for a timestamp field: parsed by the engine as the row form's text is."""
    null = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
    col.timestamp_texts.values.extend(["" if v is None else v for v in values])
    if null.any():
        col.nulls = np.packbits(null, bitorder="little").tobytes()


def order_free(records: list[dict[str, Any]], rows: list[int], groups: list[Group],
               kinds: list[dict[str, set[type]]]) -> bool:
    """True when applying the rows, then each group, gives what one call with all the
    records would: no id in two of them (later records win), and no field the schema does
    not know given values of two kinds across them (its type comes from the first one)."""
    seen: set[str] = set()
    total = 0
    for positions in [rows, *(p for p, _ in groups)]:
        ids = {records[i][ID_FIELD] for i in positions}
        seen |= ids
        total += len(ids)
    if len(seen) != total:
        return False
    new: dict[str, list[set[type]]] = {}
    for group_kinds in kinds:
        for name, kind in group_kinds.items():
            new.setdefault(name, []).append(kind)
    in_rows: dict[str, set[type]] = {}
    for i in rows:
        for name, value in records[i].items():
            if name in new and value is not None:
                in_rows.setdefault(name, set()).add(type(value))
    for name, kind in in_rows.items():
        new[name].append(kind)
    return all(len(set().union(*k)) <= 1 for k in new.values() if len(k) > 1)


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


_decode_json = json.JSONDecoder().decode     # what json.loads uses for text


def parse_json_line(line: bytes) -> tuple[dict[str, Any], tuple[str, str] | None]:
    """A line as a profile record, or the (field, reason) it is rejected for."""
    try:
        # plain UTF-8 text (nearly every line) skips json.loads' encoding detection
        record = _decode_json(line.decode("utf-8"))
    except (ValueError, RecursionError):
        try:         # json.loads itself: a byte-order mark, UTF-16/32, and its own reasons
            record = json.loads(line)
        except json.JSONDecodeError as e:
            return {}, ("", f"invalid JSON: {e.msg} (column {e.colno})")
        except ValueError as e:      # bytes that are not UTF-8
            return {}, ("", f"invalid JSON: {e}")
        except RecursionError:
            return {}, ("", "invalid JSON: nested too deeply")
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
