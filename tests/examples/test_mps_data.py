"""The MPS 2008/09 example data reproduces every figure of the seed scorecard.

The figures are recomputed here with plain Python from ``indicators.csv`` (read
with the csv module), independently of ``generate.py``: window sums, sum-over-sum
rates, % change on the previous window, monthly means. Each must agree with the
seed to the seed's printed rounding (half away from zero).
"""

from __future__ import annotations

import csv
import datetime as dt
import subprocess
import sys
from collections.abc import Callable, Sequence
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from functools import cache
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mps-2008-09"
DATA = EXAMPLE / "data"
MPS = "Metropolitan Police Service"
AS_OF = dt.date(2008, 7, 31)

Window = tuple[str, str]
RY = ("2007-08", "2008-07")  # rolling year to Jul-08
PREVIOUS_RY = ("2006-08", "2007-07")
TO_JUN_08 = ("2007-07", "2008-06")
TO_MAR_08 = ("2007-04", "2008-03")  # = financial year 2007/08
TO_MAR_07 = ("2006-04", "2007-03")
TO_FEB_08 = ("2007-03", "2008-02")
FYTD = ("2008-04", "2008-07")
MAY_JUL_07 = ("2007-05", "2007-07")
MAY_JUL_08 = ("2008-05", "2008-07")
CALENDAR_06 = ("2006-01", "2006-12")
CALENDAR_07 = ("2007-01", "2007-12")
SAC = ("residential_burglary", "robbery", "vehicle_crime")
SAC_SD = tuple(f"{part}_sd" for part in SAC)
SV_SSO = ("most_serious_violence", "serious_sexual_offences")  # SPI 6.1 and 6.4's offences
SV_SSO_SD = tuple(f"{part}_sd" for part in SV_SSO)
PROPORTIONS = {"victim_satisfaction", "satisfaction_white", "satisfaction_bme", "confidence"}


# --- reading and computing -------------------------------------------------


@cache
def rows() -> tuple[dict[str, str], ...]:
    with (DATA / "indicators.csv").open(newline="", encoding="utf-8") as handle:
        return tuple(csv.DictReader(handle))


@cache
def table() -> dict[tuple[str, str], dict[str, tuple[int, int | None]]]:
    out: dict[tuple[str, str], dict[str, tuple[int, int | None]]] = {}
    for row in rows():
        den = int(row["denominator"]) if row["denominator"] else None
        series = out.setdefault((row["indicator"], row["force"]), {})
        series[row["period"]] = (int(row["value"]), den)
    return out


def forces() -> list[str]:
    return sorted({force for _, force in table()})


def months(window: Window) -> list[str]:
    year, month = int(window[0][:4]), int(window[0][5:])
    out = []
    while (period := f"{year:04d}-{month:02d}") <= window[1]:
        out.append(period)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def total(indicators: str | Sequence[str], window: Window, force: str = MPS,
          column: int = 0) -> int:
    names = [indicators] if isinstance(indicators, str) else indicators
    return sum(table()[name, force][period][column] or 0
               for name in names for period in months(window))


def rate(indicator: str, window: Window, force: str = MPS) -> Fraction:
    return Fraction(100 * total(indicator, window, force), total(indicator, window, force, 1))


def ratio(numerators: str | Sequence[str], denominators: str | Sequence[str], window: Window,
          force: str = MPS) -> Fraction:
    return Fraction(100 * total(numerators, window, force), total(denominators, window, force))


def change(indicators: str | Sequence[str], window: Window, base: Window,
           force: str = MPS) -> Fraction:
    before = total(indicators, base, force)
    return Fraction(100 * (total(indicators, window, force) - before), before)


def mean(indicator: str, window: Window) -> Fraction:
    return Fraction(total(indicator, window), len(months(window)))


def gap(window: Window, force: str = MPS) -> Fraction:
    return rate("satisfaction_white", window, force) - rate("satisfaction_bme", window, force)


def rounded_like(value: Fraction, printed: str) -> Decimal:
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    quantum = Decimal(1).scaleb(int(Decimal(printed).as_tuple().exponent))
    return exact.quantize(quantum, rounding=ROUND_HALF_UP)


# --- the seed figures ------------------------------------------------------

