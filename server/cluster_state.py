"""ClusterState represents the router's state file: which shards form the cluster and
which slots each owns, versioned by the slot-map epoch.

It is the one piece of state the router keeps (DESIGN: "the router is stateless apart
from the slot map"). Shards have stable ids that are never reused, so a slot map, a
watcher's positions and the file agree on who is who after shards come and go; the
cluster id tells a shard of this cluster from one that holds another cluster's data.
Written to a temporary file, fsynced and renamed, so a crash leaves the old or the new
version, never a mix: the rename is the commit point of every slot flip.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cdpcore.errors import FailedPrecondition
from cdpcore.files import replace_atomically
from cdpcore.slots import N_SLOTS, SlotMap


@dataclass
class ClusterState:
    shards: dict[int, str]                 # shard id → address
    slot_map: SlotMap                      # owners hold shard ids
    cluster_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    next_id: int = 0                       # the id the next added shard gets
    # the add/remove in progress, {"kind": "add" | "remove", "shard": id}: a restarted
    # router resumes it (None: none)
    migration: dict | None = None

    def __post_init__(self) -> None:
        self.next_id = max(self.next_id, max(self.shards, default=-1) + 1)

    @classmethod
    def fresh(cls, addresses: list[str]) -> "ClusterState":
        return cls(dict(enumerate(addresses)), SlotMap.even(len(addresses)))

    def to_json(self) -> str:
        owners = self.slot_map.owners
        cuts = np.flatnonzero(np.diff(owners)) + 1
        starts = np.concatenate([[0], cuts])
        ends = np.concatenate([cuts, [N_SLOTS]]) - 1
        runs = [[int(a), int(b), int(owners[a])] for a, b in zip(starts, ends)]
        return json.dumps({"cluster_id": self.cluster_id, "epoch": self.slot_map.epoch,
                           "next_id": self.next_id, "migration": self.migration,
                           "shards": [{"id": i, "address": a} for i, a in sorted(self.shards.items())],
                           "slots": runs}, indent=1)

    @classmethod
    def from_json(cls, text: str, origin: str = "state") -> "ClusterState":
        try:
            doc = json.loads(text)
            owners = np.full(N_SLOTS, -1, dtype=np.int64)
            for first, last, shard in doc["slots"]:
                owners[first:last + 1] = shard
            shards = {int(s["id"]): str(s["address"]) for s in doc["shards"]}
            if (owners < 0).any() or not set(np.unique(owners).tolist()) <= set(shards):
                raise ValueError("the slot map does not cover every slot with a listed shard")
            migration = doc.get("migration")
            if migration is not None and (migration.get("kind") not in ("add", "remove")
                                          or int(migration.get("shard", -1)) not in shards):
                raise ValueError(f"bad migration entry {migration!r}")
            return cls(shards, SlotMap(owners, epoch=int(doc["epoch"])), str(doc["cluster_id"]),
                       int(doc["next_id"]), migration)
        except (ValueError, KeyError, TypeError) as e:
            raise FailedPrecondition(f"{origin}: not a cdp router state file ({e})") from None

    def save(self, path: Path) -> None:
        replace_atomically(path, self.to_json())

    @classmethod
    def load(cls, path: Path) -> "ClusterState | None":
        if not path.exists():
            return None
        return cls.from_json(path.read_text(), str(path))
