#!/usr/bin/env python3
"""Generate the data of the MPS 2008/09 example scorecard.

Writes, next to this file (or under ``--out``):

- ``data/indicators.csv``: monthly series in long format
  (``indicator,force,period,value,denominator,provisional``), Metropolitan
  Police Service and seven Most Similar Family peers;
- ``data/ct-milestones.yaml`` and ``data/ct-milestones.csv``: the
  counter-terrorism plan milestones.

All force-level figures are synthetic. They are built so that every figure of
the seed scorecard (``mps-critical-performance-areas-2008-09.txt``) comes out
exactly, to the seed's printed rounding, when computed the conventional way:
window sums, sum-over-sum rates, % change of one window on the previous one,
monthly means. Seasonal shapes are real: they come from the London-wide
monthly totals of the London Datastore borough file 2008-01..2010-12 (see
``SHAPES`` and ``derive_shapes``).

The run is deterministic (numpy RNG seeded per series), prints a verification
table recomputed from the rows it wrote, and exits 1 if any figure is off.

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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np

SEED = 20080731
MPS = "Metropolitan Police Service"
AS_OF = dt.date(2008, 7, 31)

Window = tuple[str, str]  # first and last month, inclusive, "YYYY-MM"

# Windows of the seed ("Performance for rolling 12 months (RY) to Jul-08 unless
# otherwise stated").
RY = ("2007-08", "2008-07")  # rolling year to Jul-08
PREVIOUS_RY = ("2006-08", "2007-07")  # rolling year to Jul-07
TO_JUN_08 = ("2007-07", "2008-06")  # "12 mths to Jun-08" (survey lag)
TO_MAR_08 = ("2007-04", "2008-03")  # "12 mths to Mar-08" = financial year 2007/08
TO_MAR_07 = ("2006-04", "2007-03")  # the 12 months before it = 2006/07
TO_FEB_08 = ("2007-03", "2008-02")  # the rolling year just before Mar-08
FY_2007_08 = TO_MAR_08
FYTD = ("2008-04", "2008-07")  # "April-July 2008"
MAY_JUL_07 = ("2007-05", "2007-07")
MAY_JUL_08 = ("2008-05", "2008-07")
CALENDAR_06 = ("2006-01", "2006-12")
CALENDAR_07 = ("2007-01", "2007-12")
KSI_PROVISIONAL = ("2008-01", "2008-03")  # "Data relating to Jan to Mar-08 is provisional"

# =============================================================================
# 1. What the seed prints: the figures this generator must reproduce
# =============================================================================

# % change of the rolling year to Jul-08 on the rolling year to Jul-07 (KSI:
# 12 mths to Mar-08 on 12 mths to Mar-07).
#   indicator: (printed % change, printed count change or None, previous total to start from)
CHANGES: dict[str, tuple[str, int | None, int]] = {
    "robbery": ("-22.3", -9_828, 44_070),  # starting totals: domain.md estimates
    "vehicle_crime": ("-6.7", -8_367, 124_880),
    "residential_burglary": ("0.6", 366, 61_000),
    "most_serious_violence": ("-3.8", None, 10_150),
    "gun_crime": ("-19.5", None, 3_640),
    "youth_violence_victims": ("-5.1", None, 17_480),
    "ksi": ("-4.9", None, 3_950),
}
SAC_PARTS = ("residential_burglary", "robbery", "vehicle_crime")
SAC_CHANGE = "-7.8"  # SPI 5.2, the three parts together

# Sanction detection rates (%), detections / offences over the rolling year to Jul-08.
SD_RATES = {"residential_burglary": "14.7", "robbery": "16.5", "vehicle_crime": "7.6"}
SAC_SD_RATE = "11.1"  # SPI 6.2
SV_SSO_SD_RATE = "31.9"  # SPI 6.1 + 6.4 combined
DV_ARREST_RATE = "65.8"

# Survey proportions (%).
VICTIM_SATISFACTION = "77.0"  # SPI 1.1, 12 mths to Jun-08
SATISFACTION_GAP = "4.2"  # SPI 1.2, pp, white minus BME, 12 mths to Jun-08
CONFIDENCE = "55.2"  # SPI 2.3, 12 mths to Mar-08
CONFIDENCE_PREVIOUS = "54.7"  # 12 mths to Mar-07: "+0.5 (to 55.2%) was met"

# Monthly averages: indicator: (printed mean, window).
MEANS: dict[str, tuple[str, Window]] = {
    "criminal_networks_disrupted": ("30.8", RY),
    "assets_seized_cases": ("206", FYTD),
    "class_a_sd": ("207", RY),
    "class_a_sd_cocaine": ("137", RY),
    "class_a_sd_heroin": ("50", RY),
}
# "slightly down on 2007/08 levels ... cocaine and heroin both show slight
# increases": 2007/08 totals (not printed) chosen a little either side.
CLASS_A_FY_2007_08 = {"class_a_sd": 2_514, "class_a_sd_cocaine": 1_624, "class_a_sd_heroin": 581}

# Where the seed says the MPS ranked in its Most Similar Family (1 = best of 8).
RANKS = {
    "victim_satisfaction": 8,  # "ranked last in its MSF for 2007/8"
    "satisfaction_gap": 3,
    "confidence": 1,
    "sac_change": 3,  # May-July 2008 on May-July 2007
    "sac_sd_rate": 2,  # year to July 2008
    "ksi_change": 8,  # "ranked last in its MSF in 2007"
    "msv_change": 2,  # May-July 2008 on May-July 2007
}

# Unrounded aims where "the printed value" alone is not enough.
CONFIDENCE_AIM = Fraction("55.22")  # >= 54.70 + 0.5, so the target is met unrounded too
CONFIDENCE_PREVIOUS_AIM = Fraction("54.70")
CONFIDENCE_TO_FEB_08_AIM = Fraction("55.13")  # 55.1: the target is met only with Mar-08

# =============================================================================
# 2. Shapes, sizes and the peer group
# =============================================================================

# Seasonal index by calendar month (Jan..Dec, mean 1), London-wide totals of
# the real London Datastore borough file, mean of 2008, 2009 and 2010 (each
# year divided by its own monthly mean). Reproduce with --derive-shapes.
SHAPES: dict[str, tuple[float, ...]] = {
    # Burglary in a Dwelling
    "residential_burglary": (1.147, 0.997, 1.048, 0.892, 0.925, 0.924, 0.935, 0.941, 0.935, 1.013, 1.133, 1.110),
    # Robbery: Personal Property + Business Property
    "robbery": (1.047, 0.979, 1.096, 1.033, 1.081, 1.006, 0.969, 0.892, 0.918, 1.028, 1.001, 0.950),
    # Theft From Motor Vehicle + Theft/Taking Of Motor Vehicle + Motor Vehicle Interference & Tampering
    "vehicle_crime": (1.019, 0.944, 1.054, 1.036, 1.046, 1.045, 1.005, 0.956, 0.995, 1.036, 0.979, 0.886),
    # Assault with Injury (used for all violence series; Wounding/GBH has a recoding break in 2008)
    "violence": (0.984, 0.921, 1.055, 0.974, 1.112, 1.092, 1.079, 1.002, 0.952, 0.978, 0.948, 0.903),
    # Rape + Other Sexual
    "sexual": (0.922, 0.901, 1.076, 0.967, 1.051, 1.109, 1.150, 0.965, 1.020, 1.006, 0.966, 0.867),
    # Drug Trafficking
    "drugs": (0.916, 0.924, 0.971, 1.028, 0.946, 1.071, 1.266, 1.141, 0.892, 0.951, 1.019, 0.874),
    # Assumed, not from data: road casualties dip in Feb, peak in summer and late autumn.
    "roads": (0.950, 0.880, 0.970, 0.970, 1.040, 1.040, 1.050, 0.990, 1.040, 1.060, 1.040, 0.970),
    "flat": (1.0,) * 12,
}
SHAPE_SOURCE = {
    "residential_burglary": ("Burglary in a Dwelling",),
    "robbery": ("Personal Property", "Business Property"),
    "vehicle_crime": (
        "Theft From Motor Vehicle",
        "Theft/Taking Of Motor Vehicle",
        "Motor Vehicle Interference & Tampering",
    ),
    "violence": ("Assault with Injury",),
    "sexual": ("Rape", "Other Sexual"),
    "drugs": ("Drug Trafficking",),
}

# Months held for each indicator (MPS and peers alike).
FULL = ("2006-04", "2008-07")
COVERAGE: dict[str, Window] = {
    "victim_satisfaction": ("2006-04", "2008-06"),
    "satisfaction_white": ("2006-04", "2008-06"),
    "satisfaction_bme": ("2006-04", "2008-06"),
    "confidence": ("2006-04", "2008-03"),
    "ksi": ("2006-01", "2008-03"),  # from Jan-06: the MSF rank is for calendar 2007 on 2006
}
PROPORTIONS = ("victim_satisfaction", "satisfaction_white", "satisfaction_bme", "confidence")

# MPS survey sizes: respondents a month, and the ethnic mix of victim-survey respondents.
MPS_VICTIM_SURVEY = 1_450  # ~17,400 a year, ~540 per borough
MPS_BCS = 580  # British Crime Survey interviews in London a month
ETHNIC_MIX = {"white": 0.61, "bme": 0.36}  # the rest: ethnicity not stated


@dataclass(frozen=True)
class Peer:
    """A Most Similar Family force: sizes for the year to Jul-07 and survey design."""

    name: str
    robbery: int
    vehicle_crime: int
    residential_burglary: int
    most_serious_violence: int
    ksi_2006: int
    victim_survey: int  # respondents a month
    bme_share: float
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

# Each peer's measure = the MPS's measure + this offset (the measure's units:
# % or pp). With "better" = higher for satisfaction, confidence and SD rate and
# lower for the gap and the % changes, the signs below give the seed's ranks.
#   victim_sat, gap, confidence, sac_change, sac_sd_rate, ksi_change, msv_change
PEER_OFFSETS: dict[str, tuple[float, float, float, float, float, float, float]] = {
    "West Midlands Police": (3.4, 2.6, -2.3, -4.4, -1.5, -5.6, 3.1),
    "Greater Manchester Police": (1.3, 4.1, -4.6, 2.9, 1.9, -2.2, -3.6),
    "West Yorkshire Police": (4.2, -1.3, -3.3, 5.3, -0.9, -7.4, 1.8),
    "Merseyside Police": (2.2, 1.4, -1.2, -1.9, -2.4, -3.5, 7.2),
    "Northumbria Police": (8.6, -2.1, -5.8, 1.6, -1.9, -11.8, 4.6),
    "South Yorkshire Police": (5.1, 5.9, -6.7, 7.4, -3.1, -9.1, 10.4),
    "Lancashire Constabulary": (6.3, 3.3, -0.9, 3.8, -2.7, -1.4, 2.7),
}
MEASURES = tuple(RANKS)  # the order of the offsets above

# Peers' SD rate per part relative to their SAC rate (the MPS's own mix).
SD_MIX = {"residential_burglary": 1.32, "robbery": 1.49, "vehicle_crime": 0.68}
# Peers' May-Jul change per part relative to their SAC change (pp).
SAC_PART_TILT = {"residential_burglary": 3.0, "robbery": -3.0, "vehicle_crime": -1.0}

# =============================================================================
# 3. The counter-terrorism plan (non-numeric milestones)
# =============================================================================


@dataclass(frozen=True)
class Milestone:
    id: str
    title: str
    owner: str
    due: dt.date
    status: str  # not_started | in_progress | done
    completed: dt.date | None


def _d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


MILESTONES = (
    Milestone("CT-01", "Issue the SO15 intelligence-sharing protocol to all 32 borough intelligence units",
              "Specialist Operations", _d("2008-04-30"), "done", _d("2008-04-24")),
    Milestone("CT-02", "Complete Project Griffin briefings for business security staff in central London",
              "Territorial Policing", _d("2008-05-31"), "done", _d("2008-06-20")),
    Milestone("CT-03", "Launch the London-wide public campaign on reporting suspicious activity",
              "Directorate of Public Affairs", _d("2008-06-13"), "done", _d("2008-06-10")),
    Milestone("CT-04", "Deliver CBRN awareness training to all operational Territorial Policing officers",
              "Central Operations", _d("2008-06-30"), "in_progress", None),
    Milestone("CT-05", "Agree the counter-terrorism workstream of the 2012 Olympic security programme",
              "Specialist Operations", _d("2008-07-15"), "in_progress", None),
    Milestone("CT-06", "Agree Prevent delivery plans with Safer Neighbourhoods teams in 12 priority boroughs",
              "Territorial Policing", _d("2008-07-25"), "not_started", None),
    Milestone("CT-07", "Clear the vetting backlog for Counter Terrorism Command recruits",
              "Human Resources", _d("2008-08-15"), "in_progress", None),
    Milestone("CT-08", "Commission the upgrade of the secure counter-terrorism intelligence system",
              "Directorate of Information", _d("2008-08-29"), "in_progress", None),
    Milestone("CT-09", "Run a London-wide mass-casualty response exercise with partner agencies",
              "Central Operations", _d("2008-09-30"), "not_started", None),
    Milestone("CT-10", "Review hostile-reconnaissance reporting by Safer Transport Teams",
              "Territorial Policing", _d("2008-10-31"), "done", _d("2008-07-10")),
    Milestone("CT-11", "Open additional secure custody capacity for terrorism suspects",
              "Directorate of Resources", _d("2008-12-19"), "in_progress", None),
    Milestone("CT-12", "Evaluate the 2008/09 CT plan and set the 2009/10 milestones",
              "Specialist Crime Directorate", _d("2009-03-31"), "not_started", None),
)
MILESTONE_FIELDS = ("id", "title", "owner", "due", "status", "completed")

# =============================================================================
# 4. Months, rounding and the solvers
# =============================================================================


def months(window: Window) -> list[str]:
    """Return every month of ``window`` in order, as "YYYY-MM"."""
    year, month = int(window[0][:4]), int(window[0][5:])
    out = []
    while True:
        period = f"{year:04d}-{month:02d}"
        out.append(period)
        if period == window[1]:
            return out
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def inside(period: str, window: Window) -> bool:
    return window[0] <= period <= window[1]


def mask(span: Sequence[str], window: Window) -> np.ndarray:
    return np.array([inside(p, window) for p in span])


def rounded(value: Fraction, printed: str) -> Decimal:
    """Return ``value`` rounded half away from zero to as many places as ``printed`` has."""
    quantum = Decimal(1).scaleb(Decimal(printed).as_tuple().exponent)
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    return exact.quantize(quantum, rounding=ROUND_HALF_UP)


def half_unit(printed: str) -> Fraction:
    """Return half the last printed digit: "22.3" -> 0.05, "206" -> 0.5."""
    return Fraction(1, 2) * Fraction(10) ** Decimal(printed).as_tuple().exponent


def fit_parts(nominal: Mapping[str, float], bounds: Mapping[str, tuple[float, float]], total: int) -> dict[str, int]:
    """Return integers near ``nominal``, each inside its ``bounds``, that sum to ``total``.

    The gap between ``total`` and the nominal sum is shared out in proportion
    to the room each part has on that side. Raises ValueError if it cannot fit.
    """
    lo = {k: math.ceil(bounds[k][0]) for k in nominal}
    hi = {k: math.floor(bounds[k][1]) for k in nominal}
    out = {k: min(max(round(nominal[k]), lo[k]), hi[k]) for k in nominal}
    gap = total - sum(out.values())
    room = {k: hi[k] - out[k] if gap > 0 else out[k] - lo[k] for k in nominal}
    if sum(room.values()) < abs(gap):
        raise ValueError(f"cannot fit {total} inside {bounds}")
    for k in nominal:
        out[k] += int(gap * room[k] / sum(room.values()))
    step = 1 if gap > 0 else -1
    for k in sorted(nominal, key=lambda k: -room[k]):
        if sum(out.values()) == total:
            break
        out[k] += step
    return out


def solve_change(previous: int, printed_pct: str, difference: int | None) -> int:
    """Return the current total for a printed % change (and count change, if printed)."""
    current = previous + difference if difference is not None else round(previous * (1 + Fraction(printed_pct) / 100))
    pct = Fraction(100 * (current - previous), previous)
    if rounded(pct, printed_pct) != Decimal(printed_pct):
        raise ValueError(f"{previous} -> {current} is {float(pct):.3f}%, not {printed_pct}%")
    return current


def solve_sac_previous_totals() -> dict[str, int]:
    """Previous-year totals of the SAC parts: every part's % and the combined % round as printed.

    Each part's previous total may move within the range that keeps its own
    printed % (the printed count change is fixed); the combined total is put
    where the combined change is exactly the printed -7.8%.
    """
    bounds = {}
    for part in SAC_PARTS:
        pct, difference, _ = CHANGES[part]
        assert difference is not None
        size, slack = abs(Fraction(pct)), half_unit(pct) * Fraction(6, 10)
        bounds[part] = (float(abs(difference) * 100 / (size + slack)), float(abs(difference) * 100 / (size - slack)))
    total_difference = sum(CHANGES[p][1] or 0 for p in SAC_PARTS)
    total = round(abs(total_difference) * 100 / abs(Fraction(SAC_CHANGE)))
    return fit_parts({p: CHANGES[p][2] for p in SAC_PARTS}, bounds, total)


def solve_sd_totals(offences: Mapping[str, int]) -> dict[str, int]:
    """Rolling-year detections per SAC part: each part's rate and the combined rate round as printed."""
    bounds, nominal = {}, {}
    for part, printed in SD_RATES.items():
        rate, slack = Fraction(printed), half_unit(printed) * Fraction(6, 10)
        nominal[part] = float(offences[part] * rate / 100)
        bounds[part] = (float(offences[part] * (rate - slack) / 100), float(offences[part] * (rate + slack) / 100))
    total = round(sum(offences.values()) * Fraction(SAC_SD_RATE) / 100)
    return fit_parts(nominal, bounds, total)


