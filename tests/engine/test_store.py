"""Store upsert / delete / get semantics through the public API, for 1 and 3 shards.

White-box checks (Shard columns' bitmaps, the id index) make sure deletes and clears
leave nothing behind where queries would see it.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdpcore import BatchError, Categorical, RecordError, SchemaError, Store, TagSets
from cdpcore.column import StringColumn, TagSetColumn
from cdpcore.ids import EncodedIds

UTC = dt.timezone.utc
FIXED_NOW = 1_773_576_000.0  # 2026-03-15T12:00:00Z

try:
    from cdpcore.query.parse import parse_where  # noqa: F401
    HAVE_SQL = True
except Exception:  # the parser is written concurrently
    HAVE_SQL = False
needs_sql = pytest.mark.skipif(not HAVE_SQL, reason="cdpcore.query.parse not importable yet")


@pytest.fixture(params=[1, 3], ids=["1shard", "3shards"])
def store(request):
    s = Store(shards=request.param, clock=lambda: FIXED_NOW)
    yield s
    s.close()


@pytest.fixture(params=[1, 3], ids=["1shard", "3shards"])
def strict_store(request):
    s = Store(shards=request.param, strict=True, clock=lambda: FIXED_NOW)
    yield s
    s.close()


# ---- white-box helpers -------------------------------------------------------------------
def locate(store: Store, pid: str):
    """(shard, row) of a live profile id, or (shard, -1)."""
    enc = EncodedIds.encode([pid])
    shard = store.shards[int(store.slot_map.shard_of_hashes(enc.hashes)[0])]
    return shard, int(shard.index.lookup(enc)[0])


def bitmap_members(store: Store, field: str) -> dict[str, set[str]]:
    """value/tag → set of profile ids, read from every shard's bitmaps."""
    out: dict[str, set[str]] = {}
    for shard in store.shards:
        col = shard.columns.get(field)
        if col is None:
            continue
        assert isinstance(col, (StringColumn, TagSetColumn))
        for code, bm in enumerate(col.index.bitmaps):
            rows = np.array(list(bm), dtype=np.int64)
            if rows.size:
                assert shard.index.alive[rows].all(), "bitmap holds a deleted row"
            ids = shard.index.ids_of(rows) if rows.size else []
            out.setdefault(col.dictionary.values[code], set()).update(ids)
    return {k: v for k, v in out.items() if v}


def errs(result) -> list[tuple]:
    return [tuple(e) for e in result.errors]


def by_index(result) -> dict[int, list[tuple]]:
    out: dict[int, list[tuple]] = {}
    for e in result.errors:
        out.setdefault(e.index, []).append((e.field, e.reason))
    return out


BASE = {"profile_id": "u1", "age": 31, "score": 1.5, "vip": True, "city": "Tokyo",
        "signup": "2026-01-02T03:04:05Z", "interests": ["golf", "ski"]}
TYPES = {"age": "int", "score": "float", "vip": "bool", "city": "string",
         "signup": "timestamp", "interests": "string_set"}


# ---- upsert semantics -----------------------------------------------------------------------
def test_upsert_and_get_profile_types(store):
    store.define_fields(TYPES)
    r = store.upsert([BASE])
    assert (r.accepted, r.errors) == (1, [])
    p = store.get_profile("u1")
    assert p == {"profile_id": "u1", "age": 31, "score": 1.5, "vip": True, "city": "Tokyo",
                 "signup": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "interests": ["golf", "ski"]}
    assert type(p["age"]) is int and type(p["score"]) is float and type(p["vip"]) is bool
    assert p["signup"].utcoffset() == dt.timedelta(0)
    assert len(store) == 1


def test_timestamp_offsets_come_back_utc(store):
    store.define_fields({"ts": "timestamp"})
    store.upsert([{"profile_id": "a", "ts": "2026-03-01T09:00:00+09:00"},
                  {"profile_id": "b", "ts": 0},
                  {"profile_id": "c", "ts": dt.date(2026, 3, 1)}])
    assert store.get_profile("a")["ts"] == dt.datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
    assert store.get_profile("a")["ts"].tzinfo is not None
    assert store.get_profile("b")["ts"] == dt.datetime(1970, 1, 1, tzinfo=UTC)
    assert store.get_profile("c")["ts"] == dt.datetime(2026, 3, 1, tzinfo=UTC)


def test_partial_update_changes_only_named_fields(store):
    store.upsert([BASE])
    before = store.get_profile("u1")
    r = store.upsert([{"profile_id": "u1", "age": 32}])
    assert r.accepted == 1 and not r.errors
    assert store.get_profile("u1") == {**before, "age": 32}
    store.upsert([{"profile_id": "u1"}])  # names nothing: no change, still accepted
    assert store.get_profile("u1") == {**before, "age": 32}


@pytest.mark.parametrize("field", list(TYPES))
def test_explicit_null_clears_each_type(store, field):
    store.define_fields(TYPES)
    store.upsert([BASE, {**BASE, "profile_id": "u2"}])
    r = store.upsert([{"profile_id": "u1", field: None}])
    assert r.accepted == 1 and not r.errors
    p = store.get_profile("u1")
    assert field not in p
    assert set(p) == set(BASE) - {field}
    assert field in store.get_profile("u2")  # the other profile keeps it
    if field in ("city", "interests"):
        for members in bitmap_members(store, field).values():
            assert "u1" not in members


