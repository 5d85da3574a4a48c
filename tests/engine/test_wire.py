"""Write batches and partials survive the wire unchanged (what router and shards exchange)."""
import datetime as dt

import numpy as np
import pytest

from cdpcore import Store
from cdpcore.errors import BatchError
from cdpcore.ingest import Rejections, prepare
from cdpcore.query.reduce import Partial
from cdpcore.sample import SCHEMA, generate_columns
from cdpcore.shard import Shard
from cdpcore import routing, wire


def test_write_batch_round_trip_applies_identically():
    store = Store(shards=1)
    store.define_fields(SCHEMA)
    ids, cols = generate_columns(500, seed=3)
    prepared = prepare(store.schema, ids, cols, Rejections(len(ids)))
    (part,) = routing.split(prepared.enc, store.slot_map, 1)
    data = wire.encode_write(part.ids(), part.uid, part.batches(prepared.batches))
    shard = Shard(store.schema)
    shard.upsert(*wire.decode_write(data))
    store.upsert_columns(ids, cols)
    for pid in ids[::37]:
        assert shard.get(part.ids().take(np.array([ids.index(pid)])))[0] == store.get_profile(pid)


def test_partials_round_trip_with_datetimes_and_big_ints():
    when = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.timezone.utc)
    p = Partial("group", groups={("a", True): [3, [2 ** 70, 4], when], (None, None): [0, [0, 0], None]})
    assert wire.decode_partial(wire.encode_partial(p)) == p
    rows = Partial("list", rows=[((when, None), 2 ** 64 - 1, "u1", ("u1", when, ["x", "y"], -5))])
    assert wire.decode_partial(wire.encode_partial(rows)) == rows


def test_malformed_write_batch_is_a_batch_error():
    with pytest.raises(BatchError):
        wire.decode_write(b"\x93\x01")


def test_query_plans_round_trip():
    from cdpcore.query import compile_select, compile_where
    from cdpcore.schema import Schema
    schema = Schema()
    schema.declare(SCHEMA)
    for where in ["age BETWEEN 25 AND 34 AND country IN ('JP','US') AND NOT is_subscriber",
                  "city LIKE 'San%' OR plan IS NULL OR has_all(interests, 'golf', 'ski')",
                  "lifetime_value > 1e300 OR age < 99999999999999999999", ""]:
        plan = compile_where(where, schema, 0)
        assert wire.decode_plan(wire.encode_plan(plan)) == plan
    select = compile_select("SELECT country, count(*) AS n, max(signup_ts) FROM profiles WHERE age > 3 "
                            "GROUP BY country ORDER BY n DESC NULLS FIRST LIMIT 5 OFFSET 1", schema, 0)
    assert wire.decode_plan(wire.encode_plan(select)) == select
    with pytest.raises(BatchError):
        wire.decode_plan(wire.pack({"@": "Nope"}))