def solve_mean(printed: str, window: Window) -> int:
    """Return the window total whose monthly mean is exactly the printed mean (or nearest)."""
    return round(Fraction(printed) * len(months(window)))


# =============================================================================
# 5. Series builders
# =============================================================================


def rng_for(*names: str) -> np.random.Generator:
    """Return an RNG seeded by the series' names: every series is reproducible on its own."""
    return np.random.default_rng([SEED, zlib.crc32("|".join(names).encode())])


def seasonal(span: Sequence[str], shape: str) -> np.ndarray:
    index = np.array(SHAPES[shape])
    index = index / index.mean()
    return np.array([index[int(p[5:]) - 1] for p in span])


def allocate(total: int, weights: np.ndarray, caps: np.ndarray | None = None) -> np.ndarray:
    """Return integers proportional to ``weights``, summing to ``total``, none above its cap.

    Largest-remainder rounding; units over a cap go to the months with most room.
    """
    weights = np.clip(np.asarray(weights, dtype=float), 1e-9, None)
    raw = total * weights / weights.sum()
    out = np.floor(raw).astype(int)
    order = np.argsort(-(raw - out), kind="stable")
    out[order[: total - int(out.sum())]] += 1
    if caps is not None:
        if total > caps.sum():
            raise ValueError(f"{total} does not fit under caps summing to {caps.sum()}")
        excess = int(np.clip(out - caps, 0, None).sum())
        out = np.minimum(out, caps)
        for _ in range(excess):
            out[int(np.argmax(caps - out))] += 1
    return out