def test_string_update_moves_between_value_bitmaps(store):
    store.upsert([{"profile_id": "a", "city": "Tokyo"}, {"profile_id": "b", "city": "Tokyo"}])
    store.upsert([{"profile_id": "a", "city": "Osaka"}])
    assert bitmap_members(store, "city") == {"Tokyo": {"b"}, "Osaka": {"a"}}
    shard, row = locate(store, "a")
    col = shard.columns["city"]
    assert col.dictionary.values[col.codes[row]] == "Osaka"


def test_string_set_replace_empty_and_null(store):
    store.upsert([{"profile_id": "a", "tags": ["x", "y"]}, {"profile_id": "b", "tags": ["y"]}])
    assert bitmap_members(store, "tags") == {"x": {"a"}, "y": {"a", "b"}}
    store.upsert([{"profile_id": "a", "tags": ["z"]}])               # replace, not merge
    assert store.get_profile("a")["tags"] == ["z"]
    assert bitmap_members(store, "tags") == {"y": {"b"}, "z": {"a"}}
    store.upsert([{"profile_id": "a", "tags": []}])                  # empty set: present, no tags
    assert store.get_profile("a")["tags"] == []
    assert bitmap_members(store, "tags") == {"y": {"b"}}
    store.upsert([{"profile_id": "a", "tags": None}])                # null: absent
    assert "tags" not in store.get_profile("a")
    store.upsert([{"profile_id": "a", "tags": ("q",)}])
    assert store.get_profile("a")["tags"] == ["q"]


def test_tags_come_back_sorted_and_deduplicated(store):
    store.upsert([{"profile_id": "a", "tags": ["zeta", "alpha", "mu", "alpha"]},
                  {"profile_id": "b", "tags": {"b", "a"}}])
    assert store.get_profile("a")["tags"] == ["alpha", "mu", "zeta"]
    assert store.get_profile("b")["tags"] == ["a", "b"]


def test_non_ascii_ids_and_values(store):
    store.upsert([{"profile_id": "日本-ü", "city": "東京", "tags": ["ß", "é"]}])
    assert store.get_profile("日本-ü") == {"profile_id": "日本-ü", "city": "東京", "tags": ["ß", "é"]}
    assert store.get_profile("日本") is None


def test_get_profile_unknown_and_invalid_ids(store):
    store.upsert([BASE])
    assert store.get_profile("nobody") is None
    assert store.get_profile("") is None
    assert store.get_profile(5) is None


# ---- duplicates within one batch --------------------------------------------------------------
def test_duplicate_ids_later_record_wins_field_by_field(store):
    store.upsert([{"profile_id": "d", "age": 1, "city": "A", "tags": ["t1"]},
                  {"profile_id": "other", "age": 9},
                  {"profile_id": "d", "city": "B"},
                  {"profile_id": "d", "age": None, "tags": ["t2", "t3"]},
                  {"profile_id": "d", "vip": False}])
    assert store.get_profile("d") == {"profile_id": "d", "city": "B", "tags": ["t2", "t3"], "vip": False}
    assert store.get_profile("other") == {"profile_id": "other", "age": 9}
    assert bitmap_members(store, "tags") == {"t2": {"d"}, "t3": {"d"}}
    assert bitmap_members(store, "city") == {"B": {"d"}}
    assert len(store) == 2


def test_duplicate_id_invalid_later_record_keeps_earlier(store):
    store.define_fields({"age": "int"})
    r = store.upsert([{"profile_id": "d", "age": 1}, {"profile_id": "d", "age": "x"}])
    assert r.accepted == 1
    assert errs(r) == [(1, "age", "expected int, got str 'x'")]
    assert store.get_profile("d") == {"profile_id": "d", "age": 1}


def test_duplicate_ids_in_upsert_columns(store):
    r = store.upsert_columns(["a", "b", "a"], {"age": np.array([1, 2, 3]),
                                              "city": ["x", "y", None]})
    assert r.accepted == 3
    assert store.get_profile("a") == {"profile_id": "a", "age": 3}
    assert store.get_profile("b") == {"profile_id": "b", "age": 2, "city": "y"}


# ---- inference and declaration ----------------------------------------------------------------
@pytest.mark.parametrize("value, ftype", [
    (5, "int"), (2.5, "float"), (True, "bool"), ("JP", "string"), ("2026-01-01", "string"),
    (dt.datetime(2026, 1, 1, tzinfo=UTC), "timestamp"), (dt.date(2026, 1, 1), "timestamp"),
    (["a"], "string_set"), ([], "string_set"), (("a",), "string_set"),
])
def test_inference_from_first_value(store, value, ftype):
    r = store.upsert([{"profile_id": "a", "f": value}])
    assert r.accepted == 1 and not r.errors
    assert store.schema.to_dict() == {"f": ftype}


