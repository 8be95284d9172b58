"""The pages laid out for reading (issue 17), checked in headless Chromium on the real
daemon: the alerts page at 1400 and 1920 px, its links followed to the month they name,
the rules page by group with each rule's definition and the failed-reload banner, dark
mode on every page, the SPC legend, and ``/api/docs`` without a CDN.
"""

from __future__ import annotations

import io
import os
import re
import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

import httpx
import pytest
from PIL import Image, ImageStat

from monitor.links import rule_url, series_url, silence_url
from tests.conftest import REPO
from tests.http.browser import Browser
from tests.http.conftest import MPS_CONFIG, Served, running

ALERTS_LAYOUT = """(() => {
  const rows = [...document.querySelectorAll('tr.alert-row')];
  return {
    viewport: innerWidth,
    page: document.documentElement.scrollWidth,
    explanation: rows.map(r => r.querySelector('.explanation').getBoundingClientRect().width),
    heights: rows.map(r => r.getBoundingClientRect().height),
    right: Math.max(...rows.map(r => r.getBoundingClientRect().right)),
    labelsOpen: rows.filter(r => r.querySelector('details.labels').open).length,
  };
})()"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with Browser() as chromium:
        yield chromium


@pytest.mark.parametrize("width", [1400, 1920])
def test_it_lays_the_alerts_page_out_for_reading(mps: Served, browser: Browser,
                                                 width: int) -> None:
    browser.open(f"{mps.url}/alerts", width=width)
    layout: dict[str, Any] = browser.evaluate(ALERTS_LAYOUT)
    print(f"{width} px: explanation {min(layout['explanation']):.0f}–"
          f"{max(layout['explanation']):.0f} px wide, rows {min(layout['heights']):.0f}–"
          f"{max(layout['heights']):.0f} px tall")
    assert len(layout["explanation"]) >= 10
    assert layout["page"] <= layout["viewport"]  # nothing runs off-screen
    assert layout["right"] <= width
    assert min(layout["explanation"]) >= 600  # was ~110 px at 1920 px
    assert max(layout["heights"]) <= 240  # was 300–400 px
    assert layout["labelsOpen"] == 0  # labels folded away


HISTORY_LAYOUT = """(() => {
  const table = document.querySelector('table.history');
  const rows = [...table.querySelectorAll('tbody tr')];
  return {
    viewport: innerWidth,
    tableRight: table.getBoundingClientRect().right,
    wrapScroll: table.parentElement.scrollWidth - table.parentElement.clientWidth,
    rows: rows.length,
    chips: rows.map(r => [...r.querySelectorAll('th .chip .chip-k')].map(c => c.textContent)),
  };
})()"""


@pytest.mark.parametrize("width", [1400, 1920])
def test_the_history_page_fits_the_screen_with_each_episodes_labels_under_its_rule(
        mps: Served, browser: Browser, width: int) -> None:
    browser.open(f"{mps.url}/alerts/history", width=width)
    layout: dict[str, Any] = browser.evaluate(HISTORY_LAYOUT)
    assert layout["rows"] >= 10
    # Every column, Sent, Muted and the timeline included, is on screen: at 1400 px the
    # labels' own column pushed them out of the table's scroll box.
    assert layout["wrapScroll"] <= 0
    assert layout["tableRight"] <= layout["viewport"]
    assert all("severity" in names for names in layout["chips"])  # the labels, under the rule
    assert not any("alertname" in names for names in layout["chips"])  # the rule's name itself


ROWS = """[...document.querySelectorAll('tr.alert-row')].map(r => ({
  alert: r.dataset.alert, rule: r.dataset.rule,
  value: r.querySelector('.c-value').textContent.trim(),
  raw: r.querySelector('.c-value').dataset.value,
  series: r.querySelector('a.link-series')?.getAttribute('href') || '',
  ruleLink: r.querySelector('a.link-rule').getAttribute('href'),
  silence: r.querySelector('a.link-silence').getAttribute('href'),
}))"""


def alert_rows(served: Served, browser: Browser, query: str = "") -> list[dict[str, str]]:
    browser.open(f"{served.url}/alerts{query}", width=1400)
    rows: list[dict[str, str]] = browser.evaluate(ROWS)
    return rows


def test_alert_values_are_written_in_their_indicators_unit(mps: Served,
                                                           browser: Browser) -> None:
    rows = {r["rule"]: r for r in alert_rows(mps, browser)}
    burglary = rows["BurglaryRisingWhileAcquisitiveCrimeFalls"]
    assert burglary["value"] == "+0.6%"
    assert float(burglary["raw"]) == pytest.approx(0.611, abs=0.001)
    assert rows["VictimSatisfactionBelowTarget"]["value"] == "77.0%"


def test_the_alerts_header_counts_what_the_filter_keeps(mps: Served, browser: Browser) -> None:
    counts = "document.getElementById('alert-counts').textContent.trim()"
    browser.open(f"{mps.url}/alerts?match=" + quote('alertname="VictimSatisfactionBelowTarget"'))
    filtered = browser.evaluate(counts)
    browser.open(f"{mps.url}/alerts")
    everything = browser.evaluate(counts)
    assert filtered.startswith("1 firing · 0 pending")
    assert "matching the filter" in filtered
    assert not everything.startswith("1 firing") and "matching" not in everything


def test_each_alert_row_links_its_series_month_rule_and_a_silence(mps: Served,
                                                                  browser: Browser) -> None:
    rows = alert_rows(mps, browser)
    browser.open(f"{mps.url}/rules")
    anchors = set(browser.evaluate("[...document.querySelectorAll('[id^=rule-]')].map(e => e.id)"))
    snap = {a.fingerprint: a for a in mps.snapshot().alerts}
    assert rows
    for row in rows:
        alert = snap[row["alert"]]
        assert row["ruleLink"] == rule_url("", alert.rule)
        assert f"rule-{alert.rule}" in anchors
        assert row["silence"] == silence_url("", alert.labels)
        matchers = parse_qs(urlsplit(row["silence"]).query)["matcher"]
        assert f'alertname="{alert.rule}"' in matchers
        if "indicator" in alert.labels:
            assert row["series"] == series_url("", alert.labels["indicator"], alert.series,
                                               alert.period)
            assert re.fullmatch(r"\d{4}-\d{2}", alert.period)


def test_a_series_link_opens_the_chart_with_the_alerts_month_highlighted(
        mps: Served, browser: Browser) -> None:
    row = next(r for r in alert_rows(mps, browser)
               if r["rule"] == "BurglaryRisingWhileAcquisitiveCrimeFalls")
    href = row["series"]
    assert href.endswith("?at=2008-07")
    browser.open(mps.url + href, width=1400)
    seen = browser.evaluate("""(() => ({
      band: document.querySelector('svg.chart rect.at-band')?.dataset.period,
      ring: !!document.querySelector('svg.chart circle.at-ring'),
      rows: [...document.querySelectorAll('tr.is-at')].map(r => r.dataset.period || ''),
      note: document.getElementById('at-note')?.textContent.trim(),
      legend: document.querySelector('[data-legend="at"]')?.textContent.trim(),
    }))()""")
    assert seen["band"] == "2008-07"
    assert seen["ring"] is True
    assert "2008-07" in seen["rows"]
    assert seen["note"].startswith("Highlighted: Jul-08")
    assert seen["legend"] == "Jul-08"


def test_a_month_the_chart_does_not_have_is_said_not_ignored(mps: Served,
                                                            browser: Browser) -> None:
    href = next(r["series"] for r in alert_rows(mps, browser) if r["series"]).split("?")[0]
    browser.open(f"{mps.url}{href}?at=1999-01")
    note = browser.evaluate("document.getElementById('at-note').textContent")
    assert "No period 1999-01 on this chart" in note
    assert browser.evaluate("document.querySelectorAll('.at-band, tr.is-at').length") == 0


def test_the_rules_page_shows_each_group_and_each_rules_definition(mps: Served,
                                                                  browser: Browser) -> None:
    browser.open(f"{mps.url}/rules")
    page = browser.evaluate("""(() => ({
      groups: [...document.querySelectorAll('section.rule-group')].map(g => g.id),
      facts: Object.fromEntries([...document.querySelectorAll('section.rule-group')][0]
        .querySelectorAll('dd').values().map(d => [d.dataset.fact, d.textContent.trim()])),
      definition: document.querySelector('#rule-BurglaryRisingWhileAcquisitiveCrimeFalls '
        + 'pre.definition').textContent,
      row: document.getElementById('rule-BurglaryRisingWhileAcquisitiveCrimeFalls')
        .textContent,
    }))()""")
    assert page["groups"] == [f"group-{g.name}" for g in mps.snapshot().groups]
    facts = page["facts"]
    assert facts["interval"] == "every cycle (1m)"
    assert facts["errors"] == "0"
    assert re.fullmatch(r"\d+\.\d ms", facts["duration"])
    assert facts["last-evaluation"].endswith("ago")
    assert "change:\n      window: 12\n      compare: previous\n      above: 0" in \
        page["definition"]
    assert "mps-2008-09.yaml:426" in page["row"]


def test_after_a_failed_reload_the_rules_page_shows_the_errors_and_runs_the_last_good_rules(
        tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    shutil.copy(REPO / "rules" / "mps-2008-09.yaml", rules / "mps-2008-09.yaml")
    text = MPS_CONFIG.read_text(encoding="utf-8")
    config = tmp_path / "source.toml"
    config.write_text(re.sub(r'(?m)^paths = \["rules"\]', f'paths = ["{rules}"]', text),
                      encoding="utf-8")
    assert str(rules) in config.read_text(encoding="utf-8")
    (tmp_path / "daemon").mkdir()
    with running(config, tmp_path / "daemon") as served:
        broken = rules / "mps-2008-09.yaml"
        broken.write_text(broken.read_text(encoding="utf-8").replace(
            "window: 12, compare: previous, above: 0", "window: twelve, compare: previous"),
            encoding="utf-8")
        assert served.app.rules is not None
        ok, _ = served.app.rules.reload()
        assert not ok
        with Browser() as chromium:
            chromium.open(f"{served.url}/rules")
            page = chromium.evaluate("""(() => ({
              banner: document.getElementById('reload-failed').textContent,
              problems: [...document.querySelectorAll('#reload-failed li')]
                .map(li => li.textContent),
              running: !!document.getElementById(
                'rule-BurglaryRisingWhileAcquisitiveCrimeFalls'),
            }))()""")
    assert "running the last good rules" in page["banner"]
    assert page["problems"] and page["problems"][0].startswith(f"{broken}:432:")
    assert page["running"]  # the last good rules are still listed


PAGES = ["/scorecard", "/alerts", "/alerts/history", "/rules", "/sources", "/silences",
         "/silences/new", "/milestones", "/indicators/robbery", "series"]
SCHEME = """(() => {
  const rgb = s => s.match(/\\d+/g).slice(0, 3).map(Number);
  const lum = ([r, g, b]) => (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
  const body = getComputedStyle(document.body);
  const card = document.querySelector('.table-wrap, .chart-box, .filters');
  // the inline SVG ink of sparklines, charts and legends (drawn #1d2a36 in the markup)
  const svgInk = document.querySelector('main svg [stroke="#1d2a36"]');
  return {bg: lum(rgb(body.backgroundColor)), ink: lum(rgb(body.color)),
          card: card ? lum(rgb(getComputedStyle(card).backgroundColor)) : null,
          svg: svgInk ? lum(rgb(getComputedStyle(svgInk).stroke)) : null};
})()"""


@pytest.mark.parametrize("path", PAGES)
def test_every_page_follows_the_dark_colour_scheme(mps: Served, browser: Browser,
                                                   path: str) -> None:
    if path == "series":  # a series page, at an alert's month
        path = next(r["series"] for r in alert_rows(mps, browser) if r["series"])
    browser.open(mps.url + path, width=1400, dark=False)
    light = browser.evaluate(SCHEME)
    browser.open(mps.url + path, width=1400, dark=True)
    dark = browser.evaluate(SCHEME)
    assert light["bg"] > 0.9 and light["ink"] < 0.1
    assert dark["bg"] < 0.15 and dark["ink"] > 0.85
    if dark["card"] is not None:
        assert dark["card"] < 0.2
    if dark["svg"] is not None:  # dark lines on the dark page would vanish
        assert light["svg"] < 0.2 and dark["svg"] > 0.6, (light["svg"], dark["svg"])


REPORT_SCHEME = """(() => {
  const rgb = s => s.match(/\\d+/g).slice(0, 3).map(Number);
  const lum = ([r, g, b]) => (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
  const style = (selector, property) => {
    const found = document.querySelector(selector);
    return found ? lum(rgb(getComputedStyle(found)[property])) : null;
  };
  const root = getComputedStyle(document.documentElement);
  return {bg: root.backgroundColor === 'rgba(0, 0, 0, 0)' ? 1 : lum(rgb(root.backgroundColor)),
          ink: lum(rgb(root.color)),
          axis: style('svg.chart .axis', 'fill'), grid: style('svg.chart .grid', 'stroke'),
          spark: style('svg.sparkline [stroke="#1d2a36"]', 'stroke')};
})()"""


def test_the_report_is_dark_on_a_dark_screen_and_prints_in_its_own_colours(
        mps: Served, browser: Browser) -> None:
    """/report follows the dark scheme on screen — text, charts' labels, grid and ink
    turned for a dark page — and keeps the print colours when printed, dark or not."""
    browser.open(f"{mps.url}/report", width=1400, dark=False)
    light = browser.evaluate(REPORT_SCHEME)
    browser.open(f"{mps.url}/report", width=1400, dark=True)
    dark = browser.evaluate(REPORT_SCHEME)
    browser.call("Emulation.setEmulatedMedia", media="print", features=[
        {"name": "prefers-color-scheme", "value": "dark"}])
    printed = browser.evaluate(REPORT_SCHEME)
    browser.call("Emulation.setEmulatedMedia", media="", features=[])
    assert None not in light.values(), light  # a pack with charts and sparklines
    assert light["bg"] > 0.9 and light["ink"] < 0.2 and light["spark"] < 0.2
    assert dark["bg"] < 0.15 and dark["ink"] > 0.85, dark
    assert dark["axis"] > 0.55 and dark["grid"] < 0.3 and dark["spark"] > 0.8, dark
    assert printed == light


def lightness(png: bytes) -> float:
    """Return the mean lightness of a screenshot, 0 (black) to 1 (white)."""
    with Image.open(io.BytesIO(png)) as shot:
        return float(ImageStat.Stat(shot.convert("L")).mean[0]) / 255


SWAGGER_DRAWN = """new Promise(done => {
  const drawn = () => document.querySelector('.swagger-ui .opblock')
    ? done(getComputedStyle(document.querySelector('.swagger-ui')).filter)
    : setTimeout(drawn, 50);
  drawn();
})"""


def test_the_api_docs_follow_the_dark_colour_scheme(mps: Served, browser: Browser) -> None:
    """Swagger UI at /api/docs: light as it ships, dark under prefers-color-scheme (our
    stylesheet, served with the page), judged on what Chromium draws."""
    seen = {}
    for dark in (False, True):
        browser.open(f"{mps.url}/api/docs", width=1400, height=900, dark=dark)
        seen[dark] = (browser.evaluate(SWAGGER_DRAWN), browser.screenshot(full_page=False))
    assert seen[False][0] == "none" and lightness(seen[False][1]) > 0.85
    assert "invert" in seen[True][0] and lightness(seen[True][1]) < 0.2


def test_a_dark_mode_screenshot_is_taken_in_chromium(mps: Served, browser: Browser,
                                                     tmp_path: Path) -> None:
    browser.open(f"{mps.url}/alerts", width=1400, height=900, dark=True)
    png = browser.screenshot(full_page=False)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    # docs/alerts-dark.png: `MONITOR_SCREENSHOTS=docs pytest tests/http/test_http_pages_reading.py`
    shots = Path(os.environ.get("MONITOR_SCREENSHOTS") or tmp_path)
    (shots / "alerts-dark.png").write_bytes(png)
    assert len(png) > 20_000  # a rendered page, not a blank one


def test_the_spc_legend_lists_exactly_the_icons_on_the_page(mps: Served,
                                                            browser: Browser) -> None:
    for view in ("scorecard", "all"):
        browser.open(f"{mps.url}/scorecard?view={view}")
        table = set(browser.evaluate(
            "[...document.querySelectorAll('table svg.spc-icon')].map(s => s.dataset.spc)"))
        legend = set(browser.evaluate(
            "[...document.querySelectorAll('section.legend [data-legend]')]"
            ".map(s => s.dataset.legend)"))
        assert table and legend == table, view


def test_the_series_legend_lists_only_the_marks_the_chart_draws(mps: Served,
                                                               browser: Browser) -> None:
    specials = 0
    for row in [r for r in alert_rows(mps, browser) if r["series"]]:
        browser.open(mps.url + row["series"].split("?")[0])
        drawn = {v.split("_")[0] for v in browser.evaluate(
            "[...document.querySelectorAll('svg.chart circle[data-special]')]"
            ".filter(c => c.dataset.special !== '0').map(c => c.dataset.variation)")}
        legend = set(browser.evaluate(
            "[...document.querySelectorAll('figcaption [data-legend]')]"
            ".map(s => s.dataset.legend)")) - {"provisional", "at"}
        assert legend == drawn, row["series"]
        specials += bool(drawn)
    assert specials  # some chart has special causes, and its legend lists just those


def test_api_docs_load_without_the_internet(mps: Served, browser: Browser) -> None:
    html = httpx.get(f"{mps.url}/api/docs", timeout=30).text
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(s.startswith("/") for s in sources), sources
    for source in sources:
        asset = httpx.get(mps.url + unquote(source), timeout=30)
        assert asset.status_code == 200, source
    browser.open(f"{mps.url}/api/docs", width=1400)
    title = ""
    for _ in range(50):  # Swagger UI renders from script after the load event
        title = browser.evaluate(
            "document.querySelector('.swagger-ui .info .title')?.textContent || ''")
        if title:
            break
        browser.evaluate("new Promise(r => setTimeout(r, 100))")
    assert title.startswith("kpi-monitor")


HISTORY_ROWS = """[...document.querySelectorAll('table.history tbody tr[data-alert]')]
  .map(r => r.querySelector('th').firstChild.textContent.trim())"""


def test_the_alert_history_page_filters_by_rule_labels_and_time_range(
        mps: Served, browser: Browser) -> None:
    episodes = httpx.get(f"{mps.url}/api/v1/alerts/history", timeout=30).json()["episodes"]
    rules = sorted(e["rule"] for e in episodes)
    assert len(set(rules)) >= 5  # the bundled example's firing alerts, each an episode
    browser.open(f"{mps.url}/alerts/history", width=1400)
    assert sorted(browser.evaluate(HISTORY_ROWS)) == rules
    fields = browser.evaluate(
        "[...document.querySelectorAll('form.filters [name]')].map(e => e.name)")
    assert fields == ["rule", "match", "since", "until"]  # what the queries below send

    def shown(**query: str) -> list[str]:
        browser.open(f"{mps.url}/alerts/history?" + urlencode(query), width=1400)
        return sorted(browser.evaluate(HISTORY_ROWS))

    assert shown(rule="VictimSatisfactionBelowTarget") == ["VictimSatisfactionBelowTarget"]
    overdue = [r for r in rules if r == "CounterTerrorismMilestoneOverdue"]
    assert len(overdue) == 3
    assert shown(match='milestone="CT-04"') == ["CounterTerrorismMilestoneOverdue"]
    assert shown(match='severity="warning", milestone=~"CT-0[45]"') == overdue[:2]
    started = min(datetime.fromisoformat(e["started_at"]) for e in episodes)
    day = started.date()
    assert shown(since=day.isoformat()) == rules
    assert shown(since=(day + timedelta(days=1)).isoformat()) == []
    assert shown(until=day.isoformat()) == []  # the end is exclusive
    assert shown(since=day.isoformat(), until=(day + timedelta(days=1)).isoformat(),
                 rule="CounterTerrorismMilestoneOverdue") == overdue
    browser.open(f"{mps.url}/alerts/history?since=soon")
    assert "since: 'soon' is not a time" in browser.evaluate("document.body.textContent")
