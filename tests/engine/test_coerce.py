"""Batch coercion: every input form × field type, accepted coercions and precise rejections.

`coerce(field, column, n)` returns a record-aligned FieldBatch plus (position, reason)
pairs; rejected positions must come back as null (so nothing is stored for them).
"""
from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdpcore import Categorical, TagSets
from cdpcore.coerce import MISSING, coerce
from cdpcore.schema import Field, FieldType

UTC = dt.timezone.utc
INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1
MIN_US = -62135596800 * 1_000_000            # 0001-01-01T00:00:00Z
MAX_US = 253402300799 * 1_000_000 + 999_999  # 9999-12-31T23:59:59.999999Z
MIN_S, MAX_S = -62135596800, 253402300799


def us(*args, tz=UTC) -> int:
    d = dt.datetime(*args, tzinfo=tz) - dt.datetime(1970, 1, 1, tzinfo=UTC)
    return (d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds


def run(ftype: str, column, n: int | None = None):
    """Coerce and decode to Python: (values, {position: reason}).

    values[i] is MISSING (not named), None (null or rejected) or the stored value.
    """
    field = Field("f", FieldType(ftype))
    batch, errors = coerce(field, column, len(column) if n is None else n)
    size = len(batch.named)
    out = []
    for i in range(size):
        if not batch.named[i]:
            out.append(MISSING)
        elif batch.null[i]:
            out.append(None)
        elif batch.codes is not None:
            out.append(batch.categories[batch.codes[i]])
        elif batch.tags is not None:
            t = batch.tags
            out.append([t.categories[c] for c in t.codes[t.offsets[i]:t.offsets[i + 1]].tolist()])
        else:
            out.append(batch.values[i].item())
    errs = dict(errors)
    assert len(errs) == len(errors), "one error per position"
    for i in errs:
        assert out[i] is None, f"rejected position {i} must be null, got {out[i]!r}"
    return out, errs


def assert_rejected(errs: dict, positions, *fragments):
    assert sorted(errs) == sorted(positions)
    for p in positions:
        for frag in fragments:
            assert frag in errs[p], (p, errs[p])


# ---- int ----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint32, np.uint64])
def test_int_from_integer_arrays(dtype):
    vals, errs = run("int", np.array([0, 1, 100], dtype=dtype))
    assert vals == [0, 1, 100] and not errs


def test_int_extremes_accepted():
    vals, errs = run("int", [INT64_MIN, INT64_MAX, None, MISSING, 0])
    assert vals == [INT64_MIN, INT64_MAX, None, MISSING, 0] and not errs
    vals, errs = run("int", np.array([INT64_MIN, INT64_MAX], dtype=np.int64))
    assert vals == [INT64_MIN, INT64_MAX] and not errs


def test_int_out_of_range_rejected():
    vals, errs = run("int", [1, 2 ** 63, -(2 ** 63) - 1, 10 ** 30, 5])
    assert vals == [1, None, None, None, 5]
    assert_rejected(errs, [1, 2, 3], "out of range")
    vals, errs = run("int", np.array([1, 2 ** 63, 2 ** 64 - 1], dtype=np.uint64))
    assert vals == [1, None, None]
    assert_rejected(errs, [1, 2], "out of range")


def test_int_from_integral_floats():
    vals, errs = run("int", [1.0, 2, -3.0, MISSING])
    assert vals == [1, 2, -3, MISSING] and not errs
    vals, errs = run("int", np.array([1.0, -2.0 ** 63, 7.0]))
    assert vals == [1, INT64_MIN, 7] and not errs


def test_int_rejects_fractional_nan_inf_and_huge_floats():
    vals, errs = run("int", [1.0, 2.5, math.nan, math.inf, 2.0 ** 63])
    assert vals == [1, None, None, None, None]
    assert_rejected(errs, [1, 2, 3, 4])
    assert "2.5" in errs[1]
    vals, errs = run("int", np.array([2.5, 1.0, np.nan, -np.inf, 2.0 ** 63]))
    assert vals == [None, 1, None, None, None]
    assert_rejected(errs, [0, 2, 3, 4], "expected int")


def test_int_rejects_bool_and_strings_at_their_positions():
    vals, errs = run("int", [1, True, "x", None, "5", 3, np.bool_(False)])
    assert vals == [1, None, None, None, None, 3, None]
    assert_rejected(errs, [1, 2, 4, 6])
    assert "bool" in errs[1] and "bool" in errs[6]
    assert "'x'" in errs[2] and "str" in errs[2]
    vals, errs = run("int", np.array([True, False]))
    assert vals == [None, None]
    assert_rejected(errs, [0, 1], "bool")


def test_int_numpy_scalars_in_list():
    vals, errs = run("int", [np.int32(4), np.int64(-5), np.uint64(2 ** 64 - 1), np.float64(2.0)])
    assert vals == [4, -5, None, 2]
    assert_rejected(errs, [2], "out of range")


def test_int_masked_array():
    col = np.ma.MaskedArray([1.5, 2.0, 3.0], mask=[True, False, False])  # masked bad value: fine
    vals, errs = run("int", col)
    assert vals == [None, 2, 3] and not errs
    col = np.ma.MaskedArray(np.array([7, 8], dtype=np.int64), mask=np.ma.nomask)
    assert run("int", col) == ([7, 8], {})


def test_two_dimensional_array_rejected():
    vals, errs = run("int", np.zeros((2, 2), dtype=np.int64))
    assert vals == [None, None]
    assert_rejected(errs, [0, 1], "one-dimensional")


# ---- float ----------------------------------------------------------------------------------
def test_float_accepts_ints_and_floats():
    vals, errs = run("float", [1, 2.5, None, MISSING, -0.0, 2 ** 70])
    assert vals == [1.0, 2.5, None, MISSING, -0.0, float(2 ** 70)] and not errs
    assert isinstance(vals[0], float)
    vals, errs = run("float", np.array([1, 2], dtype=np.int32))
    assert vals == [1.0, 2.0] and not errs
    vals, errs = run("float", np.array([1.5], dtype=np.float32))
    assert vals == [1.5] and not errs
    vals, errs = run("float", [np.float32(0.5), np.int64(3)])
    assert vals == [0.5, 3.0] and not errs


def test_float_rejects_non_finite_and_huge():
    vals, errs = run("float", [1.0, math.nan, math.inf, -math.inf, 10 ** 400, 2])
    assert vals == [1.0, None, None, None, None, 2.0]
    assert_rejected(errs, [1, 2, 3, 4])
    assert "finite" in errs[1] and "finite" in errs[2]
    assert "range" in errs[4]
    vals, errs = run("float", np.array([np.nan, 1.0, np.inf]))
    assert vals == [None, 1.0, None]
    assert_rejected(errs, [0, 2], "finite")


def test_float_rejects_bool_and_strings():
    vals, errs = run("float", [True, "1.5", 2.0])
    assert vals == [None, None, 2.0]
    assert_rejected(errs, [0, 1], "expected float")
    vals, errs = run("float", np.array([True, False]))
    assert_rejected(errs, [0, 1], "expected float")


def test_float_masked_nan_is_null_not_error():
    col = np.ma.MaskedArray([np.nan, 2.0, np.inf], mask=[True, False, False])
    vals, errs = run("float", col)
    assert vals == [None, 2.0, None]
    assert_rejected(errs, [2], "finite")


# ---- bool -------------------------------------------------------------------------------------
def test_bool_values():
    vals, errs = run("bool", [True, False, None, MISSING, np.bool_(True)])
    assert vals == [True, False, None, MISSING, True] and not errs
    assert run("bool", np.array([True, False])) == ([True, False], {})
    col = np.ma.MaskedArray([True, False], mask=[False, True])
    assert run("bool", col) == ([True, None], {})


def test_bool_rejects_numbers_and_strings():
    vals, errs = run("bool", [1, 0, "true", False])
    assert vals == [None, None, None, False]
    assert_rejected(errs, [0, 1, 2], "expected bool")
    vals, errs = run("bool", np.array([1, 0]))
    assert vals == [None, None]
    assert_rejected(errs, [0, 1], "expected bool")


# ---- string -------------------------------------------------------------------------------------
def test_string_from_list_array_object_masked():
    assert run("string", ["JP", None, MISSING, "JP", "日本", ""]) == (["JP", None, MISSING, "JP", "日本", ""], {})
    assert run("string", np.array(["a", "bb", "a"])) == (["a", "bb", "a"], {})
    assert run("string", np.array(["a", None], dtype=object)) == (["a", None], {})
    col = np.ma.MaskedArray(np.array(["a", "b", "c"]), mask=[False, True, False])
    assert run("string", col) == (["a", None, "c"], {})


def test_string_categories_are_distinct():
    batch, errors = coerce(Field("f", FieldType.STRING), ["x", "y", "x", None, "y"], 5)
    assert not errors
    assert sorted(batch.categories) == ["x", "y"]
    assert batch.codes[3] == -1


def test_string_rejects_non_strings():
    vals, errs = run("string", ["a", 5, 1.5, True, ["a"], "b"])
    assert vals == ["a", None, None, None, None, "b"]
    assert_rejected(errs, [1, 2, 3, 4], "expected string")
    vals, errs = run("string", np.array([1, 2]))
    assert_rejected(errs, [0, 1], "expected string")


def test_string_too_long_rejected():
    vals, errs = run("string", ["ok", "x" * 70000, "é" * 40000])
    assert vals == ["ok", None, None]
    assert_rejected(errs, [1, 2], "longer than")


def test_string_max_length_accepted():
    vals, errs = run("string", ["x" * 65536])
    assert not errs and vals[0] == "x" * 65536


def test_string_rejects_lone_surrogate():
    vals, errs = run("string", ["ok", "bad\ud800"])
    assert vals == ["ok", None]
    assert_rejected(errs, [1], "UTF-8")


def test_string_surrogate_rejected_on_slow_path():
    # mixed types force the per-value path, which does check
    vals, errs = run("string", ["bad\ud800", 5])
    assert_rejected(errs, [0, 1])
    assert "UTF-8" in errs[0]


def test_categorical():
    col = Categorical(np.array([0, -1, 1, 0], dtype=np.int16), ["JP", "US"])
    assert run("string", col) == (["JP", None, "US", "JP"], {})


def test_categorical_with_non_string_category_rejects_only_its_users():
    col = Categorical(np.array([0, -1, 1, 1, 0]), ["a", 5])
    vals, errs = run("string", col)
    assert vals == ["a", None, None, None, "a"]
    assert_rejected(errs, [2, 3], "string")


@pytest.mark.parametrize("form", ["categorical", "tagsets"])
@pytest.mark.parametrize("bad", ["x" * 70000, "ok\ud800"], ids=["too-long", "surrogate"])
def test_pre_encoded_categories_get_string_checks(form, bad):
    if form == "categorical":
        vals, errs = run("string", Categorical(np.array([0, 1]), ["fine", bad]))
    else:
        vals, errs = run("string_set", TagSets(np.array([0, 1, 2]), np.array([0, 1]), ["fine", bad]))
    assert 1 in errs and vals[1] is None


def test_categorical_into_non_string_field_rejected():
    vals, errs = run("int", Categorical(np.array([0, 0]), ["1"]))
    assert vals == [None, None]
    assert_rejected(errs, [0, 1], "expected int")


# ---- timestamp ---------------------------------------------------------------------------------
def test_timestamp_iso_strings():
    col = [
        "2026-01-01T10:00:00Z",
        "2026-01-01T10:00:00+02:00",
        "2026-01-01T10:00:00",           # naive = UTC
        "2026-01-01",                    # date only
        "2026-01-01 10:00:00.250",
        "2026-01-01T10:00:00-05:30",
    ]
    want = [us(2026, 1, 1, 10), us(2026, 1, 1, 8), us(2026, 1, 1, 10), us(2026, 1, 1),
            us(2026, 1, 1, 10, 0, 0, 250000), us(2026, 1, 1, 15, 30)]
    assert run("timestamp", col) == (want, {})
    assert run("timestamp", np.array(col)) == (want, {})


def test_timestamp_epoch_numbers():
    col = [0, 1_700_000_000, 1_700_000_000.5, -1, None, MISSING, np.int64(86400), np.float64(1.25)]
    want = [0, 1_700_000_000_000_000, 1_700_000_000_500_000, -1_000_000, None, MISSING,
            86_400_000_000, 1_250_000]
    assert run("timestamp", col) == (want, {})
    assert run("timestamp", np.array([0, 86400], dtype=np.int64)) == ([0, 86_400_000_000], {})
    assert run("timestamp", np.array([0.5, -1.5])) == ([500_000, -1_500_000], {})
    assert run("timestamp", np.array([86400], dtype=np.uint32)) == ([86_400_000_000], {})


def test_timestamp_datetime_objects():
    tz = dt.timezone(dt.timedelta(hours=9))
    col = [dt.datetime(2026, 3, 1, 12, tzinfo=UTC), dt.datetime(2026, 3, 1, 12, tzinfo=tz),
           dt.datetime(2026, 3, 1, 12), dt.date(2026, 3, 1), np.datetime64("2026-03-01T12:00:00")]
    want = [us(2026, 3, 1, 12), us(2026, 3, 1, 3), us(2026, 3, 1, 12), us(2026, 3, 1), us(2026, 3, 1, 12)]
    assert run("timestamp", col) == (want, {})


def test_timestamp_datetime64_arrays():
    assert run("timestamp", np.array(["2026-03-01T12:00:00.123456789"], dtype="datetime64[ns]")) == \
        ([us(2026, 3, 1, 12, 0, 0, 123456)], {})
    assert run("timestamp", np.array(["2026-03-01", "NaT"], dtype="datetime64[D]")) == ([us(2026, 3, 1), None], {})
    assert run("timestamp", np.array(["0001-01-01", "9999-12-31"], dtype="datetime64[D]")) == \
        ([MIN_US, us(9999, 12, 31)], {})


def test_timestamp_range_boundaries_accepted():
    col = ["0001-01-01T00:00:00", "9999-12-31T23:59:59.999999", MIN_S, MAX_S]
    want = [MIN_US, MAX_US, MIN_US, MAX_S * 1_000_000]
    assert run("timestamp", col) == (want, {})
    assert run("timestamp", np.array(col[:2])) == (want[:2], {})
    assert run("timestamp", np.array(col[2:], dtype=np.int64)) == (want[2:], {})


def test_timestamp_rejections_name_positions():
    col = ["2026-01-01", True, "not a date", "2026-02-30", math.nan, math.inf, [2026], "", 5]
    vals, errs = run("timestamp", col)
    assert vals == [us(2026, 1, 1), None, None, None, None, None, None, None, 5_000_000]
    assert_rejected(errs, [1, 2, 3, 4, 5, 6, 7])
    assert "bool" in errs[1]
    assert "'not a date'" in errs[2]
    assert "2026-02-30" in errs[3]
    assert "list" in errs[6]


@pytest.mark.parametrize("value, fragment", [
    (253402300800, "range"),                  # epoch s one second past 9999-12-31T23:59:59
    (-62135596801, "range"),                  # one second before 0001-01-01
    (2 ** 62, "range"),
    (-1e15, "range"),
    ("10000-01-01", "10000-01-01"),
    ("9999-12-31T23:00:00-05:00", "range"),   # year 10000 once in UTC
    (dt.datetime(1, 1, 1, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=1))), "range"),
], ids=["max+1s", "min-1s", "2**62", "-1e15", "year10000", "offset-past-9999", "offset-before-1"])
def test_timestamp_out_of_range_per_value_path(value, fragment):
    # a date object in the column forces the per-value path
    vals, errs = run("timestamp", [dt.date(2026, 1, 1), value])
    assert vals[0] == us(2026, 1, 1)
    assert_rejected(errs, [1], fragment)


