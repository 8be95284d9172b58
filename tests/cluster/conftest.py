"""The cluster's tests run on PostgreSQL only: the store fixture's backend is its."""

from __future__ import annotations

import pytest


@pytest.fixture
def store_url(postgres_url: str) -> str:
    """PostgreSQL alone (replicas share a server store), in a database of the test's own."""
    return postgres_url
