"""The London boroughs example on the real London Datastore data, end to end.

The backtest runs the product's own CLI (`monitor backtest --poll --format json`) over
the shipped config, into a store of its own, once for the module. Its findings are
checked against figures recomputed here with plain Python from the shared copy of the
2008 borough file, independently of the product.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LONDON_DATA, SHARED_DATA, needs

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "london-boroughs"
CONFIG = EXAMPLE / "config.toml"
DIVERGENCE = "BurglaryRisingWhileAcquisitiveCrimeFalls"
OLD_FILE = "mps-borough-crime-2008-01-to-2016-12.csv"
SAC_2008 = ("Burglary in a Dwelling", "Personal Property", "Business Property",
            "Theft/Taking Of Motor Vehicle", "Theft From Motor Vehicle",
            "Motor Vehicle Interference & Tampering")
SOURCES = ("london-2008-taxonomy", "london-2010-taxonomy", "london-2022-taxonomy",
           "london-total")


# --- running the product ----------------------------------------------------------------


def _monitor(*args: str, store: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env["MONITOR_STORE__URL"] = f"sqlite:///{store}"
    return subprocess.run([sys.executable, "-m", "monitor", *args, "--config", str(CONFIG)],
                          cwd=REPO, env=env, capture_output=True, text=True, check=False,
                          timeout=300)


@pytest.fixture(scope="module")
def backtest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The backtest 2009-01..2016-12 as JSON, plus the stderr of the polls before it."""
    store = tmp_path_factory.mktemp("london") / "london.db"
    result = _monitor("backtest", "--from", "2009-01", "--to", "2016-12", "--poll",
                      "--format", "json", store=store)
    assert result.returncode == 0, result.stderr[-3000:]
    report: dict[str, Any] = json.loads(result.stdout)
    report["stderr"] = result.stderr
    yield report


def _events(report: dict[str, Any], alertname: str, borough: str | None = None
            ) -> list[dict[str, Any]]:
    return [e for e in report["events"] if e["alertname"] == alertname
            and (borough is None or e["labels"].get("borough") == borough)]


# --- the same figures, recomputed from the raw file ------------------------------------


@cache
def _old_rows() -> tuple[dict[str, str], ...]:
    with (LONDON_DATA / OLD_FILE).open(newline="", encoding="utf-8-sig") as handle:
        return tuple(csv.DictReader(handle))


def _rolling_year(categories: tuple[str, ...], year: int, borough: str | None = None) -> int:
    """Offences in the calendar year ``year`` (a rolling year to December)."""
    months = [f"{year}{m:02d}" for m in range(1, 13)]
    return sum(int(row[m]) for row in _old_rows() if row["Minor Category"] in categories
               and (borough is None or row["Borough"] == borough) for m in months)


def _change_text(categories: tuple[str, ...], borough: str | None = None) -> str:
    """The engine's words for the RY to Dec-09 against the RY to Dec-08."""
    now, before = _rolling_year(categories, 2009, borough), _rolling_year(categories, 2008,
                                                                          borough)
    word = "up" if now > before else "down"
    return f"{word} {abs(now - before) / before * 100:.1f}% ({abs(now - before):,} offences)"


# --- the tests --------------------------------------------------------------------------


def test_it_ships_the_data_files_unchanged() -> None:
    if not SHARED_DATA.is_dir():
        needs(f"the project's shared data is not at {SHARED_DATA}")
    for name in (OLD_FILE, "mps-borough-crime-2010-04-to-2022-01.csv",
                 "mps-borough-crime-2022-02-to-2024-01.csv"):
        assert (EXAMPLE / "data" / name).read_bytes() == (SHARED_DATA / name).read_bytes(), name


