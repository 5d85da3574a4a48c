"""WriteAheadLog represents one shard's record of accepted writes, in apply order, on disk.

A write is appended here before the shard applies it and acknowledged only once `sync`
says it is durable, so after a crash the newest snapshot plus the records after it
rebuild every acknowledged write.

On disk: files `wal-<lsn of the first record, 20 digits>.log` in the data directory,
rotated near `segment_bytes`. Each file is a run of frames:

    magic b"W1" | u32 payload length | u64 lsn | u64 xxh64(lsn bytes + payload) | payload

little-endian, where the payload is the record compressed with `lz4.block` (size stored).
Lsns start at 1 and go up by one per record across files, so a reader can tell a missing
or foreign file from a whole log. Records are opaque bytes to this module.

Reading stops at the first frame that fails a check (torn, bad magic, bad length, bad
checksum, lsn out of sequence, payload that does not decompress) and reports the file
and offset: what follows a damaged frame is never applied.
"""
from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

import lz4.block
import xxhash

from .errors import FailedPrecondition
from .files import fsync_dir

MAGIC = b"W1"                            # 'W'AL frame, format version 1
HEADER = struct.Struct("<2sIQQ")         # magic, payload length, lsn, checksum: 22 bytes
LSN = struct.Struct("<Q")
DEFAULT_SEGMENT_BYTES = 64 << 20
LOCK_NAME = "LOCK"
_NAME = re.compile(r"wal-(\d{20})\.log")
ALWAYS, INTERVAL, NEVER = "always", "interval", "never"


def segment_name(first_lsn: int) -> str:
    return f"wal-{first_lsn:020d}.log"


# ---- fsync policy ---------------------------------------------------------------------

@dataclass(frozen=True)
class FsyncPolicy:
    """When appended records reach the disk: before each acknowledgement (`always`), every
    `interval_ms` in the background (`interval`: a crash loses at most that window), or
    whenever the OS writes them back (`never`: a crash of the machine loses an unknown tail;
    a crash of the process alone loses nothing, the records are in the page cache)."""

    mode: str
    interval_ms: int = 0

    FORMS = "'always', 'interval=MS' (MS a positive integer, e.g. 'interval=100') or 'never'"

    def __post_init__(self) -> None:
        if self.mode not in (ALWAYS, INTERVAL, NEVER):
            raise ValueError(f"unknown fsync policy mode {self.mode!r}: expected {self.FORMS}")
        if (self.mode == INTERVAL) != (self.interval_ms > 0):
            raise ValueError(f"fsync policy {self.mode!r} with interval {self.interval_ms} ms: "
                             f"expected {self.FORMS}")

    @classmethod
    def parse(cls, text: str) -> FsyncPolicy:
        """The policy a setting or flag spells (the form `str(policy)` gives back)."""
        spec = text.strip().lower()
        if spec in (ALWAYS, NEVER):
            return cls(spec)
        name, sep, ms = spec.partition("=")
        if name == INTERVAL and sep and ms.isdigit() and int(ms) > 0:
            return cls(INTERVAL, int(ms))
        raise ValueError(f"bad fsync policy {text!r}: expected {cls.FORMS}")

    def __str__(self) -> str:
        return f"{INTERVAL}={self.interval_ms}" if self.mode == INTERVAL else self.mode


# ---- reports --------------------------------------------------------------------------

@dataclass
class ReplayReport:
    """What a read of the log found: how many records, their lsn range (None when there
    were none) and, when it stopped early, where and why ("file wal-….log offset N: …")."""

    frames: int = 0
    first_lsn: int | None = None
    last_lsn: int | None = None
    cut: str | None = None

    def note(self, lsn: int) -> None:
        self.frames += 1
        self.first_lsn = lsn if self.first_lsn is None else self.first_lsn
        self.last_lsn = lsn

    def __str__(self) -> str:
        found = (f"{self.frames} records (lsn {self.first_lsn}..{self.last_lsn})"
                 if self.frames else "no records")
        return found + (f"; cut: {self.cut}" if self.cut else "")