def counts(
    name: str,
    force: str,
    span: Sequence[str],
    shape: str,
    windows: Mapping[Window, int],
    yoy: float,
    extra_noise: float = 0.02,
) -> np.ndarray:
    """Monthly counts: seasonal shape x yearly trend x noise, summing exactly to each window total.

    Noise is Poisson-like (sd = sqrt(mean)) plus ``extra_noise`` relative sd.
    Months outside every window follow the trend at the level of the first window.
    """
    rng = rng_for(name, force)
    trend = seasonal(span, shape) * (1 + yoy) ** (np.arange(len(span)) / 12)
    first_window, first_total = next(iter(windows.items()))
    mean = trend * first_total / trend[mask(span, first_window)].sum()
    sd = np.sqrt(1 / mean + extra_noise**2)
    noisy = mean * np.clip(1 + rng.normal(0, sd), 0.3, None)
    values = np.rint(noisy).astype(int)
    for window, total in windows.items():
        inner = mask(span, window)
        values[inner] = allocate(total, noisy[inner])
    return values


def proportions(
    name: str,
    force: str,
    span: Sequence[str],
    denominators: np.ndarray,
    windows: Mapping[Window, int],
    free_rate: float | None = None,
    overdispersion: float = 0.0,
) -> np.ndarray:
    """Monthly numerators out of ``denominators``, summing exactly to each window total.

    Each month's rate is its window's rate (``free_rate`` outside windows,
    default the first window's) plus binomial noise, plus ``overdispersion``
    relative sd (detection rates vary more than a binomial).
    """
    rng = rng_for(name, force)
    rate = np.full(len(span), np.nan)
    for window, total in windows.items():
        inner = mask(span, window)
        rate[inner] = total / denominators[inner].sum()
    first_window = next(iter(windows))
    fallback = free_rate if free_rate is not None else float(rate[mask(span, first_window)][0])
    rate = np.where(np.isnan(rate), fallback, rate)
    sd = np.sqrt(rate * (1 - rate) / np.maximum(denominators, 1) + (overdispersion * rate) ** 2)
    noisy = np.clip(rate + rng.normal(0, sd), 0.0, 1.0) * denominators
    values = np.minimum(np.rint(noisy).astype(int), denominators)
    for window, total in windows.items():
        inner = mask(span, window)
        values[inner] = allocate(total, noisy[inner], caps=denominators[inner])
    return values


