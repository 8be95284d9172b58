"""Label matchers typed in URLs (the ones routes and silences use): selector syntax,
anchored regexes, clear errors."""

from __future__ import annotations

import pytest

from monitor.matchers import Matcher, MatcherError, compile_matchers, parse_all, parse_matchers


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param('borough="Camden"', [Matcher("borough", "Camden")], id="equality"),
    pytest.param('{borough="Camden"}', [Matcher("borough", "Camden")], id="braces"),
    pytest.param('borough!="Camden"', [Matcher("borough", "Camden", "!=")], id="not-equal"),
    pytest.param('borough=~"Cam.*", severity!~"info|debug"',
                 [Matcher("borough", "Cam.*", "=~"), Matcher("severity", "info|debug", "!~")],
                 id="regexes"),
    pytest.param("borough=Camden", [Matcher("borough", "Camden")], id="bare-value"),
    pytest.param("borough='Kensington and Chelsea'",
                 [Matcher("borough", "Kensington and Chelsea")], id="single-quotes"),
    pytest.param(r'note="say \"hi\", then \\ and \n"',
                 [Matcher("note", 'say "hi", then \\ and \n')], id="escapes-and-comma"),
    pytest.param('a="",b="x"', [Matcher("a", ""), Matcher("b", "x")], id="empty-value"),
])
def test_it_parses_selector_syntax(text: str, expected: list[Matcher]) -> None:
    assert parse_matchers(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    pytest.param('"Camden"', 'expected a matcher such as borough="Camden" at character 1',
                 id="no-name"),
    pytest.param('borough="Camden', "the quoted value starting at character 9 is not closed",
                 id="unclosed"),
    pytest.param('borough="a" severity="b"', "expected ',' between matchers at character 13",
                 id="missing-comma"),
    pytest.param('{borough="a"', "must close with '}'", id="unclosed-brace"),
    pytest.param('borough=~"("', 'borough=~"(": invalid regular expression', id="bad-regex"),
    pytest.param("   ", "no matcher found", id="empty"),
])
def test_it_reports_where_a_matcher_is_wrong(text: str, message: str) -> None:
    with pytest.raises(MatcherError) as caught:
        parse_matchers(text)
    assert message in str(caught.value)


@pytest.mark.parametrize(("selectors", "labels", "matches"), [
    pytest.param(['borough="Camden"'], {"borough": "Camden"}, True, id="equal"),
    pytest.param(['borough="Camden"'], {"borough": "Camden Town"}, False, id="equal-is-exact"),
    pytest.param(['borough=~"Cam"'], {"borough": "Camden"}, False, id="regex-is-anchored"),
    pytest.param(['borough=~"Cam.*"'], {"borough": "Camden"}, True, id="regex-whole-value"),
    pytest.param(['borough!~"Cam.*"'], {"borough": "Camden"}, False, id="negative-regex"),
    pytest.param(['ward=""'], {"borough": "Camden"}, True, id="missing-label-is-empty"),
    pytest.param(['ward!=""'], {"borough": "Camden"}, False, id="missing-not-empty"),
    pytest.param(['borough="Camden"', 'severity="critical"'],
                 {"borough": "Camden", "severity": "warning"}, False, id="all-must-hold"),
])
def test_it_matches_like_prometheus(selectors: list[str], labels: dict[str, str],
                                    matches: bool) -> None:
    assert compile_matchers(parse_all(selectors))(labels) is matches


def test_a_matcher_prints_back_in_selector_syntax() -> None:
    matcher = Matcher("note", 'a "b" \\ c', "=~")
    assert parse_matchers(str(matcher)) == [matcher]
