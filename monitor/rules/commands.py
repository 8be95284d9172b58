"""Operator commands on rule files: check, test, eval, backtest, diff."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from monitor.alerts.state import AlertRecord
from monitor.errors import RuleFileError
from monitor.model import AlertState, Frequency
from monitor.rules import scorecard
from monitor.rules.engine import Engine, Evaluation, carry_over, month_end
from monitor.rules.loader import RuleSet, load_rules
from monitor.rules.snapshot import SeriesDetail
from monitor.rules.testing import run_test_file

AddConfig = Callable[[argparse.ArgumentParser], None]


def register(sub: Any, add_config_option: AddConfig) -> None:
    check = sub.add_parser("check", help="check rule files; print every error with file:line")
    check.add_argument("paths", nargs="*", metavar="PATH",
                       help="rule files or folders (default: rules.paths from the config)")
    add_config_option(check)
    check.set_defaults(handler=cmd_check)

    test = sub.add_parser("test", help="run rule unit tests (*.test.yaml)")
    test.add_argument("files", nargs="+", metavar="FILE")
    test.set_defaults(handler=cmd_test)

    ev = sub.add_parser("eval", help="evaluate once as of a month and print the scorecard")
    ev.add_argument("--at", required=True, metavar="YYYY-MM", help="the month to evaluate")
    ev.add_argument("--format", choices=["table", "json"], default="table")
    ev.add_argument("--poll", action="store_true",
                    help="poll every enabled source into the store first")
    add_config_option(ev)
    ev.set_defaults(handler=cmd_eval)

    bt = sub.add_parser("backtest", help="replay history month by month; report alerts")
    bt.add_argument("--from", dest="start", required=True, metavar="YYYY-MM")
    bt.add_argument("--to", dest="end", required=True, metavar="YYYY-MM")
    bt.add_argument("--format", choices=["table", "json"], default="table")
    bt.add_argument("--rule", action="append", default=[], metavar="ALERTNAME",
                    help="only these rules (repeatable)")
    bt.add_argument("--poll", action="store_true", help="poll every enabled source first")
    add_config_option(bt)
    bt.set_defaults(handler=cmd_backtest)

    diff = sub.add_parser("diff", help="show which alerts would change state with edited rules")
    diff.add_argument("paths", nargs="*", metavar="PATH",
                      help="the edited rule files (default: rules.paths)")
    diff.add_argument("--at", metavar="YYYY-MM", help="evaluate as of this month")
    add_config_option(diff)
    diff.set_defaults(handler=cmd_diff)


# --- check and test ---------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    paths = args.paths
    if not paths:
        from monitor.cli import load_settings

        settings, _ = load_settings(args)
        paths = settings.rules.paths
    try:
        ruleset = load_rules(paths)
    except RuleFileError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        count = len(exc.problems)
        print(f"{count} problem{'s' if count != 1 else ''} found", file=sys.stderr)
        return 1
    print(f"OK: {len(ruleset.files)} files, {len(ruleset.indicators)} indicators, "
          f"{len(ruleset.rules)} rules")
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    passed = failed = 0
    for name in args.files:
        try:
            report = run_test_file(Path(name))
        except (RuleFileError, OSError) as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            failed += 1
            continue
        failing = {f.test for f in report.failures}
        for failure in report.failures:
            print(f"FAILED {failure.test}: {failure.message}")
        passed += report.tests - len(failing)
        failed += len(failing)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


# --- evaluating from the store ----------------------------------------------------------


def _open(args: argparse.Namespace) -> tuple[Any, Any, RuleSet]:
    from monitor.cli import require_config, require_observations
    from monitor.store import open_store

    settings, path = require_config(args)
    ruleset = load_rules(settings.rules.paths)
    cfg = settings.store
    store = open_store(cfg.url.get_secret_value(), busy_timeout=cfg.busy_timeout)
    if getattr(args, "poll", False):
        _poll_all(args, settings, store)
    else:
        require_observations(args, store, path)
    return settings, store, ruleset


def _poll_all(args: argparse.Namespace, settings: Any, store: Any) -> None:
    from prometheus_client import CollectorRegistry

    from monitor.clock import clock_of
    from monitor.sources.poller import Poller

    poller = Poller(store, settings.sources, clock_of(args), CollectorRegistry())
    for source in settings.sources:
        if source.enabled:
            result = poller.poll(source.name)
            print(f"polled {source.name}: {result.outcome}", file=sys.stderr)


def _milestone_sources(settings: Any) -> list[str]:
    return [s.name for s in settings.sources if getattr(s, "kind", "") == "milestones"]


def cmd_eval(args: argparse.Namespace) -> int:
    from monitor.rules.service import read_dataset

    settings, store, ruleset = _open(args)
    try:
        period = Frequency.MONTHLY.parse(args.at)
        dataset = read_dataset(store, ruleset, _milestone_sources(settings))
    finally:
        store.close()
    engine = Engine(ruleset, history=settings.rules.history)
    result = engine.evaluate(dataset, month_end(period), {})
    rows = scorecard.rows(result.matrices, ruleset)
    alerts = [r for r in result.records.values()
              if r.state in (AlertState.FIRING, AlertState.PENDING)]
    if args.format == "json":
        json.dump({"at": args.at, "scorecard": [_row_json(r) for r in rows],
                   "alerts": [_alert_json(a) for a in alerts],
                   "errors": result.errors}, sys.stdout, indent=2)
        print()
    else:
        print_scorecard(rows, sys.stdout)
        print()
        print(f"Alerts as of {args.at} ({len(alerts)}):")
        for a in sorted(alerts, key=lambda r: (r.rule, sorted(r.labels.items()))):
            print(f"  [{_public(a.labels).get('severity', '')}] {a.rule}"
                  f" {_label_text(a.labels)}\n      {a.explanation}")
        for rule, error in result.errors.items():
            print(f"  rule {rule} failed: {error}")
    return 1 if result.errors else 0


def _public(labels: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if not k.startswith("__")}


def _label_text(labels: dict[str, str]) -> str:
    shown = {k: v for k, v in _public(labels).items()
             if k not in ("alertname", "severity", "indicator")}
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(shown.items())) + "}"


def _row_json(row: SeriesDetail) -> dict[str, Any]:
    return {"indicator": row.indicator.id, "reference": row.indicator.reference,
            "name": row.indicator.name, "labels": row.labels, "period": row.period_label,
            "window": row.window_label, "value": row.value, "value_text": row.value_text,
            "target": row.target, "target_text": row.target_text,
            "status": row.status.value, "spc": row.spc_icon, "comment": row.comment}


def _alert_json(a: AlertRecord) -> dict[str, Any]:
    return {"alertname": a.rule, "state": a.state.value, "labels": _public(a.labels),
            "value": a.value, "explanation": a.explanation, "annotations": a.annotations}


def print_scorecard(rows: list[SeriesDetail], out: TextIO) -> None:
    """Print the scorecard as a plain-text table with the comment under each row."""
    header = f"{'Ref':<11} {'Indicator':<46} {'Latest':>9} {'Period':<22} {'Target':<20} Status"
    out.write(header + "\n" + "-" * len(header) + "\n")
    group = None
    per_indicator: dict[str, int] = {}
    for row in rows:
        per_indicator[row.indicator.id] = per_indicator.get(row.indicator.id, 0) + 1
    for row in rows:
        if row.indicator.group != group:
            group = row.indicator.group
            out.write(f"{group}\n")
        name = row.indicator.name
        if per_indicator[row.indicator.id] > 1:  # several series: say which one this is
            name = f"{name} {_label_text(row.labels)}"
        name = name if len(name) <= 46 else name[:45] + "…"
        out.write(f"{row.indicator.reference:<11} {name:<46} {row.value_text:>9} "
                  f"{row.window_label[:22]:<22} {row.target_text[:20]:<20} "
                  f"{row.status.value.upper()}\n")
        if row.comment:
            out.write(f"{'':<11} {row.comment}\n")


# --- backtest -----------------------------------------------------------------------


def backtest(engine: Engine, dataset: Any, start: int, end: int, *,
             progress: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:
    """Evaluate every month from ``start`` to ``end``; return the firing and resolving
    events in order, with the numbers that explain them."""
    records: dict[str, AlertRecord] = {}
    events: list[dict[str, Any]] = []
    total = end - start + 1
    for k, period in enumerate(range(start, end + 1)):
        result: Evaluation = engine.evaluate(dataset, month_end(period), records)
        records = result.records
        for t in result.transitions:
            if t.to_state in (AlertState.FIRING, AlertState.RESOLVED):
                events.append({"period": Frequency.MONTHLY.label(period),
                               "alertname": t.rule, "event": t.to_state.value,
                               "labels": _public(t.labels), "value": t.value,
                               "explanation": t.explanation})
        if progress is not None:
            progress(k + 1, total)
    return events


def cmd_backtest(args: argparse.Namespace) -> int:
    from monitor.rules.service import read_dataset

    settings, store, ruleset = _open(args)
    try:
        dataset = read_dataset(store, ruleset, _milestone_sources(settings))
    finally:
        store.close()
    start, end = Frequency.MONTHLY.parse(args.start), Frequency.MONTHLY.parse(args.end)
    if end < start:
        print("error: --to is before --from", file=sys.stderr)
        return 2
    rules = [r for r in ruleset.rules if not args.rule or r.rule.alert in args.rule]
    unknown = set(args.rule) - {r.rule.alert for r in ruleset.rules}
    if unknown:
        print(f"error: unknown rule(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    engine = Engine(ruleset)
    engine.ruleset = RuleSet(ruleset.indicators, ruleset.peer_groups, rules, ruleset.files)
    show_progress = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if show_progress:
            width = 30
            filled = int(width * done / total)
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} months")
            if done == total:
                sys.stderr.write("\n")
            sys.stderr.flush()

    events = backtest(engine, dataset, start, end, progress=progress)
    if args.format == "json":
        json.dump({"from": args.start, "to": args.end, "events": events}, sys.stdout, indent=2)
        print()
        return 0
    print(f"Backtest {args.start} to {args.end}: {len(events)} events")
    for e in events:
        print(f"{e['period']}  {e['event'].upper():<8} {e['alertname']} "
              f"{_label_text(e['labels'])}\n         {e['explanation']}")
    return 0


# --- diff ---------------------------------------------------------------------------


def cmd_diff(args: argparse.Namespace) -> int:
    from monitor.clock import clock_of
    from monitor.rules.engine import evaluation_time
    from monitor.rules.service import read_dataset

    settings, store, _running = _open(args)
    try:
        edited = load_rules(args.paths) if args.paths else load_rules(settings.rules.paths)
        records = store.alerts.load()
        dataset = read_dataset(store, edited, _milestone_sources(settings))
    finally:
        store.close()
    at = evaluation_time(args.at or settings.rules.as_of, clock_of(args).now())
    before = {k: r.state for k, r in records.items()}
    result = Engine(edited).evaluate(dataset, at, carry_over(records, edited))
    changes = []
    for key, record in result.records.items():
        old = before.get(key, AlertState.INACTIVE)
        if record.state is not old:
            changes.append((record.rule, _label_text(record.labels), old.value,
                            record.state.value, record.explanation))
    for key, state in before.items():
        if key not in result.records and state in (AlertState.FIRING, AlertState.PENDING):
            record = records[key]
            changes.append((record.rule, _label_text(record.labels), state.value,
                            "removed", "the rule no longer exists"))
    if not changes:
        print("no alert would change state")
        return 0
    for rule, labels, old_state, new_state, why in sorted(changes):
        print(f"{rule} {labels}: {old_state} -> {new_state}\n    {why}")
    return 0