# ---- frames ---------------------------------------------------------------------------

def _checksum(lsn_bytes: bytes, payload: bytes) -> int:
    # the lsn is covered too: a frame copied to another place in the log fails its check
    digest = xxhash.xxh64(lsn_bytes)
    digest.update(payload)
    return digest.intdigest()


def encode_frame(lsn: int, payload: bytes) -> bytes:
    """One frame around an already compressed payload."""
    checksum = _checksum(LSN.pack(lsn), payload)
    return HEADER.pack(MAGIC, len(payload), lsn, checksum) + payload


class _FileScan:
    """Reads the frames of one WAL file in order until the first one that fails a check.

    Iterating yields (lsn, record); records with lsn <= `skip_through` are checked but not
    decompressed (they come back as None). Afterwards `end` is the offset just past the
    last good frame, `next_lsn` the lsn the log continues with, and `cut` says why reading
    stopped before `limit` (None when the file ended cleanly)."""

    def __init__(self, path: Path, name_lsn: int, expected_lsn: int,
                 limit: int | None = None, skip_through: int = 0) -> None:
        self.path = path
        self.name_lsn = name_lsn
        self.next_lsn = expected_lsn
        self.limit = limit
        self.skip_through = skip_through
        self.end = 0
        self.frames = 0
        self.cut: str | None = None

    def where(self) -> str:
        return f"file {self.path.name} offset {self.end}"

    def __iter__(self) -> Iterator[tuple[int, bytes | None]]:
        with open(self.path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            size = size if self.limit is None else min(size, self.limit)
            if self.name_lsn != self.next_lsn:
                self._stop(f"the file starts at lsn {self.name_lsn} but the log continues at "
                           f"lsn {self.next_lsn} (records are missing or the file is misnamed)")
            while self.cut is None and self.end < size:
                frame = self._read(f, size)
                if frame is not None:
                    yield frame

    def _stop(self, reason: str) -> None:
        self.cut = f"{self.where()}: {reason}"

    def _read(self, f: BinaryIO, size: int) -> tuple[int, bytes | None] | None:
        head = f.read(min(HEADER.size, size - self.end))
        if len(head) < HEADER.size:
            return self._stop(f"torn frame header ({len(head)} of {HEADER.size} bytes)")
        magic, length, lsn, checksum = HEADER.unpack(head)
        if magic != MAGIC:
            return self._stop(f"bad magic {magic!r} (not a WAL frame)")
        left = size - self.end - HEADER.size
        if not 0 < length <= left:
            return self._stop(f"bad frame length {length} with {left} bytes left in the file "
                              f"(a torn or corrupt frame)")
        payload = f.read(length)
        if len(payload) < length or _checksum(head[6:14], payload) != checksum:
            return self._stop("checksum mismatch")
        if lsn != self.next_lsn:
            return self._stop(f"lsn {lsn} where lsn {self.next_lsn} was expected")
        record = None if lsn <= self.skip_through else self._decompress(payload)
        if self.cut is not None:
            return None
        self.end += HEADER.size + length
        self.next_lsn += 1
        self.frames += 1
        return lsn, record

    def _decompress(self, payload: bytes) -> bytes | None:
        try:
            return lz4.block.decompress(payload)
        except (lz4.block.LZ4BlockError, ValueError) as e:
            return self._stop(f"payload does not decompress ({e})")


@dataclass
class _Segment:
    first_lsn: int
    path: Path
    size: int = 0


def _list_segments(directory: Path) -> list[_Segment]:
    found = []
    for path in directory.iterdir():
        match = _NAME.fullmatch(path.name)
        if match and path.is_file():
            found.append(_Segment(int(match.group(1)), path, path.stat().st_size))
    return sorted(found, key=lambda s: s.first_lsn)


def _aside_name(path: Path) -> Path:
    n, target = 0, path.with_name(path.name + ".corrupt")
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{n}")
    return target


# ---- the log --------------------------------------------------------------------------

class WriteAheadLog:
    """The WAL of one data directory. Safe for concurrent use.

    Locks: `_lock` guards the active file and the segment list (appends, rotation,
    truncation); `_cond` guards the durable position and group commit. When both are
    needed `_lock` is taken first; nobody fsyncs while holding `_cond`.
    """

    def __init__(self, directory: Path, policy: FsyncPolicy,
                 segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> None:
        """Open (or start) the log in `directory`. `open_report` says what the check of the
        last file found: its records, their lsn range, and what was cut off and where."""
        self.directory = Path(directory)
        self.policy = policy
        self.segment_bytes = segment_bytes
        self.last_replay: ReplayReport | None = None
        self._lock = threading.Lock()
        self._cond = threading.Condition(threading.Lock())
        self._syncing = False
        self._failure: OSError | None = None
        self._fd: int | None = None
        self.directory.mkdir(parents=True, exist_ok=True)
        self._segments, self.open_report = self._open_tail(_list_segments(self.directory))
        self._last_lsn = self._segments[-1].first_lsn + self.open_report.frames - 1
        self._durable_lsn = self._last_lsn  # what is on disk at open counts as durable
        self._fd = os.open(self._active.path, os.O_WRONLY)
        self._stop = threading.Event()
        self._flusher = self._start_flusher()

    # ---- opening ------------------------------------------------------------------------
    def _open_tail(self, segments: list[_Segment]) -> tuple[list[_Segment], ReplayReport]:
        """Check the last file and cut off a damaged tail: records past the last good frame
        can't be read back, and appends after them would be unreachable too.

        A last file with good frames is truncated after them. One with none (a torn first
        frame, or a foreign file named like ours) goes aside whole and the file before it
        becomes the tail; if it was the only file an empty one takes its name, so numbering
        still continues after the lsn that name promised. Cut bytes are kept (see
        `_set_aside`), never deleted."""
        notes: list[str] = []
        if not segments:
            return [self._create(1)], ReplayReport()
        while True:
            tail = segments[-1]
            scan = _FileScan(tail.path, tail.first_lsn, tail.first_lsn)
            report = ReplayReport()
            for lsn, _ in scan:
                report.note(lsn)
            if scan.cut is None:
                break
            notes.append(f"{scan.cut}; {self._set_aside(tail, scan.end)}")
            if scan.end:
                break
            segments.pop()
            if not segments:
                segments.append(self._create(tail.first_lsn))
                break
        report.cut = "; ".join(notes) or None
        return segments, report

    def _set_aside(self, segment: _Segment, offset: int) -> str:
        """Remove everything from `offset` on from the log, keeping the bytes in a file the
        WAL ignores (`wal-….log.corrupt`) for inspection: damage is reported, never erased.
        At offset 0 the whole file is renamed away."""
        target = _aside_name(segment.path)
        if offset == 0:
            segment.path.rename(target)
        else:
            with open(segment.path, "r+b") as f, open(target, "wb") as kept:
                f.seek(offset)
                shutil.copyfileobj(f, kept)
                kept.flush()
                self._fsync_unless_never(kept.fileno())  # the copy first, then the cut
                f.truncate(offset)
                self._fsync_unless_never(f.fileno())
        self._fsync_dir_unless_never()
        cut, segment.size = segment.size - offset, offset
        return f"{cut} bytes set aside in {target.name}"

    def _create(self, first_lsn: int) -> _Segment:
        """A new, empty WAL file. O_EXCL: never overwrite a file that holds records; an
        empty one (left by a rotation that failed halfway) is simply taken over."""
        path = self.directory / segment_name(first_lsn)
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except FileExistsError:
            if path.stat().st_size:
                raise
        self._fsync_dir_unless_never()
        return _Segment(first_lsn, path)

    def _fsync_unless_never(self, fd: int) -> None:
        if self.policy.mode != NEVER:
            os.fsync(fd)

    def _fsync_dir_unless_never(self) -> None:
        """A new or renamed file survives power loss only once its directory is synced."""
        if self.policy.mode != NEVER:
            fsync_dir(self.directory)

    def _start_flusher(self) -> threading.Thread | None:
        if self.policy.mode != INTERVAL:
            return None
        thread = threading.Thread(target=self._flush_every_interval, daemon=True,
                                  name=f"wal-fsync {self.directory.name}")
        thread.start()
        return thread

    # ---- state --------------------------------------------------------------------------
    @property
    def _active(self) -> _Segment:
        return self._segments[-1]

    @property
    def last_lsn(self) -> int:
        """The lsn of the last record appended (0 for a log that never had one)."""
        return self._last_lsn

    @property
    def durable_lsn(self) -> int:
        """The highest lsn known to be fsynced (everything up to it is on disk)."""
        return self._durable_lsn

    @property
    def size_bytes(self) -> int:
        """Bytes in all WAL files (the snapshot trigger watches this grow)."""
        return sum(s.size for s in self._segments)

    def _check_usable(self) -> None:
        if self._failure is not None:
            err = self._failure
            raise OSError(err.errno, f"write-ahead log in {self.directory} is unusable after "
                                     f"an earlier failure ({err}); restart to recover") from err
        if self._fd is None:
            raise FailedPrecondition(f"write-ahead log in {self.directory} is closed")

    def _fail(self, err: OSError) -> None:
        """After a failed fsync the kernel may have dropped the dirty pages and a retry could
        "succeed" without them, so nothing written since can be called durable: refuse all
        further appends and syncs until a restart replays what really is on disk."""
        with self._cond:
            if self._failure is None:
                self._failure = err
            self._cond.notify_all()

    # ---- appending ----------------------------------------------------------------------
    def append(self, record: bytes) -> int:
        """Write one record (to the OS, not yet durable: see `sync`) and return its lsn.

        On an OSError (a full disk) the partial frame is cut off again and the lsn is not
        used, so the log holds exactly the records whose append returned."""
        payload = lz4.block.compress(record, store_size=True)  # outside the lock: the slow part
        with self._lock:
            self._check_usable()
            lsn = self._last_lsn + 1
            frame = encode_frame(lsn, payload)
            if self._active.size and self._active.size + len(frame) > self.segment_bytes:
                self._unlocked_rotate(lsn)
            self._unlocked_write(frame)
            self._last_lsn = lsn
            return lsn

    def _unlocked_write(self, frame: bytes) -> None:
        """Write a whole frame at the end of the active file (caller holds `_lock`)."""
        start, view, done = self._active.size, memoryview(frame), 0
        try:
            while done < len(view):
                done += os.pwrite(self._fd, view[done:], start + done)
        except BaseException:
            self._unlocked_cut_back(start)
            raise
        self._active.size = start + len(frame)

    def _unlocked_cut_back(self, size: int) -> None:
        """Drop a partly written frame; if even that fails the tail is unknown: stop."""
        try:
            os.ftruncate(self._fd, size)
        except OSError as e:
            self._fail(e)

    def _unlocked_rotate(self, next_lsn: int) -> None:
        """Start a new file for `next_lsn` (caller holds `_lock`). The old file is fsynced
        first so that `sync` only ever needs to fsync the active file."""
        old_fd, old_last = self._fd, self._last_lsn
        if self.policy.mode != NEVER:
            self._fsync_or_fail(old_fd)
        segment = self._create(next_lsn)
        self._fd = os.open(segment.path, os.O_WRONLY)
        self._segments.append(segment)
        os.close(old_fd)
        if self.policy.mode != NEVER:
            self._mark_durable(old_last)

    def _fsync_or_fail(self, fd: int) -> None:
        try:
            os.fsync(fd)
        except OSError as e:
            self._fail(e)
            raise

    # ---- durability (group commit) -------------------------------------------------------
    def sync(self, lsn: int) -> None:
        """Return once record `lsn` is as durable as the policy promises.

        `always`: the record is fsynced. Concurrent callers share fsyncs (group commit):
        one caller fsyncs everything appended so far while the others wait, and most of
        them find their record covered when it finishes. `interval` and `never` return at
        once (a background thread or the OS does the writing back). An fsync error is
        raised to every waiter it concerned, and to every later caller (see `_fail`)."""
        if lsn > self._last_lsn:
            raise ValueError(f"sync({lsn}): the last lsn appended is {self._last_lsn}")
        if self.policy.mode == ALWAYS:
            self._sync_through(lsn)
        elif self._failure is not None:
            self._check_usable()

    def _sync_through(self, lsn: int) -> None:
        while not self._wait_or_lead(lsn):
            self._lead_fsync()

    def _wait_or_lead(self, lsn: int) -> bool:
        """True once `lsn` is durable; False when the caller must fsync (it now leads)."""
        with self._cond:
            while True:
                if self._durable_lsn >= lsn:
                    return True
                self._check_usable()
                if not self._syncing:
                    self._syncing = True
                    return False
                self._cond.wait()

    def _lead_fsync(self) -> None:
        try:
            with self._lock:
                self._check_usable()
                covered = self._last_lsn
                # a duplicate, so that a rotation closing the file cannot pull it away mid-fsync
                fd = os.dup(self._fd)
            try:
                self._fsync_or_fail(fd)
            finally:
                os.close(fd)
            self._mark_durable(covered)
        finally:
            with self._cond:
                self._syncing = False
                self._cond.notify_all()

    def _mark_durable(self, lsn: int) -> None:
        with self._cond:
            self._durable_lsn = max(self._durable_lsn, lsn)
            self._cond.notify_all()

    def _flush_every_interval(self) -> None:
        """The `interval` policy's fsyncs; they go through group commit like `sync`'s."""
        while not self._stop.wait(self.policy.interval_ms / 1000):
            try:
                self._sync_through(self._last_lsn)
            except (OSError, FailedPrecondition):
                return  # recorded by _fail (appends now raise it) or the log was closed

    # ---- reading ------------------------------------------------------------------------
    def replay(self, after_lsn: int = 0, repair: bool = True) -> Iterator[tuple[int, bytes]]:
        """Yield (lsn, record) for every record after `after_lsn`, in order, stopping at the
        first damaged frame; `last_replay` says how far it got and where and why it stopped.

        `after_lsn` means "everything through it is applied already" (a snapshot covers
        it). Raises FailedPrecondition when the log starts after after_lsn + 1: records are
        missing, and replaying the rest would build a state that never existed.

        With `repair` (recovery), once the replay has run to its end the log is made to
        continue right after what it yielded, so the next recovery reaches the records
        appended from now on: damaged bytes and any files after them are set aside (kept,
        renamed), and if the log ended before after_lsn (an unsynced tail lost, the
        snapshot kept) numbering jumps to after_lsn + 1, so that no new record reuses an
        lsn the snapshot covers."""
        report = self.last_replay = ReplayReport()
        view, limit, last_lsn = self._replay_view(after_lsn, repair)
        start = max(0, sum(1 for s in view if s.first_lsn <= after_lsn + 1) - 1)
        if view[start].first_lsn > after_lsn + 1:
            report.cut = (f"file {view[start].path.name} offset 0: the log starts at lsn "
                          f"{view[start].first_lsn}, records {after_lsn + 1}.."
                          f"{view[start].first_lsn - 1} are missing")
            raise FailedPrecondition(f"write-ahead log in {self.directory}: {report.cut}")
        expected = view[start].first_lsn
        for i, segment in enumerate(view[start:], start):
            scan = _FileScan(segment.path, segment.first_lsn, expected,
                             limit if i == len(view) - 1 else None, after_lsn)
            for lsn, record in scan:
                if lsn > after_lsn:
                    report.note(lsn)
                    yield lsn, record
            if scan.cut is not None:
                report.cut = scan.cut
                if repair:
                    self._repair(view[:i + 1], view[i + 1:], scan, after_lsn, last_lsn, report)
                return
            expected = scan.next_lsn

    def _replay_view(self, after_lsn: int, repair: bool) -> tuple[list[_Segment], int, int]:
        """The files to read, how much of the active one, and the last lsn: appends that
        land while a replay runs are not part of it."""
        with self._lock:
            if repair and after_lsn > self._last_lsn:
                self._unlocked_jump(after_lsn)
            return list(self._segments), self._active.size, self._last_lsn

    def _repair(self, kept: list[_Segment], later: list[_Segment], scan: _FileScan,
                after_lsn: int, last_lsn: int, report: ReplayReport) -> None:
        """Make the log end at the last good frame `scan` read (see `replay`)."""
        with self._lock:
            if self._last_lsn != last_lsn or self._fd is None:
                return  # appended to meanwhile: the replay was not a recovery, leave it
            notes = [self._set_aside(s, 0) for s in later] + [self._set_aside(kept[-1], scan.end)]
            if scan.end == 0:
                kept[-1] = self._create(scan.next_lsn)
            self._unlocked_reset(kept, scan.next_lsn - 1)
            if after_lsn > self._last_lsn:
                self._unlocked_jump(after_lsn)
        report.cut = f"{report.cut}; repaired: " + "; ".join(notes)

    def _unlocked_reset(self, segments: list[_Segment], last_lsn: int) -> None:
        """Continue the log after `last_lsn` at the end of `segments` (caller holds `_lock`)."""
        os.close(self._fd)
        self._fd = None
        self._segments = segments
        self._fd = os.open(self._active.path, os.O_WRONLY)
        self._last_lsn = last_lsn
        with self._cond:
            self._durable_lsn = last_lsn  # lower too: the next lsns must be fsynced anew

    def _unlocked_jump(self, after_lsn: int) -> None:
        self._check_usable()
        self._unlocked_rotate(after_lsn + 1)
        self._last_lsn = after_lsn
        self._mark_durable(after_lsn)

    # ---- cleaning up --------------------------------------------------------------------
    def truncate_before(self, lsn: int) -> list[Path]:
        """Delete the files whose records all come before `lsn` (a snapshot covers them),
        oldest first, so a crash halfway leaves a log without holes. The active file is
        kept. Returns the files deleted."""
        with self._lock:
            drop = sum(1 for nxt in self._segments[1:] if nxt.first_lsn <= lsn)
            dropped, self._segments = self._segments[:drop], self._segments[drop:]
        for segment in dropped:  # outside the lock: unlinking big files is slow
            segment.path.unlink(missing_ok=True)
        return [s.path for s in dropped]

    def close(self) -> None:
        """Fsync what was appended (whatever the policy), stop the interval thread and
        close the file. Safe to call twice."""
        if self._fd is None:
            return
        self._stop.set()
        if self._flusher is not None:
            self._flusher.join()
        try:
            if self._failure is None:
                self._sync_through(self._last_lsn)
        finally:
            with self._lock:
                if self._fd is not None:
                    os.close(self._fd)
                    self._fd = None

    def __enter__(self) -> WriteAheadLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---- the data directory lock ----------------------------------------------------------

class DataDirLock:
    """DataDirLock represents one process's exclusive use of a data directory.

    `flock` rather than `fcntl`/`lockf` record locks: those belong to the process, so a
    second lock taken in the same process would silently succeed; a flock belongs to the
    open file, so any second open conflicts. The kernel drops it when the process dies
    (kill -9 too), so a LOCK file left behind never blocks a restart."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / LOCK_NAME
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _read_holder(fd)
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            raise FailedPrecondition(f"data directory {self.directory} is in use by another "
                                     f"process{holder}") from None
        os.ftruncate(fd, 0)  # the holder's pid, only to name it in the message above
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd: int | None = fd

    def release(self) -> None:
        """Give the directory up (the LOCK file stays: deleting it would race a new locker)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DataDirLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        pid = int(os.pread(fd, 32, 0).decode().strip())
    except (OSError, ValueError):
        return ""
    return f" (pid {pid}, this process)" if pid == os.getpid() else f" (pid {pid})"
