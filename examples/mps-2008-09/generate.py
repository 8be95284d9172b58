#!/usr/bin/env python3
"""Generate the data of the MPS 2008/09 example scorecard.

Writes, under ``data/`` next to this file (or under ``--out``):

- ``indicators.csv``: monthly series in long format
  (``indicator,force,period,value,denominator,provisional``) for the
  Metropolitan Police Service and seven Most Similar Family peers;
- ``ct-milestones.yaml`` and its twin ``ct-milestones.csv``: the
  counter-terrorism plan milestones.

Every force-level figure is synthetic. The series are built so that each
figure of the seed scorecard (``mps-critical-performance-areas-2008-09.txt``)
comes out exactly, to the seed's printed rounding, when computed the
conventional way: window sums, sum-over-sum rates, % change of a window on the
one before, monthly means. Seasonal shapes are real (London-wide monthly
totals of the London Datastore borough file, see ``SHAPES``).

The run is deterministic (one seeded numpy RNG per series). It prints a
verification table recomputed from the files it wrote and exits 1 if any
figure is off.

Usage::

    python generate.py [--out DIR]
    python generate.py --derive-shapes mps-borough-crime-2008-01-to-2016-12.csv
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import math
import sys
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
import numpy.typing as npt

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Window = tuple[str, str]  # first and last month, inclusive, "YYYY-MM"

SEED = 20080731
MPS = "Metropolitan Police Service"
AS_OF = dt.date(2008, 7, 31)  # the date of the scorecard, for the milestones

# The seed: "Performance for rolling 12 months (RY) to Jul-08 unless otherwise stated".
RY = ("2007-08", "2008-07")  # rolling year to Jul-08
PREVIOUS_RY = ("2006-08", "2007-07")  # rolling year to Jul-07
TO_JUN_08 = ("2007-07", "2008-06")  # "12 mths to Jun-08" (survey lag)
TO_MAR_08 = ("2007-04", "2008-03")  # "12 mths to Mar-08" = financial year 2007/08
TO_MAR_07 = ("2006-04", "2007-03")  # the 12 months before = 2006/07
TO_FEB_08 = ("2007-03", "2008-02")  # the rolling year just before Mar-08
FY_2007_08 = TO_MAR_08
FYTD = ("2008-04", "2008-07")  # "April-July 2008"
MAY_JUL_07 = ("2007-05", "2007-07")
MAY_JUL_08 = ("2008-05", "2008-07")
CALENDAR_06 = ("2006-01", "2006-12")
CALENDAR_07 = ("2007-01", "2007-12")
KSI_PROVISIONAL = ("2008-01", "2008-03")  # "Data relating to Jan to Mar-08 is provisional"

# =============================================================================
# 1. What the seed prints: the figures to reproduce
# =============================================================================

# % change of the rolling year to Jul-08 on the rolling year to Jul-07
# (KSI: 12 mths to Mar-08 on 12 mths to Mar-07).
#   indicator: (printed % change, printed count change or None, previous total to start from)
CHANGES: dict[str, tuple[str, int | None, int]] = {
    "robbery": ("-22.3", -9_828, 44_070),  # starting totals of the parts: domain.md
    "vehicle_crime": ("-6.7", -8_367, 124_880),
    "residential_burglary": ("0.6", 366, 61_000),
    "most_serious_violence": ("-3.8", None, 10_150),
    "gun_crime": ("-19.5", None, 3_640),
    "youth_violence_victims": ("-5.1", None, 17_480),
    "ksi": ("-4.9", None, 3_950),
}
SAC_PARTS = ("residential_burglary", "robbery", "vehicle_crime")
SAC_CHANGE = "-7.8"  # SPI 5.2: the three parts together

# Sanction detection rates (%): detections / offences, rolling year to Jul-08.
SD_RATES = {"residential_burglary": "14.7", "robbery": "16.5", "vehicle_crime": "7.6"}
SAC_SD_RATE = "11.1"  # SPI 6.2
SV_SSO_SD_RATE = "31.9"  # SPI 6.1 + 6.4, combined
# Not printed: how the combined detections split between serious violence (SPI 6.1) and
# serious sexual offences (SPI 6.4). The rest of the combined total is SPI 6.4's.
MSV_SD_RATE = "34.0"
DV_ARREST_RATE = "65.8"  # arrests / domestic violence offences

# Survey proportions (%).
VICTIM_SATISFACTION = "77.0"  # SPI 1.1, 12 mths to Jun-08
SATISFACTION_GAP = "4.2"  # SPI 1.2, pp, white minus BME, 12 mths to Jun-08
CONFIDENCE = "55.2"  # SPI 2.3, 12 mths to Mar-08
CONFIDENCE_PREVIOUS = "54.7"  # 12 mths to Mar-07: "increase 0.5% (to 55.2%) was met"
CONFIDENCE_TO_FEB_08 = "55.1"  # implied: "met following a slight improvement in the RY to Mar-08"

# Monthly averages: indicator: (printed mean, window).
MEANS: dict[str, tuple[str, Window]] = {
    "criminal_networks_disrupted": ("30.8", RY),
    "assets_seized_cases": ("206", FYTD),
    "class_a_sd": ("207", RY),
    "class_a_sd_cocaine": ("137", RY),
    "class_a_sd_heroin": ("50", RY),
}
# "slightly down on 2007/08 levels ... cocaine and heroin both show slight
# increases": 2007/08 totals (not printed) a little either side of the RY.
CLASS_A_FY_2007_08 = {"class_a_sd": 2_514, "class_a_sd_cocaine": 1_624, "class_a_sd_heroin": 581}
# Assets seized, 2007/08 (not printed): ~198 a month, below the 2008/09 target of 208.
ASSETS_FY_2007_08 = 2_380

# The MPS's rank in its Most Similar Family (1 = best of 8), as the seed says.
RANKS = {
    "victim_satisfaction": 8,  # 2007/08, "ranked last"
    "satisfaction_gap": 3,  # 2007/08, smaller gap is better
    "confidence": 1,  # 2007/08
    "sac_change": 3,  # % change May-Jul 08 on May-Jul 07, lower is better
    "sac_sd_rate": 2,  # year to Jul-08
    "ksi_change": 8,  # % change 2007 on 2006, "ranked last"
    "msv_change": 2,  # % change May-Jul 08 on May-Jul 07
    "msv_sd_rate": 2,  # SPI 6.1, SD rate for serious violence, year to Jul-08
    "sso_sd_rate": 3,  # SPI 6.4, SD rate for serious sexual offences, year to Jul-08
}
HIGHER_IS_BETTER = ("victim_satisfaction", "confidence", "sac_sd_rate", "msv_sd_rate",
                    "sso_sd_rate")

# Unrounded aims where the printed value alone does not pin the figure down.
CONFIDENCE_AIMS = {TO_MAR_07: Fraction("54.70"), TO_FEB_08: Fraction("55.13"),
                   TO_MAR_08: Fraction("55.22")}  # 55.22 >= 54.70 + 0.5: met unrounded too

# =============================================================================
# 2. Shapes, sizes and the peer group
# =============================================================================

# Seasonal index by calendar month (Jan..Dec, mean 1): London-wide totals of
# the real London Datastore borough file, mean of 2008, 2009 and 2010, each
# year divided by its own monthly mean. Reproduce with --derive-shapes.
SHAPE_SOURCE = {
    "residential_burglary": ("Burglary in a Dwelling",),
    "robbery": ("Personal Property", "Business Property"),
    "vehicle_crime": ("Theft From Motor Vehicle", "Theft/Taking Of Motor Vehicle",
                      "Motor Vehicle Interference & Tampering"),
    "violence": ("Assault with Injury",),  # Wounding/GBH has a recoding break in 2008
    "sexual": ("Rape", "Other Sexual"),
    "drugs": ("Drug Trafficking",),
}
SHAPES: dict[str, tuple[float, ...]] = {
    "residential_burglary": (1.147, 0.997, 1.048, 0.892, 0.925, 0.924,
                             0.935, 0.941, 0.935, 1.013, 1.133, 1.110),
    "robbery": (1.047, 0.979, 1.096, 1.033, 1.081, 1.006,
                0.969, 0.892, 0.918, 1.028, 1.001, 0.950),
    "vehicle_crime": (1.019, 0.944, 1.054, 1.036, 1.046, 1.045,
                      1.005, 0.956, 0.995, 1.036, 0.979, 0.886),
    "violence": (0.984, 0.921, 1.055, 0.974, 1.112, 1.092,
                 1.079, 1.002, 0.952, 0.978, 0.948, 0.903),
    "sexual": (0.922, 0.901, 1.076, 0.967, 1.051, 1.109, 1.150, 0.965, 1.020, 1.006, 0.966, 0.867),
    "drugs": (0.916, 0.924, 0.971, 1.028, 0.946, 1.071, 1.266, 1.141, 0.892, 0.951, 1.019, 0.874),
    # Assumed, not from data: road casualties dip in February, peak in summer and autumn.
    "roads": (0.950, 0.880, 0.970, 0.970, 1.040, 1.040, 1.050, 0.990, 1.040, 1.060, 1.040, 0.970),
    "flat": (1.0,) * 12,
}
VIOLENCE_SHAPE = "violence"  # most serious violence, gun crime, youth violence, DV

# Months held for each indicator (MPS and peers alike); FULL unless listed.
FULL = ("2006-04", "2008-07")
COVERAGE: dict[str, Window] = {
    "victim_satisfaction": ("2006-04", "2008-06"),
    "satisfaction_white": ("2006-04", "2008-06"),
    "satisfaction_bme": ("2006-04", "2008-06"),
    "confidence": ("2006-04", "2008-03"),
    "ksi": ("2006-01", "2008-03"),  # from Jan-06: the MSF rank is calendar 2007 on 2006
}

# MPS surveys: respondents a month, and the ethnic mix of victim-survey respondents.
MPS_VICTIM_SURVEY = 1_450  # ~17,400 a year, ~540 per borough
MPS_BCS = 580  # British Crime Survey interviews in London a month
MPS_ETHNIC_MIX = (0.61, 0.36)  # white, BME; the rest did not state an ethnicity
NOT_STATED = 0.03

# Other MPS series that only the seed's rates need (12-month totals, previous and current RY).
SERIOUS_SEXUAL_OFFENCES = (5_640, 5_910)  # added to most serious violence for SPI 6.1/6.4
DV_OFFENCES = (49_800, 51_270)
# Not printed: "Rolling year variation in MSV and Assault with Injury shown" (SPI 5.1).
# Previous RY total and the % change of the RY to Jul-08, invented.
ASSAULT_WITH_INJURY = (58_400, "-1.2")
# Peers' serious sexual offences per most serious violence offence (the MPS's own ratio).
SSO_PER_MSV = Fraction(SERIOUS_SEXUAL_OFFENCES[1], 9_764)


@dataclass(frozen=True)
class Peer:
    """A Most Similar Family force: 12-month sizes around 2006/07 and its survey design."""

    name: str
    robbery: int
    vehicle_crime: int
    residential_burglary: int
    most_serious_violence: int
    ksi_2006: int
    victim_survey: int  # respondents a month
    bme_share: float  # of victim-survey respondents
    bcs: int  # confidence interviews a month


PEERS = (
    Peer("West Midlands Police", 5_600, 26_500, 14_200, 1_750, 820, 290, 0.21, 95),
    Peer("Greater Manchester Police", 6_800, 38_500, 22_400, 1_950, 1_060, 300, 0.12, 95),
    Peer("West Yorkshire Police", 2_900, 27_800, 18_600, 1_350, 1_150, 260, 0.13, 90),
    Peer("Merseyside Police", 1_650, 12_400, 8_300, 950, 640, 210, 0.05, 85),
    Peer("Northumbria Police", 720, 10_200, 5_600, 780, 760, 215, 0.04, 85),
    Peer("South Yorkshire Police", 1_250, 12_800, 9_100, 720, 700, 205, 0.06, 85),
    Peer("Lancashire Constabulary", 820, 10_100, 7_200, 930, 910, 215, 0.08, 88),
)

# Each peer's measure = the MPS's measure + this offset (in the measure's unit,
# % or pp), in the order of RANKS. Peers better than the MPS: 0 on victim
# satisfaction, 2 on the gap (negative), 0 on confidence, 2 on SAC change
# (negative), 1 on the SD rate (positive), 0 on KSI change, 1 on MSV change,
# 1 on the serious violence SD rate (positive), 2 on the sexual offences SD rate.
PEER_OFFSETS: dict[str, tuple[float, ...]] = {
    #                            sat   gap   conf   sac    sd    ksi   msv  sv-sd sso-sd
    "West Midlands Police": (3.4, 2.6, -2.3, -4.4, -1.5, -5.6, 3.1, -4.1, 3.4),
    "Greater Manchester Police": (1.3, 4.1, -4.6, 2.9, 1.9, -2.2, -3.6, 2.6, -2.2),
    "West Yorkshire Police": (4.2, -1.3, -3.3, 5.3, -0.9, -7.4, 1.8, -1.8, 1.7),
    "Merseyside Police": (2.2, 1.4, -1.2, -1.9, -2.4, -3.5, 7.2, -6.3, -4.9),
    "Northumbria Police": (8.6, -2.1, -5.8, 1.6, -1.9, -6.5, 4.6, -3.0, -6.1),
    "South Yorkshire Police": (5.1, 5.9, -6.7, 7.4, -3.1, -4.6, 10.4, -7.7, -3.6),
    "Lancashire Constabulary": (6.3, 3.3, -0.9, 3.8, -2.7, -1.4, 2.7, -5.2, -1.3),
}
# Peers' SD rate of each part relative to their SAC rate (the MPS's own mix).
SD_MIX = {"residential_burglary": "1.32", "robbery": "1.49", "vehicle_crime": "0.68"}
# Peers' May-Jul change of each part relative to their SAC change (pp).
SAC_PART_TILT = {"residential_burglary": 3, "robbery": -3, "vehicle_crime": -1}

# =============================================================================
# 3. The counter-terrorism plan
# =============================================================================


@dataclass(frozen=True)
class Milestone:
    id: str
    due: dt.date
    status: str  # not_started | in_progress | done
    completed: dt.date | None
    owner: str  # an MPS business group
    title: str


def milestone(id: str, due: str, status: str, completed: str | None, owner: str,
              title: str) -> Milestone:
    done = dt.date.fromisoformat(completed) if completed else None
    return Milestone(id, dt.date.fromisoformat(due), status, done, owner, title)


# As of 2008-07-31: CT-04..06 overdue, CT-02 done late, CT-07 and CT-08 due
# within 30 days, CT-10 done early, the rest on time or not yet due.
MILESTONES = (
    milestone("CT-01", "2008-04-30", "done", "2008-04-24", "Specialist Operations",
              "Issue the SO15 intelligence-sharing protocol to all borough intelligence units"),
    milestone("CT-02", "2008-05-31", "done", "2008-06-20", "Territorial Policing",
              "Complete Project Griffin briefings for business security staff in central London"),
    milestone("CT-03", "2008-06-13", "done", "2008-06-10", "Directorate of Public Affairs",
              "Launch the London-wide campaign on reporting suspicious activity"),
    milestone("CT-04", "2008-06-30", "in_progress", None, "Central Operations",
              "Deliver CBRN awareness training to all operational Territorial Policing officers"),
    milestone("CT-05", "2008-07-15", "in_progress", None, "Specialist Operations",
              "Agree the counter-terrorism workstream of the 2012 Olympic security programme"),
    milestone("CT-06", "2008-07-25", "not_started", None, "Territorial Policing",
              "Agree Prevent delivery plans with Safer Neighbourhoods teams in priority boroughs"),
    milestone("CT-07", "2008-08-15", "in_progress", None, "Human Resources",
              "Clear the vetting backlog for Counter Terrorism Command recruits"),
    milestone("CT-08", "2008-08-29", "in_progress", None, "Directorate of Information",
              "Commission the upgrade of the secure counter-terrorism intelligence system"),
    milestone("CT-09", "2008-09-30", "not_started", None, "Central Operations",
              "Run a London-wide mass-casualty response exercise with partner agencies"),
    milestone("CT-10", "2008-10-31", "done", "2008-07-10", "Territorial Policing",
              "Review hostile-reconnaissance reporting by Safer Transport Teams"),
    milestone("CT-11", "2008-12-19", "in_progress", None, "Directorate of Resources",
              "Open additional secure custody capacity for terrorism suspects"),
    milestone("CT-12", "2009-03-31", "not_started", None, "Specialist Crime Directorate",
              "Evaluate the 2008/09 CT plan and set the 2009/10 milestones"),
)
MILESTONE_FIELDS = ("id", "title", "owner", "due", "status", "completed")

# =============================================================================
# 4. Months, rounding and the solvers
# =============================================================================


def months(window: Window) -> list[str]:
    """Return every month of ``window`` in order, as "YYYY-MM"."""
    year, month = int(window[0][:4]), int(window[0][5:])
    out = []
    while (period := f"{year:04d}-{month:02d}") <= window[1]:
        out.append(period)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def inside(period: str, window: Window) -> bool:
    return window[0] <= period <= window[1]


def mask(span: Sequence[str], window: Window) -> Bools:
    return np.array([inside(p, window) for p in span])


def rounded(value: Fraction, printed: str) -> Decimal:
    """Return ``value`` rounded half away from zero to as many places as ``printed`` shows."""
    places = int(Decimal(printed).as_tuple().exponent)
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    return exact.quantize(Decimal(1).scaleb(places), rounding=ROUND_HALF_UP)


def half_unit(printed: str) -> Fraction:
    """Return half the last printed digit: "22.3" -> 0.05, "206" -> 0.5."""
    return Fraction(1, 2) * Fraction(10) ** int(Decimal(printed).as_tuple().exponent)


def fit_parts(nominal: Mapping[str, Fraction], bounds: Mapping[str, tuple[Fraction, Fraction]],
              total: int) -> dict[str, int]:
    """Return integers near ``nominal``, each within its ``bounds``, that sum to ``total``.

    The gap between ``total`` and the nominal sum is shared in proportion to
    the room each part has on that side. Raises ValueError if it cannot fit.
    """
    lo = {k: math.ceil(bounds[k][0]) for k in nominal}
    hi = {k: math.floor(bounds[k][1]) for k in nominal}
    out = {k: min(max(round(nominal[k]), lo[k]), hi[k]) for k in nominal}
    gap = total - sum(out.values())
    room = {k: hi[k] - out[k] if gap > 0 else out[k] - lo[k] for k in nominal}
    if sum(room.values()) < abs(gap):
        raise ValueError(f"cannot fit {total} within {bounds}")
    for k in nominal:
        out[k] += int(gap * room[k] / sum(room.values()))
    for k in sorted(nominal, key=lambda k: -room[k])[: abs(total - sum(out.values()))]:
        out[k] += 1 if gap > 0 else -1
    return out


def solve_change(previous: int, printed: str, difference: int | None) -> int:
    """Return the current total for a printed % change (and printed count change, if any)."""
    if difference is None:
        difference = round(previous * Fraction(printed) / 100)
    pct = Fraction(100 * difference, previous)
    if rounded(pct, printed) != Decimal(printed):
        raise ValueError(f"{previous} -> {previous + difference} is {float(pct):.3f}%")
    return previous + difference


def solve_sac_previous_totals() -> dict[str, int]:
    """Return previous-RY totals of the SAC parts so that all four printed % changes hold.

    The printed count changes are fixed, so each part's previous total may
    move only within the range that keeps its own % (kept to the inner 60%
    of the rounding interval); the sum is put where the combined change is
    exactly -7.8%.
    """
    bounds, nominal = {}, {}
    for part in SAC_PARTS:
        printed, difference, start = CHANGES[part]
        assert difference is not None
        size, slack = abs(Fraction(printed)), half_unit(printed) * Fraction(6, 10)
        moved = 100 * abs(difference)
        bounds[part] = (moved / (size + slack), moved / (size - slack))
        nominal[part] = Fraction(start)
    difference = sum(CHANGES[p][1] or 0 for p in SAC_PARTS)
    return fit_parts(nominal, bounds, round(100 * difference / Fraction(SAC_CHANGE)))


def solve_sd_totals(offences: Mapping[str, int]) -> dict[str, int]:
    """Return RY detections per SAC part: each part's and the combined rate round as printed."""
    bounds, nominal = {}, {}
    for part, printed in SD_RATES.items():
        rate, slack = Fraction(printed) / 100, half_unit(printed) * Fraction(6, 10) / 100
        nominal[part] = offences[part] * rate
        bounds[part] = (offences[part] * (rate - slack), offences[part] * (rate + slack))
    return fit_parts(nominal, bounds, round(sum(offences.values()) * Fraction(SAC_SD_RATE) / 100))