SEED_FIGURES = [
    pytest.param(lambda: rate("victim_satisfaction", TO_JUN_08), "77.0",
                 id="spi-1.1-victim-satisfaction-12m-to-jun-08"),
    pytest.param(lambda: gap(TO_JUN_08), "4.2", id="spi-1.2-white-bme-gap-pp-12m-to-jun-08"),
    pytest.param(lambda: rate("confidence", TO_MAR_08), "55.2",
                 id="spi-2.3-confidence-12m-to-mar-08"),
    pytest.param(lambda: rate("confidence", TO_MAR_07), "54.7",
                 id="spi-2.3-confidence-12m-to-mar-07-before-the-0.5-target"),
    pytest.param(lambda: change(SAC, RY, PREVIOUS_RY), "-7.8", id="spi-5.2-sac-change"),
    pytest.param(lambda: change("robbery", RY, PREVIOUS_RY), "-22.3", id="spi-5.2-robbery-change"),
    pytest.param(lambda: Fraction(total("robbery", RY) - total("robbery", PREVIOUS_RY)), "-9828",
                 id="spi-5.2-robbery-offences-fewer"),
    pytest.param(lambda: change("vehicle_crime", RY, PREVIOUS_RY), "-6.7",
                 id="spi-5.2-mv-crime-change"),
    pytest.param(lambda: Fraction(total("vehicle_crime", RY) - total("vehicle_crime", PREVIOUS_RY)),
                 "-8367", id="spi-5.2-mv-crime-offences-fewer"),
    pytest.param(lambda: change("residential_burglary", RY, PREVIOUS_RY), "0.6",
                 id="spi-5.2-burglary-change"),
    pytest.param(lambda: Fraction(total("residential_burglary", RY)
                                  - total("residential_burglary", PREVIOUS_RY)),
                 "366", id="spi-5.2-burglary-offences-more"),
    pytest.param(lambda: ratio(SAC_SD, SAC, RY), "11.1", id="spi-6.2-sac-sd-rate"),
    pytest.param(lambda: ratio("residential_burglary_sd", "residential_burglary", RY), "14.7",
                 id="spi-6.2-burglary-sd-rate"),
    pytest.param(lambda: ratio("robbery_sd", "robbery", RY), "16.5", id="spi-6.2-robbery-sd-rate"),
    pytest.param(lambda: ratio("vehicle_crime_sd", "vehicle_crime", RY), "7.6",
                 id="spi-6.2-mv-crime-sd-rate"),
    pytest.param(lambda: change("ksi", TO_MAR_08, TO_MAR_07), "-4.9",
                 id="spi-9.1-ksi-change-12m-to-mar-08"),
    pytest.param(lambda: change("most_serious_violence", RY, PREVIOUS_RY), "-3.8",
                 id="spi-5.1-most-serious-violence-change"),
    pytest.param(lambda: change("gun_crime", RY, PREVIOUS_RY), "-19.5",
                 id="spi-5.5-gun-crime-change"),
    pytest.param(lambda: ratio(SV_SSO_SD, SV_SSO, RY), "31.9", id="spi-6.1-6.4-combined-sd-rate"),
    pytest.param(lambda: ratio("dv_arrests", "dv_offences", RY), "65.8", id="dv-arrest-rate"),
    pytest.param(lambda: change("youth_violence_victims", RY, PREVIOUS_RY), "-5.1",
                 id="serious-youth-violence-change"),
    pytest.param(lambda: mean("criminal_networks_disrupted", RY), "30.8",
                 id="criminal-networks-disrupted-monthly-mean"),
    pytest.param(lambda: mean("assets_seized_cases", FYTD), "206",
                 id="assets-seized-monthly-mean-apr-jul-08"),
    pytest.param(lambda: mean("class_a_sd", RY), "207", id="class-a-sd-monthly-mean"),
    pytest.param(lambda: mean("class_a_sd_cocaine", RY), "137", id="cocaine-sd-monthly-mean"),
    pytest.param(lambda: mean("class_a_sd_heroin", RY), "50", id="heroin-sd-monthly-mean"),
]


@pytest.mark.parametrize(("compute", "printed"), SEED_FIGURES)
def test_it_reproduces_the_seed_figure(compute: Callable[[], Fraction], printed: str) -> None:
    assert rounded_like(compute(), printed) == Decimal(printed)