def test_inference_skips_nulls_and_missing(store):
    r = store.upsert([{"profile_id": "a", "f": None}, {"profile_id": "b"}, {"profile_id": "c", "f": 7}])
    assert r.accepted == 3
    assert store.schema.to_dict() == {"f": "int"}
    assert store.get_profile("c")["f"] == 7
    # a field seen only as null is not declared and stores nothing
    store.upsert([{"profile_id": "a", "g": None}])
    assert "g" not in store.schema
    assert store.get_profile("a") == {"profile_id": "a"}


def test_inferred_type_then_wrong_type_is_record_error(store):
    r = store.upsert([{"profile_id": "a", "n": 1}, {"profile_id": "b", "n": 2.5}, {"profile_id": "c", "n": 3.0}])
    assert store.schema.to_dict() == {"n": "int"}
    assert r.accepted == 2
    assert errs(r) == [(1, "n", "expected int, got float 2.5")]
    assert store.get_profile("b") is None
    assert store.get_profile("c")["n"] == 3
    r = store.upsert([{"profile_id": "d", "x": 1.5}, {"profile_id": "e", "x": 2}])  # int into float: fine
    assert r.accepted == 2 and store.get_profile("e")["x"] == 2.0


def test_inference_from_columns(store):
    r = store.upsert_columns(["a", "b"], {
        "i": np.array([1, 2], dtype=np.int32), "f": np.array([1.0, 2.0]), "b": np.array([True, False]),
        "s": np.array(["x", "y"]), "t": np.array(["2026-01-01", "2026-01-02"], dtype="datetime64[D]"),
        "tags": TagSets(np.array([0, 1, 1]), np.array([0]), ["golf"]),
        "cat": Categorical(np.array([0, -1]), ["JP"]),
        "m": np.ma.MaskedArray([1.5, 0.0], mask=[False, True]),
    })
    assert r.accepted == 2 and not r.errors
    assert store.schema.to_dict() == {"i": "int", "f": "float", "b": "bool", "s": "string", "t": "timestamp",
                                      "tags": "string_set", "cat": "string", "m": "float"}
    assert store.get_profile("a") == {"profile_id": "a", "i": 1, "f": 1.0, "b": True, "s": "x",
                                      "t": dt.datetime(2026, 1, 1, tzinfo=UTC), "tags": ["golf"],
                                      "cat": "JP", "m": 1.5}
    assert store.get_profile("b") == {"profile_id": "b", "i": 2, "f": 2.0, "b": False, "s": "y",
                                      "t": dt.datetime(2026, 1, 2, tzinfo=UTC), "tags": []}


def test_uninferrable_value_is_record_error(store):
    r = store.upsert([{"profile_id": "a", "f": {"k": 1}}, {"profile_id": "b", "g": 1}])
    assert r.accepted == 1
    assert [(i, f) for i, f, _ in r.errors] == [(0, "f")]
    assert "f" not in store.schema


@pytest.mark.parametrize("name", ["1abc", "a-b", "", "x" * 200, "profile id"])
def test_invalid_field_names_rejected_per_record(store, name):
    r = store.upsert([{"profile_id": "a", name: 1}, {"profile_id": "b", "ok": 1}])
    assert r.accepted == 1
    assert [(i, f) for i, f, _ in r.errors] == [(0, name)]
    assert store.get_profile("a") is None
    assert store.schema.to_dict() == {"ok": "int"}


def test_define_fields(store):
    added = store.define_fields({"age": "int", "city": "string"})
    assert sorted(f.name for f in added) == ["age", "city"]
    assert store.define_fields({"age": "int"}) == []          # same type: no-op
    with pytest.raises(SchemaError) as ei:
        store.define_fields({"age": "float"})
    assert ei.value.field == "age" and "age" in str(ei.value)
    with pytest.raises(SchemaError):
        store.define_fields({"x": "integer"})                  # unknown type
    with pytest.raises(SchemaError):
        store.define_fields({"profile_id": "string"})
    with pytest.raises(SchemaError):
        store.define_fields({"9lives": "int"})
    # atomic: a bad entry adds nothing
    with pytest.raises(SchemaError):
        store.define_fields({"new1": "int", "age": "string"})
    with pytest.raises(SchemaError):
        store.define_fields({"new2": "int", "bad": "nope"})
    assert store.schema.to_dict() == {"age": "int", "city": "string"}


def test_declared_type_beats_inference(store):
    store.define_fields({"zip": "string", "n": "float", "t": "timestamp"})
    r = store.upsert([{"profile_id": "a", "zip": 12345}, {"profile_id": "b", "n": 3, "t": "2026-01-01"},
                      {"profile_id": "c", "zip": "01234"}])
    assert r.accepted == 2
    assert [(i, f) for i, f, _ in r.errors] == [(0, "zip")]
    assert "expected string" in r.errors[0].reason
    assert store.get_profile("b") == {"profile_id": "b", "n": 3.0, "t": dt.datetime(2026, 1, 1, tzinfo=UTC)}