def solve_mean(printed: str, window: Window) -> int:
    """Return the window total whose monthly mean is the printed mean."""
    return round(Fraction(printed) * len(months(window)))


def share_of(total: int, printed_pct: str) -> int:
    """Return round(total * printed% / 100): the numerator nearest the printed rate."""
    return round(total * Fraction(printed_pct) / 100)


# =============================================================================
# 5. Series builders
# =============================================================================


def rng_for(*names: str) -> np.random.Generator:
    """Return an RNG seeded by the series' names, so every series is reproducible on its own."""
    return np.random.default_rng([SEED, zlib.crc32("|".join(names).encode())])


def seasonal(span: Sequence[str], shape: str) -> Floats:
    index = np.array(SHAPES[shape]) / np.mean(SHAPES[shape])
    return np.array([index[int(p[5:]) - 1] for p in span])


def allocate(total: int, weights: Floats, caps: Ints | None = None) -> Ints:
    """Return integers proportional to ``weights`` that sum to ``total``, none above its cap.

    Largest-remainder rounding; any units over a cap go to the months with most room.
    """
    weights = np.clip(weights, 1e-9, None)
    raw = total * weights / weights.sum()
    out: Ints = np.floor(raw).astype(np.int64)
    out[np.argsort(out - raw, kind="stable")[: total - int(out.sum())]] += 1
    if caps is not None:
        if total > caps.sum():
            raise ValueError(f"{total} does not fit under caps summing to {caps.sum()}")
        excess = int(np.clip(out - caps, 0, None).sum())
        out = np.minimum(out, caps)
        for _ in range(excess):
            out[int(np.argmax(caps - out))] += 1
    return out


