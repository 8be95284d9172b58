"""The ``number`` filter: one implementation, the same figures in rule annotations and in
notification templates."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.notify.templates import compile_template
from monitor.rules.templating import render
from monitor.textfmt import number, signed

CASES = [
    pytest.param(9828, 1, "9,828", id="thousands-get-separators"),
    pytest.param(9828.4, 1, "9,828", id="thousands-are-whole"),
    pytest.param(-22.345, 1, "-22.3", id="one-decimal-by-default"),
    pytest.param(77.0, 1, "77.0", id="a-whole-percentage-keeps-its-decimal"),
    pytest.param(137, 0, "137", id="precision-zero-for-counts"),
    pytest.param(0.0312, 3, "0.031", id="p-value-to-three-places"),
    pytest.param(None, 1, "n/a", id="none"),
    pytest.param(float("nan"), 1, "n/a", id="nan"),
    pytest.param("Camden", 1, "Camden", id="text-is-left-as-it-is"),
]


@pytest.mark.parametrize(("value", "precision", "text"), CASES)
def test_it_writes_numbers_as_an_analyst_does(value: Any, precision: int, text: str) -> None:
    assert number(value, precision) == text


@pytest.mark.parametrize(("value", "precision", "text"), CASES)
def test_rule_annotations_and_notifications_write_the_same_figure(
        value: Any, precision: int, text: str) -> None:
    source = f"{{{{ value | number({precision}) }}}}"
    assert render(source, {"value": value}) == text
    for fmt in ("text", "html", "slack", "markdown", "mattermost"):
        assert compile_template(fmt, source).render(value=value) == text


@pytest.mark.parametrize(("value", "text"), [
    pytest.param(24.0, "+24.0", id="rise"),
    pytest.param(-3.14, "-3.1", id="fall"),
    pytest.param(0, "0.0", id="no-sign-for-zero"),
    pytest.param(None, "n/a", id="none"),
])
def test_signed_always_shows_the_sign(value: Any, text: str) -> None:
    assert signed(value) == text
    assert render("{{ v | signed }}", {"v": value}) == text
