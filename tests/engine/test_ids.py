"""RowIdIndex and EncodedIds: the packed profile_id → row mapping of a shard.

The index is checked against a plain dict under random insert / lookup / delete
sequences, with hand-built hashes that collide (fully, or in the high bits that pick the
home slot) so that full-byte verification and long probe chains are exercised.
"""
from __future__ import annotations

import numpy as np
import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from cdpcore.ids import MAX_ID_BYTES, EncodedIds, RowIdIndex, check_id


# ---- helpers ---------------------------------------------------------------------------
def make_enc(ids: list[str], hashes) -> EncodedIds:
    """EncodedIds with chosen hashes (to force collisions)."""
    raw = [s.encode("utf-8") for s in ids]
    off = np.zeros(len(raw) + 1, dtype=np.int64)
    np.cumsum(np.array([len(b) for b in raw], dtype=np.int64), out=off[1:])
    buf = np.frombuffer(b"".join(raw), dtype=np.uint8).copy()
    return EncodedIds(buf, off, np.array(hashes, dtype=np.uint64))


# A few hash values: exact duplicates, values sharing the high bits (same home slot
# for every table size up to 2**20) and extremes.
HASH_POOL = [0, 1, 2 ** 63, 2 ** 64 - 1, (5 << 54), (5 << 54) + 1, (5 << 54) + (1 << 30), 0xDEADBEEF << 32]


def colliding_hash(pid: str, pool_size: int = len(HASH_POOL)) -> int:
    return HASH_POOL[xxhash.xxh32_intdigest(pid.encode("utf-8")) % pool_size]


def real_hash(pid: str) -> int:
    return xxhash.xxh64_intdigest(pid.encode("utf-8"))


class Model:
    """RowIdIndex + the dict it must behave like."""

    def __init__(self, hash_fn) -> None:
        self.index = RowIdIndex()
        self.rows: dict[str, int] = {}
        self.dead_rows: list[int] = []
        self.seen: set[str] = set()
        self.hash_fn = hash_fn

    def enc(self, ids: list[str]) -> EncodedIds:
        return make_enc(ids, [self.hash_fn(i) for i in ids])

    def insert(self, ids: list[str]) -> None:
        new = [i for i in dict.fromkeys(ids) if i not in self.rows]
        self.seen.update(ids)
        if not new:
            return
        before = self.index.n_rows
        rows = self.index.insert(self.enc(new))
        assert rows.tolist() == list(range(before, before + len(new)))  # dense, appended
        self.rows.update(zip(new, rows.tolist()))

    def delete(self, ids: list[str]) -> None:
        self.seen.update(ids)
        live = [self.rows.pop(i) for i in dict.fromkeys(ids) if i in self.rows]
        # also hand it already-deleted rows: they must be ignored
        rows = np.array(live + self.dead_rows[:2], dtype=np.int64)
        self.index.delete(rows)
        self.dead_rows.extend(live)

    def check(self, extra: list[str] = ()) -> None:
        probe = sorted(self.seen | set(extra))
        if probe:
            got = self.index.lookup(self.enc(probe)).tolist()
            want = [self.rows.get(i, -1) for i in probe]
            assert got == want
        assert self.index.n_alive == len(self.rows)
        if self.rows:
            ids, rows = zip(*sorted(self.rows.items(), key=lambda kv: kv[1]))
            assert self.index.ids_of(np.array(rows)) == list(ids)


# ---- EncodedIds ------------------------------------------------------------------------
def test_encode_ascii_layout_and_hashes():
    ids = ["u1", "user-22", "x"]
    enc = EncodedIds.encode(ids)
    assert len(enc) == 3
    assert enc.buf.dtype == np.uint8 and enc.off.dtype == np.int64 and enc.hashes.dtype == np.uint64
    assert enc.buf.tobytes() == b"u1user-22x"
    assert enc.off.tolist() == [0, 2, 9, 10]
    assert enc.lengths.tolist() == [2, 7, 1]
    assert enc.hashes.tolist() == [real_hash(i) for i in ids]
    assert enc.decode() == ids


def test_encode_non_ascii_uses_utf8_byte_lengths():
    ids = ["ü", "日本", "a", "😀x", "O'Neil"]
    enc = EncodedIds.encode(ids)
    assert enc.lengths.tolist() == [len(i.encode("utf-8")) for i in ids]
    assert enc.buf.tobytes() == "".join(ids).encode("utf-8")
    assert enc.hashes.tolist() == [real_hash(i) for i in ids]
    assert enc.decode() == ids


