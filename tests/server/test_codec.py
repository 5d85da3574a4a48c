"""server.codec: cdp.v1 messages ↔ cdpcore inputs and results.

The main check is differential: whatever goes through the wire form must leave a Store
exactly as loading the original Python/numpy input directly does.
"""
from __future__ import annotations

import datetime as dt
import struct
import sys

import numpy as np
import pytest

from cdpcore import Categorical, RecordError, Store, TagSets, UpsertResult
from cdpcore.errors import BatchError
from cdpcore.sample import SCHEMA, generate_columns
from cdpcore.timestamps import MAX_US, to_datetime
from server import codec
from server.pb.cdp.v1 import profile_store_pb2 as pb

UTC = dt.timezone.utc
INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1


# ---- helpers ----------------------------------------------------------------------------
def bitmap(nulls: list[bool]) -> bytes:
    return np.packbits(np.array(nulls, dtype=bool), bitorder="little").tobytes()


def over_the_wire(message):
    """Serialise and parse again, so the tests read what a server would receive."""
    return type(message).FromString(message.SerializeToString())


def make_store(schema: dict[str, str] | None = None) -> Store:
    store = Store(shards=2)
    if schema:
        store.define_fields(schema)
    return store


def profiles(store: Store, ids) -> list:
    return [store.get_profile(i) for i in ids]


def load_via_wire(ids, columns, schema=None):
    """(result, store) after sending the columns through a ColumnBatch."""
    store = make_store(schema)
    batch = over_the_wire(codec.batch_from_columns(ids, columns))
    wire_ids, wire_cols = codec.columns_from_batch(batch, codec.timestamp_fields_of(store.schema))
    return store.upsert_columns(wire_ids, wire_cols), store


def assert_same_as_direct(ids, columns, schema=None):
    direct = make_store(schema)
    expected = direct.upsert_columns(ids, columns)
    result, store = load_via_wire(ids, columns, schema)
    assert (result.accepted, result.errors) == (expected.accepted, expected.errors)
    assert profiles(store, ids) == profiles(direct, ids)
    assert store.schema.fields() == direct.schema.fields()


def load_batch(batch: pb.ColumnBatch, schema: dict[str, str]) -> tuple[UpsertResult, Store]:
    store = make_store(schema)
    ids, cols = codec.columns_from_batch(over_the_wire(batch), codec.timestamp_fields_of(store.schema))
    return store.upsert_columns(ids, cols), store


def field_values(store: Store, ids, name: str) -> list:
    return [(store.get_profile(i) or {}).get(name) for i in ids]


# ---- single values ------------------------------------------------------------------------
ROUND_TRIP_VALUES = [
    None, 0, -5, INT64_MAX, INT64_MIN, 1.5, -0.0, True, False, "", "héllo 東京",
    dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), to_datetime(MAX_US), ["golf", "ski"], [],
]


@pytest.mark.parametrize("value", ROUND_TRIP_VALUES, ids=repr)
def test_value_round_trip(value):
    back = codec.python_of(over_the_wire(codec.value_of(value)))
    assert back == value and type(back) is type(value)


@pytest.mark.parametrize("value, kind", [
    (None, "null_value"), (True, "bool_value"), (1, "int_value"), (1.0, "float_value"),
    ("x", "string_value"), (dt.datetime(2026, 1, 1), "timestamp_us"), (["a"], "tags"),
    (np.int32(3), "int_value"), (np.float32(0.5), "float_value"), (np.bool_(True), "bool_value"),
    (np.str_("s"), "string_value"), (np.datetime64("2026-01-01T00:00:00"), "timestamp_us"),
    (dt.date(2026, 1, 1), "timestamp_us"), (("a", "b"), "tags"), ({"b", "a"}, "tags"),
    (np.array(["a"]), "tags"),
])
def test_value_kind(value, kind):
    assert codec.value_of(value).WhichOneof("kind") == kind


def test_bool_is_never_an_int():
    assert codec.value_of(True).bool_value is True
    assert codec.value_of(np.bool_(False)).WhichOneof("kind") == "bool_value"


