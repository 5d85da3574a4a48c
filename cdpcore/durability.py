"""Durability represents one shard's data directory: its write-ahead log and snapshots.

Every write reaches the shard through `ShardDurability`: under the shard's lock the
record is appended to the WAL and then applied, so the log order is the apply order;
the caller is acknowledged only after `wal.sync` (group commit under fsync=always).
A snapshot captures the state and the WAL position under the same lock (a copy of
the mutable arrays: a short pause, not a stop of the world), writes it outside the lock,
then drops WAL files older than the *previous* snapshot, which stays as a fallback.

Recovery loads the newest snapshot that passes its checks (a damaged one is reported by
name and skipped), declares the schema it carries, and replays the WAL after it,
stopping at the first torn or corrupt frame; `RecoveryReport` says what happened.

Record kinds: upsert / track (a `wire.encode_write` payload; the batches carry their
field types, so replay declares them), delete (ids), define (fields), and segment
define / refresh / drop (`SegmentDef.to_bytes`), drop_slots (slot ranges: a migration's
moved-out or abandoned copy).
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import snapshot, wire
from .coerce import FieldBatch
from .periodic import Periodic
from .errors import CdpError, FailedPrecondition
from .files import replace_atomically
from .ids import EncodedIds
from .slots import slot_mask
from .schema import Schema
from .segments import SegmentDef
from .shard import Shard
from .tracking import EventSchema, accepted_types
from .wal import DataDirLock, FsyncPolicy, WriteAheadLog

DEFAULT_SNAPSHOT_WAL_BYTES = 256 << 20  # a snapshot once the WAL grew this much since the last
DEFAULT_SNAPSHOT_INTERVAL_S = 300.0     # and at least this often while writes arrive


def check_layout(data_dir: Path, shards: int) -> None:
    """A store's data directory is for one shard count (ids are placed by it): record it
    on first use and refuse a different one later."""
    data_dir.mkdir(parents=True, exist_ok=True)
    layout = data_dir / "store.json"
    if layout.exists():
        try:
            recorded = json.loads(layout.read_text())["shards"]
        except (ValueError, KeyError, TypeError) as e:
            raise RecoveryError(f"{layout}: not a cdpcore layout file ({e})") from None
        if recorded != shards:
            raise RecoveryError(f"{data_dir} holds a store of {recorded} shards, not {shards}")
        return
    layout.write_text(json.dumps({"shards": shards}))


def _ranges(slots: list[int]) -> list[list[int]]:
    """Sorted slots as [first, last] runs (a shard's slots are a few ranges)."""
    out: list[list[int]] = []
    for slot in sorted(slots):
        if out and slot == out[-1][1] + 1:
            out[-1][1] = slot
        else:
            out.append([slot, slot])
    return out


def _expand(ranges: list[list[int]]) -> list[int]:
    return [s for lo, hi in ranges for s in range(lo, hi + 1)]


class RecoveryError(CdpError):
    """The data directory cannot be recovered consistently (e.g. the WAL has a gap)."""


@dataclass
class RecoveryReport:
    snapshot: str | None = None          # file loaded, None: started from an empty state
    snapshot_lsn: int = 0
    replayed: int = 0                    # WAL records applied after the snapshot
    last_lsn: int = 0
    cut: str | None = None               # where replay stopped early, and why
    skipped: list[str] = field(default_factory=list)  # snapshots that failed their checks
    seconds: float = 0.0

    def summary(self) -> str:
        parts = [f"snapshot {self.snapshot or '(none)'} at lsn {self.snapshot_lsn}",
                 f"replayed {self.replayed} WAL records up to lsn {self.last_lsn}",
                 f"in {self.seconds:.2f} s"]
        if self.skipped:
            parts.append("skipped damaged snapshots: " + "; ".join(self.skipped))
        if self.cut:
            parts.append(f"WAL cut at {self.cut}")
        return ", ".join(parts)


class ShardDurability:
    """The WAL and snapshots of one shard. Thread-safe."""

    def __init__(self, shard: Shard, directory: Path, schema: Schema, events: EventSchema,
                 policy: FsyncPolicy | str = "always",
                 snapshot_wal_bytes: int = DEFAULT_SNAPSHOT_WAL_BYTES,
                 snapshot_interval_s: float | None = DEFAULT_SNAPSHOT_INTERVAL_S) -> None:
        """Snapshots are taken once the WAL grew `snapshot_wal_bytes`, every
        `snapshot_interval_s` when anything was written since the last one (None: no
        timer), on `snapshot()` and on `close()`."""
        self.shard = shard
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.schema = schema
        self.events = events
        self._lock_file = DataDirLock(self.directory)
        policy = FsyncPolicy.parse(policy) if isinstance(policy, str) else policy
        self.wal = WriteAheadLog(self.directory, policy)
        self.snapshot_wal_bytes = snapshot_wal_bytes
        self._snapshot_lock = threading.Lock()
        self._wal_at_snapshot = self.wal.size_bytes
        self.last_snapshot: snapshot.SnapshotFile | None = None
        self.recovered: RecoveryReport | None = None  # set by recover()
        self._timer = Periodic(self._timed_snapshot, snapshot_interval_s)

    # ---- writes: log, apply, then wait for durability -------------------------------
    def upsert(self, ids: EncodedIds, uid, batches: list[FieldBatch]) -> None:
        payload = wire.encode_write(ids, uid, batches)
        self._write({"op": "upsert", "batch": payload}, lambda: self.shard.upsert(ids, uid, batches))

    def track(self, ids: EncodedIds, uid, batches: list[FieldBatch]) -> None:
        payload = wire.encode_write(ids, uid, batches)
        self._write({"op": "track", "batch": payload}, lambda: self.shard.track(ids, uid, batches))

    def delete(self, ids: EncodedIds):
        found = []
        self._write({"op": "delete", "ids": ids.decode()}, lambda: found.append(self.shard.delete(ids)))
        return found[0]

    def define(self, spec: dict[str, str]) -> None:
        """Fields declared without data (they must survive a restart too)."""
        self._write({"op": "define", "fields": dict(spec)}, lambda: None)

    def define_segment(self, defn: SegmentDef, now_us: int) -> int:
        size = []
        self._write({"op": "segment", "defn": defn.to_bytes(), "now": now_us},
                    lambda: size.append(self.shard.define_segment(defn, now_us)))
        return size[0]

    def refresh_segment(self, defn: SegmentDef, now_us: int) -> None:
        self._write({"op": "refresh", "defn": defn.to_bytes(), "now": now_us},
                    lambda: self.shard.refresh_segment(defn, now_us))

    def drop_segment(self, name: str) -> None:
        self._write({"op": "drop", "name": name}, lambda: self.shard.drop_segment(name))

    def drop_slots(self, slots: np.ndarray) -> int:
        """Forget the profiles of slots this shard gave away (or an abandoned copy)."""
        dropped = []
        self._write({"op": "drop_slots", "slots": _ranges(np.flatnonzero(slots).tolist())},
                    lambda: dropped.append(self.shard.drop_slots(slots)))
        return dropped[0]

    def _write(self, record: dict, apply: Callable[[], Any]) -> None:
        data = wire.pack(record)
        with self.shard.write_lock():
            lsn = self.wal.append(data)
            apply()
        self.wal.sync(lsn)
        if self.wal.size_bytes - self._wal_at_snapshot > self.snapshot_wal_bytes:
            self._snapshot_in_background()

    # ---- slot ownership (the shard's part of the slot map) -----------------------------
    def save_slots(self, slots: list[int], epoch: int, cluster_id: str = "") -> None:
        """Remember the slots this shard owns (and for which cluster), so its data is
        never read under another shard's slots after a restart (written atomically)."""
        replace_atomically(self.directory / "slots.json",
                           json.dumps({"epoch": epoch, "slots": _ranges(slots), "cluster": cluster_id}))

    def load_slots(self) -> tuple[list[int], int, str] | None:
        """(slots, epoch, cluster id) saved by `save_slots`, or None for a shard never assigned."""
        path = self.directory / "slots.json"
        if not path.exists():
            return None
        try:
            doc = json.loads(path.read_text())
            return _expand(doc["slots"]), int(doc["epoch"]), str(doc.get("cluster", ""))
        except (ValueError, KeyError, TypeError) as e:
            raise RecoveryError(f"{path}: not a slot file ({e})") from None

    # ---- snapshots --------------------------------------------------------------------
    def snapshot(self) -> snapshot.SnapshotFile:
        """Write a snapshot now (writes keep flowing while the file is written)."""
        with self._snapshot_lock:
            with self.shard.write_lock():
                lsn = self.wal.last_lsn
                state = {"shard": self.shard.state(), "schema": self.schema.to_dict(),
                         "properties": self.events.properties.to_dict(),
                         "types": self.events.types()}
                self._wal_at_snapshot = self.wal.size_bytes
            written = snapshot.write(self.directory, lsn, state)
            previous = self.last_snapshot
            self.last_snapshot = written
            snapshot.remove_older(self.directory, written, keep_previous=1)
            # keep the WAL since the previous snapshot: it is the fallback if this one breaks
            self.wal.truncate_before((previous.lsn if previous else lsn) + 1)
            return written

    def _timed_snapshot(self) -> None:
        if self.wal.last_lsn > (self.last_snapshot.lsn if self.last_snapshot else 0):
            self.snapshot()

    def _snapshot_in_background(self) -> None:
        if not self._snapshot_lock.locked():
            self._wal_at_snapshot = self.wal.size_bytes  # one trigger per threshold crossed
            threading.Thread(target=self.snapshot, name="cdp-snapshot", daemon=True).start()

    # ---- recovery ---------------------------------------------------------------------
    def recover(self) -> RecoveryReport:
        """Load the newest valid snapshot and replay the WAL after it (an empty shard)."""
        started = time.perf_counter()
        report = RecoveryReport()
        for snap in snapshot.snapshots(self.directory):
            try:
                state = snapshot.read(snap)
            except snapshot.CorruptSnapshot as e:
                report.skipped.append(str(e))
                continue
            self._load(state)
            report.snapshot, report.snapshot_lsn = snap.path.name, snap.lsn
            self.last_snapshot = snap
            break
        try:
            for _, data in self.wal.replay(after_lsn=report.snapshot_lsn):
                self._replay(wire.unpack(data))
                report.replayed += 1
        except FailedPrecondition as e:  # the WAL starts after the snapshot: records missing
            raise RecoveryError(f"{self.directory}: {e}") from None
        replay = self.wal.last_replay
        report.last_lsn = max(report.snapshot_lsn, replay.last_lsn or 0)
        report.cut = replay.cut or (self.wal.open_report.cut if self.wal.open_report else None)
        report.seconds = time.perf_counter() - started
        self._wal_at_snapshot = self.wal.size_bytes
        self._timer.start()
        self.recovered = report
        return report

    def _load(self, state: dict) -> None:
        self.schema.declare(state["schema"])
        self.events.declare(state["properties"])
        self.events.note_types(state["types"])
        self.shard.load(state["shard"])

    def _replay(self, record: dict) -> None:
        op = record["op"]
        if op in ("upsert", "track"):
            ids, uid, batches = wire.decode_write(record["batch"])
            if op == "upsert":
                self.schema.declare({b.field.name: b.field.type for b in batches})
                self.shard.upsert(ids, uid, batches)
            else:
                self.events.declare({b.field.name: b.field.type for b in batches[2:]})
                self.events.note_types(accepted_types(batches[0]))
                self.shard.track(ids, uid, batches)
        elif op == "delete":
            self.shard.delete(EncodedIds.encode(record["ids"]))
        elif op == "define":
            self.schema.declare(record["fields"])
        elif op == "segment":
            self.shard.define_segment(SegmentDef.from_bytes(record["defn"]), record["now"])
        elif op == "refresh":
            self.shard.refresh_segment(SegmentDef.from_bytes(record["defn"]), record["now"])
        elif op == "drop":
            self.shard.drop_segment(record["name"])
        elif op == "drop_slots":
            self.shard.drop_slots(slot_mask(_expand(record["slots"])))
        else:
            raise RecoveryError(f"{self.directory}: unknown WAL record kind {op!r}")

    def close(self, take_snapshot: bool = True) -> None:
        """Graceful shutdown: a final snapshot (so the next start replays nothing)."""
        self._timer.stop()
        if take_snapshot:
            self.snapshot()
        self.wal.close()
        self._lock_file.release()
