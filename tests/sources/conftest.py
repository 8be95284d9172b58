"""Fixtures of the sources suite: a loopback site, injected sleep and clock, stores."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.clock import FixedClock
from monitor.sources.base import SourceDeps
from monitor.store import Store, open_store
from tests.sources.sourcekit import NOW, Site, Sleeps, serving


@pytest.fixture
def site() -> Iterator[Site]:
    """A started loopback server; stopped after the test."""
    with serving() as state:
        yield state


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def deps(clock: FixedClock, sleeps: Sleeps) -> SourceDeps:
    return SourceDeps(clock=clock, sleep=sleeps, monotonic=sleeps.monotonic,
                      rng=random.Random(7))




@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'sources.db'}")
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()
