"""Reading JSON Lines: one profile record (a JSON object with a string profile_id) a line."""
from __future__ import annotations

import json
from typing import IO, Any, Iterator

from cdpcore.schema import ID_FIELD

from .batch import Batch, Rejection


def jsonl_batches(stream: IO[bytes], size: int) -> Iterator[Batch]:
    """Batches of `size` records from JSON Lines; blank lines are skipped."""
    batch, number = Batch(), 0
    for number, line in enumerate(stream, 1):
        if line.isspace():
            continue
        record, problem = parse_json_line(line)
        if problem:
            batch.rejected.append(Rejection(number, *problem))
        else:
            batch.records.append(record)
            batch.lines.append(number)
        if len(batch.records) == size:
            batch.progress = number
            yield batch
            batch = Batch()
    batch.progress = number
    yield batch


_decode_json = json.JSONDecoder().decode     # what json.loads uses for text


def parse_json_line(line: bytes) -> tuple[dict[str, Any], tuple[str, str] | None]:
    """A line as a profile record, or the (field, reason) it is rejected for."""
    try:
        # plain UTF-8 text (nearly every line) skips json.loads' encoding detection
        record = _decode_json(line.decode("utf-8"))
    except (ValueError, RecursionError):
        try:         # json.loads itself: a byte-order mark, UTF-16/32, and its own reasons
            record = json.loads(line)
        except json.JSONDecodeError as e:
            return {}, ("", f"invalid JSON: {e.msg} (column {e.colno})")
        except ValueError as e:      # bytes that are not UTF-8
            return {}, ("", f"invalid JSON: {e}")
        except RecursionError:
            return {}, ("", "invalid JSON: nested too deeply")
    if not isinstance(record, dict):
        return {}, ("", f"expected a JSON object, got {type(record).__name__}")
    pid = record.get(ID_FIELD)
    if pid is None:
        return {}, (ID_FIELD, "missing")
    if not isinstance(pid, str):
        return {}, (ID_FIELD, f"must be a string, got {type(pid).__name__}")
    return record, None