def counts(name: str, force: str, span: Sequence[str], shape: str,
           windows: Mapping[Window, int], yoy: float, extra_noise: float = 0.02) -> Ints:
    """Return monthly counts: seasonal shape x yearly trend x noise, exact on every window.

    Noise is Poisson-like (sd = sqrt(mean)) plus ``extra_noise`` relative sd.
    Months outside the windows follow the trend at the level of the first window.
    """
    rng = rng_for(name, force)
    trend = seasonal(span, shape) * (1 + yoy) ** (np.arange(len(span)) / 12)
    first, first_total = next(iter(windows.items()))
    mean = trend * first_total / trend[mask(span, first)].sum()
    noisy = mean * np.clip(1 + rng.normal(0, np.sqrt(1 / mean + extra_noise**2)), 0.3, None)
    values: Ints = np.rint(noisy).astype(np.int64)
    for window, total in windows.items():
        inner = mask(span, window)
        values[inner] = allocate(total, noisy[inner])
    return values


def proportions(name: str, force: str, span: Sequence[str], denominators: Ints,
                windows: Mapping[Window, int], free_rate: float | None = None,
                overdispersion: float = 0.0) -> Ints:
    """Return monthly numerators out of ``denominators``, exact on every window.

    A month's rate is its window's rate (outside windows ``free_rate``, by
    default the first window's) plus binomial noise and ``overdispersion``
    relative sd (detection rates vary more than a binomial would).
    """
    rng = rng_for(name, force)
    rate = np.full(len(span), np.nan)
    for window, total in windows.items():
        inner = mask(span, window)
        rate[inner] = total / denominators[inner].sum()
    if free_rate is None:
        free_rate = float(rate[mask(span, next(iter(windows)))][0])
    rate = np.where(np.isnan(rate), free_rate, rate)
    sd = np.sqrt(rate * (1 - rate) / np.maximum(denominators, 1) + (overdispersion * rate) ** 2)
    noisy = np.clip(rate + rng.normal(0, sd), 0.0, 1.0) * denominators
    values: Ints = np.minimum(np.rint(noisy).astype(np.int64), denominators)
    for window, total in windows.items():
        inner = mask(span, window)
        values[inner] = allocate(total, noisy[inner], caps=denominators[inner])
    return values