def test_encode_empty_batch():
    enc = EncodedIds.encode([])
    assert len(enc) == 0
    assert enc.off.tolist() == [0]
    assert enc.decode() == []


@pytest.mark.parametrize("ids", [
    ["aa", "bb", "cc", "dd"],                 # fixed width, ASCII
    ["éé", "ab12", "日a", "zzzz"],            # fixed byte width (4), non-ASCII
    ["a", "bbb", "cc", "dddd", "日本"],        # variable width
])
def test_take_permutes_repeats_and_empties(ids):
    enc = EncodedIds.encode(ids)
    n = len(ids)
    for sel in ([n - 1, 0], [1, 1, 1], list(range(n))[::-1], [], [2]):
        sub = enc.take(np.array(sel, dtype=np.int64))
        assert sub.decode() == [ids[i] for i in sel]
        assert sub.hashes.tolist() == [real_hash(ids[i]) for i in sel]
        assert sub.off[0] == 0 and sub.off[-1] == len(sub.buf)
    # a take of a take
    sub = enc.take(np.array([2, 0, 1])).take(np.array([2, 0]))
    assert sub.decode() == [ids[1], ids[2]]


id_text = st.text(alphabet="ab0é日😀 '\x00", min_size=1, max_size=6)


@given(ids=st.lists(id_text, min_size=1, max_size=30), data=st.data())
def test_take_matches_list_indexing(ids, data):
    enc = EncodedIds.encode(ids)
    sel = data.draw(st.lists(st.integers(0, len(ids) - 1), max_size=40))
    sub = enc.take(np.array(sel, dtype=np.int64))
    assert sub.decode() == [ids[i] for i in sel]
    assert sub.hashes.tolist() == [real_hash(ids[i]) for i in sel]
    assert sub.lengths.tolist() == [len(ids[i].encode("utf-8")) for i in sel]


@given(width=st.integers(1, 5), n=st.integers(1, 20), data=st.data())
def test_take_fixed_width(width, n, data):
    ids = data.draw(st.lists(st.text("abc", min_size=width, max_size=width), min_size=n, max_size=n))
    enc = EncodedIds.encode(ids)
    sel = data.draw(st.lists(st.integers(0, n - 1), max_size=25))
    assert enc.take(np.array(sel, dtype=np.int64)).decode() == [ids[i] for i in sel]


