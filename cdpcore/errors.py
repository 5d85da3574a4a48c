"""The CdpError tree: every failure the engine reports on purpose.

The server maps each class to one gRPC status code in a single table, so a new
class here needs a row there (a test walks this tree to check it).
"""
from __future__ import annotations

from dataclasses import dataclass


class CdpError(Exception):
    """Root of every error the engine raises deliberately."""


class SchemaError(CdpError):
    """A field declaration is invalid or conflicts with the existing schema."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class RecordError:
    """One rejected record in a batch: its position, the field at fault, and why."""

    index: int
    field: str | None
    reason: str

    def __iter__(self):  # lets callers unpack (index, field, reason)
        return iter((self.index, self.field, self.reason))


class BatchError(CdpError):
    """A whole batch is unusable (wrong shapes, mismatched lengths)."""


class QueryError(CdpError):
    """A query that cannot be parsed, typed or executed, with its place in the text."""

    def __init__(self, message: str, text: str = "", start: int | None = None,
                 end: int | None = None) -> None:
        self.message = message
        self.text = text
        self.start = start
        self.end = end if end is not None else start
        super().__init__(self._render())

    @property
    def line(self) -> int | None:
        if self.start is None:
            return None
        return self.text.count("\n", 0, self.start) + 1

    @property
    def col(self) -> int | None:
        if self.start is None:
            return None
        return self.start - (self.text.rfind("\n", 0, self.start) + 1) + 1

    def highlight(self) -> str:
        """The offending line with a caret underline, as sqlglot's highlight_sql does."""
        if self.start is None or not self.text:
            return ""
        line_start = self.text.rfind("\n", 0, self.start) + 1
        line_end = self.text.find("\n", self.start)
        line_end = len(self.text) if line_end < 0 else line_end
        width = max(1, min(self.end, line_end - 1) - self.start + 1)
        return self.text[line_start:line_end] + "\n" + " " * (self.start - line_start) + "^" * width

    def _render(self) -> str:
        if self.start is None:
            return self.message
        return f"{self.message} (line {self.line}, col {self.col})"


class NotFound(CdpError):
    """Something named by the caller does not exist."""


class ProfileNotFound(NotFound):
    """No profile has the given id."""


class Overloaded(CdpError):
    """The engine refuses work it cannot take on now."""


class Unavailable(CdpError):
    """A part of the cluster needed for the answer cannot be reached; no partial
    answer is given in its place."""


class FailedPrecondition(CdpError):
    """The request is valid but the target is not in a state to take it (e.g. a shard
    asked for a slot it does not own: the caller should refresh its slot map)."""


class AlreadyExists(CdpError):
    """Creating something whose name is taken (a saved segment)."""


class SegmentNotFound(NotFound):
    """A saved segment name that does not exist."""


class ChangesLost(CdpError):
    """A segment watcher asked for changes older than the retained change log (it fell
    behind or reconnected too late): it must re-read the membership and start over."""
