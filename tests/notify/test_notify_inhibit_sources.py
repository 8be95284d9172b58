"""Which alerts may inhibit others: ``AnyOf`` answers as the matchers do, however many
label sets it has remembered."""

from __future__ import annotations

import random

from monitor.matchers import AnyOf, MatcherSet

SETS = [MatcherSet.parse(['alertname="SourceDown"', 'severity=~"critical|page"']),
        MatcherSet.parse(['team!="ops"', 'area=""'])]


def _direct(labels: dict[str, str]) -> bool:
    return any(s.matches(labels) for s in SETS)


def test_it_answers_as_the_matchers_for_every_label_set() -> None:
    rng = random.Random(7)
    source = AnyOf(SETS)
    assert source.names == ("alertname", "area", "severity", "team")
    values = {"alertname": ["SourceDown", "Up", None], "severity": ["critical", "page",
                                                                   "warning", "", None],
              "team": ["ops", "kpi", "", None], "area": ["a1", "", None],
              "other": ["x", None]}
    answers = set()
    for _ in range(2_000):
        labels = {k: v for k, choices in values.items()
                  if (v := rng.choice(choices)) is not None}
        answers.add(source(labels))
        assert source(labels) == _direct(labels), labels
    assert answers == {True, False}


def test_it_starts_again_past_its_limit_and_still_answers() -> None:
    source = AnyOf(SETS)
    source.LIMIT = 3
    for i in range(10):
        labels = {"alertname": "SourceDown", "severity": "critical", "area": f"a{i}"}
        assert source(labels) is True
        assert len(source._memo) <= 3
    assert source({"alertname": "Up", "team": "ops", "area": "a1"}) is False


def test_no_inhibit_rule_is_falsy() -> None:
    assert not AnyOf([])
    assert AnyOf(SETS)