def test_timestamps_are_exact_microseconds_in_utc():
    us = 1_700_000_000_123_457
    value = pb.Value(timestamp_us=us)
    assert codec.python_of(value) == dt.datetime(2023, 11, 14, 22, 13, 20, 123457, tzinfo=UTC)
    assert codec.value_of(codec.python_of(value)).timestamp_us == us
    naive = dt.datetime(2026, 1, 1)               # naive means UTC, as in the engine
    assert codec.python_of(codec.value_of(naive)) == naive.replace(tzinfo=UTC)
    tokyo = dt.datetime(2026, 1, 1, 9, tzinfo=dt.timezone(dt.timedelta(hours=9)))
    assert codec.python_of(codec.value_of(tokyo)) == dt.datetime(2026, 1, 1, tzinfo=UTC)
    assert codec.value_of(dt.date(1970, 1, 2)).timestamp_us == 86_400_000_000


def test_unset_and_null_values_are_none():
    assert codec.python_of(pb.Value()) is None
    assert codec.python_of(pb.Value(null_value=True)) is None
    assert codec.python_of(pb.Value(null_value=False)) is None


def test_timestamp_text_stays_text_for_the_engine_to_parse():
    text = "2026-01-02T03:04:05+09:00"
    assert codec.python_of(pb.Value(timestamp_text=text)) == text


def test_sets_encode_in_sorted_order():
    assert list(codec.value_of({"b", "c", "a"}).tags.values) == ["a", "b", "c"]


@pytest.mark.parametrize("value, error", [(2 ** 63, ValueError), (-(2 ** 63) - 1, ValueError),
                                          ({"a": 1}, TypeError), (b"x", TypeError), (object(), TypeError)])
def test_values_without_a_wire_form_raise(value, error):
    with pytest.raises(error):
        codec.value_of(value)


def test_out_of_range_timestamp_is_rejected_by_the_engine_not_the_codec():
    store = make_store({"ts": "timestamp"})
    profile = pb.Profile(profile_id="u1", fields={"ts": pb.Value(timestamp_us=MAX_US + 1)})
    result = store.upsert(codec.records_from_profiles([profile]))
    assert result.accepted == 0 and result.errors[0].field == "ts" and "range" in result.errors[0].reason


# ---- row form -------------------------------------------------------------------------------
RECORDS = [
    {"profile_id": "u1", "age": 31, "ltv": 12.5, "vip": True, "city": "Tokyo",
     "signup": dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC), "interests": ["golf", "ski"]},
    {"profile_id": "u2", "age": None, "ltv": 0.0, "vip": False, "city": "", "interests": []},
    {"profile_id": "u3", "city": "San José", "interests": None},
]


def test_records_round_trip_through_profiles():
    messages = [over_the_wire(p) for p in codec.profiles_from_records(RECORDS)]
    assert codec.records_from_profiles(messages) == RECORDS


def test_rows_via_profiles_load_as_directly():
    direct, wire = make_store(), make_store()
    direct.upsert(RECORDS)
    wire.upsert(codec.records_from_profiles(codec.profiles_from_records(RECORDS)))
    assert profiles(wire, ["u1", "u2", "u3"]) == profiles(direct, ["u1", "u2", "u3"])
    assert wire.schema.fields() == direct.schema.fields()


def test_explicit_null_clears_a_field():
    store = make_store()
    store.upsert([{"profile_id": "u1", "age": 3, "city": "Paris"}])
    store.upsert(codec.records_from_profiles([pb.Profile(profile_id="u1", fields={"age": pb.Value()})]))
    assert store.get_profile("u1") == {"profile_id": "u1", "city": "Paris"}


def test_timestamp_text_reaches_a_timestamp_field_as_time():
    store = make_store({"signup": "timestamp"})
    profile = pb.Profile(profile_id="u1", fields={"signup": pb.Value(timestamp_text="2026-01-02T03:04:05Z")})
    assert store.upsert(codec.records_from_profiles([profile])).accepted == 1
    assert store.get_profile("u1")["signup"] == dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_profile_id_inside_fields_is_refused():
    profile = pb.Profile(profile_id="u1", fields={"profile_id": pb.Value(string_value="u2")})
    with pytest.raises(BatchError, match="profile 0"):
        codec.records_from_profiles([profile])