# ---- strict mode ---------------------------------------------------------------------------------
def test_strict_mode_rejects_unknown_fields_per_record(strict_store):
    s = strict_store
    s.define_fields({"age": "int"})
    r = s.upsert([{"profile_id": "a", "age": 1},
                  {"profile_id": "b", "age": 2, "color": "red"},
                  {"profile_id": "c", "age": 3}])
    assert r.accepted == 2
    assert len(r.errors) == 1
    e = r.errors[0]
    assert (e.index, e.field) == (1, "color") and "color" in e.reason
    assert s.get_profile("b") is None
    assert s.get_profile("c") == {"profile_id": "c", "age": 3}
    assert s.schema.to_dict() == {"age": "int"}


def test_strict_mode_upsert_columns(strict_store):
    s = strict_store
    s.define_fields({"age": "int"})
    r = s.upsert_columns(["a", "b"], {"age": np.array([1, 2]), "color": np.array(["r", "g"])})
    assert r.accepted == 0
    assert sorted((e.index, e.field) for e in r.errors) == [(0, "color"), (1, "color")]
    assert len(s) == 0 and s.schema.to_dict() == {"age": "int"}


# ---- invalid ids -------------------------------------------------------------------------------
@pytest.mark.parametrize("bad_id, fragment", [
    (5, "must be a string"), (None, "must be a string"), (b"u1", "must be a string"),
    (1.5, "must be a string"), ("", "must not be empty"), ("x" * 1025, "longer than"),
    ("é" * 513, "longer than"), ("a\ud800", "UTF-8"),
])
def test_invalid_id_is_record_error(store, bad_id, fragment):
    r = store.upsert([{"profile_id": "ok1", "age": 1}, {"profile_id": bad_id, "age": 2},
                      {"profile_id": "ok2", "age": 3}])
    assert r.accepted == 2
    assert len(r.errors) == 1
    e = r.errors[0]
    assert isinstance(e, RecordError)
    assert (e.index, e.field) == (1, "profile_id") and fragment in e.reason
    assert store.get_profile("ok2") == {"profile_id": "ok2", "age": 3}
    assert len(store) == 2


def test_missing_id_key_is_record_error(store):
    r = store.upsert([{"age": 1}, {"profile_id": "a", "age": 2}])
    assert r.accepted == 1
    assert [(i, f) for i, f, _ in r.errors] == [(0, "profile_id")]


def test_longest_ids_accepted(store):
    ids = ["x" * 1024, "é" * 512, "😀" * 256]
    r = store.upsert([{"profile_id": i, "n": k} for k, i in enumerate(ids)])
    assert r.accepted == 3 and not r.errors
    assert [store.get_profile(i)["n"] for i in ids] == [0, 1, 2]


def test_invalid_ids_in_upsert_columns(store):
    r = store.upsert_columns(np.array(["a", "", "c"], dtype=object), {"n": np.array([1, 2, 3])})
    assert r.accepted == 2
    assert [(i, f) for i, f, _ in r.errors] == [(1, "profile_id")]
    r = store.upsert_columns([7, "d"], {"n": [1, 2]})
    assert r.accepted == 1
    assert [(i, f) for i, f, _ in r.errors] == [(0, "profile_id")]


def test_non_mapping_record_is_rejected(store):
    r = store.upsert([["profile_id", "a"], {"profile_id": "b", "n": 1}])
    assert r.accepted == 1
    assert (0, None) in [(e.index, e.field) for e in r.errors]
    assert store.get_profile("b") == {"profile_id": "b", "n": 1}


def test_non_mapping_record_gets_one_error(store):
    r = store.upsert([["profile_id", "a"], {"profile_id": "b", "n": 1}])
    assert [(e.index, e.field) for e in r.errors] == [(0, None)]


# ---- mixed batches: valid applied, invalid leave no trace --------------------------------------------
def test_mixed_batch_applies_only_valid_records(store):
    store.define_fields(TYPES)
    store.upsert([BASE, {"profile_id": "u2", "age": 50, "city": "Kyoto", "interests": ["chess"]}])
    before = {pid: store.get_profile(pid) for pid in ("u1", "u2")}
    n_before = len(store)
    r = store.upsert([
        {"profile_id": "u1", "age": 40, "city": 123},                 # 0 existing, one bad field
        {"profile_id": "new1", "age": 1},                             # 1 valid new
        {"profile_id": "new2", "age": True},                          # 2 new, bool into int
        {"profile_id": "u2", "interests": "chess", "city": "Nara"},   # 3 existing, str for set
        {"profile_id": "", "age": 3},                                 # 4 empty id
        {"profile_id": "u2", "score": float("nan")},                  # 5 NaN
        {"profile_id": "new3", "signup": "yesterday"},                # 6 bad timestamp
        {"profile_id": "new4", "interests": ["ok", 5]},               # 7 bad tag
        {"profile_id": "new5", "age": 2 ** 63},                       # 8 out of range
        {"profile_id": "u1", "score": 9.5},                           # 9 valid update
    ])
    assert r.accepted == 2
    got = by_index(r)
    assert sorted(got) == [0, 2, 3, 4, 5, 6, 7, 8]
    assert [f for f, _ in got[0]] == ["city"]
    assert [f for f, _ in got[2]] == ["age"] and "bool" in got[2][0][1]
    assert [f for f, _ in got[3]] == ["interests"]
    assert [f for f, _ in got[4]] == ["profile_id"]
    assert [f for f, _ in got[5]] == ["score"]
    assert [f for f, _ in got[6]] == ["signup"] and "yesterday" in got[6][0][1]
    assert [f for f, _ in got[7]] == ["interests"]
    assert [f for f, _ in got[8]] == ["age"] and "range" in got[8][0][1]
    assert [e.index for e in r.errors] == sorted(e.index for e in r.errors)
    # rejected records changed nothing, not even their valid fields
    assert store.get_profile("u1") == {**before["u1"], "score": 9.5}
    assert store.get_profile("u2") == before["u2"]
    for pid in ("new2", "new3", "new4", "new5"):
        assert store.get_profile(pid) is None
    assert store.get_profile("new1") == {"profile_id": "new1", "age": 1}
    assert len(store) == n_before + 1
    assert bitmap_members(store, "city") == {"Tokyo": {"u1"}, "Kyoto": {"u2"}}
    assert bitmap_members(store, "interests") == {"golf": {"u1"}, "ski": {"u1"}, "chess": {"u2"}}


