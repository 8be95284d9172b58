"""The seed scorecard (../shared/seed/), fact by fact, reproduced from the bundled example.

``SEED`` states every fact of every seed row — value, window, the Target column, status,
each rank with its window, each comparison and note the analyst's comment makes — in
the product's words. Each is checked three ways:

- in the scorecard rows one evaluation cycle publishes (``Evaluator.run``);
- in what ``monitor eval --at 2008-07 --format json --poll`` prints on
  ``config.example.toml`` (through ``monitor.cli.main``, its store in a temporary folder);
- on the ``/scorecard`` page of the real daemon on that config, in headless Chromium.

The seed's "12 mths to Jun-08" is the product's "rolling year to Jun-08"; its "MSF" is
the peer group the rule file names "most similar family".
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.cli import main
from monitor.clock import FixedClock
from monitor.model import AlertState, Status, month
from monitor.rules import scorecard
from monitor.rules.cycle import Cycle, Evaluator
from monitor.rules.engine import Dataset, Evaluation, month_end
from monitor.rules.loader import load_rules
from tests.rules.conftest import REPO

MPS = "Metropolitan Police Service"
CONFIG = REPO / "config.example.toml"
FAMILY = "most similar family"  # the peer group's name in rules/mps-2008-09.yaml


@dataclass(frozen=True)
class Rank:
    """A rank the seed states: where the MPS stands, over which window."""

    position: str  # "last", "3rd"
    window: str  # as the comment names it: "May–July 2008", "2007/08", "2007"
    first: str  # the window's first month
    last: str  # and its last
    of: str | None = None  # a part's reference (SPI 6.1); None: the row's own indicator
    size: int = 8

    @property
    def preposition(self) -> str:
        return "in" if re.fullmatch(r"\d{4}", self.window) else "for"


@dataclass(frozen=True)
class Row:
    """One seed row: what its columns show and every fact its comment states."""

    seed: str  # the seed's reference for the row
    indicator: str
    value: str
    window: str
    target: str  # the Target column: the 2008/09 target
    status: Status
    judged: str = "2008/09"  # the financial year whose target the status judges
    ranks: tuple[Rank, ...] = ()
    says: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # part kind -> facts


RY_TO_JUL = "rolling year to Jul-08"
SINCE_JUL_07 = "over the rolling year to Jul-08 (compared to the RY to Jul-07)"
FY_2007_08 = ("2007/08", "2007-04", "2008-03")
MAY_JUL_08 = ("May–July 2008", "2008-05", "2008-07")
YEAR_TO_JUL_08 = ("the year to July 2008", "2007-08", "2008-07")

SEED = [
    Row("SPI 1.1", "victim_satisfaction", "77.0%", "rolling year to Jun-08", "78.9%",
        Status.RED, ranks=(Rank("last", *FY_2007_08),),
        says={"status": ("Below target level", "77.0% over the rolling year to Jun-08",
                         "below its 2008/09 target of 78.9%")}),
    Row("SPI 1.2", "satisfaction_gap", "4.2pp", "rolling year to Jun-08",
        "Reduce gap to 3.8pp", Status.RED, ranks=(Rank("3rd", *FY_2007_08),),
        says={"status": ("Above target level", "4.2pp",
                         "above its 2008/09 target (Reduce gap to 3.8pp)")}),
    Row("SPI 2.3", "confidence", "55.2%", "rolling year to Mar-08", "1pp increase",
        Status.GREEN, judged="2007/08", ranks=(Rank("1st", *FY_2007_08),),
        says={"status": ("55.2% over the rolling year to Mar-08",
                         "meeting its 2007/08 target (0.5pp increase, to 55.2%)",
                         "after a slight improvement on the rolling year to Feb-08 (55.1%)")}),
    Row("SPI 5.2", "serious_acquisitive_crime", "-7.8%", RY_TO_JUL, "-4%", Status.GREEN,
        ranks=(Rank("3rd", *MAY_JUL_08),),
        says={"status": ("down 7.8%", "meeting its 2008/09 target of -4%"),
              "parts": ("Robbery is down 22.3% (9,828 offences)",
                        "MV crime is down 6.7% (8,367)",
                        "but residential burglary is up 0.6% (366)", SINCE_JUL_07)}),
    Row("SPI 6.2", "sac_sd_rate", "11.1%", RY_TO_JUL, "11.8%", Status.RED,
        ranks=(Rank("2nd", *YEAR_TO_JUL_08),),
        says={"status": ("Below target level", "below its 2008/09 target of 11.8%"),
              "parts": ("Res. burglary SD rate 14.7%", "Robbery SD rate 16.5%",
                        "MV crime SD rate 7.6%", "over the rolling year to Jul-08")}),
    Row("SPI 9.1", "ksi", "-4.9%", "rolling year to Mar-08", "-3%", Status.GREEN,
        judged="2007/08", ranks=(Rank("last", "2007", "2007-01", "2007-12"),),
        says={"status": ("down 4.9% over the rolling year to Mar-08",
                         "meeting its 2007/08 target of -3%"),
              "provisional": ("Data for Jan-08 to Mar-08 is provisional",
                              "late submissions may change it")}),
    Row("SPI 5.1", "most_serious_violence", "-3.8%", RY_TO_JUL, "Baseline year",
        Status.BASELINE, ranks=(Rank("2nd", *MAY_JUL_08),),
        says={"status": ("2008/09 is a baseline year",),
              "target_note": ("Classification practices changed",
                              "baseline for future years"),
              "companions": ("Most serious violence is down 3.8% (386 offences)",
                             "assault with injury is down 1.2%", SINCE_JUL_07)}),
    Row("SPI 5.5", "gun_crime", "-19.5%", RY_TO_JUL, "-3%", Status.GREEN,
        says={"status": ("down 19.5%", "meeting its 2008/09 target of -3%"),
              "note": ("Reflects gun crime excluding CS gas / pepper spray",)}),
    Row("SPI 6.1/6.4", "serious_violence_sd_rate", "31.9%", RY_TO_JUL, "Baseline year",
        Status.BASELINE,
        ranks=(Rank("2nd", *YEAR_TO_JUL_08, of="SPI 6.1"),
               Rank("3rd", *YEAR_TO_JUL_08, of="SPI 6.4")),
        says={"status": ("2008/09 is a baseline year",),
              "note": ("combined SD rate",)}),
    Row("DV arrest rate", "dv_arrest_rate", "65.8%", RY_TO_JUL, "67%", Status.RED,
        says={"status": ("Below target level", "below its 2008/09 target of 67%")}),
    Row("serious youth violence", "youth_violence_victims", "-5.1%", RY_TO_JUL, "-6%",
        Status.RED,
        says={"status": ("Short of target", "down 5.1%", "short of its 2008/09 target of -6%"),
              "note": ("proxy measure for serious youth violence",)}),
    Row("criminal networks", "criminal_networks_disrupted", "30.8", RY_TO_JUL, "29.2",
        Status.GREEN, says={"status": ("On target", "above its 2008/09 target of 29.2")}),
    Row("assets seized", "assets_seized_cases", "206", "April-July 2008", "208",
        Status.AMBER,
        says={"status": ("206 over April-July 2008", "below its 2008/09 target of 208"),
              "variation": ("Monthly values vary considerably", "SPC process limits")}),
    Row("Class A", "class_a_sd", "207", RY_TO_JUL, "210", Status.AMBER,
        says={"status": ("below its 2008/09 target of 210",),
              "comparison": ("Slightly down on 2007/08 over the rolling year to Jul-08",
                             "monthly averages: 207.0 against 209.5",
                             "cocaine (inc. crack) and heroin, however, are both slightly up",
                             "137.0 against 135.3", "50.0 against 48.4")}),
    Row("cocaine", "class_a_sd_cocaine", "137", RY_TO_JUL, "136", Status.GREEN,
        says={"status": ("above its 2008/09 target of 136",)}),
    Row("heroin", "class_a_sd_heroin", "50", RY_TO_JUL, "47", Status.GREEN,
        says={"status": ("above its 2008/09 target of 47",)}),
]

# The earlier shape of the table, which the example's end-to-end test reads:
# (indicator, value, Target column, status, facts the comment states).
SEED_ROWS = [pytest.param(r.indicator, r.value, r.target, r.status,
                          [fact for facts in r.says.values() for fact in facts], id=r.seed)
             for r in SEED]


def rank_stated(comment: str, rank: Rank) -> bool:
    """True when ``comment`` states ``rank``: its position, the group size, whose rank
    and the window, in the product's sentence."""
    if rank.of is None:
        sentence = (f"Ranked {rank.position} of {rank.size} in its {FAMILY} "
                    f"{rank.preposition} {rank.window}.")
        return sentence in comment
    said = re.search(rf"{rank.preposition.title()} {re.escape(rank.window)}, ranked .*?"
                     rf"\b{rank.position} of {rank.size}( in its {FAMILY})? for "
                     rf"{re.escape(rank.of)}\b", comment)
    return said is not None


