"""`cdp ingest --events`: behavioural events from JSON Lines or CSV over one TrackStream.

An event is `profile_id`, `type`, an optional `ts` (ISO-8601 text or epoch seconds;
none means the router's clock) and any other keys or columns as properties (numbers or
strings). The readers are the profile readers (`jsonl`, `csv_reader`); what differs is
how a batch goes on the wire:
- CSV: one EventBatch per batch; property columns are typed by the event schema, or
  inferred from the whole column (float when every cell is a number, else string).
- JSON Lines: for events a property left out and one given as null mean the same
  (absent), so a whole batch goes as one EventBatch when every property column holds
  one kind of value (numbers, or strings, as its known type wants) and every time
  converts. Otherwise it goes as Event rows, where the engine judges each value with
  its own reasons.
"""
from __future__ import annotations

from typing import IO, Any, Callable, Iterator

import click
import numpy as np

from cdpcore import Categorical
from cdpcore import timestamps as ts
from cdpcore.errors import BatchError
from cdpcore.schema import ID_FIELD
from cdpcore.tracking import RESERVED, TS_FIELD, TYPE_FIELD
from server import codec
from server.cli.client import Client
from server.pb.cdp.v1 import profile_store_pb2 as pb

from .batch import Batch, Columns, Rejection
from .csv_reader import (csv_batches, infer_types, parse_float, parse_text, parse_timestamp,
                         read_header)
from .jsonl import jsonl_batches
from .requests import Load

PROPERTY_PARSERS: dict[str, Callable[[str], Any]] = {"float": parse_float, "string": parse_text}
PROPERTY_INFERENCE = (("float", parse_float),)
EventColumns = tuple[list[str], list[Any], Any, dict[str, Any]]   # ids, types, ts, properties


def fetch_event_properties(client: Client) -> dict[str, str]:
    reply = client.store.GetSchema(pb.GetSchemaRequest())
    return {f.name: f.type for f in reply.event_properties}


def event_batch_reader(file: str, fmt: str, size: int, properties: dict[str, str]
                       ) -> Callable[[IO], Iterator[Batch]]:
    """How to read the opened file in batches of events; for CSV, the header is checked
    and every property column's type settled before anything is sent."""
    if fmt == "jsonl":
        return lambda stream: jsonl_batches(stream, size)
    header = read_header(file)
    if TYPE_FIELD not in header:
        raise click.ClickException(f"{file}: the header row must name a {TYPE_FIELD} column")
    parsers = event_parsers(file, header, properties)
    return lambda stream: csv_batches(stream, header, parsers, size)


def event_parsers(path: str, header: list[str], properties: dict[str, str]) -> list[Callable[[str], Any]]:
    """A cell parser per CSV column: ts as a timestamp, properties by their known type or
    the one inferred from the whole column."""
    undeclared = [n for n in header if n not in RESERVED and n not in properties]
    types = {**properties, **(infer_types(path, header, undeclared, PROPERTY_INFERENCE) if undeclared else {})}
    fixed = {ID_FIELD: parse_text, TYPE_FIELD: parse_text, TS_FIELD: parse_timestamp}
    return [fixed.get(n) or PROPERTY_PARSERS.get(types[n], parse_text) for n in header]


class EventLoad(Load):
    """One TrackStream over a file's batches of events; remembers each event's line."""

    unit = "events"

    def run(self, client: Client, batches: Iterator[Batch]) -> pb.TrackResponse:
        try:
            return client.store.TrackStream(self.requests(batches))
        finally:
            self.bar.close()

    def encode(self, batch: Batch) -> list[pb.TrackRequest]:   # type: ignore[override]
        if batch.columns is not None:
            return self.encode_columns(batch.columns, batch.lines)
        if not batch.records:
            return []
        built = columnar(batch.records, self.schema)
        if built is None:
            return self.encode_rows_of_events(batch.records, batch.lines)
        message, kinds = built
        for name, kind in kinds.items():    # the type the server will give a new property
            self.schema.setdefault(name, kind)
        self.lines.extend(batch.lines)
        return [pb.TrackRequest(columns=message)]

    def encode_columns(self, columns: Columns, lines: list[int]) -> list[pb.TrackRequest]:  # type: ignore[override]
        """CSV: the typed columns csv_batch made (type and ts among them) as one EventBatch."""
        ids, typed = columns
        if not ids:
            return []
        typed = dict(typed)
        message = codec.event_batch_from_columns(dictionary_ids(ids), typed.pop(TYPE_FIELD),
                                                 typed.pop(TS_FIELD, None), typed)
        self.lines.extend(lines)
        return [pb.TrackRequest(columns=message)]

    def encode_rows_of_events(self, records: list[dict[str, Any]], lines: list[int]) -> list[pb.TrackRequest]:
        """Records as Event rows; one with a value that has no wire form is rejected here."""
        events = []
        for record, line in zip(records, lines):
            try:
                events.append(codec.event_of_record(record))
            except codec.Unencodable as e:
                self.rejected.append(Rejection(line, e.field, e.reason))
                continue
            self.lines.append(line)
        return [pb.TrackRequest(events=events)] if events else []