def test_record_with_several_bad_fields_reports_each(store):
    store.define_fields({"a": "int", "b": "bool"})
    r = store.upsert([{"profile_id": "x", "a": "1", "b": 1}])
    assert r.accepted == 0
    assert [(i, f) for i, f, _ in r.errors] == [(0, "a"), (0, "b")]
    idx, field, reason = r.errors[0]  # unpackable as (index, field, reason)
    assert (idx, field) == (0, "a") and isinstance(reason, str) and reason


def test_all_rejected_batch_changes_nothing(store):
    store.define_fields({"n": "int"})
    store.upsert([{"profile_id": "a", "n": 1}])
    r = store.upsert([{"profile_id": "a", "n": "x"}, {"profile_id": "b", "n": 1.5}])
    assert r.accepted == 0 and len(r.errors) == 2
    assert store.get_profile("a") == {"profile_id": "a", "n": 1}
    assert store.get_profile("b") is None and len(store) == 1


def test_rejected_record_does_not_declare_fields(store):
    r = store.upsert([{"profile_id": 5, "score": "abc"}])
    assert r.accepted == 0
    assert "score" not in store.schema
    r = store.upsert([{"profile_id": "b", "score": 7}])
    assert r.accepted == 1 and not r.errors


def test_record_rejected_for_another_field_does_not_declare_fields(store):
    store.define_fields({"age": "int"})
    r = store.upsert([{"profile_id": "a", "age": "x", "nickname": "Al"}])
    assert r.accepted == 0
    assert "nickname" not in store.schema


def test_inference_ignores_records_with_invalid_ids(store):
    r = store.upsert([{"profile_id": "", "score": "abc"}, {"profile_id": "b", "score": 7}])
    assert r.accepted == 1
    assert (0, "profile_id") in [(e.index, e.field) for e in r.errors]
    assert {e.index for e in r.errors} == {0}
    assert store.get_profile("b") == {"profile_id": "b", "score": 7}


@pytest.mark.parametrize("value, ftype", [(np.int64(5), "int"), (np.bool_(True), "bool"),
                                          (np.datetime64("2026-01-01"), "timestamp"),
                                          (np.array(["a", "b"]), "string_set")],
                         ids=["int64", "bool_", "datetime64", "ndarray-tags"])
def test_inference_from_numpy_scalars(store, value, ftype):
    r = store.upsert([{"profile_id": "a", "f": value}])
    assert r.accepted == 1 and not r.errors
    assert store.schema.to_dict() == {"f": ftype}


def test_numpy_scalars_into_declared_fields(store):
    store.define_fields({"i": "int", "b": "bool", "t": "timestamp", "f": "float"})
    r = store.upsert([{"profile_id": "a", "i": np.int64(5), "b": np.bool_(True),
                       "t": np.datetime64("2026-01-01"), "f": np.float32(0.5)}])
    assert r.accepted == 1 and not r.errors
    assert store.get_profile("a") == {"profile_id": "a", "i": 5, "b": True, "f": 0.5,
                                      "t": dt.datetime(2026, 1, 1, tzinfo=UTC)}


# ---- upsert_columns -------------------------------------------------------------------------------
def test_upsert_columns_length_mismatch_is_batch_error(store):
    store.upsert([{"profile_id": "a", "n": 1}])
    for cols in ({"n": np.array([1])}, {"n": [1, 2, 3]}, {"n": np.array([1, 2]), "m": [1]},
                 {"c": Categorical(np.array([0]), ["x"])}):
        with pytest.raises(BatchError):
            store.upsert_columns(["a", "b"], cols)
    assert store.get_profile("a") == {"profile_id": "a", "n": 1}
    assert store.get_profile("b") is None
    assert store.schema.to_dict() == {"n": "int"}


def test_upsert_columns_scalar_column_is_batch_error(store):
    with pytest.raises(BatchError):
        store.upsert_columns(["a"], {"n": 5})


