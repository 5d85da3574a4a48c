"""The write-ahead log: round trips, numbering across reopen and rotation, damage found and
reported by file and offset (torn tails, flipped bytes, foreign files), group commit,
the fsync policies, a full disk, and the data-directory lock.

Damage is made by editing the files directly; fsync and the file write are replaced
through monkeypatch to count calls or simulate failures.
"""
from __future__ import annotations

import errno
import os
import random
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from cdpcore import wal as wal_module
from cdpcore.errors import FailedPrecondition
from cdpcore.wal import DataDirLock, FsyncPolicy, ReplayReport, WriteAheadLog, segment_name

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def wal_dir(tmp_path: Path) -> Path:
    return tmp_path / "shard-0"


@pytest.fixture
def open_wal(wal_dir: Path):
    """Factory for logs in `wal_dir`, all closed after the test."""
    opened: list[WriteAheadLog] = []

    def make(policy: str = "never", **kw) -> WriteAheadLog:
        log = WriteAheadLog(wal_dir, FsyncPolicy.parse(policy), **kw)
        opened.append(log)
        return log

    yield make
    for log in opened:
        try:
            log.close()
        except OSError:
            pass  # a test left it failed on purpose


def make_records(n: int, seed: int = 0, size: int = 100) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(rng.randint(1, size)) for _ in range(n)]


def append_all(log: WriteAheadLog, records: list[bytes]) -> list[int]:
    return [log.append(r) for r in records]


def wal_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("wal-*.log"))


def frame_offsets(path: Path) -> list[int]:
    """Where each frame of a (healthy) WAL file starts, read from the headers."""
    data, offsets, pos = path.read_bytes(), [], 0
    while pos + wal_module.HEADER.size <= len(data):
        _, length, _, _ = wal_module.HEADER.unpack_from(data, pos)
        offsets.append(pos)
        pos += wal_module.HEADER.size + length
    return offsets


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


# ---- round trips and numbering ---------------------------------------------------------

def test_round_trip(open_wal):
    records = [b"", b"x", b"profile" * 2000, random.Random(1).randbytes(5000)] + make_records(50)
    log = open_wal()
    assert append_all(log, records) == list(range(1, len(records) + 1))
    assert list(log.replay()) == list(enumerate(records, 1))
    assert log.last_replay == ReplayReport(len(records), 1, len(records), None)
    assert log.last_lsn == len(records)
    assert log.size_bytes == sum(p.stat().st_size for p in wal_files(log.directory))
    assert log.size_bytes < len(records[2])  # the payloads are compressed


def test_replay_after_lsn_skips_what_a_snapshot_covers(open_wal):
    records = make_records(10)
    log = open_wal()
    append_all(log, records)
    assert list(log.replay(after_lsn=7)) == [(8, records[7]), (9, records[8]), (10, records[9])]
    assert (log.last_replay.frames, log.last_replay.first_lsn) == (3, 8)
    assert list(log.replay(after_lsn=10)) == [] and log.last_replay.first_lsn is None


def test_reopen_continues_numbering(open_wal):
    first, second = make_records(3, seed=1), make_records(2, seed=2)
    log = open_wal()
    append_all(log, first)
    log.close()
    log = open_wal()
    assert log.last_lsn == 3
    assert log.open_report.cut is None and log.open_report.last_lsn == 3
    assert append_all(log, second) == [4, 5]
    assert [r for _, r in log.replay()] == first + second