def sample_sizes(name: str, force: str, span: Sequence[str], per_month: int) -> np.ndarray:
    """Survey respondents a month: the design size with +-5% fieldwork variation."""
    rng = rng_for(name, force, "n")
    return np.rint(per_month * (1 + rng.normal(0, 0.05, len(span)))).astype(int)


@dataclass(frozen=True)
class Survey:
    """Victim-survey series of one force: total, white and BME (numerators and denominators)."""

    total: tuple[np.ndarray, np.ndarray]
    white: tuple[np.ndarray, np.ndarray]
    bme: tuple[np.ndarray, np.ndarray]


def victim_survey(
    force: str,
    span: Sequence[str],
    per_month: int,
    mix: Mapping[str, float],
    window: Window,
    rate: Fraction,
    gap: Fraction,
    free_shift: float = 0.0,
) -> Survey:
    """Satisfied / respondents by ethnicity, with the window's overall rate and white-BME gap as given.

    Respondents split by a multinomial draw (white, BME, not stated); the
    not-stated group is satisfied at the overall rate. Numbers in the window:
    T = round(rate * N); W from the white rate that makes the mix add up;
    B from W/Nw - gap; not-stated = T - W - B. ``free_shift`` moves every rate
    outside the window (e.g. a slightly better earlier year).
    """
    rng = rng_for("victim_survey", force, "mix")
    n = sample_sizes("victim_survey", force, span, per_month)
    shares = [mix["white"], mix["bme"], 1 - mix["white"] - mix["bme"]]
    split = np.array([rng.multinomial(int(k), shares) for k in n])
    n_white, n_bme, n_other = split[:, 0], split[:, 1], split[:, 2]
    inner = mask(span, window)
    nw, nb, no = int(n_white[inner].sum()), int(n_bme[inner].sum()), int(n_other[inner].sum())
    total = round(rate * (nw + nb + no))
    white_rate = (total - no * rate + nb * gap) / (nw + nb)
    satisfied_white = round(white_rate * nw)
    satisfied_bme = round((Fraction(satisfied_white, nw) - gap) * nb)
    satisfied_other = total - satisfied_white - satisfied_bme
    if not 0 <= satisfied_other <= no:
        raise ValueError(f"{force}: {satisfied_other} satisfied of {no} not stated")
    shift = {"free_rate": None}

    def part(label: str, denominators: np.ndarray, satisfied: int) -> np.ndarray:
        if free_shift:
            shift["free_rate"] = satisfied / int(denominators[inner].sum()) + free_shift
        return proportions(f"satisfaction_{label}", force, span, denominators, {window: satisfied}, shift["free_rate"])

    white = part("white", n_white, satisfied_white)
    bme = part("bme", n_bme, satisfied_bme)
    other = part("other", n_other, satisfied_other)
    return Survey(total=(white + bme + other, n), white=(white, n_white), bme=(bme, n_bme))


# =============================================================================
# 6. The MPS and its peers
# =============================================================================

Series = dict[str, tuple[int, int | None]]  # period -> (value, denominator)
Data = dict[tuple[str, str], Series]  # (indicator, force) -> series


def put(data: Data, indicator: str, force: str, span: Sequence[str], values: np.ndarray,
        denominators: np.ndarray | None = None) -> None:
    first, last = COVERAGE.get(indicator, FULL)
    data[indicator, force] = {
        p: (int(values[i]), None if denominators is None else int(denominators[i]))
        for i, p in enumerate(span)
        if first <= p <= last
    }