def test_upsert_columns_forms_and_nulls(store):
    store.define_fields(TYPES)
    store.upsert([BASE, {**BASE, "profile_id": "u2"}])
    r = store.upsert_columns(np.array(["u1", "u2", "u3"]), {
        "age": np.ma.MaskedArray([40, 0, 7], mask=[False, True, False]),
        "city": Categorical(np.array([1, -1, 0]), ["Osaka", "Nagoya"]),
        "interests": TagSets(np.array([0, 0, 2, 3]), np.array([0, 1, 1]), ["a", "b"],
                             null=np.array([True, False, False])),
        "signup": ["2026-02-01", None, 1_700_000_000],
    })
    assert r.accepted == 3 and not r.errors
    assert store.get_profile("u1") == {"profile_id": "u1", "age": 40, "score": 1.5, "vip": True,
                                       "city": "Nagoya", "signup": dt.datetime(2026, 2, 1, tzinfo=UTC)}
    assert store.get_profile("u2") == {"profile_id": "u2", "score": 1.5, "vip": True, "interests": ["a", "b"]}
    assert store.get_profile("u3") == {"profile_id": "u3", "age": 7, "city": "Osaka", "interests": ["b"],
                                       "signup": dt.datetime.fromtimestamp(1_700_000_000, UTC)}
    assert bitmap_members(store, "city") == {"Nagoya": {"u1"}, "Osaka": {"u3"}}
    assert bitmap_members(store, "interests") == {"a": {"u2"}, "b": {"u2", "u3"}}


def test_upsert_columns_rejections_by_position(store):
    store.define_fields({"n": "int", "f": "float"})
    r = store.upsert_columns(["a", "b", "c", "d"], {"n": np.array([1.0, 2.5, 3.0, 4.0]),
                                                   "f": np.array([1.0, 2.0, np.inf, 4.0])})
    assert r.accepted == 2
    assert [(i, f) for i, f, _ in r.errors] == [(1, "n"), (2, "f")]
    assert store.get_profile("b") is None and store.get_profile("c") is None
    assert store.get_profile("d") == {"profile_id": "d", "n": 4, "f": 4.0}


def test_empty_batches(store):
    assert (store.upsert([]).accepted, store.upsert([]).errors) == (0, [])
    assert store.upsert_columns([], {}).accepted == 0
    assert store.upsert_columns([], {"n": np.array([], dtype=np.int64)}).accepted == 0
    assert len(store) == 0


# ---- delete -------------------------------------------------------------------------------------
def test_delete_reports_and_removes_everywhere(store):
    store.define_fields(TYPES)
    recs = [{**BASE, "profile_id": f"p{i}", "city": f"c{i % 3}", "interests": [f"t{i % 2}", "all"]}
            for i in range(30)]
    store.upsert(recs)
    res = store.delete(["p3", "p4", "nope", "p3", "p29"])
    assert res.deleted == 3
    assert res.not_found == ["nope"]
    assert len(store) == 27
    for pid in ("p3", "p4", "p29"):
        assert store.get_profile(pid) is None
        shard, row = locate(store, pid)
        assert row == -1
    gone = {"p3", "p4", "p29"}
    for members in list(bitmap_members(store, "city").values()) + list(bitmap_members(store, "interests").values()):
        assert not members & gone
    assert bitmap_members(store, "interests")["all"] == {f"p{i}" for i in range(30)} - gone
    # numeric presence masks are cleared for the deleted rows
    for shard in store.shards:
        dead = np.flatnonzero(~shard.index.alive[:shard.n_rows])
        for name in ("age", "score", "vip", "signup"):
            col = shard.columns.get(name)
            if col is not None and dead.size:
                assert not col.present[dead].any()
    # deleting again: not found
    res = store.delete(["p3"])
    assert (res.deleted, res.not_found) == (0, ["p3"])
    assert store.delete([]).deleted == 0


def test_delete_invalid_id_is_batch_error(store):
    store.upsert([{"profile_id": "a", "n": 1}])
    for bad in ([""], [5], ["a", None]):
        with pytest.raises(BatchError):
            store.delete(bad)
    assert store.get_profile("a") == {"profile_id": "a", "n": 1}


def test_reinsert_after_delete_starts_fresh(store):
    store.upsert([{**BASE, "profile_id": "r"}, {**BASE, "profile_id": "keep"}])
    store.delete(["r"])
    r = store.upsert([{"profile_id": "r", "age": 5}])
    assert r.accepted == 1
    assert store.get_profile("r") == {"profile_id": "r", "age": 5}   # nothing resurrected
    assert bitmap_members(store, "city") == {"Tokyo": {"keep"}}
    assert bitmap_members(store, "interests") == {"golf": {"keep"}, "ski": {"keep"}}
    store.upsert([{"profile_id": "r", "city": "Tokyo"}])
    assert bitmap_members(store, "city") == {"Tokyo": {"keep", "r"}}
    assert len(store) == 2


def test_delete_with_bare_string_does_not_delete_its_characters(store):
    store.upsert([{"profile_id": "a", "n": 1}, {"profile_id": "b", "n": 2}, {"profile_id": "ab", "n": 3}])
    try:
        store.delete("ab")
    except (BatchError, TypeError):
        pass
    assert store.get_profile("a") == {"profile_id": "a", "n": 1}
    assert store.get_profile("b") == {"profile_id": "b", "n": 2}