def sample_sizes(name: str, force: str, span: Sequence[str], per_month: int) -> Ints:
    """Return survey respondents a month: the design size with +-5% fieldwork variation."""
    rng = rng_for(name, force, "n")
    return np.rint(per_month * (1 + rng.normal(0, 0.05, len(span)))).astype(np.int64)


@dataclass(frozen=True)
class Survey:
    """One force's victim survey: (satisfied, respondents) overall, white and BME."""

    total: tuple[Ints, Ints]
    white: tuple[Ints, Ints]
    bme: tuple[Ints, Ints]


def victim_survey(force: str, span: Sequence[str], per_month: int, bme_share: float,
                  window: Window, rate: Fraction, gap: Fraction,
                  free_shift: float = 0.0) -> Survey:
    """Return a victim survey whose window has the given overall rate and white-BME gap.

    1. Respondents split by a multinomial draw: white, BME, not stated.
    2. In the window: T = round(rate x N) satisfied; W from the white rate that
       makes the mix add up; B = round((W/Nw - gap) x Nb); not stated = T - W - B.
    3. Each group's months: its window rate plus sampling noise; months
       outside the window at that rate + ``free_shift``.
    The overall series is the sum of the three groups.
    """
    rng = rng_for("victim_survey", force, "mix")
    n = sample_sizes("victim_survey", force, span, per_month)
    shares = [1 - NOT_STATED - bme_share, bme_share, NOT_STATED]
    split = np.array([rng.multinomial(int(k), shares) for k in n], dtype=np.int64)
    groups = {"white": split[:, 0], "bme": split[:, 1], "other": split[:, 2]}
    inner = mask(span, window)
    nw, nb, no = (int(groups[g][inner].sum()) for g in ("white", "bme", "other"))
    total = round(rate * (nw + nb + no))
    satisfied_white = round((total - no * rate + nb * gap) / (nw + nb) * nw)
    satisfied_bme = round((Fraction(satisfied_white, nw) - gap) * nb)
    satisfied = {"white": satisfied_white, "bme": satisfied_bme,
                 "other": total - satisfied_white - satisfied_bme}
    if not 0 <= satisfied["other"] <= no:
        raise ValueError(f"{force}: {satisfied['other']} satisfied of {no} not stated")
    values = {}
    for group, respondents in groups.items():
        free_rate = satisfied[group] / int(respondents[inner].sum()) + free_shift
        values[group] = proportions(f"satisfaction_{group}", force, span, respondents,
                                    {window: satisfied[group]}, free_rate)
    return Survey(total=(values["white"] + values["bme"] + values["other"], n),
                  white=(values["white"], groups["white"]), bme=(values["bme"], groups["bme"]))


# =============================================================================
# 6. The MPS and its peers
# =============================================================================

Series = dict[str, tuple[int, int | None]]  # period -> (value, denominator)
Data = dict[tuple[str, str], Series]  # (indicator, force) -> series


def put(data: Data, indicator: str, force: str, span: Sequence[str], values: Ints,
        denominators: Ints | None = None) -> None:
    """Store a series, keeping only the months the indicator covers."""
    first, last = COVERAGE.get(indicator, FULL)
    data[indicator, force] = {
        p: (int(values[i]), None if denominators is None else int(denominators[i]))
        for i, p in enumerate(span) if first <= p <= last
    }