# --- the rows one evaluation cycle publishes -------------------------------------------


@pytest.fixture(scope="module")
def evaluation(seed_dataset: Dataset) -> Evaluation:
    ruleset = load_rules([REPO / "rules"])
    at = month_end(month("2008-07"))
    return Evaluator(ruleset).run(seed_dataset, {}, Cycle(at=at, now=at))


@pytest.fixture(scope="module")
def rows(evaluation: Evaluation) -> dict[str, scorecard.SeriesDetail]:
    ruleset = load_rules([REPO / "rules"])
    return {r.indicator.id: r for r in scorecard.rows(evaluation.matrices, ruleset)}


@pytest.mark.parametrize("seed", [pytest.param(r, id=r.seed) for r in SEED])
def test_the_published_row_states_every_fact_of_the_seed_row(
        rows: dict[str, scorecard.SeriesDetail], seed: Row) -> None:
    row = rows[seed.indicator]
    assert row.labels == {"force": MPS}
    assert (row.value_text, row.window_label, row.target_text, row.status) == \
        (seed.value, seed.window, seed.target, seed.status)
    assert (row.target_year, row.judged_year) == ("2008/09", seed.judged)
    assert [(r.position, r.window, r.first_period, r.last_period, r.size)
            for r in row.ranks] == [(r.position, r.window, r.first, r.last, r.size)
                                    for r in seed.ranks]
    assert [r.reference for r in row.ranks if r.indicator != seed.indicator] == \
        [r.of for r in seed.ranks if r.of is not None]
    parts = {part.kind: part.text for part in row.comment_parts}
    for kind, facts in seed.says.items():
        for fact in facts:
            assert fact in parts.get(kind, ""), (kind, fact, parts)
    for rank in seed.ranks:
        assert rank_stated(parts["rank"], rank), parts["rank"]
    assert row.comment == " ".join(part.text for part in row.comment_parts)