# Targets and how the figure stands against them (the seed's comments and RAG).
TARGETS = [
    pytest.param(lambda: rate("victim_satisfaction", TO_JUN_08), "<", Fraction("78.9"),
                 id="spi-1.1-below-target"),
    pytest.param(lambda: gap(TO_JUN_08), ">", Fraction("3.8"), id="spi-1.2-gap-above-target"),
    pytest.param(lambda: rate("confidence", TO_MAR_08) - rate("confidence", TO_MAR_07), ">=",
                 Fraction("0.5"), id="spi-2.3-2007-08-increase-target-met"),
    pytest.param(lambda: change(SAC, RY, PREVIOUS_RY), "<", Fraction(-4),
                 id="spi-5.2-beats-minus-4"),
    pytest.param(lambda: ratio(SAC_SD, SAC, RY), "<", Fraction("11.8"), id="spi-6.2-below-target"),
    pytest.param(lambda: change("ksi", TO_MAR_08, TO_MAR_07), "<", Fraction(-3),
                 id="spi-9.1-beats-minus-3"),
    pytest.param(lambda: change("gun_crime", RY, PREVIOUS_RY), "<", Fraction(-3),
                 id="spi-5.5-beats-minus-3"),
    pytest.param(lambda: ratio("dv_arrests", "dv_offences", RY), "<", Fraction(67),
                 id="dv-below-target"),
    pytest.param(lambda: change("youth_violence_victims", RY, PREVIOUS_RY), ">", Fraction(-6),
                 id="youth-violence-short-of-minus-6"),
    pytest.param(lambda: mean("criminal_networks_disrupted", RY), ">", Fraction("29.2"),
                 id="networks-above-target"),
    pytest.param(lambda: mean("assets_seized_cases", FYTD), "<", Fraction(208),
                 id="assets-below-target"),
    pytest.param(lambda: mean("class_a_sd", RY), "<", Fraction(210), id="class-a-below-target"),
    pytest.param(lambda: mean("class_a_sd_cocaine", RY), ">", Fraction(136),
                 id="cocaine-above-target"),
    pytest.param(lambda: mean("class_a_sd_heroin", RY), ">", Fraction(47),
                 id="heroin-above-target"),
]


@pytest.mark.parametrize(("compute", "relation", "target"), TARGETS)
def test_it_stands_against_the_target_as_the_seed_says(
    compute: Callable[[], Fraction], relation: str, target: Fraction
) -> None:
    value = compute()
    assert {"<": value < target, ">": value > target, ">=": value >= target}[relation]


# Statements the seed makes in words.
STATEMENTS = [
    pytest.param(lambda: change("residential_burglary", RY, PREVIOUS_RY) > 0
                 and change(SAC, RY, PREVIOUS_RY) < 0,
                 id="burglary-rises-while-sac-falls"),
    pytest.param(lambda: rounded_like(rate("confidence", TO_FEB_08), "0.0") < Decimal("55.2")
                 and rate("confidence", TO_MAR_08) > rate("confidence", TO_FEB_08),
                 id="confidence-target-met-after-slight-improvement-in-ry-to-mar-08"),
    pytest.param(lambda: mean("class_a_sd", RY) < mean("class_a_sd", TO_MAR_08)
                 and mean("class_a_sd", TO_MAR_08) - mean("class_a_sd", RY) < 5,
                 id="class-a-slightly-down-on-2007-08"),
    pytest.param(lambda: 0 < mean("class_a_sd_cocaine", RY) - mean("class_a_sd_cocaine", TO_MAR_08)
                 < 5, id="cocaine-slight-increase-on-2007-08"),
    pytest.param(lambda: 0 < mean("class_a_sd_heroin", RY) - mean("class_a_sd_heroin", TO_MAR_08)
                 < 5, id="heroin-slight-increase-on-2007-08"),
    pytest.param(lambda: change("most_serious_violence", RY, PREVIOUS_RY) < 0
                 and change("assault_with_injury", RY, PREVIOUS_RY) < 0,
                 id="spi-5.1-rolling-year-variation-in-msv-and-assault-with-injury"),
    pytest.param(lambda: (max(table()["assets_seized_cases", MPS][p][0] for p in months(FYTD))
                          - min(table()["assets_seized_cases", MPS][p][0] for p in months(FYTD)))
                 > mean("assets_seized_cases", FYTD) / 5,
                 id="assets-seized-vary-considerably-month-to-month"),
]


@pytest.mark.parametrize("holds", STATEMENTS)
def test_it_bears_out_the_seed_comments(holds: Callable[[], bool]) -> None:
    assert holds()


# --- the Most Similar Family -----------------------------------------------

MEASURES: dict[str, tuple[Callable[[str], Fraction], bool]] = {
    # name: (measure of a force, higher is better)
    "victim_satisfaction": (lambda f: rate("victim_satisfaction", TO_MAR_08, f), True),
    "satisfaction_gap": (lambda f: gap(TO_MAR_08, f), False),
    "confidence": (lambda f: rate("confidence", TO_MAR_08, f), True),
    "sac_change": (lambda f: change(SAC, MAY_JUL_08, MAY_JUL_07, f), False),
    "sac_sd_rate": (lambda f: ratio(SAC_SD, SAC, RY, f), True),
    "ksi_change": (lambda f: change("ksi", CALENDAR_07, CALENDAR_06, f), False),
    "msv_change": (lambda f: change("most_serious_violence", MAY_JUL_08, MAY_JUL_07, f), False),
    "msv_sd_rate": (lambda f: ratio(SV_SSO_SD[0], SV_SSO[0], RY, f), True),
    "sso_sd_rate": (lambda f: ratio(SV_SSO_SD[1], SV_SSO[1], RY, f), True),
}


