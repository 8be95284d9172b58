"""The config loader, the rule-file loader and the rule-test notation on generated input:
never a traceback, always the documented error with a located message."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from monitor.errors import ConfigError, RuleFileError
from monitor.rules.loader import RuleSet, load_rules
from monitor.rules.testing import parse_series
from monitor.settings import Settings, load
from tests.property.strategies import TEXT, json_values, rule_documents, toml_documents
from tests.property.tally import SETTINGS, scaled, tally
from tests.reliability.rig import REPO


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="monitor-property-") as folder:
        yield Path(folder)


def check_config(text: str, path: Path, environ: dict[str, str] | None = None) -> None:
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        settings = load(path, environ=environ or {})
    except ConfigError as exc:
        assert exc.problems, "a ConfigError carries its problems"
        for problem in exc.problems:
            assert problem.message.strip(), problem
            assert problem.path == str(path) or problem.path.startswith("environment ")
        return
    assert isinstance(settings, Settings)


@SETTINGS
@given(st.text(max_size=400))
def test_the_config_loader_takes_any_text(workdir: Path, text: str) -> None:
    tally("config loader: any text")
    check_config(text, workdir / "any.toml")


@SETTINGS
@given(toml_documents())
def test_the_config_loader_takes_any_toml_with_real_keys(workdir: Path, text: str) -> None:
    tally("config loader: TOML with real keys, values of any type")
    check_config(text, workdir / "shaped.toml")


ENV_KEYS = ["MONITOR_SERVER__LISTEN", "MONITOR_STORE__URL", "MONITOR_STORE__BUSY_TIMEOUT",
            "MONITOR_RULES__HISTORY", "MONITOR_NOTIFY__ROUTE__GROUP_WAIT",
            "MONITOR_SOURCES", "MONITOR_LOGGING__LEVEL", "MONITOR_SERVER__PROTECT_READS"]


@SETTINGS
@given(st.dictionaries(st.sampled_from(ENV_KEYS), TEXT, max_size=4))
def test_the_config_loader_takes_any_environment(workdir: Path, environ: dict[str, str]) -> None:
    tally("config loader: MONITOR_* environment values")
    check_config("", workdir / "env.toml", {k: v.replace("\x00", "") for k, v in environ.items()})


def check_rules(text: str, path: Path) -> None:
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        ruleset = load_rules([path])
    except RuleFileError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.message.strip() and problem.path == str(path), problem
        return
    assert isinstance(ruleset, RuleSet)


@SETTINGS
@given(st.text(max_size=400))
def test_the_rule_loader_takes_any_text(workdir: Path, text: str) -> None:
    tally("rule-file loader: any text")
    check_rules(text, workdir / "any.yaml")


@SETTINGS
@given(rule_documents())
def test_the_rule_loader_takes_any_document_with_real_keys(workdir: Path, document: Any) -> None:
    tally("rule-file loader: YAML documents with real keys")
    check_rules(yaml.safe_dump(document, allow_unicode=True), workdir / "shaped.yaml")


EXAMPLE_RULES = (REPO / "rules" / "mps-2008-09.yaml").read_text(encoding="utf-8")
EXAMPLE_LINES = EXAMPLE_RULES.splitlines()


@scaled(0.5)
@given(st.integers(0, len(EXAMPLE_LINES) - 1), st.sampled_from(["delete", "dup", "replace",
                                                                 "indent"]), TEXT)
def test_the_rule_loader_takes_any_one_line_edit_of_the_example(
        workdir: Path, line: int, edit: str, text: str) -> None:
    tally("rule-file loader: one-line edits of the bundled rules")
    lines = list(EXAMPLE_LINES)
    if edit == "delete":
        del lines[line]
    elif edit == "dup":
        lines.insert(line, lines[line])
    elif edit == "replace":
        indent = re.match(r"\s*", lines[line])
        lines[line] = (indent.group(0) if indent else "") + text
    else:
        lines[line] = " " + lines[line]
    check_rules("\n".join(lines) + "\n", workdir / "edited.yaml")


# --- the rule-test series notation ------------------------------------------------------------

TOKENS = st.one_of(
    st.builds(lambda n: f"_x{n}", st.integers(0, 40)), st.just("_"),
    st.builds(lambda v, s, n: f"{v}{s}x{n}", st.integers(-500, 500),
              st.sampled_from(["+3", "-2", "+0.5", ""]), st.integers(0, 40)),
    st.builds(lambda v, d: f"{v}/{d}", st.integers(0, 500), st.integers(1, 900)),
    st.builds(lambda v: f"{v}p", st.integers(0, 500)),
    st.integers(-10**6, 10**6).map(str))


def expected_length(token: str) -> int:
    found = re.fullmatch(r".*x(\d+)", token)
    return int(found.group(1)) + 1 if found else 1


@SETTINGS
@given(st.lists(TOKENS, max_size=12))
def test_the_series_notation_expands_every_valid_token(tokens: list[str]) -> None:
    tally("rule-test notation: valid tokens")
    points = parse_series(" ".join(tokens))
    assert len(points) == sum(expected_length(t) for t in tokens)


@SETTINGS
@given(st.one_of(st.text(max_size=60), st.lists(st.one_of(TOKENS, TEXT), max_size=8).map(" ".join),
                 st.builds(lambda n: f"_x{n}", st.integers(10**4, 10**12)),
                 st.builds(lambda n: f"7x{n}", st.integers(10**4, 10**12))))
def test_the_series_notation_takes_any_text(text: str) -> None:
    tally("rule-test notation: any text")
    try:
        points = parse_series(text)
    except ValueError as exc:
        assert str(exc).strip()
        return
    assert len(points) <= 10_001 * max(1, len(text.split()))


@SETTINGS
@given(json_values(max_leaves=10))
def test_the_series_notation_takes_any_yaml_value(value: Any) -> None:
    tally("rule-test notation: any YAML value")
    try:
        parse_series(value)
    except ValueError as exc:
        assert str(exc).strip()