# ---- check_id ----------------------------------------------------------------------------
@pytest.mark.parametrize("value, fragment", [
    (5, "must be a string"),
    (None, "must be a string"),
    (b"u1", "must be a string"),
    ("", "must not be empty"),
    ("x" * (MAX_ID_BYTES + 1), "longer than"),
    ("é" * (MAX_ID_BYTES // 2 + 1), "longer than"),   # 513 chars, 1026 bytes
    ("a\ud800", "UTF-8"),
])
def test_check_id_rejects(value, fragment):
    reason = check_id(value)
    assert reason is not None and fragment in reason


@pytest.mark.parametrize("value", ["u", "x" * MAX_ID_BYTES, "é" * (MAX_ID_BYTES // 2), "😀" * (MAX_ID_BYTES // 4), " "])
def test_check_id_accepts(value):
    assert check_id(value) is None


# ---- RowIdIndex: deterministic cases ------------------------------------------------------
def test_lookup_on_empty_index():
    idx = RowIdIndex()
    assert idx.lookup(EncodedIds.encode(["a", "b"])).tolist() == [-1, -1]
    assert idx.lookup(EncodedIds.encode([])).tolist() == []


def test_insert_lookup_delete_reinsert():
    idx = RowIdIndex()
    rows = idx.insert(EncodedIds.encode(["a", "b", "c"]))
    assert rows.tolist() == [0, 1, 2]
    assert idx.lookup(EncodedIds.encode(["c", "zz", "a", "a"])).tolist() == [2, -1, 0, 0]
    idx.delete(np.array([1]))
    assert idx.n_alive == 2 and idx.n_rows == 3
    assert idx.lookup(EncodedIds.encode(["b"])).tolist() == [-1]
    # re-insert gets a fresh row; rows are never reused
    assert idx.insert(EncodedIds.encode(["b"])).tolist() == [3]
    assert idx.lookup(EncodedIds.encode(["a", "b", "c"])).tolist() == [0, 3, 2]
    idx.delete(np.array([1, 1, 3]))  # a dead row and a duplicate: ignored / once
    assert idx.n_alive == 2
    assert idx.lookup(EncodedIds.encode(["b"])).tolist() == [-1]


def test_equal_hashes_are_told_apart_by_bytes():
    idx = RowIdIndex()
    ids = ["a", "aa", "b", "ab", "日", "x" * 100]
    h = 12345 << 40
    idx.insert(make_enc(ids, [h] * len(ids)))
    assert idx.lookup(make_enc(ids, [h] * len(ids))).tolist() == list(range(len(ids)))
    # same hash, different bytes (same length and prefix-of): absent
    assert idx.lookup(make_enc(["c", "aaa", "ba", "x" * 99], [h] * 4)).tolist() == [-1] * 4
    # same bytes, different hash: absent (the hash is part of the key)
    assert idx.lookup(make_enc(["a"], [h + 1])).tolist() == [-1]
    # delete from the middle of the probe chain; the rest stay reachable
    idx.delete(np.array([1, 3]))
    assert idx.lookup(make_enc(ids, [h] * len(ids))).tolist() == [0, -1, 2, -1, 4, 5]


def test_delete_wipes_id_bytes():
    idx = RowIdIndex()
    idx.insert(EncodedIds.encode(["keep-me", "secret-id-42", "also-kept"]))
    idx.delete(np.array([1]))
    assert b"secret-id-42" not in idx._buf.tobytes()
    assert idx.ids_of(np.array([0, 2])) == ["keep-me", "also-kept"]


def test_ids_of_and_id_bytes():
    ids = ["a", "日本", "ccc"]
    idx = RowIdIndex()
    idx.insert(EncodedIds.encode(ids))
    assert idx.ids_of(np.array([2, 0, 1])) == ["ccc", "a", "日本"]
    buf, off = idx.id_bytes(np.array([2, 1]))
    assert off.tolist() == [0, 3, 9]
    assert buf.tobytes() == "ccc日本".encode("utf-8")


def test_growth_across_rebuilds_with_real_hashes():
    m = Model(real_hash)
    n = 0
    for size in (1, 7, 300, 500, 1024, 2000, 3, 4000):
        batch = [f"id-{k}" for k in range(n, n + size)]
        n += size
        m.insert(batch)
        m.delete([f"id-{k}" for k in range(0, n, 5)])  # churn: tombstones before rebuilds
        m.check([f"missing-{k}" for k in range(50)])
    assert m.index._table.size * 0.6 >= m.index._used  # load factor respected
    m.insert([f"id-{k}" for k in range(0, n, 5)])  # re-insert deleted ids
    m.check()


def test_growth_with_colliding_hashes():
    # 1500 ids over 3 hash values: clusters hundreds long, several rebuilds
    m = Model(lambda pid: colliding_hash(pid, 3))
    for b in range(15):
        m.insert([f"p{b}-{k}" for k in range(100)])
        m.delete([f"p{b}-{k}" for k in range(0, 100, 7)])
    m.check(["p0-1000", "p99-0"])


# ---- RowIdIndex vs a dict: random sequences ------------------------------------------------
ops = st.lists(st.tuples(st.sampled_from(["insert", "insert", "delete", "lookup"]),
                         st.lists(id_text, max_size=25)), max_size=12)


@given(ops=ops)
def test_index_matches_dict_with_collisions(ops):
    m = Model(colliding_hash)
    for op, ids in ops:
        if op == "insert":
            m.insert(ids)
        elif op == "delete":
            m.delete(ids)
        m.check(ids)


@given(ops=ops)
def test_index_matches_dict_real_hashes(ops):
    m = Model(real_hash)
    for op, ids in ops:
        if op == "insert":
            m.insert(ids)
        elif op == "delete":
            m.delete(ids)
        m.check(ids)


@settings(max_examples=15)
@given(sizes=st.lists(st.integers(1, 700), min_size=1, max_size=5), every=st.integers(2, 9))
def test_index_matches_dict_across_rebuilds(sizes, every):
    m = Model(lambda pid: colliding_hash(pid, 5))
    n = 0
    for size in sizes:
        m.insert([f"é{k}" for k in range(n, n + size)])
        n += size
        m.delete([f"é{k}" for k in range(0, n, every)])
    m.check([f"é{k}" for k in range(n, n + 20)])
