"""Snapshot represents a shard's whole state on disk: one file, written atomically.

A state is a tree of dicts, lists, scalars, numpy arrays and Roaring bitmaps (each
structure's `state()`). The file holds every array and bitmap as its own lz4-compressed
blob, then a msgpack manifest (the tree with blobs replaced by references, each with its
length and xxhash64), then a fixed footer (magic, manifest offset and checksum). It is
written to a temporary name, fsynced and renamed, so a crash leaves either the old
snapshot or the new one, never half of one; a file that fails any check is reported by
name and the previous snapshot is used instead.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import lz4.frame
import msgpack
import numpy as np
import xxhash
from pyroaring import BitMap

from .files import fsync_dir

MAGIC = b"CDPSNAP1"
_FOOTER = struct.Struct("<8sQQQ")  # magic, manifest offset, manifest length, manifest xxh64
PREFIX, SUFFIX = "snapshot-", ".cdps"


class CorruptSnapshot(Exception):
    """A snapshot file that cannot be trusted (named in the message)."""


@dataclass(frozen=True)
class SnapshotFile:
    path: Path
    lsn: int      # the last WAL record the state includes

    @classmethod
    def name_for(cls, directory: Path, lsn: int) -> Path:
        return directory / f"{PREFIX}{lsn:020d}{SUFFIX}"


def write(directory: Path, lsn: int, state: Any) -> SnapshotFile:
    """Write `state` as the snapshot at `lsn`: temp file, fsync, rename, fsync the dir."""
    path = SnapshotFile.name_for(directory, lsn)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        writer = _Writer(f)
        manifest = msgpack.packb(writer.tree(state), use_bin_type=True)
        offset = f.tell()
        f.write(manifest)
        f.write(_FOOTER.pack(MAGIC, offset, len(manifest), xxhash.xxh64_intdigest(manifest)))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(directory)
    return SnapshotFile(path, lsn)


def snapshots(directory: Path) -> list[SnapshotFile]:
    """Snapshot files in the directory, newest first."""
    found = []
    for p in directory.glob(f"{PREFIX}*{SUFFIX}"):
        digits = p.name[len(PREFIX):-len(SUFFIX)]
        if digits.isdigit():
            found.append(SnapshotFile(p, int(digits)))
    return sorted(found, key=lambda s: s.lsn, reverse=True)


def read(snap: SnapshotFile) -> Any:
    """The state stored in a snapshot file; CorruptSnapshot if any check fails."""
    try:
        with open(snap.path, "rb") as f:
            return _read(f, snap.path)
    except (OSError, ValueError, KeyError, TypeError, struct.error, RuntimeError,
            msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as e:
        raise CorruptSnapshot(f"snapshot {snap.path.name}: {e}") from None


def _read(f: BinaryIO, path: Path) -> Any:
    f.seek(0, os.SEEK_END)
    size = f.tell()
    if size < _FOOTER.size:
        raise CorruptSnapshot(f"snapshot {path.name}: truncated ({size} bytes)")
    f.seek(size - _FOOTER.size)
    magic, offset, length, digest = _FOOTER.unpack(f.read(_FOOTER.size))
    if magic != MAGIC or offset + length + _FOOTER.size != size:
        raise CorruptSnapshot(f"snapshot {path.name}: not a cdpcore snapshot or truncated")
    f.seek(offset)
    manifest = f.read(length)
    if xxhash.xxh64_intdigest(manifest) != digest:
        raise CorruptSnapshot(f"snapshot {path.name}: manifest checksum mismatch")
    return _Reader(f, path).tree(msgpack.unpackb(manifest, raw=False, strict_map_key=False))


def remove_older(directory: Path, keep: SnapshotFile, keep_previous: int = 1) -> None:
    """Delete snapshots older than `keep`, except the newest `keep_previous` of them
    (a fallback if `keep` turns out corrupt)."""
    older = [s for s in snapshots(directory) if s.lsn < keep.lsn]
    for snap in older[keep_previous:]:
        snap.path.unlink(missing_ok=True)
    for tmp in directory.glob(f"{PREFIX}*.tmp"):
        tmp.unlink(missing_ok=True)


class _Writer:
    def __init__(self, f: BinaryIO) -> None:
        self.f = f

    def tree(self, node: Any) -> Any:
        if isinstance(node, np.ndarray):
            data = np.ascontiguousarray(node)
            return {"@a": self._blob(data.tobytes()), "dtype": data.dtype.str, "shape": list(data.shape)}
        if isinstance(node, BitMap):
            return {"@b": self._blob(node.serialize())}
        if isinstance(node, dict):
            return {"@d": [[k, self.tree(v)] for k, v in node.items()]}
        if isinstance(node, (list, tuple)):
            return [self.tree(v) for v in node]
        return node

    def _blob(self, raw: bytes) -> list[int]:
        packed = lz4.frame.compress(raw)
        offset = self.f.tell()
        self.f.write(packed)
        return [offset, len(packed), xxhash.xxh64_intdigest(packed)]


class _Reader:
    def __init__(self, f: BinaryIO, path: Path) -> None:
        self.f = f
        self.path = path

    def tree(self, node: Any) -> Any:
        if isinstance(node, dict):
            if "@a" in node:
                raw = self._blob(node["@a"])
                return np.frombuffer(raw, dtype=np.dtype(node["dtype"])).reshape(node["shape"]).copy()
            if "@b" in node:
                return BitMap.deserialize(self._blob(node["@b"]))
            return {k: self.tree(v) for k, v in node["@d"]}
        if isinstance(node, list):
            return [self.tree(v) for v in node]
        return node

    def _blob(self, ref: list[int]) -> bytes:
        offset, length, digest = ref
        self.f.seek(offset)
        packed = self.f.read(length)
        if len(packed) != length or xxhash.xxh64_intdigest(packed) != digest:
            raise CorruptSnapshot(f"snapshot {self.path.name}: blob at {offset} is damaged")
        return lz4.frame.decompress(packed)