def test_the_scorecard_holds_the_seed_rows_in_the_seeds_order(
        rows: dict[str, scorecard.SeriesDetail]) -> None:
    assert list(rows) == [r.indicator for r in SEED]


def test_spi_2_3_shows_the_2008_09_target_and_judges_the_2007_08_one(
        rows: dict[str, scorecard.SeriesDetail]) -> None:
    row = rows["confidence"]
    assert (row.target_text, row.target_year) == ("1pp increase", "2008/09")
    assert (row.judged_target_text, row.judged_year) == ("0.5pp increase", "2007/08")


EXPECTED_FIRING = {
    "VictimSatisfactionBelowTarget": 1,
    "VictimSatisfactionRankedLastInMSF": 1,
    "SatisfactionGapAboveTarget": 1,
    "BurglaryRisingWhileAcquisitiveCrimeFalls": 1,
    "AcquisitiveCrimeDetectionRateBelowTarget": 1,
    "KsiDataProvisional": 1,
    "DomesticViolenceArrestRateBelowTarget": 1,
    "YouthViolenceReductionShortOfTarget": 1,
    "ClassADetectionsBelowTargetWhileCocaineAndHeroinAbove": 1,
    "CounterTerrorismMilestoneOverdue": 3,
}


def test_it_fires_what_the_seed_comments_say(evaluation: Evaluation) -> None:
    firing: dict[str, int] = {}
    for record in evaluation.records.values():
        if record.state is AlertState.FIRING:
            firing[record.rule] = firing.get(record.rule, 0) + 1
    assert firing == EXPECTED_FIRING


def test_the_divergence_alert_explains_itself_in_the_seeds_words(
        evaluation: Evaluation) -> None:
    (record,) = [r for r in evaluation.records.values()
                 if r.rule == "BurglaryRisingWhileAcquisitiveCrimeFalls"]
    assert record.explanation == (
        "Residential burglary is up 0.6% (366 offences) over the RY to Jul-08 (compared to "
        "the RY to Jul-07), while Serious acquisitive crime rate is down 7.8% (17,829 "
        "offences) over the RY to Jul-08 (compared to the RY to Jul-07).")
    assert record.labels["force"] == MPS


def test_the_ranked_last_alert_names_its_window(evaluation: Evaluation) -> None:
    (record,) = [r for r in evaluation.records.values()
                 if r.rule == "VictimSatisfactionRankedLastInMSF"]
    assert record.explanation.startswith(
        f"Metropolitan Police Service ranked last of 8 in its {FAMILY} for 2007/08 (")


# --- monitor eval --format json ----------------------------------------------------------


@pytest.fixture(scope="module")
def eval_text(tmp_path_factory: pytest.TempPathFactory) -> str:
    """What ``monitor eval --at 2008-07 --format json --poll`` prints on the example's
    config, run from the repository with its store in a temporary folder."""
    store = tmp_path_factory.mktemp("eval") / "monitor.db"
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(REPO)  # the config's data paths are relative to the repository
        patch.setenv("MONITOR_STORE__URL", f"sqlite:///{store}")
        with contextlib.redirect_stdout(out):
            code = main(["eval", "--config", str(CONFIG), "--at", "2008-07", "--format",
                         "json", "--poll"], clock=FixedClock(datetime(2026, 12, 5, tzinfo=UTC)))
    assert code == 0, out.getvalue()
    start = out.getvalue().index("{\n")  # after the poll's progress lines
    return out.getvalue()[start:]


