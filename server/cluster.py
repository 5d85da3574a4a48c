"""Cluster represents the router's view of the shards: clients, slot map and schemas.

It runs the engine's own write paths (`ingest.write` for profiles,
`tracking.write_events` for events: validate, declare, split by slot) and ships each
shard its part; queries are parsed here once (so errors come back fast and positioned),
executed on every shard in parallel, and merged by the engine's reducer. The public
servicers are thin layers over these methods.
"""
from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from cdpcore import routing, tracking, wire
from cdpcore.errors import ProfileNotFound
from cdpcore.ingest import PreparedBatch, Rejections, write
from cdpcore.query import reduce as rd
from cdpcore.query import compile_select, compile_where, event_warnings
from cdpcore.query.reduce import Partial
from cdpcore.schema import Schema
from cdpcore.slots import SlotMap
from cdpcore.store import DeleteResult, QueryResult, TrackResult, UpsertResult
from cdpcore.tracking import EventSchema
from server.pb.cdp.v1 import shard_pb2 as pb
from server.shard_client import ShardClient


@dataclass
class ShardHealth:
    address: str
    healthy: bool
    error: str = ""
    slots: list[int] | None = None
    profiles: int = 0
    memory_bytes: int = 0


Defer = Callable[[Callable[[], None]], None]