def put_survey(data: Data, force: str, span: Sequence[str], survey: Survey) -> None:
    put(data, "victim_satisfaction", force, span, *survey.total)
    put(data, "satisfaction_white", force, span, *survey.white)
    put(data, "satisfaction_bme", force, span, *survey.bme)


def build_mps(data: Data) -> None:
    """Add every MPS series, each solved to the seed's figures."""
    span = months(FULL)

    # SPI 5.2: previous totals fitted; current = previous + the printed count change.
    previous = solve_sac_previous_totals()
    current, offences = {}, {}
    for part in SAC_PARTS:
        printed, difference, _ = CHANGES[part]
        current[part] = solve_change(previous[part], printed, difference)
        windows = {PREVIOUS_RY: previous[part], RY: current[part]}
        offences[part] = counts(part, MPS, span, part, windows, current[part] / previous[part] - 1)
        put(data, part, MPS, span, offences[part])

    # SPI 6.2: detections per part, fitted so that the combined rate rounds too.
    for part, detections in solve_sd_totals(current).items():
        earlier_rate = 0.97 * detections / current[part]  # a slightly lower rate the year before
        values = proportions(f"{part}_sd", MPS, span, offences[part], {RY: detections},
                             earlier_rate, overdispersion=0.05)
        put(data, f"{part}_sd", MPS, span, values)

    # SPI 5.1, 5.5 and serious youth violence: rolling year on rolling year.
    for indicator in ("most_serious_violence", "gun_crime", "youth_violence_victims"):
        printed, difference, before = CHANGES[indicator]
        after = solve_change(before, printed, difference)
        windows = {PREVIOUS_RY: before, RY: after}
        values = counts(indicator, MPS, span, VIOLENCE_SHAPE, windows, after / before - 1)
        put(data, indicator, MPS, span, values)

    # SPI 9.1: 12 months to Mar-08 on 12 months to Mar-07; held from Jan-06.
    printed, _, before = CHANGES["ksi"]
    after = solve_change(before, printed, None)
    ksi_span = months(COVERAGE["ksi"])
    windows = {TO_MAR_07: before, TO_MAR_08: after}
    ksi = counts("ksi", MPS, ksi_span, "roads", windows, after / before - 1)
    put(data, "ksi", MPS, ksi_span, ksi)

    # Assault with injury: SPI 5.1's companion, rolling year on rolling year.
    before, printed = ASSAULT_WITH_INJURY
    after = solve_change(before, printed, None)
    put(data, "assault_with_injury", MPS, span, counts(
        "assault_with_injury", MPS, span, VIOLENCE_SHAPE, {PREVIOUS_RY: before, RY: after},
        after / before - 1))

    # SPI 6.1 and 6.4: detections of most serious violence and of serious sexual
    # offences; combined (the seed's row) they are 31.9% of the two offence totals.
    sso = counts("serious_sexual_offences", MPS, span, "sexual",
                 dict(zip((PREVIOUS_RY, RY), SERIOUS_SEXUAL_OFFENCES, strict=True)), 0.048)
    msv = np.array([value for value, _ in data["most_serious_violence", MPS].values()])
    in_ry = mask(span, RY)
    detections = share_of(int(msv[in_ry].sum() + sso[in_ry].sum()), SV_SSO_SD_RATE)
    msv_detections = share_of(int(msv[in_ry].sum()), MSV_SD_RATE)
    put(data, "serious_sexual_offences", MPS, span, sso)
    put(data, "most_serious_violence_sd", MPS, span, proportions(
        "most_serious_violence_sd", MPS, span, msv, {RY: msv_detections}, 0.325, 0.04))
    put(data, "serious_sexual_offences_sd", MPS, span, proportions(
        "serious_sexual_offences_sd", MPS, span, sso, {RY: detections - msv_detections},
        0.27, 0.05))

    # Domestic violence: arrests / offences.
    dv = counts("dv_offences", MPS, span, VIOLENCE_SHAPE,
                dict(zip((PREVIOUS_RY, RY), DV_OFFENCES, strict=True)), 0.0295)
    arrests = share_of(int(dv[mask(span, RY)].sum()), DV_ARREST_RATE)
    put(data, "dv_offences", MPS, span, dv)
    put(data, "dv_arrests", MPS, span,
        proportions("dv_arrests", MPS, span, dv, {RY: arrests}, 0.642, 0.02))

    # Monthly averages; assets seized vary a lot from month to month.
    networks = {RY: solve_mean(*MEANS["criminal_networks_disrupted"])}
    put(data, "criminal_networks_disrupted", MPS, span,
        counts("criminal_networks_disrupted", MPS, span, "flat", networks, 0.08))
    assets = {FY_2007_08: ASSETS_FY_2007_08, FYTD: solve_mean(*MEANS["assets_seized_cases"])}
    put(data, "assets_seized_cases", MPS, span,
        counts("assets_seized_cases", MPS, span, "flat", assets, 0.04, extra_noise=0.14))
    build_class_a(data, span)

    # SPI 1.1 / 1.2: 12 months to Jun-08; the months before slightly better.
    survey_span = months(COVERAGE["victim_satisfaction"])
    survey = victim_survey(MPS, survey_span, MPS_VICTIM_SURVEY, MPS_ETHNIC_MIX[1], TO_JUN_08,
                           Fraction(VICTIM_SATISFACTION) / 100, Fraction(SATISFACTION_GAP) / 100,
                           free_shift=0.004)
    put_survey(data, MPS, survey_span, survey)

    # SPI 2.3: three overlapping windows.
    put(data, "confidence", MPS, *mps_confidence())


def build_class_a(data: Data, span: Sequence[str]) -> None:
    """Add Class A trafficking SDs and their cocaine and heroin children (within the parent).

    The rolling year (Aug-07..Jul-08) and 2007/08 (Apr-07..Mar-08) share
    Aug-07..Mar-08, so totals are set on three disjoint blocks: the eight
    shared months carry the average monthly level of the two years, and
    Apr-Jul 07 and Apr-Jul 08 make up each year's total.
    """
    before, shared, after = ("2007-04", "2007-07"), ("2007-08", "2008-03"), ("2008-04", "2008-07")
    blocks = {}
    for indicator, financial in CLASS_A_FY_2007_08.items():
        rolling = solve_mean(*MEANS[indicator])
        middle = round(Fraction(8 * (rolling + financial), 24))
        blocks[indicator] = {before: financial - middle, shared: middle, after: rolling - middle}
    parent_blocks = blocks["class_a_sd"]
    parent = counts("class_a_sd", MPS, span, "drugs", parent_blocks,
                    parent_blocks[after] / parent_blocks[before] - 1)
    cocaine = proportions("class_a_sd_cocaine", MPS, span, parent, blocks["class_a_sd_cocaine"],
                          overdispersion=0.03)
    heroin = proportions("class_a_sd_heroin", MPS, span, parent - cocaine,
                         blocks["class_a_sd_heroin"], overdispersion=0.05)
    put(data, "class_a_sd", MPS, span, parent)
    put(data, "class_a_sd_cocaine", MPS, span, cocaine)
    put(data, "class_a_sd_heroin", MPS, span, heroin)


