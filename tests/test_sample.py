"""The synthetic profile generator: deterministic, well-typed, plausible, two forms agree."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from cdpcore import sample
from cdpcore.batch import Categorical, TagSets

N = 70_000  # more than one generator block (BLOCK = 65,536 rows)


@pytest.fixture(scope="module")
def data():
    return sample.generate_columns(N, seed=7)


def _same(a: object, b: object) -> bool:
    if isinstance(a, Categorical):
        return isinstance(b, Categorical) and list(a.categories) == list(b.categories) \
            and np.array_equal(a.codes, b.codes)
    if isinstance(a, TagSets):
        return isinstance(b, TagSets) and np.array_equal(a.offsets, b.offsets) \
            and np.array_equal(a.codes, b.codes) and np.array_equal(a.null, b.null)
    if isinstance(a, np.ma.MaskedArray):
        return isinstance(b, np.ma.MaskedArray) and np.array_equal(a.mask, b.mask) \
            and np.array_equal(a.data[~a.mask], b.data[~b.mask])
    return type(a) is type(b) and a.dtype == b.dtype and np.array_equal(a, b)


def _columns_equal(x, y) -> bool:
    return x[0] == y[0] and x[1].keys() == y[1].keys() and all(_same(x[1][k], y[1][k]) for k in x[1])


def test_same_seed_same_data(data):
    assert _columns_equal(data, sample.generate_columns(N, seed=7))


def test_other_seed_other_data(data):
    other = sample.generate_columns(N, seed=8)
    assert other[0] == data[0]
    assert not np.array_equal(other[1]["lifetime_value"], data[1]["lifetime_value"])


@pytest.mark.parametrize("start,n", [(5, 10), (sample.BLOCK - 3, 7), (1234, N - 1234), (0, 1)])
def test_ranges_are_slices_of_one_sequence(data, start, n):
    ids, cols = sample.generate_columns(n, seed=7, start=start)
    full_ids, full = data
    assert ids == full_ids[start:start + n]
    for name, col in cols.items():
        ref = full[name]
        if isinstance(col, Categorical):
            assert np.array_equal(col.codes, ref.codes[start:start + n])
        elif isinstance(col, TagSets):
            lo, hi = ref.offsets[start], ref.offsets[start + n]
            assert np.array_equal(col.offsets, ref.offsets[start:start + n + 1] - lo)
            assert np.array_equal(col.codes, ref.codes[lo:hi])
            assert np.array_equal(col.null, ref.null[start:start + n])
        else:
            assert _same(col, ref[start:start + n]), name


def test_batches_cover_the_range(data):
    parts = list(sample.batches(N, batch_size=25_000, seed=7))
    assert [len(ids) for ids, _ in parts] == [25_000, 25_000, 20_000]
    assert sum((ids for ids, _ in parts), []) == data[0]
    assert np.array_equal(np.concatenate([c["age"].data for _, c in parts]), data[1]["age"].data)


def test_empty():
    ids, cols = sample.generate_columns(0)
    assert ids == [] and set(cols) == set(sample.SCHEMA)
    assert all(len(c) == 0 for c in cols.values())
    assert sample.generate_rows(0) == []


def test_ids():
    assert sample.make_ids(3, start=98) == ["u00000098", "u00000099", "u00000100"]
    assert sample.make_ids(2, start=99_999_999) == ["u099999999", "u100000000"]
    ids, _ = sample.generate_columns(10, start=20)
    assert ids == [f"u{i:08d}" for i in range(20, 30)]


def test_shapes_and_types(data):
    ids, cols = data
    assert len(ids) == len(set(ids)) == N
    assert set(cols) == set(sample.SCHEMA)
    kinds = {
        "age": (np.ma.MaskedArray, "i"), "signup_ts": (np.ndarray, "M"),
        "lifetime_value": (np.ndarray, "f"), "orders_count": (np.ndarray, "i"),
        "is_subscriber": (np.ndarray, "b"), "last_seen": (np.ma.MaskedArray, "M"),
    }
    for name, (cls, kind) in kinds.items():
        col = cols[name]
        assert isinstance(col, cls) and col.dtype.kind == kind and col.shape == (N,), name
    assert not isinstance(cols["signup_ts"], np.ma.MaskedArray)
    assert cols["signup_ts"].dtype == np.dtype("datetime64[us]")
    assert cols["last_seen"].dtype == np.dtype("datetime64[us]")
    for name in ("gender", "country", "city", "plan"):
        col = cols[name]
        assert isinstance(col, Categorical) and len(col) == N and sample.SCHEMA[name] == "string"
        assert len(set(col.categories)) == len(col.categories)
    tags = cols["interests"]
    assert isinstance(tags, TagSets) and len(tags) == N
    lengths = np.diff(tags.offsets)
    assert lengths.min() == 0 and lengths.max() <= 5
    assert np.all(lengths[tags.null] == 0)
    # no duplicate tag within a profile
    rows = np.repeat(np.arange(N), lengths)
    assert len(np.unique(rows * 100 + tags.codes)) == len(tags.codes)


def test_value_domains(data):
    _, cols = data
    age = cols["age"].compressed()
    assert age.min() >= 18 and age.max() <= 95 and 30 < age.mean() < 50
    assert len(sample.COUNTRIES) == 30 and {"JP", "US"} <= set(sample.COUNTRIES)
    assert 900 <= len(sample.CITIES) <= 1100
    assert {"San Francisco", "San Diego", "Santiago", "Tokyo", "Paris"} <= set(sample.CITIES)
    assert 15 <= len(sample.INTERESTS) <= 25
    assert {"golf", "tennis", "ski", "running", "cooking"} <= set(sample.INTERESTS)
    ref = np.datetime64(sample.REF_NOW.replace(tzinfo=None), "us")
    signup = cols["signup_ts"]
    seen = cols["last_seen"]
    assert signup.max() <= ref and signup.min() >= np.datetime64("2016-01-01")
    ok = ~seen.mask
    assert np.all(seen.data[ok] >= signup[ok]) and np.all(seen.data[ok] <= ref)
    assert np.all(cols["lifetime_value"] >= 0) and np.all(cols["orders_count"] >= 0)
    assert np.all(cols["lifetime_value"][cols["orders_count"] == 0] == 0)
    # every city belongs to the country it was drawn with
    city = cols["city"].codes
    has_city = city >= 0
    assert np.array_equal(sample.CITY_COUNTRY[city[has_city]], cols["country"].codes[has_city])


def test_skew(data):
    _, cols = data
    city = cols["city"].codes
    counts = np.bincount(city[city >= 0], minlength=len(sample.CITIES))
    top = np.argsort(-counts)
    assert counts[top[:10]].sum() > 0.2 * N          # a few big cities
    assert (counts > 0).sum() > 500                   # and a long tail
    assert sample.CITIES[top[0]] == "New York"
    country = np.bincount(cols["country"].codes, minlength=30) / N
    assert sample.COUNTRIES[int(np.argmax(country))] == "US" and country.max() > 0.2


@pytest.mark.parametrize("name,expected", [
    ("age", 0.05), ("last_seen", 0.30), ("plan", 0.10), ("interests", 0.08),
    ("gender", 0.03), ("city", 0.02), ("country", 0.0), ("signup_ts", 0.0),
])
def test_null_fractions(data, name, expected):
    col = data[1][name]
    if isinstance(col, Categorical):
        frac = np.mean(col.codes < 0)
    elif isinstance(col, TagSets):
        frac = np.mean(col.null)
    else:
        frac = np.mean(np.ma.getmaskarray(col))
    assert abs(frac - expected) < 0.01


def test_rows_agree_with_columns(data):
    ids, cols = data
    n = 3_000
    rows = sample.generate_rows(n, seed=7)
    assert len(rows) == n and [r["profile_id"] for r in rows] == ids[:n]
    for i in range(0, n, 7):
        r = rows[i]
        assert set(r) == {"profile_id", *sample.SCHEMA}
        for name, col in cols.items():
            v = r[name]
            if isinstance(col, Categorical):
                code = col.codes[i]
                assert v == (None if code < 0 else col.categories[code])
            elif isinstance(col, TagSets):
                if col.null[i]:
                    assert v is None
                else:
                    assert v == [col.categories[c] for c in col.codes[col.offsets[i]:col.offsets[i + 1]]]
            elif np.ma.getmaskarray(col)[i]:
                assert v is None
            else:
                x = np.ma.getdata(col)[i]
                if col.dtype.kind == "M":
                    assert isinstance(v, str)
                    parsed = dt.datetime.fromisoformat(v)
                    assert np.datetime64(parsed, "us") == x
                else:
                    assert v == x.item() and type(v) is type(x.item())


def test_rows_null_fractions():
    rows = sample.generate_rows(10_000, seed=3)
    nulls = np.mean([r["last_seen"] is None for r in rows])
    assert 0.27 < nulls < 0.33
    assert all(isinstance(r["is_subscriber"], bool) for r in rows[:100])