def test_rotation_and_truncate_before(open_wal):
    records = make_records(40, size=120)
    log = open_wal(segment_bytes=400)
    append_all(log, records)
    files = wal_files(log.directory)
    assert len(files) > 5
    for path in files:  # each file is named for its first record and stays under the limit
        first_lsn = wal_module.HEADER.unpack_from(path.read_bytes(), 0)[2]
        assert path.name == segment_name(first_lsn)
        assert path.stat().st_size <= 400
    assert [r for _, r in log.replay()] == records

    removed = log.truncate_before(17)
    remaining = wal_files(log.directory)
    assert removed and all(p not in remaining for p in removed)
    assert int(remaining[0].name[4:24]) <= 17 < int(remaining[1].name[4:24])
    assert list(log.replay(after_lsn=16)) == list(enumerate(records[16:], 17))
    with pytest.raises(FailedPrecondition, match="missing"):
        list(log.replay(after_lsn=0))  # records 1.. are gone: replaying the rest would lie
    assert log.size_bytes == sum(p.stat().st_size for p in remaining)

    log.truncate_before(10**9)  # never the file being written
    assert wal_files(log.directory) == [remaining[-1]]
    assert log.append(b"more") == 41
    log.close()
    log = open_wal(segment_bytes=400)
    assert log.last_lsn == 41
    assert list(log.replay(after_lsn=40)) == [(41, b"more")]


def test_replay_after_the_end_of_the_log_moves_numbering_past_it(open_wal):
    """A snapshot can be ahead of the log (under `never` the log's tail was lost, the
    snapshot's data was not): new records must not reuse lsns the snapshot covers."""
    log = open_wal()
    append_all(log, make_records(5))
    assert list(log.replay(after_lsn=9)) == []
    assert log.last_lsn == 9 and log.append(b"new") == 10
    log.close()
    log = open_wal()
    assert list(log.replay(after_lsn=9)) == [(10, b"new")]
    assert len(list(log.replay(after_lsn=0, repair=False))) == 5
    assert "starts at lsn 10 but the log continues at lsn 6" in log.last_replay.cut


# ---- damage ------------------------------------------------------------------------------

@pytest.mark.parametrize("keep", [1, 10, 30], ids=["in-magic", "in-header", "in-payload"])
def test_torn_tail(open_wal, keep):
    records = make_records(5, size=200)
    log = open_wal()
    append_all(log, records)
    path = wal_files(log.directory)[-1]
    last = frame_offsets(path)[-1]
    os.truncate(path, last + keep)  # the last frame was half written when the machine died
    torn = path.read_bytes()[last:]

    assert [r for _, r in log.replay(repair=False)] == records[:4]
    assert log.last_replay.cut.startswith(f"file {path.name} offset {last}: ")
    assert "torn" in log.last_replay.cut
    log.close()

    log = open_wal()
    assert log.last_lsn == 4
    assert f"file {path.name} offset {last}" in log.open_report.cut
    assert path.stat().st_size == last
    assert path.with_name(path.name + ".corrupt").read_bytes() == torn  # kept, not erased
    assert log.append(b"after") == 5
    assert [r for _, r in log.replay()] == records[:4] + [b"after"]
    assert log.last_replay.cut is None


@pytest.mark.parametrize("where, reason", [(30, "checksum mismatch"), (8, "checksum mismatch"),
                                           (0, "bad magic")],
                         ids=["payload", "lsn-field", "magic"])
def test_flipped_byte_stops_replay_at_that_frame(open_wal, where, reason):
    records = make_records(10, size=200)
    log = open_wal()
    append_all(log, records)
    path = wal_files(log.directory)[0]
    fifth = frame_offsets(path)[4]
    flip_byte(path, fifth + where)

    assert [r for _, r in log.replay(repair=False)] == records[:4]
    assert log.last_replay.cut.startswith(f"file {path.name} offset {fifth}: {reason}")
    assert (log.last_replay.frames, log.last_replay.last_lsn) == (4, 4)


def test_replay_repairs_damage_so_later_appends_stay_reachable(open_wal):
    """Damage mid-log (not the tail the open checks): after recovery the log must continue
    right after the last good record, or what is appended next is unreachable too."""
    records = make_records(30, size=120)
    log = open_wal(segment_bytes=400)
    append_all(log, records)
    files = wal_files(log.directory)
    damaged = files[2]
    first_lsn = int(damaged.name[4:24])
    flip_byte(damaged, frame_offsets(damaged)[1] + 25)
    log.close()

    log = open_wal(segment_bytes=400)
    assert log.open_report.cut is None  # the last file is fine
    assert [r for _, r in log.replay()] == records[:first_lsn]
    assert "repaired" in log.last_replay.cut
    assert log.last_lsn == first_lsn
    assert log.append(b"acknowledged") == first_lsn + 1
    log.close()

    log = open_wal(segment_bytes=400)
    assert [r for _, r in log.replay()] == records[:first_lsn] + [b"acknowledged"]
    assert log.last_replay.cut is None
    assert len(list(log.directory.glob("wal-*.corrupt*"))) == len(files) - 2  # kept, not erased