def test_profiles_from_records_names_the_bad_record_and_field():
    with pytest.raises(BatchError, match=r"record 1, field 'x'"):
        codec.profiles_from_records([{"profile_id": "a"}, {"profile_id": "b", "x": {"nested": 1}}])
    with pytest.raises(BatchError, match="record 0: profile_id must be a string"):
        codec.profiles_from_records([{"profile_id": 7}])


def test_profile_message_round_trips_get_profile():
    store = make_store()
    store.upsert(RECORDS)
    for pid in ("u1", "u2", "u3"):
        got = store.get_profile(pid)
        assert codec.records_from_profiles([over_the_wire(codec.profile_message(got))]) == [got]


# ---- columnar: the sample data, end to end ----------------------------------------------------
@pytest.mark.parametrize("declared", [True, False], ids=["declared", "inferred"])
def test_sample_columns_through_the_wire_load_as_directly(declared):
    ids, cols = generate_columns(2000)
    assert_same_as_direct(ids, cols, SCHEMA if declared else None)


def test_sample_batch_decodes_to_numpy_forms():
    ids, cols = generate_columns(50)
    wire_ids, wire = codec.columns_from_batch(over_the_wire(codec.batch_from_columns(ids, cols)))
    assert wire_ids == ids
    assert isinstance(wire["age"], np.ma.MaskedArray) and wire["age"].dtype == np.int64
    assert isinstance(wire["city"], Categorical) and isinstance(wire["interests"], TagSets)
    assert wire["last_seen"].dtype == np.dtype("datetime64[us]")
    assert type(wire["lifetime_value"]) is np.ndarray and wire["lifetime_value"].dtype == np.float64
    np.testing.assert_array_equal(wire["orders_count"], cols["orders_count"])


# ---- columnar: every column kind --------------------------------------------------------------
IDS = ["a", "b", "c"]
NULL_B = bitmap([False, True, False])
T0 = dt.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
T0_US = 1767323045123456
KINDS = [  # (field type, Column (nulls: record b), values each record then holds)
    ("int", pb.Column(ints=pb.Int64Column(values=[1, 99, -3])), [1, None, -3]),
    ("float", pb.Column(floats=pb.DoubleColumn(values=[0.5, 9, -2])), [0.5, None, -2.0]),
    ("bool", pb.Column(bools=pb.BoolColumn(values=[True, True, False])), [True, None, False]),
    ("string", pb.Column(strings=pb.StringColumn(values=["x", "junk", ""])), ["x", None, ""]),
    ("string", pb.Column(dict=pb.DictColumn(dictionary=["p", "q"], codes=[1, 7, -1])), ["q", None, None]),
    ("timestamp", pb.Column(timestamps_us=pb.Int64Column(values=[T0_US, 0, 0])), [T0, None, to_datetime(0)]),
    ("timestamp", pb.Column(timestamp_texts=pb.StringColumn(values=["2026-01-02T03:04:05.123456Z", "?",
                                                                   "1970-01-01"])),
     [T0, None, to_datetime(0)]),
    ("string_set", pb.Column(tags=pb.TagColumn(dictionary=["golf", "ski"], codes=[1, 0, 9, 9, 1],
                                               counts=[2, 2, 1])), [["golf", "ski"], None, ["ski"]]),
    ("int", pb.Column(int64_le=struct.pack("<3q", INT64_MAX, 5, INT64_MIN)), [INT64_MAX, None, INT64_MIN]),
    ("timestamp", pb.Column(int64_le=struct.pack("<3q", T0_US, 5, -1)), [T0, None, to_datetime(-1)]),
    ("float", pb.Column(float64_le=struct.pack("<3d", 1e300, 5, -0.0)), [1e300, None, -0.0]),
]


@pytest.mark.parametrize("ftype, template, expected", KINDS,
                         ids=[f"{t}-{c.WhichOneof('values')}" for t, c, _ in KINDS])