OUT_OF_RANGE = [[253402300800], [-62135596801], [-100_000_000_000], [2 ** 62], [1e15], ["10000-01-01"],
                ["0000-01-01"], ["584556-01-01"], ["2020010100"]]
OUT_OF_RANGE_IDS = ["max+1s", "min-1s", "-1e11", "2**62", "1e15", "year10000", "year0", "year584556", "digits10"]


@pytest.mark.parametrize("col", OUT_OF_RANGE, ids=OUT_OF_RANGE_IDS)
@pytest.mark.parametrize("form", ["list", "array"])
def test_timestamp_out_of_range_homogeneous(col, form):
    # homogeneous columns take the vectorised paths; they must reject like the per-value path
    column = col if form == "list" else np.array(col)
    vals, errs = run("timestamp", column)
    assert vals == [None]
    assert list(errs) == [0]


def test_timestamp_datetime64_out_of_range():
    vals, errs = run("timestamp", np.array(["10000-01-01", "2026-01-01"], dtype="datetime64[D]"))
    assert vals == [None, us(2026, 1, 1)]
    assert_rejected(errs, [0], "range")


@pytest.mark.parametrize("col", [np.array([2 ** 62], dtype="datetime64[s]"),
                                 np.array([-(2 ** 62)], dtype="datetime64[ms]")], ids=["s", "ms"])
