"""server.codec's event helpers: Event rows and EventBatch columns ↔ Store.track inputs.

Differential, as for profiles: events sent through the wire form must leave a Store
exactly as tracking the original Python/numpy input directly does (same clock, so
events without a time get the same "now").
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from cdpcore import Categorical, RecordError, Store
from cdpcore.errors import BatchError
from cdpcore.sample import generate_events
from cdpcore.timestamps import MAX_US
from server import codec
from server.pb.cdp.v1 import profile_store_pb2 as pb

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 1, 12, tzinfo=UTC)


def over_the_wire(message):
    return type(message).FromString(message.SerializeToString())


def store() -> Store:
    return Store(shards=2, clock=NOW.timestamp)


def state(s: Store, ids) -> tuple:
    """Everything tracking can change: each profile's events, and the event schema."""
    if isinstance(ids, Categorical):
        ids = list(ids.categories)
    return ([s.events_of(i, 1000) for i in dict.fromkeys(ids)], s.event_schema.properties.to_dict(),
            s.event_schema.types())


def track_via_columns(ids, types, ts=None, properties=None):
    s = store()
    batch = over_the_wire(codec.event_batch_from_columns(ids, types, ts, properties))
    wire_ids, wire_types, wire_ts, wire_props = codec.event_columns_from_batch(batch)
    return s.track_columns(wire_ids, wire_types, wire_ts, wire_props), s


def assert_columns_same_as_direct(ids, types, ts=None, properties=None):
    direct = store()
    expected = direct.track_columns(ids, types, ts, properties)
    result, s = track_via_columns(ids, types, ts, properties)
    assert (result.accepted, result.errors) == (expected.accepted, expected.errors)
    assert state(s, ids) == state(direct, ids)
    return result


def track_via_rows(records):
    s = store()
    events = [over_the_wire(e) for e in codec.events_from_records(records)]
    return s.track(codec.records_from_events(events)), s


# ---- columns ---------------------------------------------------------------------------------
def test_sample_events_through_the_columnar_batch_equal_direct_tracking():
    ev = generate_events(200, events_per_profile=5, seed=3)
    result = assert_columns_same_as_direct(ev["ids"], ev["types"], ev["ts"], ev["properties"])
    assert result.accepted == len(ev["ids"]) and not result.errors


def test_dictionary_encoded_ids_equal_direct_tracking_and_plain_ids():
    ev = generate_events(100, events_per_profile=8, seed=4)
    names, codes = np.unique(np.array(ev["ids"]), return_inverse=True)
    ids = Categorical(codes.astype(np.int32), names.tolist() + ["never-used"])
    batch = over_the_wire(codec.event_batch_from_columns(ids, ev["types"], ev["ts"], ev["properties"]))
    assert not batch.profile_ids and len(batch.profile_id_dict.dictionary) == len(names)
    assert codec.event_batch_size(batch) == len(ev["ids"])
    assert_columns_same_as_direct(ids, ev["types"], ev["ts"], ev["properties"])
    plain, _ = track_via_columns(ev["ids"], ev["types"], ev["ts"], ev["properties"])
    coded, s = track_via_columns(ids, ev["types"], ev["ts"], ev["properties"])
    direct = store()
    direct.track_columns(ev["ids"], ev["types"], ev["ts"], ev["properties"])
    assert plain.accepted == coded.accepted == len(ev["ids"]) and state(s, ev["ids"]) == state(direct, ev["ids"])


def test_a_missing_dictionary_id_rejects_its_event():
    ids = Categorical(np.array([0, -1, 1]), ["a", ""])
    result = assert_columns_same_as_direct(ids, ["t", "t", "t"])
    assert result.accepted == 1 and [(e.index, e.field) for e in result.errors] == [(1, "profile_id"),
                                                                                   (2, "profile_id")]


