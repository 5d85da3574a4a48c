"""Saved segments on the wire: SegmentInfo, changes and export batches.

Server side (definitions travel as `SegmentDef.to_bytes`): `segment_info_message`,
`change_messages`, `initial_messages`, `export_response`. Client side (`cdp segment`):
`segment_info_of`, `export_columns` (an export batch's columns as Python lists, for JSON).
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from cdpcore import timestamps as ts
from cdpcore.errors import BatchError
from cdpcore.membership import Change, ExportBatch
from cdpcore.segments import SegmentInfo
from server.pb.cdp.v1 import profile_store_pb2 as pb

from .values import mask_of_bitmap

_SETS = ("fields", "event_types", "segments")


# ---- replies ------------------------------------------------------------------------------------
def segment_info_message(info: SegmentInfo) -> pb.SegmentInfo:
    return pb.SegmentInfo(name=info.name, where=info.where, size=info.size,
                          time_dependent=info.time_dependent, depends_on=list(info.depends_on),
                          created_at_us=ts.from_datetime(info.created_at),
                          refreshed_at_us=ts.from_datetime(info.refreshed_at))


def segment_info_of(msg: pb.SegmentInfo) -> SegmentInfo:
    """Client side: a SegmentInfo message back as the engine's SegmentInfo."""
    return SegmentInfo(msg.name, msg.where, msg.size, msg.time_dependent, tuple(msg.depends_on),
                       ts.to_datetime(msg.created_at_us), ts.to_datetime(msg.refreshed_at_us))


def change_messages(changes: Iterable[Change], shard: int) -> list[pb.SegmentChange]:
    """Changes as messages, with the shard numbered as the router numbers it."""
    return [pb.SegmentChange(profile_id=c.profile_id, entered=c.entered, shard=shard, seq=c.seq,
                             initial=c.initial) for c in changes]


def initial_messages(ids: list[str], shard: int, seq: int) -> list[pb.SegmentChange]:
    """A watch's initial members: entered, initial, at the position `seq`."""
    return [pb.SegmentChange(profile_id=pid, entered=True, shard=shard, seq=seq, initial=True)
            for pid in ids]


def export_response(batch: ExportBatch) -> pb.ExportSegmentResponse:
    """An export batch as a ColumnBatch (the upsert's columnar form, so no Value per cell)."""
    from . import batch_from_columns  # the package imports this module first
    return pb.ExportSegmentResponse(members=batch_from_columns(batch.ids, batch.columns))


# ---- export batches: client side --------------------------------------------------------------
def export_columns(batch: pb.ColumnBatch) -> dict[str, list[Any]]:
    """Each column of an export batch as a list of Python values (None for nulls):
    timestamps as UTC datetimes, tags as lists."""
    n = len(batch.ids)
    return {col.name: _python_column(col, n) for col in batch.columns}


def _python_column(col: pb.Column, n: int) -> list[Any]:
    kind = col.WhichOneof("values")
    values = _PLAIN[kind](col) if kind in _PLAIN else _OTHER[kind](col, n) if kind else [None] * n
    if len(values) != n:
        raise BatchError(f"column {col.name!r} has {len(values)} values for {n} ids")
    null = mask_of_bitmap(col.nulls, n, f"column {col.name!r}: nulls bitmap")
    if null is None:
        return values
    out = np.array(values, dtype=object)
    out[null] = None
    return out.tolist()


def _dict_values(d: pb.DictColumn) -> list[Any]:
    lookup = np.array([*d.dictionary, None], dtype=object)  # code -1 → the trailing None
    return lookup[np.asarray(d.codes, dtype=np.int64)].tolist()


def _tag_values(col: pb.Column, n: int) -> list[Any]:
    names = np.array(list(col.tags.dictionary), dtype=object)[np.asarray(col.tags.codes, dtype=np.int64)]
    bounds = np.cumsum(np.asarray(col.tags.counts, dtype=np.int64))[:-1]
    return [part.tolist() for part in np.split(names, bounds)] if n else []


_PLAIN = {
    "ints": lambda c: list(c.ints.values),
    "floats": lambda c: list(c.floats.values),
    "bools": lambda c: list(c.bools.values),
    "strings": lambda c: list(c.strings.values),
    "timestamp_texts": lambda c: list(c.timestamp_texts.values),
    "dict": lambda c: _dict_values(c.dict),
    "timestamps_us": lambda c: [ts.to_datetime(v) for v in c.timestamps_us.values],
    "int64_le": lambda c: np.frombuffer(c.int64_le, dtype="<i8").tolist(),
    "float64_le": lambda c: np.frombuffer(c.float64_le, dtype="<f8").tolist(),
}
_OTHER = {"tags": _tag_values}