def test_timestamp_datetime64_overflow_rejected(col):
    vals, errs = run("timestamp", col)
    assert vals == [None]
    assert_rejected(errs, [0], "range")


ISO_CASES = ["2026-01-01", "2026-01-01T10:00:00", "2026-01-01T10:00:00.5", "2026-01-01 10:00",
             "2026-01-01T10", "2026-13-01", "2026-02-29", "2024-02-29", "0001-01-01", "0000-01-01",
             "9999-12-31T23:59:59.999999", "10000-01-01", "2026", "2026-01", "20260101",
             "2026010100", "123456-01-01", "584556-01-01", "2026-01-01T25:00", "2026-01-01Z", "today"]


@pytest.mark.parametrize("text", ISO_CASES)
def test_timestamp_list_and_array_paths_agree(text):
    """A string means the same thing whatever container it arrives in."""
    scalar = run("timestamp", [text, 5])      # mixed → per-value reference path
    as_list = run("timestamp", [text])
    as_array = run("timestamp", np.array([text]))
    ref = (scalar[0][0], 0 in scalar[1])
    assert (as_list[0][0], 0 in as_list[1]) == ref
    assert (as_array[0][0], 0 in as_array[1]) == ref
    if not ref[1]:
        assert MIN_US <= ref[0] <= MAX_US