def build_mps(data: Data) -> None:
    """Add every MPS series, each solved to the seed's figures."""
    span = months(FULL)

    # SPI 5.2: previous totals fitted, current = previous + printed count change.
    previous = solve_sac_previous_totals()
    offences: dict[str, np.ndarray] = {}
    current: dict[str, int] = {}
    for part in SAC_PARTS:
        pct, difference, _ = CHANGES[part]
        current[part] = solve_change(previous[part], pct, difference)
        windows = {PREVIOUS_RY: previous[part], RY: current[part]}
        offences[part] = counts(part, MPS, span, part, windows, current[part] / previous[part] - 1)
        put(data, part, MPS, span, offences[part])

    # SPI 6.2: detections per part, rates fitted so the combined rate rounds too.
    for part, detections in solve_sd_totals(current).items():
        rate = detections / current[part]
        values = proportions(f"{part}_sd", MPS, span, offences[part], {RY: detections}, 0.97 * rate, 0.05)
        put(data, f"{part}_sd", MPS, span, values)

    # SPI 5.1, 5.5 and serious youth violence: rolling year on rolling year.
    shapes = {"most_serious_violence": "violence", "gun_crime": "violence", "youth_violence_victims": "violence"}
    for indicator, shape in shapes.items():
        pct, difference, before = CHANGES[indicator]
        after = solve_change(before, pct, difference)
        values = counts(indicator, MPS, span, shape, {PREVIOUS_RY: before, RY: after}, after / before - 1)
        put(data, indicator, MPS, span, values)
        if indicator == "most_serious_violence":
            msv = values

    # SPI 9.1: 12 months to Mar-08 on 12 months to Mar-07, from Jan-06.
    pct, _, before = CHANGES["ksi"]
    after = solve_change(before, pct, None)
    ksi_span = months(COVERAGE["ksi"])
    put(data, "ksi", MPS, ksi_span, counts("ksi", MPS, ksi_span, "roads", {TO_MAR_07: before, TO_MAR_08: after},
                                           after / before - 1))

    # SPI 6.1 + 6.4: offences = most serious violence + serious sexual offences.
    sexual = counts("serious_sexual_offences", MPS, span, "sexual", {PREVIOUS_RY: 5_640, RY: 5_910}, 0.048)
    sv_sso = msv + sexual
    detections = round(int(sv_sso[mask(span, RY)].sum()) * Fraction(SV_SSO_SD_RATE) / 100)
    put(data, "serious_violence_sso_offences", MPS, span, sv_sso)
    put(data, "serious_violence_sso_sd", MPS, span,
        proportions("serious_violence_sso_sd", MPS, span, sv_sso, {RY: detections}, 0.305, 0.04))

    # Domestic violence: arrests / offences.
    dv = counts("dv_offences", MPS, span, "violence", {PREVIOUS_RY: 49_800, RY: 51_270}, 0.0295)
    arrests = round(int(dv[mask(span, RY)].sum()) * Fraction(DV_ARREST_RATE) / 100)
    put(data, "dv_offences", MPS, span, dv)
    put(data, "dv_arrests", MPS, span, proportions("dv_arrests", MPS, span, dv, {RY: arrests}, 0.642, 0.02))

    # Monthly averages.
    networks = solve_mean(*MEANS["criminal_networks_disrupted"])
    put(data, "criminal_networks_disrupted", MPS, span,
        counts("criminal_networks_disrupted", MPS, span, "flat", {RY: networks}, 0.08))
    assets = solve_mean(*MEANS["assets_seized_cases"])
    put(data, "assets_seized_cases", MPS, span,
        counts("assets_seized_cases", MPS, span, "flat", {FYTD: assets}, 0.05, extra_noise=0.14))
    build_class_a(data, span)

    # SPI 1.1 / 1.2: 12 months to Jun-08; the year before slightly better.
    survey_span = months(COVERAGE["victim_satisfaction"])
    survey = victim_survey(MPS, survey_span, MPS_VICTIM_SURVEY, ETHNIC_MIX, TO_JUN_08,
                           Fraction(VICTIM_SATISFACTION) / 100, Fraction(SATISFACTION_GAP) / 100, free_shift=0.004)
    put_survey(data, MPS, survey_span, survey)

    # SPI 2.3: 12 months to Mar-07 and to Mar-08, and the rolling year to Feb-08 just short of target.
    put(data, "confidence", MPS, *mps_confidence())


def build_class_a(data: Data, span: Sequence[str]) -> None:
    """Class A trafficking SDs and their cocaine / heroin children (children <= parent every month).

    The rolling year (Aug-07..Jul-08) and 2007/08 (Apr-07..Mar-08) overlap in
    Aug-07..Mar-08, so the totals are set on three disjoint blocks: the eight
    shared months carry the average monthly level of the two years, and
    Apr-Jul 07 and Apr-Jul 08 make up each year's total.
    """
    shared, before, after = ("2007-08", "2008-03"), ("2007-04", "2007-07"), ("2008-04", "2008-07")
    blocks = {}
    for indicator in ("class_a_sd", "class_a_sd_cocaine", "class_a_sd_heroin"):
        rolling, financial = solve_mean(*MEANS[indicator]), CLASS_A_FY_2007_08[indicator]
        middle = round(Fraction(8 * (rolling + financial), 24))
        blocks[indicator] = {before: financial - middle, shared: middle, after: rolling - middle}
    parent = counts("class_a_sd", MPS, span, "drugs", blocks["class_a_sd"],
                    blocks["class_a_sd"][after] / blocks["class_a_sd"][before] - 1)
    cocaine = proportions("class_a_sd_cocaine", MPS, span, parent, blocks["class_a_sd_cocaine"], overdispersion=0.03)
    heroin = proportions("class_a_sd_heroin", MPS, span, parent - cocaine, blocks["class_a_sd_heroin"],
                         overdispersion=0.05)
    for indicator, values in (("class_a_sd", parent), ("class_a_sd_cocaine", cocaine), ("class_a_sd_heroin", heroin)):
        put(data, indicator, MPS, span, values)


