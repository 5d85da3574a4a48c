"""The synthetic event generator: deterministic, well-typed, plausible, attached to the
sample profiles, chunked consistently, and loadable by `Store.track_columns`."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from cdpcore import sample
from cdpcore.batch import Categorical

N = 3_000
PER = 10
SEED = 5
NOW = np.datetime64(sample.REF_NOW.replace(tzinfo=None), "us")
DAY = np.timedelta64(86_400_000_000, "us")


@pytest.fixture(scope="module")
def ev():
    return sample.generate_events(N, PER, seed=SEED)


def _raw(n=N, per=PER, seed=SEED, chunk=sample.EVENT_CHUNK):
    return sample._concat_raw(list(sample.iter_event_arrays(n, per, seed, chunk)))


def _same_events(a: dict, b: dict) -> bool:
    pa, pb = a["properties"], b["properties"]
    return (a["ids"] == b["ids"] and np.array_equal(a["types"].codes, b["types"].codes)
            and np.array_equal(a["ts"], b["ts"]) and pa.keys() == pb.keys()
            and np.array_equal(pa["amount"].mask, pb["amount"].mask)
            and np.array_equal(pa["amount"].filled(0), pb["amount"].filled(0))
            and np.array_equal(pa["category"].codes, pb["category"].codes))


def test_shapes_and_types(ev):
    m = len(ev["ids"])
    assert set(ev) == {"ids", "types", "ts", "properties"}
    assert isinstance(ev["ids"], list) and all(isinstance(i, str) for i in ev["ids"][:100])
    assert isinstance(ev["types"], Categorical) and list(ev["types"].categories) == sample.EVENT_TYPES
    assert ev["ts"].dtype == np.dtype("datetime64[us]")
    amount, category = ev["properties"]["amount"], ev["properties"]["category"]
    assert isinstance(amount, np.ma.MaskedArray) and amount.dtype == np.float64
    assert isinstance(category, Categorical) and list(category.categories) == sample.EVENT_CATEGORIES
    assert len(ev["types"]) == len(ev["ts"]) == len(amount) == len(category) == m
    assert set(ev["properties"]) == set(sample.EVENT_PROPERTIES)


def test_same_seed_same_events_other_seed_other(ev):
    assert _same_events(ev, sample.generate_events(N, PER, seed=SEED))
    assert not _same_events(ev, sample.generate_events(N, PER, seed=SEED + 1))


def test_ids_are_the_sample_profiles_ids(ev):
    known = set(sample.make_ids(N))
    assert set(ev["ids"]) <= known
    # most profiles have events, not all (inactive ones exist)
    assert 0.5 * N < len(set(ev["ids"])) < N


def test_given_ids_are_used():
    ids = [f"cust-{i}" for i in range(200)]
    ev = sample.generate_events(200, 5, seed=1, ids=ids)
    plain = sample.generate_events(200, 5, seed=1)
    assert ev["ids"] == [f"cust-{int(i[1:])}" for i in plain["ids"]]
    with pytest.raises(ValueError):
        sample.generate_events(200, 5, ids=ids[:10])


def test_about_n_times_per_profile_events_skewed(ev):
    m = len(ev["ids"])
    assert 0.85 * N * PER < m < 1.15 * N * PER
    _, counts = np.unique(ev["ids"], return_counts=True)
    assert counts.max() > 8 * PER            # some very active profiles
    assert np.median(counts) < PER           # ... and many quiet ones


def test_type_mix(ev):
    share = np.bincount(ev["types"].codes, minlength=4) / len(ev["ids"])
    expected = {"page_view": 0.55, "app_open": 0.25, "add_to_cart": 0.13, "purchase": 0.07}
    for name, p in expected.items():
        assert share[sample.EVENT_TYPES.index(name)] == pytest.approx(p, abs=0.03), name


def test_properties_where_they_belong(ev):
    types = np.array(sample.EVENT_TYPES)[ev["types"].codes]
    amount, category = ev["properties"]["amount"], ev["properties"]["category"].codes
    purchase = types == "purchase"
    assert np.array_equal(~amount.mask, purchase)
    vals = amount.compressed()
    assert vals.min() > 0 and np.allclose(vals, np.round(vals, 2))
    assert 20 < np.median(vals) < 150
    assert np.array_equal(category >= 0, purchase | (types == "add_to_cart"))
    assert len(np.unique(category[category >= 0])) == len(sample.EVENT_CATEGORIES)


def test_times_in_the_year_before_ref_now_recent_denser(ev):
    ts = ev["ts"]
    assert ts.max() <= NOW
    assert (ts >= NOW - 365 * DAY).mean() > 0.99    # late arrivals can fall a bit earlier
    assert ts.min() >= NOW - (365 + 61) * DAY
    assert np.all(ts.astype(np.int64) % 1_000_000 == 0)   # whole seconds
    last30 = (ts >= NOW - 30 * DAY).mean()
    assert last30 > 1.2 * 30 / 365


def test_late_arrivals_exist():
    chunks = list(sample.iter_event_arrays(N, PER, SEED, chunk=5_000))
    assert len(chunks) >= 4
    for c in chunks:
        t = c["ts"].astype(np.int64)
        assert 0.005 < np.mean(np.diff(t) < 0) < 0.1     # mostly in order, not all
    # chunks follow each other in time, but a later chunk carries some earlier events
    assert chunks[1]["ts"].min() < chunks[0]["ts"].max()
    middle = np.sort(chunks[1]["ts"])[len(chunks[1]["ts"]) // 2]
    assert middle > chunks[0]["ts"].max() - DAY


def test_chunks_hold_about_chunk_events():
    sizes = [len(c["profile"]) for c in sample.iter_event_arrays(N, PER, SEED, chunk=5_000)]
    assert len(sizes) == -(-N * PER // 5_000)
    assert max(sizes) < 1.4 * 5_000 and min(sizes) > 0.6 * 5_000


def test_generate_is_the_concatenation_of_iter(ev):
    parts = list(sample.iter_events(N, PER, SEED))
    assert len(parts) == 1 and _same_events(ev, parts[0])
    many = list(sample.iter_events(N, PER, SEED, chunk=7_000))
    raw = _raw(chunk=7_000)
    assert [i for p in many for i in p["ids"]] == [f"u{p:08d}" for p in raw["profile"].tolist()]


def test_event_batches_and_slices_cover_the_chunks():
    whole = list(sample.iter_events(N, PER, SEED, chunk=8_000))
    parts = list(sample.event_batches(N, PER, SEED, batch_size=2_500, chunk=8_000))
    assert all(len(p["ids"]) <= 2_500 for p in parts)
    assert [i for p in parts for i in p["ids"]] == [i for w in whole for i in w["ids"]]
    first = whole[0]
    assert _same_events(sample.slice_events(first, 0, 2_500), parts[0])


def test_empty():
    for n, per in [(0, 10), (10, 0)]:
        ev = sample.generate_events(n, per)
        assert ev["ids"] == [] and len(ev["ts"]) == 0 and len(ev["types"]) == 0
        assert list(sample.iter_events(n, per)) == []


def test_id_formatting_unchanged():
    assert sample.make_ids(3, 99_999_998) == ["u099999998", "u099999999", "u100000000"]
    assert sample.make_ids(2) == ["u00000000", "u00000001"]


def test_store_tracks_them_and_answers_match_numpy():
    from cdpcore import Store
    if not hasattr(Store, "track_columns"):
        pytest.skip("engine without track_columns")
    n = 500
    store = Store(shards=2, clock=lambda: sample.REF_NOW.timestamp())
    store.upsert_columns(*sample.generate_columns(n, seed=1))
    ev = sample.generate_events(n, 10, seed=2)
    res = store.track_columns(**ev)
    assert res.accepted == len(ev["ids"]) and not res.errors
    assert len(store) == n                               # events attach to existing profiles
    assert store.event_schema.properties.to_dict() == sample.EVENT_PROPERTIES
    raw = _raw(n, 10, 2)
    recent = (raw["ts"] >= NOW - 30 * DAY) & (raw["ts"] <= NOW)
    bought = np.bincount(raw["profile"][recent & (raw["type"] == 3)], minlength=n)
    assert store.count("event_count('purchase', '30d') >= 1") == int((bought >= 1).sum())
    store.close()


def test_ref_now_is_the_profiles_ref_now():
    assert sample.REF_NOW == dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)


def test_dictionary_encoded_ids_name_the_same_profiles(ev):
    enc = sample.generate_events(N, PER, seed=SEED, dict_ids=True)
    ids = enc["ids"]
    assert isinstance(ids, Categorical) and len(set(ids.categories)) == len(ids.categories)
    assert np.array(ids.categories, dtype=object)[ids.codes].tolist() == ev["ids"]
    batches = list(sample.event_batches(N, PER, SEED, batch_size=4_000, dict_ids=True))
    assert all(isinstance(b["ids"], Categorical) and len(b["ids"]) <= 4_000 for b in batches)
    part = sample.slice_events(enc, 10, 20)
    assert np.array(part["ids"].categories, dtype=object)[part["ids"].codes].tolist() == ev["ids"][10:20]
