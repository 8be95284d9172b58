"""Fixtures of the reliability suite."""

from __future__ import annotations

import pytest

from tests.reliability.example_daemon import Variants, expected_firing, variants


@pytest.fixture(scope="session")
def example_variants(tmp_path_factory: pytest.TempPathFactory
                     ) -> tuple[Variants, dict[str, set[str]]]:
    """The two versions of the example's data, and the alerts each fires (computed once)."""
    root = tmp_path_factory.mktemp("variants")
    return variants(root), expected_firing(root)
