"""`cdp ingest --events` end to end: JSON Lines and CSV files of events loaded by the real
CLI into a real cluster; bad lines named by number; answers equal to an embedded Store
that tracked the same valid events."""
from __future__ import annotations

import csv
import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cdpcore import Store
from server import codec
from server.cli.ingest.events import columnar
from server.pb.cdp.v1 import profile_store_pb2 as pb

pytestmark = pytest.mark.e2e

SUMMARY = re.compile(r"accepted (\d+), rejected (\d+) in [\d.]+ s \([\d,]+ events/s\)")
DAY_S = 86_400
QUERIES = [
    "SELECT count(*) FROM profiles",
    "SELECT count(*) FROM profiles WHERE event_count('purchase', '30d') >= 2",
    "SELECT count(*) FROM profiles WHERE event_sum('purchase', 'amount', '90d', category = 'shoes') > 50",
    "SELECT count(*) FROM profiles WHERE last_seen('app_open') < now() - INTERVAL '14 days'",
    "SELECT count(*) FROM profiles WHERE event_count('view', '1d') >= 1",
    "SELECT profile_id, event_count('purchase') AS n, event_sum('purchase', 'amount') AS spent, "
    "first_seen('view') AS first FROM profiles ORDER BY spent DESC, profile_id LIMIT 10",
]


def counts(out: str) -> tuple[int, int]:
    match = SUMMARY.search(out)
    assert match, out
    return int(match[1]), int(match[2])


def make_records(n: int, seed: int) -> list[dict[str, Any]]:
    """Events of 300 profiles over 200 days (half a day off whole days, so windows agree);
    a fifth carry no time (the router's clock); times as ISO text or epoch seconds."""
    rng = np.random.default_rng(seed)
    now = time.time()
    records = []
    for i in range(n):
        kind = ["view", "app_open", "add_to_cart", "purchase"][rng.choice(4, p=[0.5, 0.2, 0.2, 0.1])]
        record: dict[str, Any] = {"profile_id": f"e{rng.integers(300):04d}", "type": kind}
        seconds = now - int(rng.integers(0, 200)) * DAY_S - DAY_S / 2 + int(rng.integers(-6, 6)) * 3600
        if i % 5:
            record["ts"] = round(seconds) if i % 2 else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
        if kind in ("add_to_cart", "purchase"):
            record["category"] = ["shoes", "books", "toys"][rng.integers(3)]
        if kind == "purchase":
            record["amount"] = round(float(rng.lognormal(3.5, 1.0)), 2)
        records.append(record)
    return records


def embedded(records: list[dict[str, Any]]) -> Store:
    store = Store(shards=1)
    result = store.track(records)
    assert result.accepted == len(records) and not result.errors, result.errors[:3]
    return store


def assert_same_answers(running, store: Store) -> None:
    """Through the gRPC client (the CLI's query command is tested elsewhere; a process
    start per query would only slow this down)."""
    for sql in QUERIES:
        got = codec.query_result(running.store.Query(pb.QueryRequest(sql=sql)))
        want = store.query(sql)
        assert got.columns == want.columns, sql
        assert got.rows == [tuple(pytest.approx(v, rel=1e-9) if isinstance(v, float) else v for v in row)
                            for row in want.rows], sql
        assert got.warnings == [], sql


def write_lines(path: Path, lines: list[str], bad: dict[int, str]) -> None:
    """The lines, with `bad[n]` placed as line n."""
    lines = list(lines)
    for number in sorted(bad):
        lines.insert(number - 1, bad[number])
    path.write_text("\n".join(lines) + "\n")


