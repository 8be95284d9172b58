"""Templates render under a budget: a hostile rule annotation or message template is
refused with an error naming the limit it passed, within a bounded amount of memory,
and whatever a template raises, callers see a TemplateError."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, date, datetime
from itertools import count
from pathlib import Path

import pytest
from jinja2 import TemplateError

from monitor.cli import main
from monitor.clock import FixedClock
from monitor.model import Milestone
from monitor.notify.templates import environment
from monitor.rules.engine import Dataset, Engine
from monitor.rules.loader import load_rules
from monitor.rules.templating import render
from monitor.sandbox import BudgetExceeded, TemplateLimits, budget

NOW = datetime(2008, 7, 31, 12, tzinfo=UTC)
MB = 1024 * 1024
# The four the issue names, then one per amplifying filter, method and operator.
HOSTILE = [
    pytest.param("{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}"
                 "{% endfor %}", "templates.max_iterations", id="nested-loops"),
    pytest.param("{{ range(10**8)|list }}", "templates.max_iterations", id="huge-range"),
    pytest.param("{{ 'a'|center(10**9) }}", "templates.max_value_size", id="center"),
    pytest.param("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "RecursionError",
                 id="macro-recursion"),
    pytest.param("{{ 'a'.ljust(10**9) }}", "templates.max_value_size", id="str-ljust"),
    pytest.param("{{ '{:>1000000000}'.format(1) }}", "templates.max_value_size",
                 id="str-format-width"),
    pytest.param("{{ ('{0}' * 100000).format('x' * 100000) }}", "templates.max_value_size",
                 id="str-format-repeat"),
    pytest.param("{{ '%1000000000d' % 1 }}", "templates.max_value_size", id="percent"),
    pytest.param("{{ '%1000000000d'|format(1) }}", "templates.max_value_size",
                 id="format-filter"),
    pytest.param("{{ ('a' * 999999)|replace('a', 'bbbbbbbbbb') }}",
                 "templates.max_value_size", id="replace"),
    pytest.param("{{ (['x' * 900000] * 1000)|join }}", "templates.max_value_size",
                 id="join-filter"),
    pytest.param("{{ ''.join(['x' * 900000] * 1000) }}", "templates.max_value_size",
                 id="str-join"),
    pytest.param("{{ ('a' * 999999)|wordwrap(1) }}", "templates.max_value_size",
                 id="wordwrap"),
    pytest.param("{{ ('\\n' * 500000)|indent(1000) }}", "templates.max_value_size",
                 id="indent"),
    pytest.param("{{ [1]|batch(10**9, 'x')|list }}", "templates.max_value_size",
                 id="batch-fill"),
    pytest.param("{{ range(10)|map('center', 10**9)|list }}", "templates.max_value_size",
                 id="map-center"),
    pytest.param("{{ lipsum(10**6) }}", "templates.max_value_size", id="lipsum"),
    pytest.param("{{ 'a' * 10**9 }}", "templates.max_value_size", id="string-times"),
    pytest.param("{{ 10 ** 10000000 }}", "100,000", id="power"),
    pytest.param("{% set s = 'ab' * 400000 %}{% set s = s ~ s %}{% set s = s ~ s %}{{ s }}",
                 "templates.max_value_size", id="concat-doubling"),
    pytest.param("{% set ns = namespace(x=[1], y=[1]) %}{% for i in range(60) %}"
                 "{% set ns.x = [ns.x, ns.x] %}{% set ns.y = [ns.y, ns.y] %}{% endfor %}"
                 "{{ ns.x == ns.y }}", "templates.max_value_size", id="shared-lists"),
    pytest.param("{% set l = ['x' * 900000] * 1000 %}{{ l }}", "templates.max_output",
                 id="print-shared-string"),
    pytest.param("{% macro m() %}{% for i in range(99999) %}{{ 'x' * 99999 }}{% endfor %}"
                 "{% endmacro %}{{ m()|length }}", "templates.max_built", id="macro-output"),
    pytest.param("{% for i in range(99999) %}{% set a = 'x' * 999999 %}{% endfor %}",
                 "templates.max_built", id="built-in-a-loop"),
]



def _rule_context() -> dict[str, object]:
    return {"labels": {"alertname": "X", "borough": "Camden"}, "value": 1.5,
            "explanation": "e"}


@pytest.mark.parametrize(("template", "limit"), HOSTILE)
def test_a_hostile_rule_annotation_is_refused_naming_the_limit(template: str, limit: str
                                                               ) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(BudgetExceeded) as caught:
            render(template + " ", _rule_context())  # a text no other test renders
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(caught.value).startswith("template budget exceeded: ")
    assert limit in str(caught.value)
    assert peak < 50 * MB, f"{peak / MB:.1f} MiB allocated before the refusal"


@pytest.mark.parametrize("fmt", ["text", "line", "html", "slack", "markdown", "mattermost"])
@pytest.mark.parametrize(("template", "limit"), HOSTILE)
def test_a_hostile_message_template_is_refused_naming_the_limit(template: str, limit: str,
                                                                fmt: str) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(BudgetExceeded) as caught:
            environment(fmt).from_string(template).render(**_rule_context())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert limit in str(caught.value)
    assert peak < 50 * MB, f"{peak / MB:.1f} MiB allocated before the refusal"


@pytest.mark.parametrize(("template", "error"), [
    pytest.param("{{ 10.0 ** 400 }}", "OverflowError: ", id="overflow"),
    pytest.param("{{ 1 // 0 }}", "ZeroDivisionError: ", id="zero-division"),
    pytest.param("{{ [1, 2]|sum(start='') }}", "TypeError: ", id="type-error"),
    pytest.param("\n\n{{ 2 // 0 }}", "(template line 3)", id="names-the-line"),
])
def test_any_exception_in_a_template_becomes_a_template_error(template: str, error: str
                                                              ) -> None:
    for run in (lambda: render(template, {}),
                lambda: environment("text").from_string(template).render()):
        with pytest.raises(TemplateError) as caught:
            run()
        assert error in str(caught.value)


def test_a_render_over_time_is_stopped_naming_the_timeout() -> None:
    ticks = count()

    def clock() -> float:  # every look at the clock is a second later
        return float(next(ticks))

    limits = TemplateLimits(timeout="3s")
    with budget(limits, clock), pytest.raises(BudgetExceeded) as caught:
        environment("text").from_string(
            "{% set s = 'a' * 1000 %}{% for i in range(50) %}{{ s.count('b') }}{% endfor %}"
        ).render()
    assert "rendering took longer than 3s (templates.timeout)" in str(caught.value)


@pytest.mark.parametrize(("setting", "template", "needed"), [
    pytest.param("max_iterations", "{% for i in range(4) %}{% endfor %}", 4, id="loops"),
    pytest.param("max_output", "{{ 'abcd' }}", 4, id="output"),
    pytest.param("max_value_size", "{{ 'ab' * 2 }}", 4, id="value"),
    pytest.param("max_built", "{{ 'ab' * 2 }}{{ 'ab' * 2 }}", 8, id="built"),
])
def test_each_limit_comes_from_the_config(setting: str, template: str, needed: int) -> None:
    with budget(TemplateLimits(**{setting: needed - 1})), \
            pytest.raises(BudgetExceeded) as caught:
        environment("text").from_string(template).render()
    assert f"(templates.{setting})" in str(caught.value)
    with budget(TemplateLimits(**{setting: needed})):
        environment("text").from_string(template).render()


def test_ordinary_templates_render_as_before() -> None:
    template = ("{% for k, v in labels|dictsort %}{{ k }}={{ v }}{{ ', ' if not loop.last }}"
                "{% endfor %} | {{ '%s at %.1f' % (labels.borough, value) }} | "
                "{{ '{}!'.format(explanation) }} | {{ range(3)|map('string')|join('-') }} | "
                "{{ [[1], [2]]|sum(start=[]) }} | {{ 'x'|center(5) }}|")
    expected = ("alertname=X, borough=Camden | Camden at 1.5 | e! | 0-1-2 | [1, 2] | "
                "  x  |")
    assert render(template, _rule_context()) == expected
    assert environment("text").from_string(template).render(**_rule_context()) == expected


def test_a_rule_whose_annotation_exceeds_the_budget_still_alerts_and_is_not_rendered_again(
        tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("""