def columnar(records: list[dict[str, Any]], properties: dict[str, str]
             ) -> tuple[pb.EventBatch, dict[str, str]] | None:
    """JSON Lines events as one EventBatch with the kind of each property column, or None
    when a column would not carry its values with the row form's meaning (mixed kinds,
    bools, lists, a time out of range, bad UTF-8)."""
    built = event_columns(records, properties)
    if built is None:
        return None
    columns, kinds = built
    try:
        return codec.event_batch_from_columns(*columns), kinds
    except (BatchError, ValueError, TypeError):
        return None


def event_columns(records: list[dict[str, Any]], properties: dict[str, str]
                  ) -> tuple[EventColumns, dict[str, str]] | None:
    """((ids, types, ts, properties), each property's kind) of JSON Lines events, or None.

    A property column must hold the kind of value its known type takes: the engine judges
    a column of the other kind as a whole, rejecting even the events that do not carry
    the property, where rows reject only the events whose value is wrong."""
    types = [r.get(TYPE_FIELD) for r in records]
    if not _kinds(types) <= {str}:
        return None
    times = [r.get(TS_FIELD) for r in records]
    stamps = time_column(times)
    if stamps is NOT_COLUMNAR:
        return None
    columns: dict[str, Any] = {}
    kinds_of: dict[str, str] = {}
    for name in sorted(set().union(*records) - RESERVED):
        values = [r.get(name) for r in records]
        kinds = _kinds(values)
        if not kinds:
            continue
        kind = "string" if kinds <= {str} else "float" if kinds <= {int, float} else None
        if kind is None or properties.get(name, kind) != kind:
            return None
        columns[name], kinds_of[name] = values, kind
    return (dictionary_ids([r[ID_FIELD] for r in records]), types, stamps, columns), kinds_of


def dictionary_ids(ids: list[str]) -> Categorical:
    """Ids dictionary-encoded: an events file names each profile many times, and the
    router then checks and hashes each distinct id once (about twice the events/s there)."""
    position: dict[str, int] = {}
    codes = np.fromiter((position.setdefault(i, len(position)) for i in ids), dtype=np.int32, count=len(ids))
    return Categorical(codes, list(position))


NOT_COLUMNAR: Any = object()


def time_column(values: list[Any]) -> Any:
    """The ts column: None (no event has one), the texts (the engine parses them), epoch
    seconds as a masked array, µs by the engine's own conversion when texts and numbers
    mix, or NOT_COLUMNAR (other kinds, or a value that does not convert: rows name it)."""
    kinds = _kinds(values)
    if not kinds:
        return None
    if kinds <= {str}:
        return values
    if not kinds <= {int, float, str}:
        return NOT_COLUMNAR
    absent = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
    if str in kinds:
        micros, errors = ts.micros_of_sequence([0 if v is None else v for v in values])
        numbers = None if errors else micros.view("datetime64[us]")
    else:
        try:
            numbers = np.array([0 if v is None else v for v in values], dtype=np.int64 if kinds == {int} else np.float64)
        except OverflowError:
            numbers = None
    return NOT_COLUMNAR if numbers is None else np.ma.MaskedArray(numbers, mask=absent)


def _kinds(values: list[Any]) -> set[type]:
    return {type(v) for v in values} - {type(None)}