epoch_ints = st.one_of(st.integers(MIN_S, MAX_S), st.integers(-(2 ** 70), 2 ** 70),
                       st.sampled_from([MIN_S - 1, MAX_S + 1, -MAX_S, MIN_S, MAX_S]))


@given(st.lists(epoch_ints, min_size=1, max_size=8))
def test_timestamp_epoch_ints_accepted_iff_in_range(secs):
    want = [s * 1_000_000 if MIN_S <= s <= MAX_S else None for s in secs]
    for column in (secs, secs + [None], secs + [dt.date(1970, 1, 1)]):
        vals, errs = run("timestamp", column)
        assert vals[:len(secs)] == want
        assert sorted(errs) == [i for i, w in enumerate(want) if w is None]
    in_int64 = [s for s in secs if INT64_MIN <= s <= INT64_MAX]
    if in_int64:
        vals, errs = run("timestamp", np.array(in_int64, dtype=np.int64))
        assert vals == [s * 1_000_000 if MIN_S <= s <= MAX_S else None for s in in_int64]


@given(st.lists(st.one_of(st.floats(), st.floats(MIN_S - 2.0, MAX_S + 2.0)), min_size=1, max_size=8))
def test_timestamp_epoch_floats_accepted_iff_in_range(secs):
    def ok(s):
        return math.isfinite(s) and abs(s) < 1e13 and MIN_US <= round(s * 1e6) <= MAX_US
    for column in (secs, secs + [dt.date(1970, 1, 1)], np.array(secs)):
        vals, errs = run("timestamp", column)
        assert sorted(errs) == [i for i, s in enumerate(secs) if not ok(s)]
        for v, s in zip(vals, secs):
            assert v is None or v == round(s * 1e6)