def test_every_column_kind_with_a_null(ftype, template, expected):
    column = pb.Column(name="f", nulls=NULL_B)
    column.MergeFrom(template)
    result, store = load_batch(pb.ColumnBatch(ids=IDS, columns=[column]), {"f": ftype})
    assert (result.accepted, result.errors) == (3, [])
    assert field_values(store, IDS, "f") == expected


def test_int64_le_is_an_int_unless_the_field_is_a_timestamp():
    raw = pb.ColumnBatch(ids=["a"], columns=[pb.Column(name="f", int64_le=struct.pack("<q", 7))])
    _, as_int = codec.columns_from_batch(raw)
    _, as_ts = codec.columns_from_batch(raw, timestamp_fields={"f"})
    assert as_int["f"].dtype == np.int64 and as_int["f"].tolist() == [7]
    assert as_ts["f"].dtype == np.dtype("datetime64[us]") and as_ts["f"].view(np.int64).tolist() == [7]


def test_raw_little_endian_bytes_decode_exactly():
    ints = [INT64_MIN, -1, 0, 1, INT64_MAX]
    floats = [-0.0, 5e-324, 1.5, float("inf"), -1e308]
    batch = pb.ColumnBatch(ids=list("abcde"), columns=[
        pb.Column(name="i", int64_le=struct.pack("<5q", *ints)),
        pb.Column(name="f", float64_le=struct.pack("<5d", *floats)),
    ])
    _, cols = codec.columns_from_batch(over_the_wire(batch))
    assert cols["i"].tolist() == ints
    assert cols["f"].tobytes() == np.array(floats, dtype="<f8").tobytes()   # bit for bit, -0.0 included


def test_batch_from_columns_writes_little_endian_int64_and_float64():
    col = codec.batch_from_columns(["a", "b"], {"i": np.array([1, -2], dtype=">i4")}).columns[0]
    assert col.int64_le == struct.pack("<2q", 1, -2)
    col = codec.batch_from_columns(["a", "b"], {"f": np.array([0.5, 2], dtype=np.float32)}).columns[0]
    assert col.float64_le == struct.pack("<2d", 0.5, 2.0)


def test_nat_in_timestamps_us_is_a_bad_value_not_a_null():
    # INT64_MIN µs is numpy's NaT, which the engine reads as null: it must be rejected instead
    batch = pb.ColumnBatch(ids=["a", "b"], columns=[
        pb.Column(name="t", timestamps_us=pb.Int64Column(values=[INT64_MIN, 0]))])
    result, store = load_batch(batch, {"t": "timestamp"})
    assert result.accepted == 1 and [(e.index, e.field) for e in result.errors] == [(0, "t")]


def test_nulls_ignore_junk_values_at_null_positions():
    batch = pb.ColumnBatch(ids=["a", "b"], columns=[
        pb.Column(name="s", nulls=bitmap([True, False]), dict=pb.DictColumn(dictionary=["x"], codes=[-9, 0])),
        pb.Column(name="t", nulls=bitmap([True, False]),
                  tags=pb.TagColumn(dictionary=["x"], codes=[5, 6, 0], counts=[2, 1]))])
    result, store = load_batch(batch, {"s": "string", "t": "string_set"})
    assert result.accepted == 2
    assert store.get_profile("a") == {"profile_id": "a"}
    assert store.get_profile("b") == {"profile_id": "b", "s": "x", "t": ["x"]}


# ---- nulls bitmap edges ------------------------------------------------------------------------
@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 17, 1000])
def test_nulls_bitmap_decodes_any_length(n):
    nulls = (np.arange(n) % 3 == 1)
    batch = pb.ColumnBatch(ids=[str(i) for i in range(n)], columns=[
        pb.Column(name="x", nulls=bitmap(nulls.tolist()) if nulls.any() else b"",
                  ints=pb.Int64Column(values=range(n)))])
    _, cols = codec.columns_from_batch(batch)
    assert np.array_equal(np.ma.getmaskarray(cols["x"]), nulls)
    assert np.ma.getdata(cols["x"]).tolist() == list(range(n))


