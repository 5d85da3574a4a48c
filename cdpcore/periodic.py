"""Periodic represents background work repeated on a timer (segment refreshes, timed
snapshots), in one small class so each user does not grow its own thread loop."""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable


class Periodic:
    """A daemon thread calling `fn` every `interval_s` once started (None: never):
    segment refreshes, timed snapshots. A failing call is logged and retried next tick."""

    def __init__(self, fn: Callable[[], Any], interval_s: float | None) -> None:
        self._fn = fn
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._interval is None or self._thread is not None or self._stop.is_set():
                return
            self._thread = threading.Thread(target=self._run, name="cdp-periodic",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._fn()
            except Exception:  # a failed refresh is retried at the next tick
                logging.getLogger(__name__).exception("periodic task %s failed", self._fn)

    def stop(self) -> None:
        self._stop.set()