def mps_confidence() -> tuple[list[str], Ints, Ints]:
    """Return SPI 2.3 for the MPS as (months, agreeing, interviewed).

    The windows to Mar-07, to Feb-08 and to Mar-08 overlap, so they are solved
    on disjoint blocks: Mar-07 and Mar-08 alone, then the rest of each
    financial year. S(to Feb-08) = v(Mar-07) + S(to Mar-08) - v(Mar-08) gives v(Mar-08).
    """
    span = months(COVERAGE["confidence"])
    n = sample_sizes("confidence", MPS, span, MPS_BCS)
    agree = {w: round(aim / 100 * int(n[mask(span, w)].sum()))
             for w, aim in CONFIDENCE_AIMS.items()}
    march_07 = round(Fraction("0.546") * int(n[span.index("2007-03")]))
    march_08 = march_07 + agree[TO_MAR_08] - agree[TO_FEB_08]
    windows = {
        ("2006-04", "2007-02"): agree[TO_MAR_07] - march_07,
        ("2007-03", "2007-03"): march_07,
        ("2007-04", "2008-02"): agree[TO_MAR_08] - march_08,
        ("2008-03", "2008-03"): march_08,
    }
    return span, proportions("confidence", MPS, span, n, windows), n


def build_peers(data: Data, mps: Mapping[str, Fraction]) -> None:
    """Add the seven peers' series, each placed at the MPS's measure + its offset."""
    span = months(FULL)
    for peer in PEERS:
        offsets = zip(RANKS, PEER_OFFSETS[peer.name], strict=True)
        target = {m: mps[m] + Fraction(str(x)) for m, x in offsets}

        # Victim satisfaction and the gap: 2007/08.
        survey_span = months(COVERAGE["victim_satisfaction"])
        put_survey(data, peer.name, survey_span, victim_survey(
            peer.name, survey_span, peer.victim_survey, peer.bme_share, FY_2007_08,
            target["victim_satisfaction"] / 100, target["satisfaction_gap"] / 100))

        # Confidence: 12 months to Mar-08.
        conf_span = months(COVERAGE["confidence"])
        n = sample_sizes("confidence", peer.name, conf_span, peer.bcs)
        interviews = int(n[mask(conf_span, TO_MAR_08)].sum())
        agree = {TO_MAR_08: round(target["confidence"] / 100 * interviews)}
        put(data, "confidence", peer.name, conf_span,
            proportions("confidence", peer.name, conf_span, n, agree), n)

        # SAC parts: May-Jul 08 on May-Jul 07, tilted per part, adding up to the target.
        base = {p: round(getattr(peer, p) * Fraction(seasonal(months(MAY_JUL_07), p).sum()) / 12)
                for p in SAC_PARTS}
        mean_tilt = Fraction(sum(SAC_PART_TILT[p] * base[p] for p in SAC_PARTS), sum(base.values()))
        offences = {}
        for part in SAC_PARTS:
            change = (target["sac_change"] + SAC_PART_TILT[part] - mean_tilt) / 100
            windows = {MAY_JUL_07: base[part], MAY_JUL_08: round(base[part] * (1 + change))}
            offences[part] = counts(part, peer.name, span, part, windows, float(change))
            put(data, part, peer.name, span, offences[part])

        # SD rates over the rolling year: the MPS's mix, scaled to the target combined rate.
        in_ry = mask(span, RY)
        ry = {p: int(offences[p][in_ry].sum()) for p in SAC_PARTS}
        mixed = sum(Fraction(SD_MIX[p]) * ry[p] for p in SAC_PARTS)
        scale = target["sac_sd_rate"] / 100 * sum(ry.values()) / mixed
        for part in SAC_PARTS:
            detections = round(Fraction(SD_MIX[part]) * scale * ry[part])
            put(data, f"{part}_sd", peer.name, span, proportions(
                f"{part}_sd", peer.name, span, offences[part], {RY: detections},
                overdispersion=0.06))

        # KSI: calendar 2007 on calendar 2006.
        ksi_span = months(COVERAGE["ksi"])
        change = target["ksi_change"] / 100
        windows = {CALENDAR_06: peer.ksi_2006, CALENDAR_07: round(peer.ksi_2006 * (1 + change))}
        put(data, "ksi", peer.name, ksi_span,
            counts("ksi", peer.name, ksi_span, "roads", windows, float(change)))

        # Most serious violence: May-Jul 08 on May-Jul 07.
        change = target["msv_change"] / 100
        share = Fraction(seasonal(months(MAY_JUL_07), VIOLENCE_SHAPE).sum()) / 12
        before = round(peer.most_serious_violence * share)
        windows = {MAY_JUL_07: before, MAY_JUL_08: round(before * (1 + change))}
        msv = counts("most_serious_violence", peer.name, span, VIOLENCE_SHAPE, windows,
                     float(change))
        put(data, "most_serious_violence", peer.name, span, msv)

        # SPI 6.1 and 6.4: detection rates over the rolling year; sexual offences sized
        # like the MPS's against most serious violence.
        sso = counts("serious_sexual_offences", peer.name, span, "sexual",
                     {RY: round(int(msv[in_ry].sum()) * SSO_PER_MSV)}, 0.04)
        put(data, "serious_sexual_offences", peer.name, span, sso)
        for name, offences, measure in (("most_serious_violence", msv, "msv_sd_rate"),
                                        ("serious_sexual_offences", sso, "sso_sd_rate")):
            detections = round(target[measure] / 100 * int(offences[in_ry].sum()))
            put(data, f"{name}_sd", peer.name, span, proportions(
                f"{name}_sd", peer.name, span, offences, {RY: detections},
                overdispersion=0.05))


# =============================================================================
# 7. Reading the data back: the conventional computations
# =============================================================================