def rank(measure: str) -> int:
    compute, higher_is_better = MEASURES[measure]
    mine = compute(MPS)
    others = [compute(f) for f in forces() if f != MPS]
    better = [x for x in others if (x > mine if higher_is_better else x < mine)]
    return 1 + len(better)


@pytest.mark.parametrize(("measure", "expected"), [
    pytest.param("victim_satisfaction", 8, id="spi-1.1-last-in-2007-08"),
    pytest.param("satisfaction_gap", 3, id="spi-1.2-3rd-in-2007-08"),
    pytest.param("confidence", 1, id="spi-2.3-1st-in-2007-08"),
    pytest.param("sac_change", 3, id="spi-5.2-3rd-may-jul-08"),
    pytest.param("sac_sd_rate", 2, id="spi-6.2-2nd-year-to-jul-08"),
    pytest.param("ksi_change", 8, id="spi-9.1-last-in-2007"),
    pytest.param("msv_change", 2, id="spi-5.1-2nd-may-jul-08"),
    pytest.param("msv_sd_rate", 2, id="spi-6.1-2nd-year-to-jul-08"),
    pytest.param("sso_sd_rate", 3, id="spi-6.4-3rd-year-to-jul-08"),
])
def test_it_ranks_the_mps_in_its_family_as_the_seed_says(measure: str, expected: int) -> None:
    assert rank(measure) == expected


@pytest.mark.parametrize("indicator", [
    "victim_satisfaction", "satisfaction_white", "satisfaction_bme", "confidence", "robbery",
    "vehicle_crime", "residential_burglary", "robbery_sd", "vehicle_crime_sd",
    "residential_burglary_sd", "ksi", "most_serious_violence", "most_serious_violence_sd",
    "serious_sexual_offences", "serious_sexual_offences_sd",
])
def test_it_holds_seven_peers_over_the_mps_months(indicator: str) -> None:
    holders = [f for f in forces() if (indicator, f) in table()]
    assert len(holders) == 8 and MPS in holders
    assert all(table()[indicator, f].keys() == table()[indicator, MPS].keys() for f in holders)


# --- the contract of indicators.csv ----------------------------------------


def test_it_writes_the_header_of_the_contract() -> None:
    with (DATA / "indicators.csv").open(newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    assert header == ["indicator", "force", "period", "value", "denominator", "provisional"]


def test_it_sorts_rows_by_indicator_force_and_period() -> None:
    keys = [(r["indicator"], r["force"], r["period"]) for r in rows()]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)


def test_it_writes_integers_with_denominators_only_on_proportions() -> None:
    for row in rows():
        assert row["value"].isdigit(), row
        assert row["provisional"] in ("true", "false"), row
        if row["indicator"] in PROPORTIONS:
            assert row["denominator"].isdigit(), row
            assert int(row["value"]) <= int(row["denominator"]), row
        else:
            assert row["denominator"] == "", row


def test_it_flags_only_jan_to_mar_2008_ksi_as_provisional() -> None:
    flagged = {
        (r["indicator"], r["force"], r["period"]) for r in rows() if r["provisional"] == "true"
    }
    expected = {("ksi", f, p) for f in forces() for p in ("2008-01", "2008-02", "2008-03")}
    assert flagged == expected


@pytest.mark.parametrize(("indicator", "first", "last"), [
    pytest.param("victim_satisfaction", "2006-04", "2008-06", id="surveys-end-jun-08"),
    pytest.param("satisfaction_white", "2006-04", "2008-06", id="white-ends-jun-08"),
    pytest.param("satisfaction_bme", "2006-04", "2008-06", id="bme-ends-jun-08"),
    pytest.param("confidence", "2006-04", "2008-03", id="confidence-ends-mar-08"),
    pytest.param("ksi", "2006-01", "2008-03", id="ksi-jan-06-to-mar-08"),
    *(pytest.param(name, "2006-04", "2008-07", id=name) for name in (
        "robbery", "vehicle_crime", "residential_burglary", "robbery_sd", "vehicle_crime_sd",
        "residential_burglary_sd", "most_serious_violence", "gun_crime", "assault_with_injury",
        "serious_sexual_offences", "most_serious_violence_sd", "serious_sexual_offences_sd",
        "dv_offences", "dv_arrests",
        "youth_violence_victims", "criminal_networks_disrupted", "assets_seized_cases",
        "class_a_sd", "class_a_sd_cocaine", "class_a_sd_heroin")),
])
def test_it_covers_every_month_of_the_indicator(indicator: str, first: str, last: str) -> None:
    assert list(table()[indicator, MPS]) == months((first, last))