def test_delete_wipes_id_bytes(store):
    store.upsert([{"profile_id": "secret-person-77", "n": 1}, {"profile_id": "other", "n": 2}])
    store.delete(["secret-person-77"])
    for shard in store.shards:
        assert b"secret-person-77" not in shard.index._buf.tobytes()


# ---- growth ---------------------------------------------------------------------------------------
def test_capacity_growth_across_many_batches(store):
    n_batches, size = 20, 3000
    for b in range(n_batches):
        ids = [f"id{b}-{k}" for k in range(size)]
        k = np.arange(size)
        r = store.upsert_columns(ids, {
            "n": (b * size + k).astype(np.int64),
            "city": Categorical((k % 7).astype(np.int32), [f"c{j}" for j in range(7)]),
            "tags": TagSets(np.arange(size + 1), (k % 3).astype(np.int32), ["x", "y", "z"]),
        })
        assert r.accepted == size and not r.errors
    total = n_batches * size
    assert len(store) == total
    all_ids = [f"id{b}-{k}" for b in range(n_batches) for k in range(size)]
    enc = EncodedIds.encode(all_ids)
    owner = store.slot_map.shard_of_hashes(enc.hashes)
    for s, shard in enumerate(store.shards):
        sel = np.flatnonzero(owner == s)
        rows = shard.index.lookup(enc.take(sel))
        assert (rows >= 0).all()
        assert len(set(rows.tolist())) == len(rows)
        n_col = shard.columns["n"]
        assert len(n_col.values) >= shard.n_rows and len(n_col.present) >= shard.n_rows
        assert (n_col.values[rows] == sel).all() and n_col.present[rows].all()
        city = shard.columns["city"]
        assert len(city.codes) >= shard.n_rows
        decoded = np.array(city.dictionary.values)[city.codes[rows]]
        assert (decoded == np.char.add("c", (sel % size % 7).astype(str))).all()
    assert {k: len(v) for k, v in bitmap_members(store, "tags").items()} == \
        {t: sum(1 for i in range(total) if i % size % 3 == j) for j, t in enumerate("xyz")}
    assert store.get_profile("id19-2999") == {"profile_id": "id19-2999", "n": total - 1,
                                               "city": f"c{2999 % 7}", "tags": ["z"]}
    assert store.get_profile("id0-0") == {"profile_id": "id0-0", "n": 0, "city": "c0", "tags": ["x"]}


def test_field_first_seen_after_growth(store):
    ids = [f"g{k}" for k in range(5000)]
    store.upsert_columns(ids, {"n": np.arange(5000)})
    r = store.upsert([{"profile_id": "g4999", "late": "v", "late_tags": ["t"]},
                      {"profile_id": "fresh", "late": "w", "late_f": 0.5}])
    assert r.accepted == 2 and not r.errors
    assert store.get_profile("g4999") == {"profile_id": "g4999", "n": 4999, "late": "v", "late_tags": ["t"]}
    assert store.get_profile("fresh") == {"profile_id": "fresh", "late": "w", "late_f": 0.5}
    assert store.get_profile("g0") == {"profile_id": "g0", "n": 0}
    for shard in store.shards:
        for col in shard.columns.values():
            size = len(col.codes) if isinstance(col, StringColumn) else len(col.present)
            assert size >= shard.n_rows
    assert bitmap_members(store, "late") == {"v": {"g4999"}, "w": {"fresh"}}


def test_non_string_field_name_is_record_error(store):
    r = store.upsert([{"profile_id": "a", 5: 1}, {"profile_id": "b", "n": 1}])
    assert r.accepted == 1
    assert [(e.index, e.field) for e in r.errors] == [(0, "5")]


# ---- randomised: the store equals a dict model -----------------------------------------------------
FIELDS = {"age": "int", "score": "float", "vip": "bool", "city": "string", "tags": "string_set",
          "ts": "timestamp"}
VALUES = {
    "age": st.one_of(st.none(), st.integers(-5, 5), st.sampled_from([2 ** 63 - 1, -(2 ** 63)])),
    "score": st.one_of(st.none(), st.floats(-10, 10, allow_nan=False)),
    "vip": st.one_of(st.none(), st.booleans()),
    "city": st.one_of(st.none(), st.sampled_from(["a", "b", "日本", ""])),
    "tags": st.one_of(st.none(), st.lists(st.sampled_from(["x", "y", "z"]), max_size=3)),
    "ts": st.one_of(st.none(), st.integers(-10 ** 10, 10 ** 10)),
}
BAD = {"age": st.sampled_from(["x", True, 1.5, 2 ** 63]), "score": st.sampled_from([float("nan"), "1"]),
       "vip": st.sampled_from([1, "true"]), "city": st.sampled_from([5, ["a"]]),
       "tags": st.sampled_from(["x", [1]]), "ts": st.sampled_from(["nope", True, 10 ** 15])}
POOL = ["a", "b", "c", "ü", "日本", "x" * 40, "0", "-1"]