# ---- string_set -------------------------------------------------------------------------------------
def test_tags_from_lists_tuples_sets():
    vals, errs = run("string_set", [["golf", "ski"], ("a",), {"z"}, frozenset(), [], None, MISSING])
    assert not errs
    assert vals == [["golf", "ski"], ["a"], ["z"], [], [], None, MISSING]


def test_tags_empty_set_is_not_null():
    batch, _ = coerce(Field("f", FieldType.STRING_SET), [[], None], 2)
    assert batch.null.tolist() == [False, True]


def test_tags_rejections():
    vals, errs = run("string_set", [["ok"], "golf", [1], ["a", None], {"k": "v"}, 5, ["fine"]])
    assert vals == [["ok"], None, None, None, None, None, ["fine"]]
    assert_rejected(errs, [1, 2, 3, 4, 5])
    assert "got str 'golf'" in errs[1]
    assert "tag" in errs[2] and "int" in errs[2]
    assert "tag" in errs[3]


def test_tags_from_string_array_rejected():
    vals, errs = run("string_set", np.array(["golf", "ski"]))
    assert_rejected(errs, [0, 1], "list of strings")


def test_tags_reject_lone_surrogate():
    vals, errs = run("string_set", [["ok"], ["x\udfff"]])
    assert vals == [["ok"], None]
    assert_rejected(errs, [1], "UTF-8")


