"""MapLock represents the router's slot-map lock: many users at once, or one flip.

Every operation that routes by the slot map (a write's apply, a query's fan-out, a
lookup) holds it shared for the length of its shard calls; flipping ownership of a
batch of moving slots holds it exclusively for a few milliseconds. So no query sees
half a flip (a profile counted on both shards or on neither) and no write reaches a
shard after its slots moved. Writer-preferring: once a flip waits, new users queue
behind it, so a stream of queries cannot starve a migration.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Callable, Iterator


class MapLock:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._users = 0
        self._flipping = False
        self._waiting_flips = 0

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        release = self.acquire_shared()
        try:
            yield
        finally:
            release()

    def acquire_shared(self) -> Callable[[], None]:
        """Shared use that may end on another thread (a write queued here, acknowledged
        by an applier thread): returns the release, to be called exactly once."""
        with self._cond:
            while self._flipping or self._waiting_flips:
                self._cond.wait()
            self._users += 1
        return self._release_shared

    def _release_shared(self) -> None:
        with self._cond:
            self._users -= 1
            if not self._users:
                self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self, timeout: float | None = None) -> Iterator[None]:
        """Raises TimeoutError when users still hold it after `timeout` seconds (a long
        stream): the flip gives way, and the users queued behind it go on."""
        with self._cond:
            self._waiting_flips += 1
            try:
                if not self._cond.wait_for(lambda: not (self._flipping or self._users), timeout):
                    raise TimeoutError(f"the slot map stayed in use for {timeout} s")
            finally:
                self._waiting_flips -= 1
                self._cond.notify_all()
            self._flipping = True
        try:
            yield
        finally:
            with self._cond:
                self._flipping = False
                self._cond.notify_all()