def test_padding_bits_past_n_are_ignored():
    col = pb.Column(name="x", nulls=bytes([0b1111_1010]), ints=pb.Int64Column(values=[1, 2, 3]))
    _, cols = codec.columns_from_batch(pb.ColumnBatch(ids=["a", "b", "c"], columns=[col]))
    assert np.ma.getmaskarray(cols["x"]).tolist() == [False, True, False]


def test_empty_or_all_zero_bitmap_means_no_nulls():
    for nulls in (b"", b"\x00"):
        col = pb.Column(name="x", nulls=nulls, ints=pb.Int64Column(values=[1, 2]))
        _, cols = codec.columns_from_batch(pb.ColumnBatch(ids=["a", "b"], columns=[col]))
        assert type(cols["x"]) is np.ndarray


def test_bitmap_for_n_not_a_multiple_of_8_round_trips():
    mask = np.array([True, False, False, True, False, False, False, False, False, True, True])
    ids = [f"u{i}" for i in range(mask.size)]
    col = codec.batch_from_columns(ids, {"x": np.ma.MaskedArray(np.arange(11), mask=mask)}).columns[0]
    assert len(col.nulls) == 2
    _, cols = codec.columns_from_batch(pb.ColumnBatch(ids=ids, columns=[col]))
    assert np.ma.getmaskarray(cols["x"]).tolist() == mask.tolist()


def test_empty_batch():
    batch = codec.batch_from_columns([], {"x": np.zeros(0, dtype=np.int64), "s": []})
    ids, cols = codec.columns_from_batch(over_the_wire(batch))
    assert ids == [] and len(cols["x"]) == 0 and len(cols["s"]) == 0
    assert make_store().upsert_columns(ids, cols).accepted == 0


# ---- malformed batches ---------------------------------------------------------------------------
BAD = [
    ("ints", pb.Column(ints=pb.Int64Column(values=[1])), "1 values for 2 ids"),
    ("floats", pb.Column(floats=pb.DoubleColumn(values=[1, 2, 3])), "3 values for 2 ids"),
    ("bools", pb.Column(bools=pb.BoolColumn(values=[True])), "1 values"),
    ("strings", pb.Column(strings=pb.StringColumn(values=["a"])), "1 values"),
    ("texts", pb.Column(timestamp_texts=pb.StringColumn(values=["a", "b", "c"])), "3 values"),
    ("timestamps", pb.Column(timestamps_us=pb.Int64Column(values=[1])), "1 values"),
    ("dict-count", pb.Column(dict=pb.DictColumn(dictionary=["a"], codes=[0])), "1 codes"),
    ("dict-high", pb.Column(dict=pb.DictColumn(dictionary=["a"], codes=[0, 1])), "code out of range"),
    ("dict-low", pb.Column(dict=pb.DictColumn(dictionary=["a"], codes=[0, -2])), "code out of range"),
    ("tags-count", pb.Column(tags=pb.TagColumn(dictionary=["a"], codes=[0], counts=[1])), "1 counts"),
    ("tags-sum", pb.Column(tags=pb.TagColumn(dictionary=["a"], codes=[0], counts=[1, 1])), "add up to 2"),
    ("tags-code", pb.Column(tags=pb.TagColumn(dictionary=["a"], codes=[0, 1], counts=[1, 1])),
     "out of range"),
    ("int64_le", pb.Column(int64_le=b"\x00" * 12), "12 bytes of int64_le"),
    ("float64_le", pb.Column(float64_le=b"\x00" * 24), "24 bytes of float64_le"),
    ("nulls-short", pb.Column(nulls=b"", ints=pb.Int64Column(values=[1, 2]), name="x"), None),
    ("nulls-long", pb.Column(nulls=b"\x01\x00", ints=pb.Int64Column(values=[1, 2])), "2 bytes for 2 ids"),
    ("no-values", pb.Column(), "no values"),
]


