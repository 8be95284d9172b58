"""The seed scorecard (../shared/seed/) reproduced from the bundled example's data.

Each row: the value within the seed's printed rounding, the status, and the facts the
analyst's comment states.
"""

from __future__ import annotations

import pytest

from monitor.model import AlertState, Status, month
from monitor.rules import scorecard
from monitor.rules.cycle import Cycle, Evaluator
from monitor.rules.engine import Dataset, Evaluation, month_end
from monitor.rules.loader import load_rules
from tests.rules.conftest import REPO

MPS = "Metropolitan Police Service"


@pytest.fixture(scope="module")
def evaluation(seed_dataset: Dataset) -> Evaluation:
    ruleset = load_rules([REPO / "rules"])
    at = month_end(month("2008-07"))
    return Evaluator(ruleset).run(seed_dataset, {}, Cycle(at=at, now=at))


@pytest.fixture(scope="module")
def rows(evaluation: Evaluation) -> dict[str, scorecard.SeriesDetail]:
    ruleset = load_rules([REPO / "rules"])
    return {r.indicator.id: r for r in scorecard.rows(evaluation.matrices, ruleset)}


SEED_ROWS = [
    pytest.param("victim_satisfaction", "77.0%", "78.9%", Status.RED,
                 ["Below target level", "Jun-08", "Ranked last of 8"], id="SPI 1.1"),
    pytest.param("satisfaction_gap", "4.2pp", "Reduce gap to 3.8pp", Status.RED,
                 ["Above target level", "Ranked 3rd of 8"], id="SPI 1.2"),
    pytest.param("confidence", "55.2%", "0.5pp increase", Status.GREEN,
                 ["On target", "Mar-08", "2007/08 target", "Ranked 1st of 8"], id="SPI 2.3"),
    pytest.param("serious_acquisitive_crime", "-7.8%", "-4%", Status.GREEN,
                 ["Robbery is down 22.3% (9,828 offences)", "MV crime is down 6.7% (8,367)",
                  "but residential burglary is up 0.6% (366)",
                  "over the rolling year to Jul-08 (compared to the RY to Jul-07)"],
                 id="SPI 5.2"),
    pytest.param("sac_sd_rate", "11.1%", "11.8%", Status.RED,
                 ["Res. burglary SD rate 14.7%", "Robbery SD rate 16.5%",
                  "MV crime SD rate 7.6%"], id="SPI 6.2"),
    pytest.param("ksi", "-4.9%", "-3%", Status.GREEN,
                 ["Data for Jan-08 to Mar-08 is provisional"], id="SPI 9.1"),
    pytest.param("most_serious_violence", "-3.8%", "Baseline year", Status.BASELINE,
                 ["baseline year"], id="SPI 5.1"),
    pytest.param("gun_crime", "-19.5%", "-3%", Status.GREEN, ["On target"], id="SPI 5.5"),
    pytest.param("serious_violence_sd_rate", "31.9%", "Baseline year", Status.BASELINE,
                 ["baseline year"], id="SPI 6.1/6.4"),
    pytest.param("dv_arrest_rate", "65.8%", "67.0%", Status.RED, ["Below target level"],
                 id="DV arrest rate"),
    pytest.param("youth_violence_victims", "-5.1%", "-6%", Status.RED,
                 ["Short of target", "down 5.1%"], id="serious youth violence"),
    pytest.param("criminal_networks_disrupted", "30.8", "29.2", Status.GREEN, ["On target"],
                 id="criminal networks"),
    pytest.param("assets_seized_cases", "206", "208", Status.AMBER, ["April-July 2008"],
                 id="assets seized"),
    pytest.param("class_a_sd", "207", "210", Status.AMBER,
                 ["Cocaine (inc. crack) 137 against a target of 136",
                  "Heroin 50 against a target of 47"], id="Class A"),
    pytest.param("class_a_sd_cocaine", "137", "136", Status.GREEN, [], id="cocaine"),
    pytest.param("class_a_sd_heroin", "50", "47", Status.GREEN, [], id="heroin"),
]


@pytest.mark.parametrize(("indicator", "value", "target", "status", "facts"), SEED_ROWS)
def test_it_reproduces_each_seed_row(rows: dict[str, scorecard.SeriesDetail], indicator: str,
                                     value: str, target: str, status: Status,
                                     facts: list[str]) -> None:
    row = rows[indicator]
    assert row.labels == {"force": MPS} or "force" in row.labels
    assert row.value_text == value
    assert row.target_text == target
    assert row.status is status
    for fact in facts:
        assert fact in row.comment, row.comment


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