class Cluster:
    """Safe for concurrent use: the schemas lock themselves, clients are thread-safe."""

    def __init__(self, addresses: list[str], clock: Callable[[], float] = time.time) -> None:
        if not addresses:
            raise ValueError("a cluster needs at least one shard address")
        self.clients = [ShardClient(a) for a in addresses]
        self.slot_map = SlotMap.even(len(addresses))
        self.schema = Schema()
        self.events = EventSchema()     # event property types and the types ever tracked
        self._clock = clock
        # Each fan-out holds one thread per shard for the length of a shard call, and the
        # router serves up to 32 calls at once (app.py), so size for that, not for cores.
        self._pool = ThreadPoolExecutor(max_workers=32 * len(addresses), thread_name_prefix="cdp-fanout")

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        for c in self.clients:
            c.close()

    def connect(self) -> None:
        """Give every shard its slots and agree on one schema (the union of theirs); learn
        the event properties and types the shards hold (a restarted router must not
        accept a property of the other type, nor warn about types already tracked)."""
        for i, client in enumerate(self.clients):
            slots = self.slot_map.slots_of_shard(i).tolist()
            client.call("Assign", pb.ShardAssignRequest(slots=slots, epoch=self.slot_map.epoch))
        for reply in self._fanout(lambda c: c.call("Schema", pb.ShardStatusRequest()), self.clients):
            self.schema.declare(wire.unpack(reply.fields))
            self.events.declare(wire.unpack(reply.event_properties) if reply.event_properties else {})
            self.events.note_types(reply.event_types)
        if self.schema.fields():
            self.define(self.schema.to_dict())

    # ---- schema --------------------------------------------------------------------
    def define(self, spec: Mapping[str, Any]) -> None:
        """Declare fields here and on every shard (shards first: they must accept it)."""
        fields = {name: getattr(t, "value", t) for name, t in spec.items()}
        request = pb.ShardDefineRequest(fields=wire.pack(fields))
        self._fanout(lambda c: c.call("Define", request), self.clients)
        self.schema.declare(fields)

    # ---- writes --------------------------------------------------------------------
    def upsert(self, ids: list, columns: dict[Any, Any], rejections: Rejections,
               timeout: float | None = None, defer: Defer | None = None) -> UpsertResult:
        """Validate here, apply on the shards. With `defer`, the apply step is handed to
        it instead of run now (UpsertStream overlaps the next batch's validation with
        this one's apply; its single applier thread keeps batches in order)."""
        prepared = write(self.schema, ids, columns, rejections, self.define,
                         self._applier("Apply", timeout, defer))
        return UpsertResult(prepared.accepted, prepared.errors)

    def track(self, ids: list, columns: dict[Any, Any], rejections: Rejections,
              timeout: float | None = None, defer: Defer | None = None) -> TrackResult:
        """Events: validated here against the cluster's event schema (new properties are
        declared here; each shard learns them from the batch it receives), stamped with
        this router's clock where they carry no time, then appended on the owning shards."""
        prepared = tracking.write_events(self.events, ids, columns, rejections, self._now_us(),
                                         self._applier("Track", timeout, defer))
        return TrackResult(prepared.accepted, prepared.errors)

    def _applier(self, method: str, timeout: float | None, defer: Defer | None
                 ) -> Callable[[PreparedBatch], None]:
        def apply(p: PreparedBatch) -> None:
            if defer is None:
                self._apply(method, p, timeout)
            else:
                defer(lambda: self._apply(method, p, timeout))
        return apply

    def _apply(self, method: str, prepared: PreparedBatch, timeout: float | None) -> None:
        parts = routing.split(prepared.enc, self.slot_map, len(self.clients), prepared.distinct)
        epoch = self.slot_map.epoch

        def send(part: routing.ShardPart) -> None:
            batch = wire.encode_write(part.ids(), part.uid, part.batches(prepared.batches))
            self.clients[part.shard].call(method, pb.ApplyRequest(batch=batch, epoch=epoch), timeout)
        self._fanout(send, parts)

    def delete(self, ids: list[str], timeout: float | None = None) -> DeleteResult:
        ids, _, owner = routing.owners_of_ids(ids, self.slot_map)
        found = np.zeros(len(ids), dtype=bool)

        def remove(s: int) -> None:
            sel = np.flatnonzero(owner == s)
            reply = self.clients[s].call("Delete", pb.ShardIdsRequest(ids=[ids[i] for i in sel]), timeout)
            found[sel] = reply.found
        self._fanout(remove, sorted(set(owner.tolist())))
        return DeleteResult(int(found.sum()), [ids[i] for i in np.flatnonzero(~found).tolist()])

    # ---- reads ---------------------------------------------------------------------
    def get_profile(self, profile_id: str, events_limit: int = 0, timeout: float | None = None
                    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The profile and its `events_limit` most recent events (most recent first)."""
        _, _, owner = routing.owners_of_ids([profile_id], self.slot_map)
        client = self.clients[int(owner[0])]
        request = pb.ShardIdsRequest(ids=[profile_id], events_limit=events_limit)
        reply = client.call("Get", request, timeout)
        profile = wire.unpack(reply.profiles)[0]
        if profile is None:
            raise ProfileNotFound(f"profile {profile_id!r} not found")
        events = wire.unpack(reply.events)[0] if reply.events else None
        return profile, events or []

    def query(self, sql: str, timeout: float | None = None) -> QueryResult:
        """A SELECT, or a bare WHERE condition answered as a count; `timeout` is the
        client's remaining deadline, passed on to every shard call. Event types never
        tracked are not an error (they match nothing) but come back as warnings."""
        now_us = self._now_us()
        if _is_select(sql):
            select = compile_select(sql, self.schema, now_us, self.events)
            request = pb.ExecuteRequest(plan=wire.encode_plan(select), epoch=self.slot_map.epoch)
            merged = rd.merge_all(select, self._partials(request, timeout))
            return QueryResult([c.name for c in select.columns], rd.finalize(select, merged, self.schema),
                               event_warnings(select, self.events))
        where = compile_where(sql, self.schema, now_us, self.events)
        request = pb.ExecuteRequest(plan=wire.encode_plan(where), count_only=True, epoch=self.slot_map.epoch)
        return QueryResult(["count"], [(sum(p.states[0] for p in self._partials(request, timeout)),)],
                           event_warnings(where, self.events))

    def _now_us(self) -> int:
        return int(self._clock() * 1_000_000)

    def _partials(self, request: pb.ExecuteRequest, timeout: float | None) -> list[Partial]:
        replies = self._fanout(lambda c: c.call("Execute", request, timeout), self.clients)
        return [wire.decode_partial(r.partial) for r in replies]

    def list_ids(self, where: str, batch_size: int) -> Iterator[list[str]]:
        plan = compile_where(where, self.schema, self._now_us(), self.events)
        request = pb.ShardListIdsRequest(where=wire.encode_plan(plan), batch_size=batch_size)
        for client in self.clients:
            for batch in client.stream("ListIds", request):
                yield list(batch.ids)

    def health(self) -> list[ShardHealth]:
        def probe(client: ShardClient) -> ShardHealth:
            try:
                s = client.ping()
            except Exception as e:  # noqa: BLE001 - a status report shows every failure
                return ShardHealth(client.address, False, str(e))
            return ShardHealth(client.address, True, "", list(s.slots), s.profiles, s.memory_bytes)
        return self._fanout(probe, self.clients)

    # ---- fan-out -------------------------------------------------------------------
    def _fanout(self, fn: Callable[[Any], Any], items: list) -> list:
        """Run fn on every item in parallel; the first failure is raised (never a
        partial answer), after every call has finished."""
        futures = [self._pool.submit(fn, x) for x in items]
        results, error = [], None
        for f in futures:
            try:
                results.append(f.result())
            except Exception as e:  # noqa: BLE001 - re-raised below
                error = error or e
        if error is not None:
            raise error
        return results


_LEADING = re.compile(r"(\s+|--[^\n]*(\n|$)|/\*.*?\*/|\()*", re.DOTALL)
_SELECT = re.compile(r"select\b", re.IGNORECASE)


def _is_select(sql: str) -> bool:
    """A SELECT statement (after blanks, comments and parentheses), else a condition."""
    return _SELECT.match(sql, _LEADING.match(sql).end()) is not None