def mps_confidence() -> tuple[list[str], np.ndarray, np.ndarray]:
    """SPI 2.3 for the MPS: returns (months, agreeing, interviewed).

    Three windows overlap (to Mar-07, to Feb-08, to Mar-08); they are solved on
    disjoint blocks: Mar-07 and Mar-08 on their own, then the rest of each
    financial year. S(to Feb-08) = v(Mar-07) + S(to Mar-08) - v(Mar-08) fixes v(Mar-08).
    """
    span = months(COVERAGE["confidence"])
    n = sample_sizes("confidence", MPS, span, MPS_BCS)
    index = {p: i for i, p in enumerate(span)}

    def size(window: Window) -> int:
        return int(n[mask(span, window)].sum())

    agree_previous = round(CONFIDENCE_PREVIOUS_AIM / 100 * size(TO_MAR_07))
    agree_current = round(CONFIDENCE_AIM / 100 * size(TO_MAR_08))
    agree_to_feb = round(CONFIDENCE_TO_FEB_08_AIM / 100 * size(TO_FEB_08))
    march_07 = round(Fraction("0.546") * int(n[index["2007-03"]]))
    march_08 = march_07 + agree_current - agree_to_feb
    windows = {
        ("2006-04", "2007-02"): agree_previous - march_07,
        ("2007-03", "2007-03"): march_07,
        ("2007-04", "2008-02"): agree_current - march_08,
        ("2008-03", "2008-03"): march_08,
    }
    return span, proportions("confidence", MPS, span, n, windows), n


def put_survey(data: Data, force: str, span: Sequence[str], survey: Survey) -> None:
    put(data, "victim_satisfaction", force, span, *survey.total)
    put(data, "satisfaction_white", force, span, *survey.white)
    put(data, "satisfaction_bme", force, span, *survey.bme)


def build_peers(data: Data, measures: Mapping[str, Fraction]) -> None:
    """Add the seven peers' series, each placed at the MPS's measure + its offset."""
    span = months(FULL)
    for peer in PEERS:
        offset = {m: Fraction(str(x)) for m, x in zip(MEASURES, PEER_OFFSETS[peer.name], strict=True)}
        target = {m: measures[m] + offset[m] for m in MEASURES}

        # Victim satisfaction and the gap, financial year 2007/08.
        survey_span = months(COVERAGE["victim_satisfaction"])
        mix = {"white": 0.97 - peer.bme_share, "bme": peer.bme_share}
        survey = victim_survey(peer.name, survey_span, peer.victim_survey, mix, FY_2007_08,
                               target["victim_satisfaction"] / 100, target["satisfaction_gap"] / 100)
        put_survey(data, peer.name, survey_span, survey)

        # Confidence, 12 months to Mar-08.
        conf_span = months(COVERAGE["confidence"])
        n = sample_sizes("confidence", peer.name, conf_span, peer.bcs)
        agree = round(target["confidence"] / 100 * int(n[mask(conf_span, TO_MAR_08)].sum()))
        put(data, "confidence", peer.name, conf_span, proportions("confidence", peer.name, conf_span, n,
                                                                  {TO_MAR_08: agree}), n)

        # SAC parts: May-Jul 08 on May-Jul 07 per part, tilted but adding up to the target change.
        sizes = {p: getattr(peer, p) for p in SAC_PARTS}
        base = {p: round(sizes[p] * float(seasonal(months(MAY_JUL_07), p).sum()) / 12) for p in SAC_PARTS}
        level = sum(Fraction(SAC_PART_TILT[p]) * base[p] for p in SAC_PARTS) / sum(base.values())
        offences = {}
        for part in SAC_PARTS:
            change = (target["sac_change"] + Fraction(SAC_PART_TILT[part]) - level) / 100
            windows = {MAY_JUL_07: base[part], MAY_JUL_08: round(base[part] * (1 + change))}
            offences[part] = counts(part, peer.name, span, part, windows, float(change))
            put(data, part, peer.name, span, offences[part])

        # SD rates, rolling year to Jul-08, in the MPS's mix, scaled to the target combined rate.
        in_ry = mask(span, RY)
        totals = {p: int(offences[p][in_ry].sum()) for p in SAC_PARTS}
        scale = target["sac_sd_rate"] / 100 * sum(totals.values()) / sum(
            Fraction(str(SD_MIX[p])) * totals[p] for p in SAC_PARTS)
        for part in SAC_PARTS:
            detections = round(Fraction(str(SD_MIX[part])) * scale * totals[part])
            values = proportions(f"{part}_sd", peer.name, span, offences[part], {RY: detections}, overdispersion=0.06)
            put(data, f"{part}_sd", peer.name, span, values)

        # KSI, calendar 2007 on calendar 2006.
        ksi_span = months(COVERAGE["ksi"])
        change = target["ksi_change"] / 100
        windows = {CALENDAR_06: peer.ksi_2006, CALENDAR_07: round(peer.ksi_2006 * (1 + change))}
        put(data, "ksi", peer.name, ksi_span, counts("ksi", peer.name, ksi_span, "roads", windows, float(change)))

        # Most serious violence, May-Jul 08 on May-Jul 07.
        change = target["msv_change"] / 100
        before = round(peer.most_serious_violence * float(seasonal(months(MAY_JUL_07), "violence").sum()) / 12)
        windows = {MAY_JUL_07: before, MAY_JUL_08: round(before * (1 + change))}
        put(data, "most_serious_violence", peer.name, span,
            counts("most_serious_violence", peer.name, span, "violence", windows, float(change)))


# =============================================================================
# 7. Reading the data back: the conventional computations
# =============================================================================