class Dataset:
    """The rows as written, with the computations an analyst would make on them."""

    def __init__(self, rows: Iterable[Mapping[str, str]]) -> None:
        self.series: dict[tuple[str, str], Series] = {}
        self.provisional: set[tuple[str, str, str]] = set()
        for row in rows:
            den = int(row["denominator"]) if row["denominator"] else None
            key = (row["indicator"], row["force"])
            self.series.setdefault(key, {})[row["period"]] = (int(row["value"]), den)
            if row["provisional"] == "true":
                self.provisional.add((row["indicator"], row["force"], row["period"]))

    def total(self, indicators: str | Sequence[str], window: Window, force: str = MPS,
              den: bool = False) -> int:
        """Return the window's sum of values (or denominators); KeyError if a month is missing."""
        names = [indicators] if isinstance(indicators, str) else indicators
        return sum(self.series[name, force][p][den] or 0 for name in names for p in months(window))

    def rate(self, indicator: str, window: Window, force: str = MPS) -> Fraction:
        """Return 100 x sum(value) / sum(denominator) over the window."""
        return Fraction(100 * self.total(indicator, window, force),
                        self.total(indicator, window, force, den=True))

    def ratio(self, numerators: str | Sequence[str], denominators: str | Sequence[str],
              window: Window, force: str = MPS) -> Fraction:
        """Return 100 x sum(numerators) / sum(denominators) over the window."""
        return Fraction(100 * self.total(numerators, window, force),
                        self.total(denominators, window, force))

    def change(self, indicators: str | Sequence[str], window: Window, base: Window,
               force: str = MPS) -> Fraction:
        """Return the % change of the window's sum on the base window's sum."""
        before = self.total(indicators, base, force)
        return Fraction(100 * (self.total(indicators, window, force) - before), before)

    def mean(self, indicator: str, window: Window) -> Fraction:
        return Fraction(self.total(indicator, window), len(months(window)))

    def gap(self, window: Window, force: str = MPS) -> Fraction:
        """Return white minus BME satisfaction, in percentage points."""
        return (self.rate("satisfaction_white", window, force)
                - self.rate("satisfaction_bme", window, force))

    def measure(self, name: str, force: str = MPS) -> Fraction:
        """Return one of the ranked measures (see RANKS) for a force."""
        if name == "victim_satisfaction":
            return self.rate("victim_satisfaction", FY_2007_08, force)
        if name == "satisfaction_gap":
            return self.gap(FY_2007_08, force)
        if name == "confidence":
            return self.rate("confidence", TO_MAR_08, force)
        if name == "sac_change":
            return self.change(SAC_PARTS, MAY_JUL_08, MAY_JUL_07, force)
        if name == "sac_sd_rate":
            return self.ratio([f"{p}_sd" for p in SAC_PARTS], SAC_PARTS, RY, force)
        if name == "ksi_change":
            return self.change("ksi", CALENDAR_07, CALENDAR_06, force)
        if name == "msv_change":
            return self.change("most_serious_violence", MAY_JUL_08, MAY_JUL_07, force)
        if name == "msv_sd_rate":
            return self.ratio("most_serious_violence_sd", "most_serious_violence", RY, force)
        if name == "sso_sd_rate":
            return self.ratio("serious_sexual_offences_sd", "serious_sexual_offences", RY,
                              force)
        raise KeyError(name)

    def rank(self, name: str, force: str = MPS) -> int:
        """Return 1 + the number of forces in the family that do better on the measure."""
        mine = self.measure(name, force)
        others = [self.measure(name, f) for f in (MPS, *(p.name for p in PEERS)) if f != force]
        if name in HIGHER_IS_BETTER:
            return 1 + sum(x > mine for x in others)
        return 1 + sum(x < mine for x in others)


def milestone_counts(items: Iterable[Milestone], as_of: dt.date) -> dict[str, int]:
    """Return how many milestones there are, overdue, done late and due within 30 days."""
    items = list(items)
    soon = as_of + dt.timedelta(days=30)
    return {
        "total": len(items),
        "overdue": sum(m.due < as_of and m.status != "done" for m in items),
        "completed_late": sum(m.completed is not None and m.completed > m.due for m in items),
        "due_within_30_days": sum(as_of < m.due <= soon and m.status != "done" for m in items),
    }


@dataclass(frozen=True)
class Check:
    """One seed figure: where it comes from, the exact value computed, and what the seed prints."""

    spi: str
    figure: str
    window: str
    computed: Fraction
    printed: str

    @property
    def ok(self) -> bool:
        return rounded(self.computed, self.printed) == Decimal(self.printed)


def seed_checks(d: Dataset, milestones: Sequence[Milestone]) -> list[Check]:
    """Return every seed figure recomputed from the rows, next to the printed one.

    Rows marked * are implied by a comment rather than printed as a number.
    """
    ry, rank = "RY to Jul-08 vs RY to Jul-07", "MSF rank (1 = best of 8)"
    sd_parts = [f"{p}_sd" for p in SAC_PARTS]
    checks = [
        Check("SPI 1.1", "victim satisfaction %", "12 mths to Jun-08",
              d.rate("victim_satisfaction", TO_JUN_08), VICTIM_SATISFACTION),
        Check("SPI 1.1", rank, "2007/08", Fraction(d.rank("victim_satisfaction")), "8"),
        Check("SPI 1.2", "white - BME satisfaction gap, pp", "12 mths to Jun-08",
              d.gap(TO_JUN_08), SATISFACTION_GAP),
        Check("SPI 1.2", rank, "2007/08", Fraction(d.rank("satisfaction_gap")), "3"),
        Check("SPI 2.3", "confidence %", "12 mths to Mar-08",
              d.rate("confidence", TO_MAR_08), CONFIDENCE),
        Check("SPI 2.3*", "confidence % (target +0.5 to 55.2)", "12 mths to Mar-07",
              d.rate("confidence", TO_MAR_07), CONFIDENCE_PREVIOUS),
        Check("SPI 2.3*", "change, pp (>= 0.5: met)", "to Mar-08 vs to Mar-07",
              d.rate("confidence", TO_MAR_08) - d.rate("confidence", TO_MAR_07), "0.5"),
        Check("SPI 2.3*", "confidence % before the improvement", "12 mths to Feb-08",
              d.rate("confidence", TO_FEB_08), CONFIDENCE_TO_FEB_08),
        Check("SPI 2.3", rank, "2007/08", Fraction(d.rank("confidence")), "1"),
        Check("SPI 5.2", "serious acquisitive crime % change", ry,
              d.change(SAC_PARTS, RY, PREVIOUS_RY), SAC_CHANGE),
    ]
    labels = {"robbery": "robbery", "vehicle_crime": "MV crime", "residential_burglary": "burglary"}
    for part in ("robbery", "vehicle_crime", "residential_burglary"):
        printed, difference, _ = CHANGES[part]
        count = Fraction(d.total(part, RY) - d.total(part, PREVIOUS_RY))
        checks += [
            Check("SPI 5.2", f"{labels[part]} % change", ry,
                  d.change(part, RY, PREVIOUS_RY), printed),
            Check("SPI 5.2", f"{labels[part]} change, offences", ry, count, str(difference)),
        ]
    checks += [
        Check("SPI 5.2", rank, "May-Jul 08 vs May-Jul 07", Fraction(d.rank("sac_change")), "3"),
        Check("SPI 6.2", "SAC sanction detection rate %", "RY to Jul-08",
              d.ratio(sd_parts, SAC_PARTS, RY), SAC_SD_RATE),
    ]
    for part in ("residential_burglary", "robbery", "vehicle_crime"):
        checks.append(Check("SPI 6.2", f"{labels[part]} SD rate %", "RY to Jul-08",
                            d.ratio(f"{part}_sd", part, RY), SD_RATES[part]))
    provisional = sum(("ksi", MPS, p) in d.provisional for p in d.series["ksi", MPS])
    checks += [
        Check("SPI 6.2", rank, "year to Jul-08", Fraction(d.rank("sac_sd_rate")), "2"),
        Check("SPI 9.1", "KSI % change", "12 mths to Mar-08 vs to Mar-07",
              d.change("ksi", TO_MAR_08, TO_MAR_07), CHANGES["ksi"][0]),
        Check("SPI 9.1", "months flagged provisional", "Jan-Mar 08", Fraction(provisional), "3"),
        Check("SPI 9.1", rank, "2007 vs 2006", Fraction(d.rank("ksi_change")), "8"),
        Check("SPI 5.1", "most serious violence % change", ry,
              d.change("most_serious_violence", RY, PREVIOUS_RY),
              CHANGES["most_serious_violence"][0]),
        Check("SPI 5.1", rank, "May-Jul 08 vs May-Jul 07", Fraction(d.rank("msv_change")), "2"),
        Check("SPI 5.5", "gun crime % change", ry,
              d.change("gun_crime", RY, PREVIOUS_RY), CHANGES["gun_crime"][0]),
        Check("SPI 6.1/6.4", "serious violence + SSO SD rate %", "RY to Jul-08",
              d.ratio(["most_serious_violence_sd", "serious_sexual_offences_sd"],
                      ["most_serious_violence", "serious_sexual_offences"], RY),
              SV_SSO_SD_RATE),
        Check("SPI 6.1", rank, "year to Jul-08", Fraction(d.rank("msv_sd_rate")), "2"),
        Check("SPI 6.4", rank, "year to Jul-08", Fraction(d.rank("sso_sd_rate")), "3"),
        Check("SPI 5.1*", "assault with injury % change (companion)", ry,
              d.change("assault_with_injury", RY, PREVIOUS_RY), ASSAULT_WITH_INJURY[1]),
        Check("DV", "arrest rate %", "RY to Jul-08",
              d.ratio("dv_arrests", "dv_offences", RY), DV_ARREST_RATE),
        Check("SYV", "under-20 victims % change", ry,
              d.change("youth_violence_victims", RY, PREVIOUS_RY),
              CHANGES["youth_violence_victims"][0]),
    ]
    for indicator, (printed, window) in MEANS.items():
        label = "Apr-Jul 08" if window == FYTD else "RY to Jul-08"
        checks.append(Check("networks" if "network" in indicator else "assets" if "asset"
                            in indicator else "Class A", f"{indicator} monthly mean", label,
                            d.mean(indicator, window), printed))
    for indicator, direction in (("class_a_sd", -1), ("class_a_sd_cocaine", 1),
                                 ("class_a_sd_heroin", 1)):
        rolling, financial = d.mean(indicator, RY), d.mean(indicator, FY_2007_08)
        sign = (rolling > financial) - (rolling < financial)
        words = "slightly down on" if direction < 0 else "up on"
        checks.append(Check("Class A*", f"{indicator} {words} 2007/08 ({float(financial):.1f})",
                            "RY vs 2007/08 means (sign)", Fraction(sign), str(direction)))
    expected = {"total": 12, "overdue": 3, "completed_late": 1, "due_within_30_days": 2}
    counted = milestone_counts(milestones, AS_OF)
    for key, number in expected.items():
        checks.append(Check("CT", f"milestones: {key}", "as of 2008-07-31",
                            Fraction(counted[key]), str(number)))
    return checks