def test_it_ships_london_totals_that_are_the_sum_of_the_areas() -> None:
    result = subprocess.run([sys.executable, str(EXAMPLE / "london_totals.py"), "--check"],
                            cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_it_polls_every_file_without_a_rejected_cell_or_a_revision(
        backtest: dict[str, Any]) -> None:
    polled = [line for line in backtest["stderr"].splitlines()
              if 'msg="source polled"' in line]
    assert sorted(line.split(" source=")[1].split()[0] for line in polled) == sorted(SOURCES)
    for line in polled:
        assert " outcome=success " in line and " rejected=0 " in line and " revised=0 " in line, \
            line


def test_it_fires_for_london_in_dec_2009_with_the_rolling_year_figures(
        backtest: dict[str, Any]) -> None:
    london = _events(backtest, DIVERGENCE, "London")
    first = london[0]
    assert (first["period"], first["event"]) == ("2009-12", "firing")
    burglary = _change_text(("Burglary in a Dwelling",))
    sac = _change_text(SAC_2008)
    assert (burglary, sac) == ("up 6.0% (3,540 offences)", "down 4.4% (9,179 offences)")
    assert first["explanation"] == (
        f"Dwelling burglary is {burglary} over the RY to Dec-09 (compared to the RY to "
        f"Dec-08), while Serious acquisitive crime is {sac} over the RY to Dec-09 "
        "(compared to the RY to Dec-08).")
    assert [(e["period"], e["event"]) for e in london] == [
        ("2009-12", "firing"), ("2010-06", "resolved"),
        ("2012-05", "firing"), ("2012-07", "resolved")]


def test_it_fires_in_dec_2009_exactly_where_the_raw_data_shows_the_pattern(
        backtest: dict[str, Any]) -> None:
    boroughs = sorted({row["Borough"] for row in _old_rows()})
    expected = {b for b in boroughs
                if _rolling_year(("Burglary in a Dwelling",), 2009, b)
                > _rolling_year(("Burglary in a Dwelling",), 2008, b)
                and _rolling_year(SAC_2008, 2009, b) < _rolling_year(SAC_2008, 2008, b)}
    fired = {e["labels"]["borough"] for e in _events(backtest, DIVERGENCE)
             if e["period"] == "2009-12" and e["event"] == "firing"}
    assert fired == expected | {"London"}
    assert expected == {"Barnet", "Bromley", "Hackney", "Havering", "Kingston upon Thames",
                        "Lewisham", "Newham", "Wandsworth"}
    havering = _events(backtest, DIVERGENCE, "Havering")[0]
    assert f"is {_change_text(('Burglary in a Dwelling',), 'Havering')} over the RY to " \
        "Dec-09" in havering["explanation"]


@pytest.mark.parametrize(("borough", "fired", "resolved"), [
    pytest.param("Barking and Dagenham", "2012-04", "2013-07", id="barking-and-dagenham"),
    pytest.param("Croydon", "2011-02", "2011-03", id="croydon-one-month"),
    pytest.param("Westminster", "2012-04", "2012-09", id="westminster"),
])
def test_it_reports_when_a_borough_first_fired_and_resolved(
        backtest: dict[str, Any], borough: str, fired: str, resolved: str) -> None:
    events = _events(backtest, DIVERGENCE, borough)
    assert [(e["period"], e["event"]) for e in events[:2]] == [(fired, "firing"),
                                                               (resolved, "resolved")]


def test_it_never_judges_a_four_year_trend_on_less_than_four_years(
        backtest: dict[str, Any]) -> None:
    trends = _events(backtest, "BurglaryRisingTrend") + \
        _events(backtest, "AcquisitiveCrimeRisingTrend")
    assert trends, "the trend rules never fired"
    assert min(e["period"] for e in trends) == "2011-12"  # data starts in 2008-01


def test_it_flags_london_burglary_special_causes_in_the_winter_peaks(
        backtest: dict[str, Any]) -> None:
    fired = [e["period"] for e in _events(backtest, "BurglarySpecialCause", "London")
             if e["event"] == "firing"]
    assert fired == ["2009-01", "2010-11", "2011-01", "2011-12", "2013-01"]


def test_the_example_rule_tests_pass() -> None:
    result = subprocess.run([sys.executable, "-m", "monitor", "test",
                             str(EXAMPLE / "rules" / "tests" / "london.test.yaml")],
                            cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("3 passed, 0 failed")