def test_jsonl_events_load_and_bad_lines_are_named(local_cluster, tmp_path):
    records = make_records(3000, seed=5)
    # the second batch of 1000 holds a bool property: it goes as rows (the others as
    # columns), where the engine rejects only that event
    records[1500]["vip"] = True
    bad = {5: '{"profile_id": "x1", "type": "view"',                     # invalid JSON (here)
           900: '{"type": "view"}',                                       # no id (here)
           1200: '{"profile_id": "x2", "type": ""}',                      # no type (server)
           1800: '{"profile_id": "x3", "type": "view", "ts": "2026-13-45"}',   # bad text (server)
           2400: '{"profile_id": "x4", "type": "view", "ts": 1e300}',      # out of range (here)
           2900: '{"profile_id": "x5", "type": "purchase", "amount": "lots"}'}  # amount is a float
    path = tmp_path / "events.jsonl"
    write_lines(path, [json.dumps(r) for r in records], bad)
    assert columnar([r for r in records[:1000]], {}) is not None
    assert columnar(records[1000:2000], {}) is None
    out = local_cluster.cdp("ingest", "--events", str(path), "--batch", "1000")
    assert counts(out.stdout) == (2999, 7), out.stdout
    for expected in ["line 5: invalid JSON", "line 900: profile_id: missing", "line 1504: vip: ",
                     "line 1200: type: an event needs a type", "line 1800: ts: not an ISO-8601 timestamp",
                     "line 2400: ts: timestamp out of range", "line 2900: amount: expected float"]:
        assert expected in out.stdout, (expected, out.stdout)
    assert "events" in out.stderr                 # the progress bar counts events
    assert_same_answers(local_cluster, embedded(records[:1500] + records[1501:]))


def test_csv_events_are_typed_by_column_and_bad_cells_named(local_cluster, tmp_path):
    """amount is known to be a float (from an earlier load), so a cell that is not a
    number rejects its line instead of making the whole column strings."""
    records = make_records(2000, seed=6)
    seed = {"profile_id": "e0000", "type": "purchase", "ts": "2025-01-01T00:00:00Z", "amount": 1.0}
    local_cluster.cdp("ingest", "--events", "-", stdin=json.dumps(seed) + "\n")
    path = tmp_path / "events.csv"
    names = ["profile_id", "type", "ts", "amount", "category"]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(names)
        for i, r in enumerate(records):
            writer.writerow(["" if r.get(n) is None else r[n] for n in names])
            if i == 99:                        # file line 102
                writer.writerow(["bad1", "purchase", "", "abc", "shoes"])
            if i == 999:                       # line 1003
                writer.writerow(["bad2", "view", "2026-13-45", "", ""])
            if i == 1499:                      # line 1504
                writer.writerow(["bad3", "", "", "", ""])
    out = local_cluster.cdp("ingest", "--events", str(path), "--batch", "700")
    assert counts(out.stdout) == (2000, 3), out.stdout
    assert "line 102: amount: expected float, got 'abc'" in out.stdout
    assert "line 1003: ts: not an ISO-8601 timestamp: '2026-13-45'" in out.stdout
    assert "line 1504: type: an event needs a type" in out.stdout
    assert_same_answers(local_cluster, embedded([seed] + records))


def test_csv_events_need_a_type_column(local_cluster, tmp_path):
    path = tmp_path / "no_type.csv"
    path.write_text("profile_id,amount\nu1,3\n")
    out = local_cluster.cdp("ingest", "--events", str(path), check=False)
    assert out.returncode == 1 and "must name a type column" in out.stderr


def test_csv_property_types_are_inferred_or_taken_from_the_schema(local_cluster, tmp_path):
    first = tmp_path / "first.csv"
    first.write_text("profile_id,type,code,size\nu1,view,10,7\nu2,view,x9,8\n")
    assert counts(local_cluster.cdp("ingest", "--events", str(first)).stdout) == (2, 0)
    second = tmp_path / "second.csv"          # code is a string property now: 42 stays text
    second.write_text("profile_id,type,code,size\nu3,view,42,9.5\nu4,view,43,big\n")
    out = local_cluster.cdp("ingest", "--events", str(second)).stdout
    assert counts(out) == (1, 1) and "line 3: size: expected float, got 'big'" in out
    got = json.loads(local_cluster.cdp("profile", "get", "u3", "--json").stdout)
    assert got["events"][0]["code"] == "42" and got["events"][0]["size"] == 9.5