# =============================================================================
# 8. Writing
# =============================================================================

HEADER = ("indicator", "force", "period", "value", "denominator", "provisional")


def rows_of(data: Data) -> list[dict[str, str]]:
    """Return the CSV rows, sorted by indicator, force and period."""
    rows = [
        {"indicator": indicator, "force": force, "period": period, "value": str(value),
         "denominator": "" if den is None else str(den),
         "provisional": str(indicator == "ksi" and inside(period, KSI_PROVISIONAL)).lower()}
        for (indicator, force), series in data.items()
        for period, (value, den) in series.items()
    ]
    return sorted(rows, key=lambda r: (r["indicator"], r["force"], r["period"]))


def write_csv(path: Path, fields: Sequence[str], rows: Iterable[Mapping[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def write_milestones(directory: Path) -> None:
    lines = [
        "# Counter-terrorism plan milestones, 2008/09. Synthetic; written by generate.py.",
        "# As of 2008-07-31: 3 overdue, 1 completed late, 2 due within 30 days.",
        "milestones:",
    ]
    for m in MILESTONES:
        lines += [
            f"  - id: {m.id}",
            f'    title: "{m.title}"',
            f'    owner: "{m.owner}"',
            f"    due: {m.due.isoformat()}",
            f"    status: {m.status}",
            f"    completed: {m.completed.isoformat() if m.completed else 'null'}",
        ]
    (directory / "ct-milestones.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    write_csv(directory / "ct-milestones.csv", MILESTONE_FIELDS, [
        {"id": m.id, "title": m.title, "owner": m.owner, "due": m.due.isoformat(),
         "status": m.status, "completed": m.completed.isoformat() if m.completed else ""}
        for m in MILESTONES
    ])


def generate(out: Path) -> list[Check]:
    """Write the data under ``out``/data; return the seed checks recomputed from the files."""
    data: Data = {}
    build_mps(data)
    mps = Dataset(rows_of(data))
    build_peers(data, {name: mps.measure(name) for name in RANKS})
    directory = out / "data"
    directory.mkdir(parents=True, exist_ok=True)
    write_csv(directory / "indicators.csv", HEADER, rows_of(data))
    write_milestones(directory)
    with (directory / "indicators.csv").open(newline="", encoding="utf-8") as handle:
        written = Dataset(csv.DictReader(handle))
    return seed_checks(written, MILESTONES)


def print_checks(checks: Sequence[Check]) -> None:
    widths = (12, 44, 30, 12, 8, 0)
    print("  ".join(h.ljust(w) for h, w in zip(
        ("SPI", "figure", "window", "computed", "seed", ""), widths, strict=True)).rstrip())
    for c in checks:
        cells = (c.spi, c.figure, c.window, f"{float(c.computed):.4f}", c.printed,
                 "ok" if c.ok else "MISMATCH")
        print("  ".join(x.ljust(w) for x, w in zip(cells, widths, strict=True)).rstrip())


def derive_shapes(path: Path) -> dict[str, tuple[float, ...]]:
    """Return the SHAPES seasonal indices derived from the real London borough file."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        width = len(next(reader)) - 3
        totals: dict[str, Floats] = {}
        for row in reader:
            values = np.array([float(v) for v in row[3:]])
            totals[row[2]] = totals.get(row[2], np.zeros(width)) + values
    shapes = {}
    for name, categories in SHAPE_SOURCE.items():
        series = np.sum([totals[c] for c in categories], axis=0)
        years = [series[i * 12:(i + 1) * 12] for i in range(3)]  # 2008, 2009, 2010
        index = np.mean([y / y.mean() for y in years], axis=0)
        shapes[name] = tuple(round(float(x), 3) for x in index)
    return shapes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate the MPS 2008/09 example data.")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                        help="directory to write data/ under (default: next to this script)")
    parser.add_argument("--derive-shapes", type=Path, metavar="CSV",
                        help="print the seasonal shapes derived from the real London file")
    args = parser.parse_args(argv)
    if args.derive_shapes:
        for name, shape in derive_shapes(args.derive_shapes).items():
            print(f"{name}: {shape}")
        return 0
    checks = generate(args.out)
    print_checks(checks)
    failed = [c for c in checks if not c.ok]
    print(f"\n{len(checks) - len(failed)} of {len(checks)} seed figures reproduced.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
