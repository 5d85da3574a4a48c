"""A Store driven by random operations stays equal to the oracle after every step.

After pyroaring's SetComparison machine (STYLE practice 15): each rule does the same
thing to the engine and to the dict-of-dicts oracle; the invariant asks both a set of
questions that together cover every stored value (a full `SELECT *` listing, counts,
group-bys, profiles by id, recent events). Event batches (`track`: dict and columnar
paths, late arrivals) interleave with upserts and deletes, and the query rules mix
event-function conditions, listings and aggregates into the attribute questions. Saved
segments must always equal their conditions; persistent stores are closed and reopened,
or crashed (no final snapshot) and recovered, between steps. Rules for identify and add
shard join when the engine has them.
"""
from __future__ import annotations

import shutil
import tempfile

import pytest
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from event_strategies import (EVENT_IDS, PROPERTIES, event_aggregates, event_listings, event_types, late_arrivals,
                              mixed_conditions, track_columns, track_records, world_of)
from oracle import Agg, Col, Oracle, Output, SelectSpec, assert_same, assert_same_events
from strategies import (FIELD_TYPES, GROUPABLE, ID_POOL, NOW_US, Delete, bulk_deletes, bulks, clock,
                        column_batches, conditions, deletes, field_names, record_batches, schemas, selects,
                        value_pools)


