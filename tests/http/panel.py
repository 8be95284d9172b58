"""A small panel of indicators for what the examples do not exercise, written as real files.

Three monthly indicators, 2019-01 to 2023-12, in one long CSV read by a real ``csv``
source (``panel``):

- ``burglary_rate``: burglaries per 1,000 households (``rate_per_1000``, numerator and
  denominator per month), for two areas; North's last month is provisional;
- ``calls``: calls for service in North only (one series), whose recording changed in
  January 2022 — the level drops from about 100 to about 60, and the rules re-base the
  XmR chart there (``spc.rebase``) — and one unusual month after it (``OUTLIER``);
- two rows for an area ``East`` whose value is not a number: the poll rejects them.

A second source, ``broken``, reads a file that does not exist: its polls fail.

``REVISED`` is the one value a second version of the file changes (a late correction),
so the store keeps a revision of it.
"""

from __future__ import annotations

import csv
from pathlib import Path

import tomli_w

FIRST_YEAR, LAST_YEAR = 2019, 2023
AS_OF = "2023-12"
REBASE = "2022-01"
OUTLIER = "2023-03"
PERIODS = [f"{y}-{m:02d}" for y in range(FIRST_YEAR, LAST_YEAR + 1) for m in range(1, 13)]
REVISED = ("calls", "North", "2023-06")
REJECTED_ROWS = 2
HEADER = ["indicator", "area", "period", "value", "denominator", "provisional"]

RULES = """
indicators:
  - id: burglary_rate
    name: Burglaries per 1,000 households
    group: Panel
    unit: rate_per_1000
    direction: down
    aggregation: rate
    window: 12
    precision: 2
    targets:
      "2023/24": {kind: level, value: 5.0}

  - id: calls
    name: Calls for service
    group: Panel
    direction: down
    window: 1
    headline: level
    scorecard: true
    spc: {rebase: ["2022-01"]}

groups:
  - name: panel
    rules:
      - alert: CallsSpecialCause
        indicator: calls
        when:
          spc: {signal: any}
        severity: info
"""


def households(area: str, k: int) -> int:
    return 20_000 + 10 * k if area == "North" else 35_000


def burglaries(area: str, k: int) -> int:
    return 90 + (k * 7) % 19 if area == "North" else 120 + (k * 11) % 29


def calls(k: int) -> int:
    """About 100 a month until 2021, about 60 after the recording change of January 2022,
    with one unusual month (``OUTLIER``)."""
    if PERIODS[k] == OUTLIER:
        return 85
    return 100 + (k * 5) % 9 - 4 if PERIODS[k] < REBASE else 60 + (k * 3) % 7 - 3


def rows(*, revised: bool) -> list[list[str]]:
    """The CSV's rows (header first); ``revised`` applies the late correction."""
    out = [HEADER]
    for k, period in enumerate(PERIODS):
        for area in ("North", "South"):
            last = k == len(PERIODS) - 1 and area == "North"
            out.append(["burglary_rate", area, period, str(burglaries(area, k)),
                        str(households(area, k)), "true" if last else "false"])
        value = calls(k) + (5 if revised and ("calls", "North", period) == REVISED else 0)
        out.append(["calls", "North", period, str(value), "", "false"])
    out += [["calls", "East", PERIODS[-1], "n/a", "", "false"],
            ["calls", "East", PERIODS[-2], "n/a", "", "false"]]
    return out


def write_csv(path: Path, *, revised: bool) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows(revised=revised))


def write_config(folder: Path) -> Path:
    """Write the panel's data, rules and config into ``folder``; return the config's path.

    The config's store, port and token are filled in by ``conftest.config_copy``.
    """
    (folder / "rules").mkdir()
    (folder / "rules" / "panel.yaml").write_text(RULES, encoding="utf-8")
    write_csv(folder / "panel.csv", revised=False)
    config = {
        "rules": {"paths": [str(folder / "rules")], "as_of": AS_OF, "history": 60},
        "notify": {"route": {"receiver": "local"},
                   "receivers": [{"name": "local", "file": [{"path": "panel.log"}]}]},
        "sources": [
            {"name": "panel", "kind": "csv", "path": str(folder / "panel.csv"),
             "layout": "long", "indicator_column": "indicator", "labels": {"area": "area"},
             "period_column": "period", "value_column": "value",
             "denominator_column": "denominator", "provisional_column": "provisional",
             "interval": "1h"},
            {"name": "broken", "kind": "csv", "path": str(folder / "missing.csv"),
             "layout": "long", "indicator_column": "indicator", "labels": {"area": "area"},
             "period_column": "period", "value_column": "value", "interval": "2h"},
        ],
    }
    path = folder / "panel.toml"
    path.write_text(tomli_w.dumps(config), encoding="utf-8")
    return path