@pytest.mark.parametrize("label, column, message", BAD, ids=[b[0] for b in BAD])
def test_malformed_columns_raise_batch_error_naming_the_column(label, column, message):
    column.name = "bad_col"
    batch = over_the_wire(pb.ColumnBatch(ids=["a", "b"], columns=[column]))
    if message is None:       # an empty bitmap is "no nulls", never an error
        codec.columns_from_batch(batch)
        return
    with pytest.raises(BatchError, match="'bad_col'") as info:
        codec.columns_from_batch(batch)
    assert message in str(info.value)


def test_duplicate_column_names_raise():
    col = pb.Column(name="x", ints=pb.Int64Column(values=[1]))
    with pytest.raises(BatchError, match="'x' is given twice"):
        codec.columns_from_batch(pb.ColumnBatch(ids=["a"], columns=[col, col]))


# ---- client-side encoding of every upsert_columns form ---------------------------------------------
D1, D2 = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC), dt.datetime(1969, 12, 31, 23, 59, 59, 999999)
CLIENT_COLUMNS = {
    "strings_list": (["x", None, "y", "x"], "dict"),
    "ints_list": ([1, None, -2 ** 63, 3], "int64_le"),
    "floats_list": ([1.5, 2, None, 0], "float64_le"),
    "bools_list": ([True, None, False, True], "bools"),
    "datetimes_list": ([D1, None, D2, dt.date(2000, 1, 1)], "timestamps_us"),
    "tags_list": ([["a", "b"], None, [], ("c",)], "tags"),
    "nulls_list": ([None] * 4, "strings"),
    "u_array": (np.array(["b", "a", "b", "zz"]), "dict"),
    "u_masked": (np.ma.MaskedArray(np.array(["b", "a", "b", "c"]), mask=[0, 1, 0, 0]), "dict"),
    "object_array": (np.array(["p", None, "q", "p"], dtype=object), "dict"),
    "uint8_array": (np.array([0, 255, 7, 1], dtype=np.uint8), "int64_le"),
    "uint64_array": (np.array([0, 2 ** 63 - 1, 7, 1], dtype=np.uint64), "int64_le"),
    "bool_masked": (np.ma.MaskedArray(np.array([True, False, True, True]), mask=[1, 0, 0, 0]), "bools"),
    "dt64_nat": (np.array(["2026-01-01", "NaT", "1900-02-03T04:05:06.000007", "2026-01-01"],
                          dtype="datetime64[us]"), "timestamps_us"),
    "dt64_days": (np.array(["2026-01-01", "1-01-01", "9999-12-31", "NaT"], dtype="datetime64[D]"),
                  "timestamps_us"),
    "dt64_ns": (np.array([0, 1_999, -1_001, 5], dtype="datetime64[ns]"), "timestamps_us"),
    "categorical": (Categorical(np.array([1, -1, 0, 1]), ["p", "q"]), "dict"),
    "tagsets": (TagSets(np.array([0, 2, 2, 3, 3]), np.array([0, 1, 1]), ["t", "u"],
                        np.array([False, False, False, True])), "tags"),
    "float_nan_inf": (np.array([np.nan, 1.0, np.inf, 2.0]), "float64_le"),
}


@pytest.mark.parametrize("name", sorted(CLIENT_COLUMNS))
def test_every_client_column_form_loads_as_directly(name):
    values, kind = CLIENT_COLUMNS[name]
    ids = ["a", "b", "c", "d"]
    assert codec.batch_from_columns(ids, {name: values}).columns[0].WhichOneof("values") == kind
    assert_same_as_direct(ids, {name: values})


def test_every_client_column_form_loads_as_directly_into_declared_fields():
    ids = ["a", "b", "c", "d"]
    columns = {name: values for name, (values, _) in CLIENT_COLUMNS.items()}
    schema = {"datetimes_list": "timestamp", "dt64_nat": "timestamp", "nulls_list": "bool",
              "ints_list": "float", "uint8_array": "int"}
    assert_same_as_direct(ids, columns, schema)