class Dataset:
    """The rows as written, with the computations an analyst would do on them."""

    def __init__(self, rows: Iterable[Mapping[str, str]]) -> None:
        self.series: dict[tuple[str, str], dict[str, tuple[int, int | None]]] = {}
        self.provisional: dict[tuple[str, str, str], bool] = {}
        for row in rows:
            key = (row["indicator"], row["force"])
            den = int(row["denominator"]) if row["denominator"] else None
            self.series.setdefault(key, {})[row["period"]] = (int(row["value"]), den)
            self.provisional[row["indicator"], row["force"], row["period"]] = row["provisional"] == "true"

    @property
    def forces(self) -> list[str]:
        return [MPS, *(p.name for p in PEERS)]

    def total(self, indicators: str | Sequence[str], window: Window, force: str = MPS, den: bool = False) -> int:
        """Return the window sum of values (or denominators); raises KeyError if a month is missing."""
        names = [indicators] if isinstance(indicators, str) else indicators
        pick = 1 if den else 0
        return sum(int(self.series[name, force][p][pick] or 0) for name in names for p in months(window))

    def rate(self, indicator: str, window: Window, force: str = MPS) -> Fraction:
        """Return 100 * sum(value) / sum(denominator) over the window."""
        return Fraction(100 * self.total(indicator, window, force), self.total(indicator, window, force, den=True))

    def ratio(self, numerators: Sequence[str], denominators: Sequence[str], window: Window,
              force: str = MPS) -> Fraction:
        return Fraction(100 * self.total(numerators, window, force), self.total(denominators, window, force))

    def change(self, indicators: str | Sequence[str], window: Window, base: Window, force: str = MPS) -> Fraction:
        before = self.total(indicators, base, force)
        return Fraction(100 * (self.total(indicators, window, force) - before), before)

    def mean(self, indicator: str, window: Window) -> Fraction:
        return Fraction(self.total(indicator, window), len(months(window)))

    def gap(self, window: Window, force: str = MPS) -> Fraction:
        return self.rate("satisfaction_white", window, force) - self.rate("satisfaction_bme", window, force)

    def measure(self, name: str, force: str) -> Fraction:
        """Return a ranked measure (see RANKS) for one force."""
        sd_parts = [f"{p}_sd" for p in SAC_PARTS]
        return {
            "victim_satisfaction": lambda: self.rate("victim_satisfaction", FY_2007_08, force),
            "satisfaction_gap": lambda: self.gap(FY_2007_08, force),
            "confidence": lambda: self.rate("confidence", TO_MAR_08, force),
            "sac_change": lambda: self.change(SAC_PARTS, MAY_JUL_08, MAY_JUL_07, force),
            "sac_sd_rate": lambda: self.ratio(sd_parts, SAC_PARTS, RY, force),
            "ksi_change": lambda: self.change("ksi", CALENDAR_07, CALENDAR_06, force),
            "msv_change": lambda: self.change("most_serious_violence", MAY_JUL_08, MAY_JUL_07, force),
        }[name]()

    def rank(self, name: str, force: str = MPS) -> int:
        """Return 1 + the number of forces that do better on the measure."""
        higher_is_better = name in ("victim_satisfaction", "confidence", "sac_sd_rate")
        mine = self.measure(name, force)
        others = [self.measure(name, f) for f in self.forces if f != force]
        return 1 + sum((x > mine) if higher_is_better else (x < mine) for x in others)


def milestone_counts(items: Iterable[Milestone], as_of: dt.date) -> dict[str, int]:
    """Return how many milestones are overdue, done late and due within 30 days of ``as_of``."""
    items = list(items)
    return {
        "total": len(items),
        "overdue": sum(m.due < as_of and m.status != "done" for m in items),
        "completed_late": sum(m.status == "done" and m.completed is not None and m.completed > m.due for m in items),
        "due_within_30_days": sum(
            as_of < m.due <= as_of + dt.timedelta(days=30) and m.status != "done" for m in items),
    }


@dataclass(frozen=True)
class Check:
    spi: str
    figure: str
    window: str
    computed: Fraction
    printed: str  # the seed's figure as printed, or the expected value of a derived check

    @property
    def ok(self) -> bool:
        try:
            return rounded(self.computed, self.printed) == Decimal(self.printed)
        except ArithmeticError:
            return False


def seed_checks(d: Dataset, milestones: Sequence[Milestone]) -> list[Check]:
    """Return every seed figure recomputed from the written rows, next to the printed one."""
    ry = "RY to Jul-08 vs RY to Jul-07"
    sd = [f"{p}_sd" for p in SAC_PARTS]
    checks = [
        Check("SPI 1.1", "victim satisfaction %", "12 mths to Jun-08", d.rate("victim_satisfaction", TO_JUN_08),
              VICTIM_SATISFACTION),
        Check("SPI 1.1", "MSF rank (8 = last)", "2007/08", Fraction(d.rank("victim_satisfaction")), "8"),
        Check("SPI 1.2", "white - BME gap, pp", "12 mths to Jun-08", d.gap(TO_JUN_08), SATISFACTION_GAP),
        Check("SPI 1.2", "MSF rank", "2007/08", Fraction(d.rank("satisfaction_gap")), "3"),
        Check("SPI 2.3", "confidence %", "12 mths to Mar-08", d.rate("confidence", TO_MAR_08), CONFIDENCE),
        Check("SPI 2.3", "confidence %", "12 mths to Mar-07", d.rate("confidence", TO_MAR_07), CONFIDENCE_PREVIOUS),
        Check("SPI 2.3", "change, pp (target +0.5 met)", "to Mar-08 vs to Mar-07",
              d.rate("confidence", TO_MAR_08) - d.rate("confidence", TO_MAR_07), "0.5"),
        Check("SPI 2.3", "confidence % (before the improvement)", "12 mths to Feb-08",
              d.rate("confidence", TO_FEB_08), "55.1"),
        Check("SPI 2.3", "MSF rank", "2007/08", Fraction(d.rank("confidence")), "1"),
        Check("SPI 5.2", "serious acquisitive crime % change", ry, d.change(SAC_PARTS, RY, PREVIOUS_RY), SAC_CHANGE),
    ]
    labels = {"robbery": "robbery", "vehicle_crime": "MV crime", "residential_burglary": "res. burglary"}
    for part in ("robbery", "vehicle_crime", "residential_burglary"):
        pct, difference, _ = CHANGES[part]
        checks.append(Check("SPI 5.2", f"{labels[part]} % change", ry, d.change(part, RY, PREVIOUS_RY), pct))
        checks.append(Check("SPI 5.2", f"{labels[part]} count change", ry,
                            Fraction(d.total(part, RY) - d.total(part, PREVIOUS_RY)), str(difference)))
    checks += [
        Check("SPI 5.2", "MSF rank", "May-Jul 08 vs May-Jul 07", Fraction(d.rank("sac_change")), "3"),
        Check("SPI 6.2", "SAC SD rate %", "RY to Jul-08", d.ratio(sd, SAC_PARTS, RY), SAC_SD_RATE),
    ]
    for part in ("residential_burglary", "robbery", "vehicle_crime"):
        checks.append(Check("SPI 6.2", f"{labels[part]} SD rate %", "RY to Jul-08",
                            d.ratio([f"{part}_sd"], [part], RY), SD_RATES[part]))
    checks += [
        Check("SPI 6.2", "MSF rank", "year to Jul-08", Fraction(d.rank("sac_sd_rate")), "2"),
        Check("SPI 9.1", "KSI % change", "12 mths to Mar-08 vs to Mar-07", d.change("ksi", TO_MAR_08, TO_MAR_07),
              CHANGES["ksi"][0]),
        Check("SPI 9.1", "months flagged provisional (Jan-Mar 08)", "MPS ksi",
              Fraction(sum(d.provisional["ksi", MPS, p] for p in d.series["ksi", MPS])), "3"),
        Check("SPI 9.1", "MSF rank (8 = last)", "2007 vs 2006", Fraction(d.rank("ksi_change")), "8"),
        Check("SPI 5.1", "most serious violence % change", ry,
              d.change("most_serious_violence", RY, PREVIOUS_RY), CHANGES["most_serious_violence"][0]),
        Check("SPI 5.1", "MSF rank", "May-Jul 08 vs May-Jul 07", Fraction(d.rank("msv_change")), "2"),
        Check("SPI 5.5", "gun crime % change", ry, d.change("gun_crime", RY, PREVIOUS_RY), CHANGES["gun_crime"][0]),
        Check("SPI 6.1/6.4", "serious violence + SSO SD rate %", "RY to Jul-08",
              d.ratio(["serious_violence_sso_sd"], ["serious_violence_sso_offences"], RY), SV_SSO_SD_RATE),
        Check("DV", "arrest rate %", "RY to Jul-08", d.ratio(["dv_arrests"], ["dv_offences"], RY), DV_ARREST_RATE),
        Check("SYV", "under-20 victims % change", ry, d.change("youth_violence_victims", RY, PREVIOUS_RY),
              CHANGES["youth_violence_victims"][0]),
    ]
    for indicator, (printed, window) in MEANS.items():
        label = "Apr-Jul 08" if window == FYTD else "RY to Jul-08"
        checks.append(Check("networks" if "net" in indicator else "assets" if "asset" in indicator else "Class A",
                            f"{indicator} monthly mean", label, d.mean(indicator, window), printed))
    for indicator in ("class_a_sd", "class_a_sd_cocaine", "class_a_sd_heroin"):
        rolling, financial = d.mean(indicator, RY), d.mean(indicator, FY_2007_08)
        direction = "slightly down" if indicator == "class_a_sd" else "slight increase"
        expected = -1 if indicator == "class_a_sd" else 1
        sign = (rolling > financial) - (rolling < financial)
        checks.append(Check("Class A", f"{indicator}: {direction} on 2007/08 ({float(financial):.1f})",
                            "RY vs 2007/08", Fraction(sign), str(expected)))
    counted = milestone_counts(milestones, AS_OF)
    expected_counts = {"total": 12, "overdue": 3, "completed_late": 1, "due_within_30_days": 2}
    for key, expected_count in expected_counts.items():
        checks.append(Check("CT", f"milestones {key}", "as of 2008-07-31", Fraction(counted[key]),
                            str(expected_count)))
    return checks