def test_it_holds_no_other_indicators() -> None:
    mps_indicators = {indicator for indicator, force in table() if force == MPS}
    assert len(mps_indicators) == 25


@pytest.mark.parametrize(("children", "parent", "column"), [
    pytest.param(("class_a_sd_cocaine", "class_a_sd_heroin"), "class_a_sd", 0,
                 id="cocaine-and-heroin-within-class-a"),
    pytest.param(("satisfaction_white", "satisfaction_bme"), "victim_satisfaction", 0,
                 id="white-and-bme-satisfied-within-all"),
    pytest.param(("satisfaction_white", "satisfaction_bme"), "victim_satisfaction", 1,
                 id="white-and-bme-respondents-within-all"),
    *(pytest.param((f"{p}_sd",), p, 0, id=f"{p}-detections-within-offences") for p in SV_SSO),
    pytest.param(("dv_arrests",), "dv_offences", 0, id="dv-arrests-within-offences"),
    *(pytest.param((f"{p}_sd",), p, 0, id=f"{p}-detections-within-offences") for p in SAC),
])
def test_it_keeps_parts_within_their_whole_every_month(
    children: tuple[str, ...], parent: str, column: int
) -> None:
    for force in forces():
        if (parent, force) not in table():
            continue
        for period, whole in table()[parent, force].items():
            part = sum(table()[child, force][period][column] or 0 for child in children)
            assert 0 <= part <= (whole[column] or 0), (force, period)


# --- the counter-terrorism milestones --------------------------------------


@cache
def milestones() -> tuple[dict[str, str], ...]:
    with (DATA / "ct-milestones.csv").open(newline="", encoding="utf-8") as handle:
        return tuple(csv.DictReader(handle))


def due(m: dict[str, str]) -> dt.date:
    return dt.date.fromisoformat(m["due"])


MILESTONE_STATES: list[object] = [
    pytest.param(lambda m: True, 12, id="twelve-milestones"),
    pytest.param(lambda m: due(m) < AS_OF and m["status"] != "done", 3, id="three-overdue"),
    pytest.param(lambda m: m["completed"] != "" and dt.date.fromisoformat(m["completed"]) > due(m),
                 1, id="one-completed-late"),
    pytest.param(lambda m: AS_OF < due(m) <= AS_OF + dt.timedelta(days=30)
                 and m["status"] != "done", 2, id="two-due-within-30-days"),
]


@pytest.mark.parametrize(("selects", "expected"), MILESTONE_STATES)
def test_it_counts_ct_milestones_as_of_31_july_2008(
    selects: Callable[[dict[str, str]], bool], expected: int
) -> None:
    assert sum(1 for m in milestones() if selects(m)) == expected


def test_it_keeps_milestones_consistent_and_within_2008_09() -> None:
    assert len({m["id"] for m in milestones()}) == len(milestones())
    for m in milestones():
        assert m["status"] in ("not_started", "in_progress", "done"), m
        assert (m["status"] == "done") == (m["completed"] != ""), m
        assert dt.date(2008, 4, 1) <= due(m) <= dt.date(2009, 3, 31), m
    assert len({m["owner"] for m in milestones()}) >= 5


def test_it_writes_the_same_milestones_to_yaml_and_csv() -> None:
    yaml = pytest.importorskip("yaml")
    document = yaml.safe_load((DATA / "ct-milestones.yaml").read_text(encoding="utf-8"))
    assert list(document) == ["milestones"]
    from_yaml = [
        {key: "" if value is None else str(value) for key, value in item.items()}
        for item in document["milestones"]
    ]
    assert from_yaml == [dict(m) for m in milestones()]


# --- the generator ---------------------------------------------------------


def test_it_regenerates_identical_files(tmp_path: Path) -> None:
    pytest.importorskip("numpy")
    result = subprocess.run(
        [sys.executable, str(EXAMPLE / "generate.py"), "--out", str(tmp_path)],
        capture_output=True, text=True, check=False, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "MISMATCH" not in result.stdout
    for name in ("indicators.csv", "ct-milestones.yaml", "ct-milestones.csv"):
        assert (tmp_path / "data" / name).read_bytes() == (DATA / name).read_bytes(), name