def test_time_forms_equal_direct_tracking():
    ids = [f"u{i}" for i in range(5)]
    types = ["a", "b", "a", "c", "a"]
    stamps = np.array(["2026-01-01T00:00:00", "NaT", "2026-03-01T12:30:00.25", "2025-12-31", "NaT"],
                      dtype="datetime64[us]")
    for ts in [
        stamps,                                                         # NaT = now
        np.ma.MaskedArray(stamps, mask=[False, False, True, False, False]),
        stamps.astype("datetime64[s]"),                                 # coarser unit
        np.array([1_700_000_000, 0, -5, 1, 2]),                         # epoch seconds
        np.array([1_700_000_000.25, 0.5, 1e9, 2.0000005, -1.5]),
        ["2026-01-01T00:00:00Z", None, "2026-03-01T09:00:00+09:00", "2026-01-01", None],
        [1_700_000_000, None, 2.5, NOW, "2026-02-02"],                  # mixed: sent as µs
    ]:
        assert_columns_same_as_direct(ids, types, ts, {})


def test_property_forms_equal_direct_tracking():
    ids = ["a", "b", "c", "a"]
    props = {
        "amount": np.ma.MaskedArray([1.5, 2.0, 3.0, 4.0], mask=[False, True, False, False]),
        "qty": np.array([1, 2, 3, 4]),                                  # ints become floats
        "note": ["x", None, "y", "x"],
        "score": [1, None, 2.5, None],
        "tier": np.array(["gold", "silver", "gold", "bronze"]),
        "city": Categorical(np.array([0, -1, 1, 0]), ["Oslo", "Rome", "unused"]),
        "nothing": [None, None, None, None],                           # absent everywhere
    }
    result = assert_columns_same_as_direct(ids, ["view"] * 4, None, props)
    assert result.accepted == 4


def test_bad_events_in_a_columnar_batch_are_rejected_as_when_tracked_directly():
    ids = ["u1", "", "u3", "u4", "u5"]
    types = ["buy", "buy", None, "buy", "buy"]
    ts = ["2026-01-01", None, None, "2026-13-45", None]
    result = assert_columns_same_as_direct(ids, types, ts, {"amount": [1.0, 2.0, None, 4.0, 5.0]})
    assert result.accepted == 2
    assert [(e.index, e.field) for e in result.errors] == [(1, "profile_id"), (2, "type"), (3, "ts")]


def test_a_batch_without_times_stamps_every_event_now():
    batch = over_the_wire(codec.event_batch_from_columns(["u1", "u2"], ["open", "open"]))
    assert not batch.HasField("ts")
    ids, types, ts, props = codec.event_columns_from_batch(batch)
    assert ts is None and props == {}
    s = store()
    s.track_columns(ids, types, ts, props)
    assert s.events_of("u1") == [{"type": "open", "ts": NOW}]


def test_only_the_used_type_categories_travel():
    batch = codec.event_batch_from_columns(["u1"], Categorical(np.array([2]), ["a", "b", "c"]))
    assert list(batch.types.dictionary) == ["c"] and list(batch.types.codes) == [0]


def test_raw_and_packed_forms_decode_alike():
    absent = np.packbits([0, 1, 0], bitorder="little").tobytes()
    us = [1_700_000_000_000_000, 0, 1_800_000_000_000_000]
    raw = pb.EventBatch(profile_ids=["a", "b", "c"], types=pb.DictColumn(dictionary=["t"], codes=[0, 0, 0]),
                        ts=pb.EventTimes(absent=absent, us_le=np.array(us, "<i8").tobytes()))
    raw.properties.add(name="x", absent=absent, float64_le=np.array([1.0, 0.0, 3.0], "<f8").tobytes())
    packed = pb.EventBatch(profile_ids=["a", "b", "c"], types=raw.types,
                           ts=pb.EventTimes(absent=absent, us=pb.Int64Column(values=us)))
    packed.properties.add(name="x", absent=absent, floats=pb.DoubleColumn(values=[1.0, 0.0, 3.0]))
    a, b = codec.event_columns_from_batch(raw), codec.event_columns_from_batch(packed)
    assert a[0] == b[0] and a[2].tolist() == b[2].tolist() == [np.datetime64(us[0], "us"), None,
                                                               np.datetime64(us[2], "us")]
    assert a[3]["x"].tolist() == b[3]["x"].tolist() == [1.0, None, 3.0]