# =============================================================================
# 8. Writing
# =============================================================================

HEADER = ("indicator", "force", "period", "value", "denominator", "provisional")


def rows_of(data: Data) -> list[dict[str, str]]:
    rows = []
    for (indicator, force), series in data.items():
        for period, (value, den) in series.items():
            provisional = indicator == "ksi" and inside(period, KSI_PROVISIONAL)
            rows.append({
                "indicator": indicator,
                "force": force,
                "period": period,
                "value": str(value),
                "denominator": "" if den is None else str(den),
                "provisional": "true" if provisional else "false",
            })
    return sorted(rows, key=lambda r: (r["indicator"], r["force"], r["period"]))


def write_csv(path: Path, fields: Sequence[str], rows: Iterable[Mapping[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def write_milestones(directory: Path) -> None:
    lines = [
        "# Counter-terrorism plan milestones, 2008/09 (synthetic; written by generate.py).",
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
        {"id": m.id, "title": m.title, "owner": m.owner, "due": m.due.isoformat(), "status": m.status,
         "completed": m.completed.isoformat() if m.completed else ""}
        for m in MILESTONES
    ])


def generate(out: Path) -> list[Check]:
    """Write the example's data under ``out``/data; return the checks recomputed from what was written."""
    data: Data = {}
    build_mps(data)
    mps_view = Dataset(rows_of(data))
    data_dir = out / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    # Peers are placed relative to the MPS's own measures.
    measures = {}
    for name in MEASURES:
        mps = mps_view
        if name in ("victim_satisfaction", "satisfaction_gap"):
            measures[name] = mps.measure(name, MPS)
        elif name == "confidence":
            measures[name] = mps.rate("confidence", TO_MAR_08)
        else:
            measures[name] = mps.measure(name, MPS)
    build_peers(data, measures)
    write_csv(data_dir / "indicators.csv", HEADER, rows_of(data))
    write_milestones(data_dir)
    with (data_dir / "indicators.csv").open(newline="", encoding="utf-8") as handle:
        written = Dataset(csv.DictReader(handle))
    return seed_checks(written, MILESTONES)


def print_checks(checks: Sequence[Check]) -> None:
    widths = (11, 48, 32, 14, 8)
    head = ("SPI", "figure", "window", "computed", "seed", "")
    print("  ".join(h.ljust(w) for h, w in zip(head, (*widths, 2), strict=True)).rstrip())
    for c in checks:
        cells = (c.spi, c.figure, c.window, f"{float(c.computed):.4f}", c.printed, "ok" if c.ok else "MISMATCH")
        print("  ".join(str(x).ljust(w) for x, w in zip(cells, (*widths, 2), strict=True)).rstrip())


def derive_shapes(path: Path) -> dict[str, tuple[float, ...]]:
    """Return the SHAPES seasonal indices from the real London borough file (2008-2010)."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        columns = header[3:]
        totals: dict[str, np.ndarray] = {}
        for row in reader:
            values = np.array([int(v) for v in row[3:]], dtype=float)
            totals[row[2]] = totals.get(row[2], np.zeros(len(columns))) + values
    shapes = {}
    for name, categories in SHAPE_SOURCE.items():
        series = sum(totals[c] for c in categories)
        years = [series[i * 12:(i + 1) * 12] for i in range(3)]  # 2008, 2009, 2010
        shapes[name] = tuple(round(float(x), 3) for x in np.mean([y / y.mean() for y in years], axis=0))
    return shapes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                        help="directory to write data/ under (default: next to this script)")
    parser.add_argument("--derive-shapes", type=Path, metavar="CSV",
                        help="print the seasonal shapes derived from the real London file and exit")
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


# Helper types re-exported for the tests' convenience.
__all__ = ["Callable", "Dataset", "generate", "main", "milestone_counts", "rounded"]