def test_garbage_file_inside_the_log_is_reported_by_name(open_wal):
    records = make_records(20, size=120)
    log = open_wal(segment_bytes=400)
    append_all(log, records)
    files = wal_files(log.directory)
    files[1].write_bytes(b"this is not a WAL file" * 10)
    assert [r for _, r in log.replay(repair=False)] == records[:int(files[1].name[4:24]) - 1]
    assert log.last_replay.cut.startswith(f"file {files[1].name} offset 0: bad magic")

    misnamed = log.directory / segment_name(int(files[3].name[4:24]) + 1)
    misnamed.write_bytes(b"\x00" * 64)
    log.close()
    log = open_wal(segment_bytes=400)  # the file list is read at open
    list(log.replay(after_lsn=int(files[2].name[4:24]), repair=False))
    assert log.last_replay.cut.startswith(f"file {misnamed.name} offset 0: the file starts at lsn")


def test_garbage_file_after_the_log_is_set_aside_at_open(open_wal):
    records = make_records(6)
    log = open_wal()
    append_all(log, records)
    log.close()
    garbage = log.directory / segment_name(1000)
    garbage.write_bytes(b"GARBAGE" * 100)
    (log.directory / "notes.txt").write_text("not ours")
    (log.directory / "wal-7.log").write_text("not named like ours (20 digits)")

    log = open_wal()
    assert log.open_report.cut.startswith(f"file {garbage.name} offset 0: bad magic")
    assert not garbage.exists()
    assert (log.directory / (garbage.name + ".corrupt")).read_bytes() == b"GARBAGE" * 100
    assert log.last_lsn == 6 and log.append(b"next") == 7
    assert [r for _, r in log.replay()] == records + [b"next"]
    assert (log.directory / "notes.txt").exists() and (log.directory / "wal-7.log").exists()


def test_a_garbage_only_log_keeps_the_numbering_its_name_promised(open_wal, wal_dir):
    wal_dir.mkdir()
    (wal_dir / segment_name(101)).write_bytes(b"\xffjunk" * 20)
    log = open_wal()
    assert "bad magic" in log.open_report.cut
    assert log.last_lsn == 100 and log.append(b"r") == 101
    assert list(log.replay(after_lsn=100)) == [(101, b"r")]


# ---- fsync policies and group commit -------------------------------------------------

class FsyncSpy:
    """Stands in for os.fsync: records, per call, the last lsn appended when it began
    (everything up to it was written before the fsync started, so the fsync covers it)."""

    def __init__(self, log_ref: list, delay: float = 0.0, fail: OSError | None = None) -> None:
        self.log_ref, self.delay, self.fail = log_ref, delay, fail
        self.real = os.fsync
        self.started: list[tuple[str, int]] = []
        self.covered: list[int] = []  # appended when an fsync has *finished*
        self.lock = threading.Lock()

    def __call__(self, fd: int) -> None:
        begun = self.log_ref[0].last_lsn if self.log_ref else 0
        with self.lock:
            self.started.append((threading.current_thread().name, begun))
        time.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        self.real(fd)
        with self.lock:
            self.covered.append(begun)


def test_group_commit_shares_fsyncs_and_covers_every_sync(open_wal, monkeypatch):
    log = open_wal("always")
    spy = FsyncSpy([log], delay=0.002)
    monkeypatch.setattr(os, "fsync", spy)
    problems: list[str] = []

    def writer(k: int) -> None:
        for i in range(25):
            lsn = log.append(f"{k}:{i}".encode())
            log.sync(lsn)
            if not any(c >= lsn for c in spy.covered):
                problems.append(f"sync({lsn}) returned before an fsync covered it")

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert problems == []
    assert len(spy.started) < 200 / 2  # shared: far fewer fsyncs than records
    assert sorted(r for _, r in log.replay()) == sorted(f"{k}:{i}".encode()
                                                       for k in range(8) for i in range(25))
    assert [lsn for lsn, _ in log.replay()] == list(range(1, 201))


