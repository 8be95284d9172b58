"""Fixtures for the rules tests: the seed example's data as in-memory blocks."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import numpy as np
import pytest
import yaml

from monitor.model import Milestone, month
from monitor.rules.data import Block
from monitor.rules.engine import Dataset

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "mps-2008-09" / "data"




def blocks_from_long_csv(path: Path, label: str = "force") -> dict[str, Block]:
    """Read a long CSV (indicator, <label>, period, value, denominator, provisional)."""
    grouped: dict[str, list[dict[str, str]]] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            grouped.setdefault(row["indicator"], []).append(row)
    out = {}
    for indicator, rows in grouped.items():
        labels: list[dict[str, str]] = []
        index: dict[str, int] = {}
        cols: dict[str, list[float]] = {k: [] for k in ("row", "period", "value", "den",
                                                        "prov")}
        for row in rows:
            key = row[label]
            if key not in index:
                index[key] = len(labels)
                labels.append({label: key})
            cols["row"].append(index[key])
            cols["period"].append(month(row["period"]))
            cols["value"].append(float(row["value"]))
            cols["den"].append(float(row["denominator"]) if row["denominator"] else np.nan)
            cols["prov"].append(row["provisional"] == "true")
        out[indicator] = Block(labels, np.array(cols["row"], dtype=np.int64),
                               np.array(cols["period"], dtype=np.int64), np.array(cols["value"]),
                               np.array(cols["den"]), np.array(cols["prov"], dtype=bool),
                               np.zeros(len(rows), dtype=np.int64))
    return out


def example_milestones() -> list[tuple[str, Milestone]]:
    plan = yaml.safe_load((EXAMPLE / "ct-milestones.yaml").read_text())["milestones"]
    return [("ct_plan", Milestone(m["id"], m["title"], m["owner"], m["due"], m["status"],
                                  m.get("completed"))) for m in plan]


@pytest.fixture(scope="session")
def seed_dataset() -> Dataset:
    return Dataset(blocks_from_long_csv(EXAMPLE / "indicators.csv"), example_milestones())


@pytest.fixture
def july_2008() -> date:
    return date(2008, 7, 31)
