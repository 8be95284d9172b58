"""The examples' data files and rule files, read directly: the tests' independent answers.

Nothing here uses the product's sources, store or engine; expected values in the HTTP
tests are recomputed from these.
"""

from __future__ import annotations

import csv
import tomllib
from collections import defaultdict
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO

LONDON = REPO / "examples" / "london-boroughs"
MPS_DATA = REPO / "examples" / "mps-2008-09" / "data"
MPS_RULES = REPO / "rules" / "mps-2008-09.yaml"
MPS = "Metropolitan Police Service"


def read_rows(path: Path) -> list[list[str]]:
    """Return the rows of a CSV file, header first."""
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def month_key(yyyymm: str) -> str:
    """``200801`` -> ``2008-01``."""
    return f"{yyyymm[:4]}-{yyyymm[4:]}"


def months_before(end: str, count: int) -> list[str]:
    """The ``count`` months ending with ``end`` (``YYYY-MM``), oldest first."""
    year, month = int(end[:4]), int(end[5:])
    ordinal = year * 12 + month - 1
    return [f"{o // 12}-{o % 12 + 1:02d}" for o in range(ordinal - count + 1, ordinal + 1)]


@cache
def london_total() -> dict[str, dict[str, float]]:
    """Indicator -> month -> London-wide count, from ``london-total.csv``."""
    with (LONDON / "data" / "london-total.csv").open(newline="", encoding="utf-8") as f:
        header, *rows = list(csv.reader(f))
    out: dict[str, dict[str, float]] = {}
    for row in rows:
        record = dict(zip(header, row, strict=True))
        out[record["Indicator"]] = {month_key(k): float(v) for k, v in record.items()
                                    if k.isdigit() and v}
    return out


@cache
def london_rules() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(
        (LONDON / "rules" / "london.yaml").read_text(encoding="utf-8"))
    return loaded


@cache
def london_areas() -> dict[str, frozenset[str]]:
    """Indicator -> the areas (``borough`` label values) it has a series for.

    A base indicator has a series for every area a source file has a row of a category
    mapped to it (and "London" from the totals file); a derived sum has the union of its
    inputs' areas.
    """
    config = tomllib.loads((LONDON / "config.toml").read_text(encoding="utf-8"))
    areas: dict[str, set[str]] = defaultdict(set)
    for source in config["sources"]:
        with (REPO / source["path"]).open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        label = source["labels"]["borough"]
        mapping = source.get("indicators")
        for row in rows:
            category = row[source["indicator_column"]]
            indicator = mapping.get(category) if mapping else category
            if indicator:
                areas[indicator].add(row[label])
    for ind in london_rules()["indicators"]:
        derived = ind.get("derived")
        if derived:
            areas[ind["id"]] = set().union(*(areas[i] for i in derived["sum"]))
    return {k: frozenset(v) for k, v in areas.items()}


def rolling_change(monthly: dict[str, float], end: str, window: int = 12
                   ) -> tuple[float, float]:
    """(% change, change in count) of the ``window`` months to ``end`` against the ones before."""
    months = months_before(end, 2 * window)
    before = sum(monthly[m] for m in months[:window])
    now = sum(monthly[m] for m in months[window:])
    return (now - before) / before * 100, now - before


@cache
def mps_rows() -> dict[tuple[str, str], dict[str, tuple[float, float | None, bool]]]:
    """(indicator, force) -> month -> (value, denominator, provisional), from indicators.csv."""
    out: dict[tuple[str, str], dict[str, tuple[float, float | None, bool]]] = defaultdict(dict)
    with (MPS_DATA / "indicators.csv").open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            out[(row["indicator"], row["force"])][row["period"]] = (
                float(row["value"]), float(row["denominator"]) if row["denominator"] else None,
                row["provisional"] == "true")
    return dict(out)


@cache
def mps_rules() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(MPS_RULES.read_text(encoding="utf-8"))
    return loaded


def mps_indicator(indicator: str) -> dict[str, Any]:
    return next(i for i in mps_rules()["indicators"] if i["id"] == indicator)


@cache
def ct_milestones() -> list[dict[str, Any]]:
    loaded = yaml.safe_load((MPS_DATA / "ct-milestones.yaml").read_text(encoding="utf-8"))
    milestones: list[dict[str, Any]] = loaded["milestones"]
    return milestones
