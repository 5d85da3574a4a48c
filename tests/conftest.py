"""Shared test setup: hypothesis profiles and store fixtures.

Profiles (STYLE practice 17): `HYPOTHESIS_PROFILE=ci|dev|long|debug` picks one; otherwise
`ci` when the CI variable is set, else `dev`. `dev` keeps the property suite (oracle,
properties, state machine) near one CPU-minute on a 2-core machine; `ci` is smaller
and derandomized so a red build reproduces; `long` is for nightly runs; `debug` prints
every example.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Verbosity, settings

# The oracle and strategies are plain modules next to the tests.
sys.path.insert(0, str(Path(__file__).resolve().parent))

_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=100, **_COMMON)
settings.register_profile("ci", max_examples=50, derandomize=True, print_blob=True, **_COMMON)
settings.register_profile("long", max_examples=1000, **_COMMON)
settings.register_profile("debug", max_examples=10, verbosity=Verbosity.verbose, print_blob=True, **_COMMON)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
settings.load_profile(PROFILE)


def pytest_report_header(config):
    return f"hypothesis profile: {PROFILE}"


@pytest.fixture
def make_store():
    """Factory for in-process stores on the tests' fixed clock, closed after the test."""
    from cdpcore import Store
    from strategies import clock

    stores = []

    def make(shards: int = 1, **kwargs):
        stores.append(Store(shards=shards, clock=clock, **kwargs))
        return stores[-1]

    yield make
    for store in stores:
        store.close()