@st.composite
def record(draw):
    pid = draw(st.one_of(st.sampled_from(POOL), st.sampled_from(POOL), st.sampled_from(["", 5, None])))
    rec = {"profile_id": pid}
    for name in draw(st.lists(st.sampled_from(list(FIELDS)), unique=True, max_size=4)):
        rec[name] = draw(VALUES[name])
    if draw(st.integers(0, 9)) == 0:
        name = draw(st.sampled_from(list(FIELDS)))
        rec[name] = draw(BAD[name])
    return rec


def model_value(name, v):
    if name == "tags":
        return sorted(set(v))
    if name == "ts":
        return dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(seconds=v)
    if name == "score":
        return float(v)
    return v


@settings(max_examples=30)
@given(shards=st.sampled_from([1, 3]),
       steps=st.lists(st.one_of(st.lists(record(), max_size=8).map(lambda r: ("upsert", r)),
                                st.lists(st.sampled_from(POOL), max_size=3).map(lambda d: ("delete", d))),
                      min_size=1, max_size=6))
def test_store_matches_dict_model(shards, steps):
    store = Store(shards=shards, clock=lambda: FIXED_NOW)
    store.define_fields(FIELDS)
    model: dict[str, dict] = {}
    try:
        for kind, payload in steps:
            if kind == "delete":
                res = store.delete(payload)
                want = [p for p in dict.fromkeys(payload) if p in model]
                assert res.deleted == len(want)
                assert sorted(res.not_found) == sorted(p for p in dict.fromkeys(payload) if p not in model)
                for p in want:
                    del model[p]
                continue
            res = store.upsert(payload)
            bad = {e.index for e in res.errors}
            assert res.accepted == len(payload) - len(bad)
            for i, rec in enumerate(payload):
                pid = rec["profile_id"]
                expect_bad = not isinstance(pid, str) or not pid or any(
                    not _valid(name, v) for name, v in rec.items() if name != "profile_id")
                assert (i in bad) == expect_bad, (i, rec, res.errors)
                if expect_bad:
                    continue
                prof = model.setdefault(pid, {})
                for name, v in rec.items():
                    if name == "profile_id":
                        continue
                    if v is None:
                        prof.pop(name, None)
                    else:
                        prof[name] = model_value(name, v)
        assert len(store) == len(model)
        for pid in POOL:
            got = store.get_profile(pid)
            if pid not in model:
                assert got is None
            else:
                assert got == {"profile_id": pid, **model[pid]}
        for name in ("city", "tags"):
            want: dict[str, set] = {}
            for pid, prof in model.items():
                vals = prof.get(name)
                for v in ([vals] if name == "city" and vals is not None else vals or []):
                    want.setdefault(v, set()).add(pid)
            assert bitmap_members(store, name) == want
    finally:
        store.close()


def _valid(name, v):
    if v is None:
        return True
    if name == "age":
        return type(v) is int and -(2 ** 63) <= v < 2 ** 63
    if name == "score":
        return type(v) in (int, float) and v == v
    if name == "vip":
        return type(v) is bool
    if name == "city":
        return type(v) is str
    if name == "tags":
        return isinstance(v, list) and all(type(t) is str for t in v)
    if name == "ts":
        return type(v) is int and abs(v) < 2 * 10 ** 11
    raise AssertionError(name)


# ---- SQL-level checks (only once the parser imports) ---------------------------------------------------
@needs_sql
def test_sql_counts_follow_updates_and_deletes(store):
    store.define_fields(TYPES)
    store.upsert([
        {"profile_id": "a", "age": 30, "city": "JP", "interests": ["golf"], "vip": True},
        {"profile_id": "b", "age": 40, "city": "US", "interests": ["golf", "ski"]},
        {"profile_id": "c", "age": 25, "city": "JP"},
        {"profile_id": "d", "city": None, "interests": []},
    ])
    assert store.count("") == 4
    assert store.count("city = 'JP'") == 2
    assert store.count("city IN ('JP', 'US')") == 3
    assert store.count("age >= 30") == 2
    assert store.count("has(interests, 'golf')") == 2
    assert store.count("city IS NULL") == 1
    assert store.count("age IS NULL") == 1
    store.upsert([{"profile_id": "a", "city": "US", "interests": None}, {"profile_id": "c", "age": None}])
    assert store.count("city = 'JP'") == 1
    assert store.count("city = 'US'") == 2
    assert store.count("has(interests, 'golf')") == 1
    assert store.count("age IS NULL") == 2
    store.delete(["b"])
    assert store.count("") == 3
    assert store.count("city = 'US'") == 1
    assert store.count("has(interests, 'golf')") == 0
    assert store.count("age >= 30") == 1
    store.upsert([{"profile_id": "b", "age": 99}])
    assert store.count("age >= 30") == 2
    assert store.count("city = 'US'") == 1


@needs_sql
def test_sql_listing_after_writes(store):
    store.upsert([{"profile_id": "a", "age": 3, "tags": ["y", "x"]}, {"profile_id": "b", "age": 4}])
    store.upsert([{"profile_id": "a", "age": 5}])
    res = store.query("SELECT profile_id, age, tags FROM profiles ORDER BY profile_id LIMIT 10")
    assert res.columns == ["profile_id", "age", "tags"]
    assert res.rows == [("a", 5, ["x", "y"]), ("b", 4, None)]