def test_a_list_of_ints_and_floats_is_sent_as_floats():
    # Embedded, an undeclared field takes the type of its first value (int here, and 2.5
    # is then rejected); a wire column has one type, and floats lose nothing of the ints.
    result, store = load_via_wire(["a", "b"], {"x": [1, 2.5]})
    assert result.accepted == 2 and store.schema["x"].type.value == "float"


def test_far_datetime64_is_rejected_per_record_as_the_engine_does():
    far = np.array(["2026-01-01", "20000-01-01"], dtype="datetime64[D]")
    result, store = load_via_wire(["a", "b"], {"t": far})
    assert result.accepted == 1 and result.errors[0].index == 1 and "range" in result.errors[0].reason


@pytest.mark.parametrize("values, message", [
    ([1, "a"], "mixes value types"),
    ([True, 1], "mixes value types"),
    ([2 ** 64, 0], "out of range"),
    (np.array([2 ** 63, 0], dtype=np.uint64), "out of range"),
    ([["a", 1], []], "tags must be strings"),
    ([1], "1 values for 2 ids"),
    ("ab", "must be an array or list"),
    (np.zeros((2, 2)), "one-dimensional"),
])
def test_client_side_bad_columns_raise_naming_the_column(values, message):
    with pytest.raises(BatchError, match=message) as info:
        codec.batch_from_columns(["a", "b"], {"bad_col": values})
    assert "'bad_col'" in str(info.value)


def test_masked_uint64_overflow_is_ignored_under_the_mask():
    values = np.ma.MaskedArray(np.array([2 ** 64 - 1, 1], dtype=np.uint64), mask=[True, False])
    assert_same_as_direct(["a", "b"], {"c": values})


# ---- vectorised decoding ----------------------------------------------------------------------
def calls_made(fn) -> int:
    """Function calls, Python and builtin, made while running fn (not those inside C code)."""
    calls = 0

    def count(frame, event, arg):
        nonlocal calls
        calls += event in ("call", "c_call")
    sys.setprofile(count)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return calls


def test_decoding_a_column_batch_does_not_loop_per_record_in_python():
    # The fast path must stay numpy-only: a per-record Python loop (a generator, a lambda
    # or a builtin call per value) would make the call count grow with the batch.
    # Counting calls instead of timing keeps the test deterministic (tests never assert a time).
    small, large = (over_the_wire(codec.batch_from_columns(*generate_columns(n))) for n in (10_000, 20_000))
    assert calls_made(lambda: codec.columns_from_batch(small)) == \
        calls_made(lambda: codec.columns_from_batch(large))


# ---- results -------------------------------------------------------------------------------------
def test_upsert_response_maps_record_errors():
    result = UpsertResult(2, [RecordError(1, None, "bad id"), RecordError(3, "age", "expected int")])
    response = over_the_wire(codec.upsert_response(result, index_offset=10))
    assert response.accepted == 2
    errors = [(e.index, e.field, e.reason) for e in response.errors]
    assert errors == [(11, "", "bad id"), (13, "age", "expected int")]


def test_query_response_from_a_real_query():
    store = make_store()
    store.upsert(RECORDS + [{"profile_id": "u4", "age": 2 ** 62}, {"profile_id": "u5", "age": 2 ** 62}])
    result = store.query("SELECT city, count(*), min(signup), sum(age) FROM profiles "
                         "GROUP BY city ORDER BY city")
    response = over_the_wire(codec.query_response(result, 1.25))
    assert list(response.columns) == result.columns and response.elapsed_ms == 1.25
    rows = [tuple(codec.python_of(v) for v in row.values) for row in response.rows]
    overflowing = [r for r in result.rows if r[3] is not None and r[3] > INT64_MAX]
    assert overflowing, "the test needs a sum past int64"
    expected = [r[:3] + (float(r[3]),) if r in overflowing else r for r in result.rows]
    assert rows == expected


def test_query_response_for_a_listing():
    store = make_store()
    store.upsert(RECORDS)
    result = store.query("SELECT profile_id, interests, signup FROM profiles ORDER BY profile_id")
    rows = [tuple(codec.python_of(v) for v in row.values) for row in codec.query_response(result, 0).rows]
    assert rows == result.rows