class StoreVsOracle(RuleBasedStateMachine):
    @initialize(shards=st.sampled_from([1, 2, 5]), schema=schemas(max_size=4), types=event_types,
                persistent=st.booleans())
    def setup(self, shards, schema, types, persistent):
        self.shards = shards
        self.data_dir = tempfile.mkdtemp(prefix="cdp-sm-") if persistent else None
        self.store, self.oracle = self.open(), Oracle(now_us=NOW_US)
        self.store.define_fields(schema)
        self.oracle.define(schema)
        self.types = types
        self.segments: dict[str, str] = {}  # name → condition text

    def open(self):
        from cdpcore import Store
        return Store(shards=self.shards, clock=clock, segment_refresh_s=None,
                     data_dir=self.data_dir, fsync="never")

    # -- restarts (persistent stores only) ---------------------------------------------
    @precondition(lambda self: self.data_dir is not None)
    @rule()
    def close_and_reopen(self):
        """A graceful restart: final snapshot, then recovery from it."""
        self.store.close()
        self.store = self.open()

    @precondition(lambda self: self.data_dir is not None)
    @rule(snapshot_first=st.booleans())
    def crash_and_reopen(self, snapshot_first):
        """A crash (no final snapshot; the OS keeps what was written): recovery replays
        the WAL, after a snapshot or from the start."""
        if snapshot_first:
            self.store.snapshot()
        for d in self.store._durable:
            d.wal.close()
            d._lock_file.release()
        self.store._refresher.stop()
        self.store = self.open()

    # -- saved segments ------------------------------------------------------------------
    @precondition(lambda self: len(self.segments) < 4)
    @rule(data=st.data())
    def create_segment(self, data):
        """The clock is fixed here, so a segment's members must always equal its condition."""
        pools, world = self.pools(), world_of(self.oracle, self.types)
        cond = data.draw(st.one_of(conditions(self.oracle.schema, pools),
                                   mixed_conditions(self.oracle.schema, pools, world)), label="segment")
        name = f"s{len(self.segments)}"
        self.store.create_segment(name, cond.sql)
        self.segments[name] = cond.sql

    # -- writes ---------------------------------------------------------------------
    @rule(data=st.data())
    def upsert_records(self, data):
        data.draw(record_batches(self.oracle.schema), label="batch").apply(self.store, self.oracle)

    @rule(data=st.data())
    def upsert_columns(self, data):
        data.draw(column_batches(self.oracle.schema), label="columns").apply(self.store, self.oracle)

    @rule(op=deletes | bulk_deletes)
    def delete(self, op: Delete):
        op.apply(self.store, self.oracle)

    @rule(data=st.data())
    def track(self, data):
        """An event batch: dict or columnar path, or a stream tracked newest batch first."""
        known = dict(self.oracle.event_props)
        op = data.draw(st.one_of(track_records(self.types, PROPERTIES, known),
                                 track_columns(self.types, PROPERTIES, known),
                                 late_arrivals(self.types, PROPERTIES, known)), label="events")
        op.apply(self.store, self.oracle)

    @precondition(lambda self: len(self.oracle.rows) < 3000)
    @rule(data=st.data())
    def bulk_load(self, data):
        data.draw(bulks(self.oracle.schema), label="bulk").apply(self.store, self.oracle)

    @rule(name=field_names, ftype=st.sampled_from(FIELD_TYPES))
    def define_field(self, name, ftype):
        """New fields start all-null on existing profiles; a type change is refused."""
        from cdpcore.errors import SchemaError
        old = self.oracle.schema.get(name)
        if old is not None and old != ftype:
            with pytest.raises(SchemaError):
                self.store.define_fields({name: ftype})
            return
        self.store.define_fields({name: ftype})
        self.oracle.define({name: ftype})

    # -- reads ----------------------------------------------------------------------
    def pools(self) -> dict:
        return value_pools(self.oracle.rows.values(), self.oracle.schema)

    @rule(data=st.data())
    def count_where(self, data):
        pools, world = self.pools(), world_of(self.oracle, self.types)
        cond = data.draw(st.one_of(conditions(self.oracle.schema, pools),
                                   mixed_conditions(self.oracle.schema, pools, world)), label="where")
        assert_same(f"count({cond.sql!r})", self.oracle.count(cond.pred), self.store.count(cond.sql))

    @rule(data=st.data())
    def select(self, data):
        pools, world = self.pools(), world_of(self.oracle, self.types)
        query = data.draw(st.one_of(selects(self.oracle.schema, pools),
                                    event_listings(self.oracle.schema, pools, world),
                                    event_aggregates(self.oracle.schema, pools, world)), label="query")
        assert_same(query.sql, self.oracle.select(query.spec), self.store.query(query.sql))

    # -- the invariant --------------------------------------------------------------
    @invariant()
    def same_contents(self):
        if not hasattr(self, "store"):
            return
        assert_same("count('')", len(self.oracle.rows), self.store.count(""))
        assert_same("SELECT * FROM profiles", self.oracle.select(SelectSpec(None)),
                    self.store.query("SELECT * FROM profiles"))
        for name, ftype in self.oracle.schema.items():
            null = SelectSpec((Output(Agg("count")),), where=lambda r, n=name: r.get(n) is None)
            sql = f"SELECT count(*) FROM profiles WHERE {name} IS NULL"
            assert_same(sql, self.oracle.select(null), self.store.query(sql))
            if ftype in GROUPABLE:
                spec = SelectSpec((Output(Col(name)), Output(Agg("count"))), group_by=(name,))
                sql = f"SELECT {name}, count(*) FROM profiles GROUP BY {name}"
                assert_same(sql, self.oracle.select(spec), self.store.query(sql))
        for pid in ID_POOL[:8]:
            assert_same(f"get_profile({pid!r})", self.oracle.get_profile(pid), self.store.get_profile(pid))
        for pid in EVENT_IDS[4:]:
            assert_same_events(f"events_of({pid!r}, 3)", self.oracle.events_of(pid),
                               self.store.events_of(pid, 3), 3)
        for name, where in self.segments.items():
            members = {pid for b in self.store.export_segment(name) for pid in b.ids}
            expected = {r[0] for r in self.store.query(
                f"SELECT profile_id FROM profiles WHERE {where}").rows}
            assert members == expected, (name, where)
            assert_same(f"in_segment({name})", len(expected), self.store.count(f"in_segment('{name}')"))

    def teardown(self):
        if hasattr(self, "store"):
            self.store.close()
        if getattr(self, "data_dir", None):
            shutil.rmtree(self.data_dir, ignore_errors=True)


StoreVsOracle.TestCase.settings = settings(stateful_step_count=25)
TestStoreVsOracle = StoreVsOracle.TestCase