def test_tagsets_input():
    col = TagSets(np.array([0, 2, 2, 3, 4]), np.array([0, 1, 1, 0]), ["golf", "ski"],
                  null=np.array([False, False, False, True]))
    vals, errs = run("string_set", col)
    assert not errs
    assert vals == [["golf", "ski"], [], ["ski"], None]


def test_tagsets_bad_categories_and_wrong_field():
    vals, errs = run("string_set", TagSets(np.array([0, 1, 1]), np.array([0]), [7]))
    assert_rejected(errs, [0], "string")  # only the record that uses the bad tag
    vals, errs = run("string", TagSets(np.array([0, 1]), np.array([0]), ["a"]))
    assert_rejected(errs, [0], "expected string")


# ---- FieldBatch slicing (how batches are split per shard) ----------------------------------------
def test_fieldbatch_take_and_slice_keep_tags_aligned():
    batch, _ = coerce(Field("f", FieldType.STRING_SET), [["a"], ["b", "c"], None, [], ["d", "a"]], 5)

    def tags(b):
        t = b.tags
        return [None if b.null[i] else [t.categories[c] for c in t.codes[t.offsets[i]:t.offsets[i + 1]]]
                for i in range(len(b.named))]

    assert tags(batch.take(np.array([4, 1, 2]))) == [["d", "a"], ["b", "c"], None]
    assert tags(batch.slice(1, 4)) == [["b", "c"], None, []]
    assert tags(batch.take(np.array([], dtype=np.int64))) == []