groups:
  - name: plans
    rules:
      - alert: Overdue
        when: {milestones: {state: overdue}}
        annotations:
          summary: "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}"
          owner: "{{ labels.owner }} owns it"
""")
    engine = Engine(load_rules([rules]))
    overdue = [Milestone(f"M{i}", "Task", "Ops", date(2008, 6, 30), "in_progress", None)
               for i in range(3)]
    result = engine.evaluate(Dataset({}, [("plan", m) for m in overdue]), NOW, {})
    summaries = sorted(r.annotations["summary"] for r in result.records.values())
    assert len(summaries) == 3  # every alert is there
    assert all(s.startswith("(template error: template budget exceeded: more than 100,000 "
                            "loop iterations (templates.max_iterations)") for s in summaries)
    # The first alert spent the budget; the other two were refused without rendering.
    assert sum("not rendered again" in s for s in summaries) == 2
    assert all(r.annotations["owner"] == "Ops owns it" for r in result.records.values())
    assert engine.stats[("plans", "Overdue")].template_errors == 3


def test_monitor_check_warns_about_an_annotation_over_budget(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("""
groups:
  - name: plans
    rules:
      - alert: Overdue
        when: {milestones: {state: overdue}}
        annotations:
          summary: "{{ days_overdue }} days: {{ 'a'|center(10**9) }}"
          fine: "{{ labels.owner }}"
""")
    assert main(["check", str(rules)], clock=FixedClock(NOW)) == 0
    out = capsys.readouterr()
    assert out.out.startswith("OK: 1 files")
    [warning] = out.err.strip().splitlines()
    assert warning.startswith(f"{rules}:5: rule 'Overdue': warning: annotations.summary "
                              "exceeds the template budget on a sample alert")
    assert "the center filter would build a value of 1,000,000,000 characters" in warning


@pytest.mark.parametrize("template", [
    pytest.param("{{ ('a'|center(999999))|list }}", id="filters"),
    pytest.param("{{ ('a' ~ 'b'|center(999999))|list }}", id="concat"),
])
def test_compiling_a_template_computes_nothing(template: str) -> None:
    from monitor.rules.templating import compile_template

    tracemalloc.start()
    try:
        assert compile_template(template) is None
        environment("text").from_string(template)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5 * MB, f"{peak / MB:.1f} MiB to compile"  # it was 80 MiB, folded


@pytest.mark.parametrize("shown", ["d", "d.items()", "d.values()", "[d, d]"])
def test_the_length_of_a_mapping_counts_every_key_and_value(shown: str) -> None:
    template = ("{% set d = {'a': 'x' * 600000, 'b': 'y' * 600000, 'c': 1} %}{{ " + shown
                + " }}")
    with budget(TemplateLimits(max_output=1_000_000)), pytest.raises(BudgetExceeded) as caught:
        environment("text").from_string(template).render()
    assert "(templates.max_output)" in str(caught.value)