@pytest.fixture(scope="module")
def eval_json(eval_text: str) -> dict[str, Any]:
    printed: dict[str, Any] = json.loads(eval_text)
    return printed


def test_monitor_eval_json_puts_each_row_and_alert_on_a_line_of_its_own(
        eval_text: str, eval_json: dict[str, Any]) -> None:
    # One row a line: `grep victim_satisfaction` finds the whole row, and a diff of two
    # months' output shows the rows that changed.
    lines = eval_text.splitlines()
    rows = [json.loads(line.strip().rstrip(",")) for line in lines
            if line.startswith('    {"indicator": ')]
    alerts = [json.loads(line.strip().rstrip(",")) for line in lines
              if line.startswith('    {"alertname": ')]
    assert rows == eval_json["scorecard"] and len(rows) == len(SEED)
    assert alerts == eval_json["alerts"] and alerts


@pytest.mark.parametrize("seed", [pytest.param(r, id=r.seed) for r in SEED])
def test_monitor_eval_json_states_every_fact_of_the_seed_row(eval_json: dict[str, Any],
                                                             seed: Row) -> None:
    (row,) = [r for r in eval_json["scorecard"] if r["indicator"] == seed.indicator]
    assert row["labels"] == {"force": MPS}
    assert (row["value_text"], row["window"], row["target_text"], row["status"]) == \
        (seed.value, seed.window, seed.target, seed.status.value)
    assert (row["target_year"], row["judged_year"]) == ("2008/09", seed.judged)
    ranks = [(r["position"], r["size"], r["window"], r["first_period"], r["last_period"])
             for r in row["ranks"]]
    assert ranks == [(r.position, r.size, r.window, r.first, r.last) for r in seed.ranks]
    parts = {part["kind"]: part["text"] for part in row["comment_parts"]}
    for kind, facts in seed.says.items():
        for fact in facts:
            assert fact in parts.get(kind, ""), (kind, fact, parts)
    for rank in seed.ranks:
        assert rank_stated(row["comment"], rank), row["comment"]


def test_monitor_eval_json_lists_the_seed_rows_in_order(eval_json: dict[str, Any]) -> None:
    assert [r["indicator"] for r in eval_json["scorecard"]] == [r.indicator for r in SEED]


# The seed's last row: progress against the counter-terrorism plan's milestones. As of
# 31 July 2008 three are overdue (examples/mps-2008-09/README.md).
CT_OVERDUE = ["CT-04", "CT-05", "CT-06"]


def test_monitor_eval_json_states_the_overdue_ct_milestones(eval_json: dict[str, Any]) -> None:
    overdue = sorted(a["labels"]["milestone"] for a in eval_json["alerts"]
                     if a["alertname"] == "CounterTerrorismMilestoneOverdue")
    assert overdue == CT_OVERDUE


# --- the /scorecard page in Chromium -----------------------------------------------------


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict[str, str]]]:
    """The ``/scorecard`` page of the real daemon on the example's config, as headless
    Chromium renders it: each row's value, period, target, status, badge and comment."""
    from tests.http.conftest import MPS_CONFIG, chromium_dom, running
    from tests.http.dom import parse

    folder: Path = tmp_path_factory.mktemp("daemon")
    with running(MPS_CONFIG, folder) as served:
        html = chromium_dom(f"{served.url}/scorecard")
    rows = {r["indicator"]: {k: " ".join(v.split()) for k, v in r.items()}
            for r in parse(html).rows}
    milestones = re.search(r'<li data-milestones="ct_plan">(.*?)</li>', html, re.DOTALL)
    rows["ct_plan"] = {"milestones": " ".join(re.sub(r"<[^>]+>", " ", milestones.group(1))
                                              .split()) if milestones else ""}
    yield rows


def test_the_scorecard_page_states_the_overdue_ct_milestones(
        page: dict[str, dict[str, str]]) -> None:
    assert f"{len(CT_OVERDUE)} overdue" in page["ct_plan"]["milestones"]


@pytest.mark.parametrize("seed", [pytest.param(r, id=r.seed) for r in SEED])
def test_the_scorecard_page_states_every_fact_of_the_seed_row(
        page: dict[str, dict[str, str]], seed: Row) -> None:
    row = page[seed.indicator]
    assert (row["value"], row["period"], row["target"], row["status"]) == \
        (seed.value, seed.window, seed.target, seed.status.value)
    for facts in seed.says.values():
        for fact in facts:
            assert fact in row["comment"], (fact, row["comment"])
    for rank in seed.ranks:
        assert rank_stated(row["comment"], rank), row["comment"]
