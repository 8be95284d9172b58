"""An alert's identity made per rule (``AlertIds``) is ``alert_id`` of its labels: the
ids stored by earlier versions stay the ids of the same alerts."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.model import AlertIds, alert_id

NAMES = st.sampled_from(["area", "borough", "category", "indicator", "alertname",
                         "severity", "__group__", "team", "ä", "a b"])
VALUES = st.text(max_size=6)


@settings(max_examples=300, deadline=None)
@given(group=st.text(max_size=5),
       extra=st.dictionaries(NAMES, st.one_of(VALUES, st.integers(), st.booleans()),
                             max_size=4),
       series=st.lists(st.dictionaries(NAMES, VALUES, max_size=5), min_size=1, max_size=6))
def test_each_alert_gets_the_labels_and_id_alert_id_gives(
        group: str, extra: dict[str, object], series: list[dict[str, str]]) -> None:
    ids = AlertIds(group, extra)  # type: ignore[arg-type]  # a rule's labels may be numbers
    for labels in series + series[::-1]:  # every name set seen once, then again (its plan)
        made, key = ids.make(labels)
        expected = {**labels, **extra}
        assert made == expected and list(made) == list(expected)
        assert key == alert_id(group, expected)  # type: ignore[arg-type]
