"""Measuring tools of the benchmarks: process memory (RSS, read so that freed memory
does not count) and repeated timing with median / p95."""
from __future__ import annotations

import ctypes
import gc
import os
import resource
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

# ---- memory -----------------------------------------------------------------------------

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
try:
    _LIBC = ctypes.CDLL("libc.so.6")
except OSError:  # not glibc
    _LIBC = None


def rss_bytes() -> int:
    """Resident set size of this process, now."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        import psutil  # the bench extra
        return psutil.Process().memory_info().rss


def measure_rss() -> int:
    """RSS after a full GC and `malloc_trim(0)`.

    Freed memory glibc still holds (its heap top, arenas) would count as growth though no
    live object holds it; trimming hands it back first, so the reading is live memory
    (plus fragmentation that cannot be returned, which a real process also pays).
    """
    gc.collect()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
    return rss_bytes()


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# ---- timing -------------------------------------------------------------------------------

@dataclass
class Timing:
    times_ms: list[float]
    result: Any

    @property
    def median(self) -> float:
        return statistics.median(self.times_ms)

    @property
    def p95(self) -> float:
        return float(np.percentile(self.times_ms, 95))


def time_it(fn: Callable[[], Any], repeat: int, warmup: int = 1) -> Timing:
    result = None
    for _ in range(warmup):
        result = fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return Timing(times, result)
