"""Shared test setup: hypothesis profiles and store fixtures.

Profiles (STYLE practice 17): `HYPOTHESIS_PROFILE=ci|dev|long|debug` picks one; otherwise
`ci` when the CI variable is set, else `dev`. Budgets are sized so the whole
property suite runs in about two minutes on a 2-core machine under `dev`.
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
settings.register_profile("dev", max_examples=40, **_COMMON)
settings.register_profile("ci", max_examples=25, derandomize=True, print_blob=True, **_COMMON)
settings.register_profile("long", max_examples=1000, **_COMMON)   # nightly / before a release
settings.register_profile("debug", max_examples=10, verbosity=Verbosity.verbose, print_blob=True, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))


@pytest.fixture
def make_store():
    """Factory for in-process stores with the tests' fixed clock."""
    from cdpcore import Store
    from strategies import clock

    def make(shards: int = 1, **kwargs):
        return Store(shards=shards, clock=clock, **kwargs)

    return make
