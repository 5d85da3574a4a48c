"""Batches as UpsertRequests, remembering the file line of every record streamed.

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

import operator
import sys
from array import array
from typing import Any, Iterator, Sequence

import numpy as np
from tqdm import tqdm

from cdpcore import timestamps as ts
from cdpcore.errors import BatchError
from cdpcore.schema import ID_FIELD
from server import codec
from server.cli.client import Client
from server.pb.cdp.v1 import profile_store_pb2 as pb

from .batch import Batch, Columns, Rejection

COLUMNAR_MIN = 100         # JSON Lines records of one key set that go as a ColumnBatch


class Load:
    """One UpsertStream over a file's batches; remembers the file line of every record sent."""

    unit = "profiles"

    def __init__(self, total: int | None, schema: dict[str, str]) -> None:
        self.lines = array("q")            # lines[i]: file line of the i-th record streamed
        self.rejected: list[Rejection] = []
        self.failure: Exception | None = None
        self.schema = schema               # field types when the load started
        self.bar = tqdm(total=total, unit=self.unit, file=sys.stderr, desc="ingest")

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
