"""A matrix's label index finds each series' row, made a label at a time or row by row.

``Matrix.index`` is what a series' page looks its row up in (and the ranks, the peer
groups, a parent's children). ``data.label_index`` makes it a label name at a time when
every series has every name and all of them are text, and row by row otherwise; both
must give exactly ``{labels_of(row): i}``, keys and their order, so a page finds the
same series either way.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.model import labels_of, month
from monitor.rules.cycle import Cycle, Evaluator
from monitor.rules.data import label_index
from monitor.rules.engine import Dataset, month_end
from monitor.rules.loader import load_rules
from tests.rules.conftest import REPO


def reference(labels: list[dict[str, Any]]) -> dict[tuple[tuple[str, str], ...], int]:
    return {labels_of(lab): i for i, lab in enumerate(labels)}


def names(labels: list[dict[str, Any]]) -> set[str]:
    return set().union(*labels) if labels else set()


def test_every_seed_matrix_finds_each_series_at_its_row(seed_dataset: Dataset) -> None:
    ruleset = load_rules([REPO / "rules"])
    at = month_end(month("2008-03"))
    evaluation = Evaluator(ruleset).run(seed_dataset, {}, Cycle(at=at, now=at))
    checked = 0
    for m in evaluation.matrices.values():
        made = m.index()
        assert made == reference(m.labels)
        assert list(made) == list(reference(m.labels))
        for i, lab in enumerate(m.labels):  # as a page looks a series up
            assert made[labels_of(lab)] == i
            checked += 1
    assert checked > 100


@pytest.mark.parametrize("labels", [
    [{"area": "Camden"}, {"area": "Hackney"}],
    [{"force": "MPS", "area": "Camden"}, {"area": "Hackney", "force": "MPS"}],
    [{"area": "Camden"}, {"area": "Camden"}, {"area": "Hackney"}],  # twice: its last row
    [{"area": "Camden"}, {"force": "MPS"}],  # not every name on every row
    [{"area": "Camden"}, {}],
    [{}],
    [],
    [{"area": "Camden"}, {"area": 7}],  # a value that is not text
], ids=["one-name", "two-names", "twice", "mixed-names", "one-empty", "empty", "none",
        "number"])
def test_the_index_is_labels_of_each_row(labels: list[dict[str, Any]]) -> None:
    made = label_index(labels, names(labels))
    assert made == reference(labels)
    assert list(made) == list(reference(labels))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(["area", "force", "bcu"]),
                                st.one_of(st.text(max_size=3), st.integers(0, 3)),
                                max_size=3), max_size=12))
def test_any_label_sets_give_the_row_by_row_index(labels: list[dict[str, Any]]) -> None:
    made = label_index(labels, names(labels))
    assert made == reference(labels)
    assert list(made) == list(reference(labels))
