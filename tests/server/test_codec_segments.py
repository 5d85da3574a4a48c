"""server.codec's segment helpers: definitions between router and shards, SegmentInfo,
changes, and export batches (ColumnBatch) read back as Python values."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from cdpcore.segments import SegmentDef
from cdpcore import Store
from cdpcore.errors import BatchError
from cdpcore.membership import Change, ExportBatch
from cdpcore.sample import SCHEMA, generate_columns
from server import codec
from server.pb.cdp.v1 import profile_store_pb2 as pb

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 1, 12, tzinfo=UTC)


def over_the_wire(message):
    return type(message).FromString(message.SerializeToString())


@pytest.fixture
def store():
    s = Store(shards=2, clock=NOW.timestamp, segment_refresh_s=None)
    s.define_fields(SCHEMA)
    ids, cols = generate_columns(400, seed=3)
    s.upsert_columns(ids, cols)
    s.track([{"profile_id": ids[0], "type": "purchase", "amount": 30.0}])
    yield s
    s.close()


def test_definitions_round_trip_with_every_kind_of_plan(store):
    store.create_segment("loyal", "orders_count >= 5")
    store.create_segment("recent", "event_sum('purchase', 'amount', '30d', amount > 10) > 20 "
                                   "AND last_seen < now() - INTERVAL '3 days'")
    store.create_segment("both", "in_segment('loyal') AND in_segment('recent') OR has(interests, 'golf')")
    store.create_segment("everyone", "")
    for defn in store.segment_catalog.all():
        back = SegmentDef.from_bytes(defn.to_bytes())
        assert back == defn and back.plan == defn.plan
    both = store.segment_catalog.get("both")
    assert both.segments == {"loyal", "recent"} and both.time_dependent


def test_a_malformed_definition_is_a_batch_error():
    with pytest.raises(BatchError, match="malformed segment definition"):
        SegmentDef.from_bytes(b"\x81\xa1x\x01")
    with pytest.raises(BatchError):
        SegmentDef.from_bytes(b"not msgpack at all \xc1")


def test_segment_info_round_trips_to_microseconds(store):
    info = store.create_segment("loyal", "orders_count >= 5")
    msg = over_the_wire(codec.segment_info_message(info))
    assert msg.created_at_us == int(NOW.timestamp() * 1_000_000)
    assert codec.segment_info_of(msg) == info


def test_changes_carry_the_routers_shard_number():
    changes = [Change("s", 0, 5, "u1", True, True), Change("s", 0, 6, "u2", False)]
    msgs = codec.change_messages(changes, shard=3)
    assert [(m.profile_id, m.entered, m.shard, m.seq, m.initial) for m in msgs] == \
        [("u1", True, 3, 5, True), ("u2", False, 3, 6, False)]


def test_export_batches_read_back_as_the_engines_values(store):
    store.create_segment("all", "")
    fields = list(SCHEMA)
    for batch in store.export_segment("all", fields, batch_size=150):
        msg = over_the_wire(codec.export_response(batch))
        assert list(msg.members.ids) == batch.ids
        assert codec.export_columns(msg.members) == batch.columns


def test_export_columns_of_nulls_and_of_an_empty_batch():
    batch = ExportBatch(["a", "b", "c"], {
        "never": [None, None, None], "n": [1, None, 3], "f": [None, 2.5, None], "b": [True, None, False],
        "s": ["x", None, "x"], "t": [None, NOW, None], "tags": [["p", "q"], None, []]})
    msg = over_the_wire(codec.export_response(batch))
    assert codec.export_columns(msg.members) == batch.columns
    empty = over_the_wire(codec.export_response(ExportBatch([], {"n": [], "tags": []})))
    assert codec.export_columns(empty.members) == {"n": [], "tags": []}


def test_export_columns_reject_a_wrong_length():
    members = pb.ColumnBatch(ids=["a", "b"])
    members.columns.add(name="n", int64_le=np.array([1], dtype="<i8").tobytes())
    with pytest.raises(BatchError, match="1 values for 2 ids"):
        codec.export_columns(members)
