"""Rule unit tests (``monitor test``): promtool's idea, in months.

A test file::

    rule_files: [../mps-2008-09.yaml]
    tests:
      - name: burglary rising while acquisitive crime falls
        start: 2006-08                      # period of each series' first value
        input_series:
          - indicator: residential_burglary
            labels: {force: MPS}
            values: "5000x11 5100x11"        # 12 months at 5000, then 12 at 5100
        milestones: []                      # optional: id, title, owner, due, status
        alert_rule_test:
          - eval_at: 2008-07
            alertname: BurglaryRisingWhileAcquisitiveCrimeFalls
            exp_alerts:
              - exp_labels: {force: MPS}
                exp_annotations: {summary: "…"}

Series notation, space-separated tokens, one per period unless expanded:
``120`` a value; ``120/400`` a value with its denominator; ``120p`` provisional;
``_`` missing; ``a+bxN`` a, a+b, … (N+1 values); ``a-bxN`` falling; ``axN`` a
repeated N+1 times; ``_xN`` N+1 missing periods; ``a/dxN`` repeats a proportion.

The runner evaluates at the end of every month from the first ``eval_at`` (minus the
longest ``for``) to the last, carrying alert state, and compares the firing alerts
at each ``eval_at``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from monitor.alerts.state import AlertRecord
from monitor.errors import Problem, RuleFileError
from monitor.model import AlertState, Frequency, Milestone, labels_of
from monitor.rules.cycle import Evaluator, replay
from monitor.rules.data import Block
from monitor.rules.engine import Dataset
from monitor.rules.loader import load_rules, parse_yaml

_TOKEN = re.compile(
    r"^(?P<missing>_)(?:x(?P<mcount>\d+))?$"
    r"|^(?P<value>-?\d+(?:\.\d+)?)(?:(?P<sign>[+-])(?P<step>\d+(?:\.\d+)?))?"
    r"(?:/(?P<den>\d+(?:\.\d+)?))?(?P<prov>p)?(?:x(?P<count>\d+))?$"
)


@dataclass(frozen=True)
class Point:
    value: float
    denominator: float | None
    provisional: bool


def parse_series(text: str) -> list[Point | None]:
    """Expand the compact notation into one entry per period (None: missing).

    Raises ValueError naming the token that is not notation, and what is.
    """
    out: list[Point | None] = []
    for token in str(text).split():
        match = _TOKEN.match(token)
        if not match:
            raise ValueError(f"{token!r} is not series notation; write 120, 120/400, 120p, _, "
                             "100+5x11, 100x11 or _x3")
        if match.group("missing"):
            missing = int(match.group("mcount") or 0) + 1
            if missing > 10_000:
                raise ValueError(f"{token!r}: at most 10,000 periods per token")
            out.extend([None] * missing)
            continue
        start = float(match.group("value"))
        step = float(match.group("step") or 0) * (-1 if match.group("sign") == "-" else 1)
        count = int(match.group("count") or 0) + 1 if match.group("count") or step else 1
        if step and not match.group("count"):
            raise ValueError(f"{token!r}: a step needs a count, as in 100+5x11")
        den = float(match.group("den")) if match.group("den") else None
        if count > 10_000:
            raise ValueError(f"{token!r}: at most 10,000 periods per token")
        for k in range(count):
            out.append(Point(start + step * k, den, bool(match.group("prov"))))
    return out


@dataclass
class Failure:
    test: str
    message: str


@dataclass
class TestReport:
    file: str
    tests: int = 0
    failures: list[Failure] = field(default_factory=list)


def _dataset(test: dict[str, Any], frequency_of: Mapping[str, str]) -> Dataset:
    start_text = str(test.get("start", ""))
    per_indicator: dict[str, list[tuple[dict[str, str], list[Point | None]]]] = {}
    for item in test.get("input_series") or []:
        indicator = str(item["indicator"])
        labels = {str(k): str(v) for k, v in (item.get("labels") or {}).items()}
        per_indicator.setdefault(indicator, []).append((labels, parse_series(item["values"])))
    blocks = {}
    for indicator, series in per_indicator.items():
        freq = Frequency(frequency_of.get(indicator, "monthly"))
        start = freq.parse(start_text)
        rows, periods, values, dens, provs = [], [], [], [], []
        for r, (_labels, points) in enumerate(series):
            for k, point in enumerate(points):
                if point is None:
                    continue
                rows.append(r)
                periods.append(start + k)
                values.append(point.value)
                dens.append(np.nan if point.denominator is None else point.denominator)
                provs.append(point.provisional)
        blocks[indicator] = Block([s[0] for s in series], np.array(rows, dtype=np.int64),
                                  np.array(periods, dtype=np.int64), np.array(values),
                                  np.array(dens), np.array(provs, dtype=bool),
                                  np.zeros(len(rows), dtype=np.int64))
    milestones = []
    for item in test.get("milestones") or []:
        completed = item.get("completed")
        milestones.append((str(item.get("source", "plan")), Milestone(
            id=str(item["id"]), title=str(item.get("title", item["id"])),
            owner=str(item.get("owner", "")), due=_date(item["due"]),
            status=str(item.get("status", "not_started")),
            completed=_date(completed) if completed else None)))
    return Dataset(blocks, milestones)


def _date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def run_test_file(path: Path) -> TestReport:
    """Run every test in ``path``. Raises RuleFileError for a malformed test file or
    rule files that do not load."""
    shown = str(path)
    data, positions = parse_yaml(path.read_text(encoding="utf-8"), shown)
    if not isinstance(data, dict) or "tests" not in data:
        raise RuleFileError([Problem(shown, 1, 1, "", "a test file has rule_files and tests")])
    rule_files = [path.parent / str(f) for f in data.get("rule_files") or []]
    ruleset = load_rules(rule_files)
    frequency_of = {k: v.frequency for k, v in ruleset.indicators.items()}
    report = TestReport(shown)
    for ti, test in enumerate(data["tests"] or []):
        name = str(test.get("name", f"#{ti + 1}"))
        report.tests += 1
        line = positions.get(("tests", ti), (0, 0))[0]
        try:
            dataset = _dataset(test, frequency_of)
        except (ValueError, KeyError, TypeError) as exc:
            report.failures.append(Failure(name, f"{shown}:{line}: input: {exc}"))
            continue
        cases = test.get("alert_rule_test") or []
        if not cases:
            continue
        evaluator = Evaluator(ruleset)
        at_periods = sorted({Frequency.MONTHLY.parse(str(c["eval_at"])) for c in cases})
        warmup = int(test.get("warmup", 12))
        firing_at: dict[int, list[AlertRecord]] = {}
        for period, result in replay(evaluator, dataset, at_periods[0] - warmup,
                                     at_periods[-1]):
            records = result.records
            if result.errors:
                report.failures.append(Failure(name, f"evaluation error at "
                                               f"{Frequency.MONTHLY.label(period)}: "
                                               f"{result.errors}"))
            firing_at[period] = [r for r in records.values() if r.state is AlertState.FIRING]
        for ci, case in enumerate(cases):
            period = Frequency.MONTHLY.parse(str(case["eval_at"]))
            alertname = str(case["alertname"])
            got = [r for r in firing_at[period] if r.rule == alertname]
            failure = _compare(got, case.get("exp_alerts") or [])
            if failure:
                case_line = positions.get(("tests", ti, "alert_rule_test", ci), (line, 0))[0]
                report.failures.append(Failure(
                    name, f"{shown}:{case_line}: {alertname} at {case['eval_at']}: {failure}"))
    return report


def _compare(got: list[AlertRecord], expected: list[dict[str, Any]]) -> str:
    def public(r: AlertRecord) -> dict[str, str]:
        return {k: v for k, v in r.labels.items()
                if k != "alertname"}

    remaining = list(got)
    for exp in expected:
        labels = {str(k): str(v) for k, v in (exp.get("exp_labels") or {}).items()}
        annotations = {str(k): str(v) for k, v in (exp.get("exp_annotations") or {}).items()}
        match = next((r for r in remaining if all(public(r).get(k) == v
                                                  for k, v in labels.items())), None)
        if match is None:
            shown = [labels_of(public(r)) for r in got]
            return f"expected an alert with labels {labels}, got {shown or 'none'}"
        for key, value in annotations.items():
            actual = match.annotations.get(key)
            if actual != value:
                return f"annotation {key!r}: expected {value!r}, got {actual!r}"
        remaining.remove(match)
    if remaining:
        extra = [labels_of(public(r)) for r in remaining]
        return f"unexpected firing alerts: {extra}"
    return ""