def test_plain_strings_and_texts_decode_with_absent_as_none():
    absent = np.packbits([1, 0], bitorder="little").tobytes()
    batch = pb.EventBatch(profile_ids=["a", "b"], types=pb.DictColumn(dictionary=["t"], codes=[0, 0]),
                          ts=pb.EventTimes(absent=absent, texts=pb.StringColumn(values=["", "2026-01-01"])))
    batch.properties.add(name="s", absent=absent, strings=pb.StringColumn(values=["x", "y"]))
    _, _, ts, props = codec.event_columns_from_batch(batch)
    assert ts == [None, "2026-01-01"] and props == {"s": [None, "y"]}


def types_of(n: int) -> pb.DictColumn:
    return pb.DictColumn(dictionary=["t"], codes=[0] * n)


@pytest.mark.parametrize("batch, message", [
    (pb.EventBatch(profile_ids=["a", "b"], types=types_of(1)), "types has 1 codes for 2 ids"),
    (pb.EventBatch(profile_ids=["a"], types=pb.DictColumn(dictionary=["t"], codes=[1])),
     "types: dictionary code out of range"),
    (pb.EventBatch(profile_ids=["a"], types=types_of(1), ts=pb.EventTimes(us_le=b"\0" * 7)),
     "ts has 7 bytes for 1 ids (expected 8)"),
    (pb.EventBatch(profile_ids=["a"], types=types_of(1), ts=pb.EventTimes()), "ts has no values for 1 ids"),
    (pb.EventBatch(profile_ids=["a"], types=types_of(1), ts=pb.EventTimes(absent=b"\1\0", us=pb.Int64Column(values=[0]))),
     "ts: absent bitmap has 2 bytes for 1 ids"),
    (pb.EventBatch(profile_ids=["a"], types=types_of(1), ts=pb.EventTimes(texts=pb.StringColumn(values=[]))),
     "ts has 0 values for 1 ids"),
    (pb.EventBatch(profile_ids=["a"], types=types_of(1),
                   properties=[pb.EventProperty(name="x", floats=pb.DoubleColumn(values=[1, 2]))]),
     "property 'x' has 2 values for 1 ids"),
    (pb.EventBatch(profile_ids=["a"], types=types_of(1), properties=[pb.EventProperty(name="x")]),
     "property 'x' has no values for 1 ids"),
    (pb.EventBatch(profile_ids=["a"], types=types_of(1),
                   properties=[pb.EventProperty(name="x", float64_le=b"\0" * 8)] * 2),
     "property 'x' is given twice"),
    (pb.EventBatch(profile_ids=["a"], profile_id_dict=pb.DictColumn(dictionary=["a"], codes=[0]), types=types_of(1)),
     "not both"),
    (pb.EventBatch(profile_id_dict=pb.DictColumn(dictionary=["a"], codes=[1]), types=types_of(1)),
     "profile_id_dict: dictionary code out of range"),
])
def test_malformed_batches_name_the_problem(batch, message):
    with pytest.raises(BatchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        codec.event_columns_from_batch(over_the_wire(batch))


def test_an_all_absent_time_column_needs_no_values():
    batch = pb.EventBatch(profile_ids=["a"], types=types_of(1), ts=pb.EventTimes(absent=b"\1"))
    assert codec.event_columns_from_batch(batch)[2] is None


@pytest.mark.parametrize("args, message", [
    ((["a"], [1]), "types must be strings"),
    ((["a", "b"], ["t"]), "types has 1 values for 2 ids"),
    ((["a"], ["t"], [True]), "ts of event 0"),
    ((["a"], ["t"], np.array([1e300])), "epoch seconds out of range"),
    ((["a", "b"], ["t", "t"], None, {"x": [1, "a"]}), "property 'x' has values of types int, str"),
    ((["a"], ["t"], None, {"x": [True]}), "property 'x' has values of types bool"),
    ((["a"], ["t"], None, {"x": [10 ** 400]}), "out of range for float64"),
    ((["a"], ["t"], None, {"type": ["b"]}), "'type' is given as its own argument"),
])
def test_client_columns_without_a_wire_form_raise(args, message):
    with pytest.raises(BatchError, match=message):
        codec.event_batch_from_columns(*args)


# ---- rows --------------------------------------------------------------------------------------
ROWS = [
    {"profile_id": "u1", "type": "purchase", "ts": "2026-11-01T10:00:00Z", "amount": 12.5, "category": "shoes"},
    {"profile_id": "u1", "type": "app_open"},                                       # now
    {"profile_id": "u2", "type": "purchase", "ts": 1_790_000_000, "amount": 3, "category": None},
    {"profile_id": "u3", "type": "view", "ts": dt.datetime(2026, 5, 1, tzinfo=UTC), "page": "/home"},
    {"profile_id": "u4", "type": "", "amount": 1.0},                                # no type
    {"profile_id": "u5", "type": "purchase", "amount": "lots"},                     # amount is a float
    {"profile_id": "u6", "type": "x", "flag": True},                                # bool property
    {"profile_id": "u7", "type": "x", "ts": "yesterday"},                           # bad ts text
]


def test_rows_through_the_wire_equal_direct_tracking():
    direct = store()
    expected = direct.track(ROWS)
    result, s = track_via_rows(ROWS)
    assert (result.accepted, result.errors) == (expected.accepted, expected.errors)
    assert [e.index for e in result.errors] == [4, 5, 6, 7]
    ids = [r["profile_id"] for r in ROWS]
    assert state(s, ids) == state(direct, ids)


def test_row_times_go_as_text_or_microseconds():
    events = codec.events_from_records(ROWS[:4])
    assert [e.WhichOneof("ts") for e in events] == ["ts_text", None, "ts_us", "ts_us"]
    assert events[2].ts_us == 1_790_000_000_000_000


@pytest.mark.parametrize("record, field", [
    ({"profile_id": 5, "type": "t"}, "profile_id"),
    ({"profile_id": "a", "type": ["t"]}, "type"),
    ({"profile_id": "a\ud800", "type": "t"}, "profile_id"),
    ({"profile_id": "a", "type": "t", "ts": 1e300}, "ts"),
    ({"profile_id": "a", "type": "t", "ts": "\ud800"}, "ts"),
    ({"profile_id": "a", "type": "t", "n": 2 ** 64}, "n"),
    ({"profile_id": "a", "type": "t", "d": {"x": 1}}, "d"),
])
def test_row_values_without_a_wire_form_name_their_field(record, field):
    with pytest.raises(codec.Unencodable) as e:
        codec.event_of_record(record)
    assert e.value.field == field
    with pytest.raises(BatchError, match=f"record 0, field '{field}'"):
        codec.events_from_records([record])


def test_a_reserved_name_among_a_row_s_properties_is_refused():
    event = pb.Event(profile_id="u1", type="t", properties={"ts": pb.Value(int_value=1)})
    with pytest.raises(BatchError, match="event 0: 'ts' is the message's own field"):
        codec.records_from_events([event])


# ---- results ------------------------------------------------------------------------------------
def test_event_message_round_trip():
    event = {"type": "purchase", "ts": dt.datetime(2026, 11, 1, 10, tzinfo=UTC), "amount": 12.5, "category": "shoes"}
    message = over_the_wire(codec.event_message("u1", event))
    assert message.profile_id == "u1" and message.ts_us == 1_793_527_200_000_000
    assert codec.event_of_message(message) == event


def test_event_of_message_keeps_text_times_and_leaves_unset_ones_out():
    assert codec.event_of_message(pb.Event(type="t", ts_text="2026-01-01")) == {"type": "t", "ts": "2026-01-01"}
    assert codec.event_of_message(pb.Event(type="t")) == {"type": "t"}
    assert codec.event_of_message(pb.Event(type="t", ts_us=MAX_US + 1))["ts"] == np.datetime64(MAX_US + 1, "us")


def test_track_response_lists_every_error():
    reply = codec.track_response(2, [RecordError(1, "type", "missing"), RecordError(3, None, "bad")])
    assert reply.accepted == 2
    assert [(e.index, e.field, e.reason) for e in reply.errors] == [(1, "type", "missing"), (3, "", "bad")]
