"""CLI parity with amtool and promtool (issue 17): ``monitor routes show|test`` and
``monitor diff --backtest``, judged by their output on real configs and a real store."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from monitor.cli import main
from tests.conftest import REPO
from tests.http.conftest import Served

ROUTES = """
[[notify.receivers]]
name = "team"
[[notify.receivers]]
name = "pager"
[[notify.receivers]]
name = "audit"

[notify.route]
receiver = "team"
group_by = ["alertname"]

[[notify.route.routes]]
matchers = ['severity="critical"']
receiver = "pager"
group_by = ["alertname", "borough"]
continue = true

[[notify.route.routes.routes]]
matchers = ['borough="Camden"']
group_wait = "10s"

[[notify.route.routes]]
matchers = ['severity=~"critical|warning"']
receiver = "audit"
"""


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def routes_config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(ROUTES, encoding="utf-8")
    return path


def test_routes_show_prints_the_tree_with_what_each_node_inherits(routes_config: Path) -> None:
    code, out, _ = run("routes", "show", "--config", str(routes_config))
    assert code == 0
    assert out == (
        "Routing tree:\n"
        "default-route  receiver: team  group_by: [alertname]\n"
        '├── {severity="critical"}  receiver: pager  group_by: [alertname, borough]'
        "  continue: true\n"
        '│   └── {borough="Camden"}  receiver: pager  group_by: [alertname, borough]\n'
        '└── {severity=~"critical|warning"}  receiver: audit  group_by: [alertname]\n')


@pytest.mark.parametrize(("labels", "receivers"), [
    pytest.param(["alertname=BurglaryRising", "severity=critical", "borough=Camden"],
                 "pager,audit", id="continue-then-sibling"),
    pytest.param(["alertname=BurglaryRising", "severity=warning"], "audit", id="regex"),
    pytest.param(["alertname=BurglaryRising", 'severity="info"'], "team", id="root"),
])
def test_routes_test_names_the_receivers_like_amtool(routes_config: Path, labels: list[str],
                                                     receivers: str) -> None:
    code, out, _ = run("routes", "test", "--config", str(routes_config), *labels)
    assert code == 0
    assert out.splitlines()[0] == receivers


def test_routes_test_says_which_group_and_timings(routes_config: Path) -> None:
    code, out, _ = run("routes", "test", "--config", str(routes_config), "--tree",
                       "alertname=BurglaryRising", "severity=critical", "borough=Camden")
    assert code == 0
    assert '│   └── {borough="Camden"}  receiver: pager  group_by: [alertname, borough]' \
        "  <-- matched" in out
    assert ('    receiver pager, group {alertname="BurglaryRising", borough="Camden"}\n'
            "    group_wait 10s, group_interval 5m, repeat_interval 4h") in out


def test_routes_test_verifies_receivers_for_ci(routes_config: Path) -> None:
    args = ("routes", "test", "--config", str(routes_config), "severity=warning")
    assert run(*args, "--verify-receivers", "audit")[0] == 0
    code, _, err = run(*args, "--verify-receivers", "pager")
    assert code == 1
    assert "expected receivers pager, got audit" in err


def test_routes_test_refuses_a_pattern_for_a_label(routes_config: Path) -> None:
    code, _, err = run("routes", "test", "--config", str(routes_config), 'severity=~"crit.*"')
    assert code == 1
    assert "an alert has label values, not patterns: write severity=VALUE" in err


@pytest.fixture
def edited(tmp_path: Path) -> Path:
    """The bundled rules with ResidentialBurglarySpecialCause widened to every force and
    to the last three months."""
    text = (REPO / "rules" / "mps-2008-09.yaml").read_text(encoding="utf-8")
    rule = text.index("- alert: ResidentialBurglarySpecialCause")
    head, tail = text[:rule], text[rule:]
    tail = tail.replace("        match: {force: Metropolitan Police Service}\n", "", 1)
    tail = tail.replace("spc: {signal: concern, last: 1}", "spc: {signal: concern, last: 3}", 1)
    path = tmp_path / "edited.yaml"
    path.write_text(head + tail, encoding="utf-8")
    return path


def test_diff_backtest_shows_how_an_edit_changes_past_alerts(mps: Served, edited: Path) -> None:
    code, out, _ = run("diff", "--config", str(mps.config), "--backtest", "2007-04..2008-07",
                       str(edited))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == ("Backtest 2007-04..2008-07: running rules vs "
                        f"{edited}; 1 of 11 rules would alert differently")
    row = next(line for line in lines if line.startswith("ResidentialBurglarySpecialCause"))
    assert re.sub(r" +", " ", row) == (
        "ResidentialBurglarySpecialCause 1 7 Dec-07 Nov-07 fired 1× → 7×, first Nov-07 "
        "(was Dec-07); +6/-0 series")
    assert '  + ResidentialBurglarySpecialCause {force="Greater Manchester Police"}' in lines


def test_diff_backtest_writes_markdown_for_a_pull_request(mps: Served, edited: Path) -> None:
    code, out, _ = run("diff", "--config", str(mps.config), "--backtest", "2007-04..2008-07",
                       "--format", "markdown", str(edited))
    assert code == 0
    assert out.startswith("### Backtest 2007-04..2008-07: 1 of 11 rules would alert "
                          "differently\n")
    assert ("| `ResidentialBurglarySpecialCause` | 1 | 7 | Dec-07 | Nov-07 | fired 1× → 7×, "
            "first Nov-07 (was Dec-07); +6/-0 series |") in out
    assert '- added `{force="Greater Manchester Police"}`' in out


def test_diff_backtest_of_unchanged_rules_changes_nothing(mps: Served) -> None:
    code, out, _ = run("diff", "--config", str(mps.config), "--backtest", "2008-01..2008-07")
    assert code == 0
    assert "0 of 11 rules would alert differently" in out.splitlines()[0]


@pytest.mark.parametrize(("span", "message"), [
    pytest.param("2008-07", "write the months as FROM..TO", id="no-dots"),
    pytest.param("2008-07..2008-01", "TO is before FROM", id="backwards"),
])
def test_diff_backtest_explains_a_bad_span(mps: Served, span: str, message: str) -> None:
    code, _, err = run("diff", "--config", str(mps.config), "--backtest", span)
    assert code == 2
    assert message in err


def test_the_scorecard_metric_counts_the_scorecards_rows(mps: Served) -> None:
    """What the dashboard's Red tile counts is what the scorecard page shows red."""
    import httpx

    text = httpx.get(f"{mps.url}/metrics", timeout=30).text
    scorecard = [line for line in text.splitlines()
                 if line.startswith("monitor_scorecard_status{")]
    every = [line for line in text.splitlines() if line.startswith("monitor_indicator_status{")]
    reds = [line for line in scorecard if line.endswith(" 3.0") or line.endswith(" 3")]
    rows = mps.app.rules.scorecard() if mps.app.rules is not None else []
    assert len(scorecard) == len(rows)
    assert len(reds) == sum(1 for r in rows if r.status.code == 3)
    all_reds = sum(1 for line in every if line.endswith(" 3"))
    print(f"scorecard red {len(reds)}, every series red {all_reds}")
    assert len(reds) < all_reds  # peers and sub-indicators are not on the scorecard
    # …and row for row what the scorecard page shows: the same indicators, each with the
    # status the page gives it (not only as many reds).
    from collections import Counter

    from monitor.model import Status

    page = httpx.get(f"{mps.url}/scorecard", timeout=30).text
    shown = Counter(re.findall(r'<tr class="series-row[^"]*" data-indicator="([^"]+)" '
                               r'data-series="[0-9a-f]+" data-status="([a-z_]+)"', page))
    by_code = {s.code: s.value for s in Status}
    exported = Counter((m.group(1), by_code[int(float(m.group(2)))])
                       for m in (re.match(r'monitor_scorecard_status\{indicator="([^"]+)".*\} '
                                          r'(\S+)$', line) for line in scorecard) if m)
    assert sum(shown.values()) == len(scorecard) >= 10
    assert exported == shown
    assert sum(n for (_, status), n in shown.items() if status == "red") == len(reds)
    assert (f'monitor_server_info{{external_url="{mps.app.settings.server.external_url}"}} 1.0'
            in text.splitlines())