def test_always_fsyncs_once_per_sync_when_alone(open_wal, monkeypatch):
    log = open_wal("always")
    spy = FsyncSpy([log])
    monkeypatch.setattr(os, "fsync", spy)
    lsn = log.append(b"a")
    log.sync(lsn)
    log.sync(lsn)  # already durable
    assert len(spy.started) == 1 and log.durable_lsn == 1
    with pytest.raises(ValueError):
        log.sync(2)  # never appended


def test_fsync_error_reaches_every_waiter_and_stops_the_log(open_wal, monkeypatch):
    log = open_wal("always")
    failing = FsyncSpy([log], delay=0.01, fail=OSError(errno.EIO, "I/O error"))
    monkeypatch.setattr(os, "fsync", failing)
    outcomes: list[object] = []

    def writer() -> None:
        try:
            log.sync(log.append(b"x"))
            outcomes.append("acknowledged")
        except OSError as e:
            outcomes.append(e.errno)

    threads = [threading.Thread(target=writer) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes == [errno.EIO] * 6
    with pytest.raises(OSError, match="unusable after an earlier failure"):
        log.append(b"later")  # a retried fsync could "succeed" without the lost pages


def test_interval_policy_syncs_in_the_background(open_wal, monkeypatch):
    log = open_wal("interval=20")
    spy = FsyncSpy([log])
    monkeypatch.setattr(os, "fsync", spy)
    lsn = log.append(b"a")
    log.sync(lsn)  # returns at once
    assert all(name != threading.current_thread().name for name, _ in spy.started)
    deadline = time.monotonic() + 5
    while log.durable_lsn < lsn and time.monotonic() < deadline:
        time.sleep(0.005)
    assert log.durable_lsn == lsn
    assert spy.started and all(name.startswith("wal-fsync") for name, _ in spy.started)
    flusher = log._flusher
    log.close()
    assert not flusher.is_alive()


def test_never_policy_fsyncs_only_on_close(open_wal, monkeypatch):
    log = open_wal("never", segment_bytes=300)
    spy = FsyncSpy([log])
    monkeypatch.setattr(os, "fsync", spy)
    for record in make_records(20):
        log.sync(log.append(record))
    assert spy.started == [] and len(wal_files(log.directory)) > 1
    log.close()
    assert len(spy.started) == 1


# ---- a full disk -----------------------------------------------------------------------

class FullDisk:
    """Stands in for os.pwrite: while `full`, a write gets half its bytes out, then ENOSPC."""

    def __init__(self) -> None:
        self.real = os.pwrite
        self.full = False
        self.partial = False

    def __call__(self, fd: int, data, offset: int) -> int:
        if not self.full:
            return self.real(fd, data, offset)
        if not self.partial and len(data) > 1:
            self.partial = True
            return self.real(fd, bytes(data[: len(data) // 2]), offset)
        raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("segment_bytes", [1 << 20, 250], ids=["same-file", "while-rotating"])
def test_enospc_append_raises_and_the_log_stays_consistent(open_wal, monkeypatch, segment_bytes):
    disk = FullDisk()
    monkeypatch.setattr(os, "pwrite", disk)
    log = open_wal("always", segment_bytes=segment_bytes)
    before = make_records(3, size=100)
    for r in before:
        log.sync(log.append(r))
    size = log.size_bytes

    disk.full = True
    for _ in range(2):
        with pytest.raises(OSError) as raised:
            log.append(b"not acknowledged" * 10)
        assert raised.value.errno == errno.ENOSPC
    assert disk.partial  # a half frame did reach the file, and was cut off again
    assert log.last_lsn == 3 and log.size_bytes == size
    assert sum(p.stat().st_size for p in wal_files(log.directory)) == size

    disk.full = False  # space freed
    log.sync(log.append(b"after"))
    assert [r for _, r in log.replay()] == before + [b"after"]
    assert log.last_replay.cut is None
    log.close()
    log = open_wal("always", segment_bytes=segment_bytes)
    assert log.open_report.cut is None and log.last_lsn == 4


# ---- policy parsing --------------------------------------------------------------------

@pytest.mark.parametrize("text, mode, ms", [("always", "always", 0), ("never", "never", 0),
                                            ("interval=100", "interval", 100),
                                            (" Interval=5 ", "interval", 5)])
def test_policy_parsing(text, mode, ms):
    policy = FsyncPolicy.parse(text)
    assert (policy.mode, policy.interval_ms) == (mode, ms)
    assert FsyncPolicy.parse(str(policy)) == policy


@pytest.mark.parametrize("text", ["", "sometimes", "interval", "interval=", "interval=0",
                                  "interval=-5", "interval=1.5", "always=1", "interval=10ms"])
def test_bad_policy_names_the_accepted_forms(text):
    with pytest.raises(ValueError) as raised:
        FsyncPolicy.parse(text)
    assert all(form in str(raised.value) for form in ("'always'", "'interval=MS'", "'never'"))


def test_policy_constructor_checks_too():
    with pytest.raises(ValueError):
        FsyncPolicy("interval")
    assert str(FsyncPolicy("interval", 250)) == "interval=250"


# ---- closing ---------------------------------------------------------------------------

def test_closed_log_refuses_appends(open_wal):
    log = open_wal("always")
    log.append(b"a")
    log.close()
    log.close()
    with pytest.raises(FailedPrecondition, match="closed"):
        log.append(b"b")
    log.sync(1)  # durable already: close fsynced it


# ---- the data directory lock -----------------------------------------------------------

def test_data_dir_lock_in_the_same_process(tmp_path):
    first = DataDirLock(tmp_path / "d")
    with pytest.raises(FailedPrecondition, match="is in use by another process"):
        DataDirLock(tmp_path / "d")
    first.release()
    first.release()
    with DataDirLock(tmp_path / "d"):
        pass


def _try_lock_in_subprocess(directory: Path) -> subprocess.CompletedProcess:
    code = textwrap.dedent(f"""
        from cdpcore.wal import DataDirLock
        from cdpcore.errors import FailedPrecondition
        try:
            DataDirLock({str(directory)!r})
        except FailedPrecondition as e:
            print("refused:", e)
        else:
            print("locked")
    """)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=60)


def test_data_dir_lock_across_processes(tmp_path):
    directory = tmp_path / "d"
    with DataDirLock(directory):
        result = _try_lock_in_subprocess(directory)
        assert result.stdout.startswith("refused: data directory"), result.stderr
        assert f"in use by another process (pid {os.getpid()})" in result.stdout
    assert _try_lock_in_subprocess(directory).stdout.strip() == "locked"


def test_data_dir_lock_is_freed_when_its_process_is_killed(tmp_path):
    directory = tmp_path / "d"
    code = (f"from cdpcore.wal import DataDirLock; import time; "
            f"lock = DataDirLock({str(directory)!r}); print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FailedPrecondition, match=f"pid {holder.pid}"):
            DataDirLock(directory)
    finally:
        holder.kill()  # kill -9: no cleanup runs in the holder
        holder.wait()
    DataDirLock(directory).release()


def test_damage_below_the_snapshot_still_leaves_numbering_after_it(open_wal):
    """Damage among records a snapshot already covers: nothing after it can be read, and
    new records must still be numbered after the snapshot, not after the damage."""
    records = make_records(10, size=150)
    log = open_wal()
    append_all(log, records)
    path = wal_files(log.directory)[0]
    flip_byte(path, frame_offsets(path)[2] + 25)
    assert list(log.replay(after_lsn=6)) == []
    assert log.last_replay.cut.startswith(f"file {path.name} offset ")
    assert log.last_lsn == 6 and log.append(b"new") == 7
    log.close()
    log = open_wal()
    assert list(log.replay(after_lsn=6)) == [(7, b"new")]
