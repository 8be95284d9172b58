"""Operator commands on rule files: check, test, eval, backtest, diff."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, TextIO

from monitor.alerts.state import AlertRecord
from monitor.clock import clock_of
from monitor.errors import RuleFileError
from monitor.jsontext import encoder
from monitor.memory import gc_paused
from monitor.model import AlertState, Frequency
from monitor.rules import sourcehealth
from monitor.rules.cycle import Cycle, Evaluator, SourceView, publish_month, replay
from monitor.rules.engine import Dataset, carry_over, evaluation_time
from monitor.rules.inputs import read_dataset
from monitor.rules.loader import LoadedRule, RuleSet, load_rules
from monitor.rules.snapshot import CommentPart, RankFact, SeriesDetail
from monitor.rules.templating import budget_warnings
from monitor.rules.testing import run_test_file
from monitor.textsafe import one_line

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
    diff.add_argument("--backtest", metavar="FROM..TO",
                      help="replay both rule sets month by month from FROM to TO (YYYY-MM) "
                           "and compare the alerts each would have fired")
    diff.add_argument("--format", choices=["table", "markdown", "json"], default="table",
                      help="with --backtest: a table, Markdown (a pull-request comment) or "
                           "JSON")
    add_config_option(diff)
    diff.set_defaults(handler=cmd_diff)


# --- check and test ---------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    paths = args.paths
    if not paths:
        settings, _ = args.require_config(args)  # never the built-in defaults' rules
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
    for warning in budget_warnings(ruleset.rules):
        print(warning, file=sys.stderr)
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
    from monitor.store import open_store

    settings, path = args.require_config(args)
    ruleset = load_rules(settings.rules.paths)
    cfg = settings.store
    store = open_store(cfg.url.get_secret_value(), busy_timeout=cfg.busy_timeout)
    if getattr(args, "poll", False):
        _poll_all(args, settings, store)
    else:
        args.require_observations(args, store, path)
    return settings, store, ruleset


def _poll_all(args: argparse.Namespace, settings: Any, store: Any) -> None:
    from prometheus_client import CollectorRegistry

    from monitor.sources.poller import Poller

    poller = Poller(store, settings.sources, clock_of(args), CollectorRegistry())
    for source in settings.sources:
        if source.enabled:
            result = poller.poll(source.name)
            print(f"polled {source.name}: {result.outcome}", file=sys.stderr)


def _milestone_sources(settings: Any) -> list[str]:
    return [s.name for s in settings.sources if getattr(s, "kind", "") == "milestones"]


def _evaluator(settings: Any, ruleset: RuleSet) -> Evaluator:
    """The evaluator the daemon would build for ``ruleset`` under ``settings``."""
    return Evaluator(ruleset, history=settings.rules.history,
                     milestone_sources=_milestone_sources(settings))


def _read(store: Any, settings: Any, ruleset: RuleSet) -> tuple[Dataset, SourceView]:
    """Read the dataset and the sources' stored health, then close the store."""
    try:
        dataset = read_dataset(store, ruleset, _milestone_sources(settings))
        sources = SourceView(list(settings.sources), store.source_state.health())
    finally:
        store.close()
    return dataset, sources


def cmd_eval(args: argparse.Namespace) -> int:
    settings, store, ruleset = _open(args)
    try:
        period = Frequency.MONTHLY.parse(args.at)
    except ValueError as exc:
        store.close()
        print(f"error: --at: {exc}", file=sys.stderr)
        return 2
    # Reading, evaluating and printing 100,000 series make millions of objects that are
    # not in cycles; the collector, paused, does not walk them again and again (a fifth
    # of the command's time at 100,000 series).
    with gc_paused():
        return _eval(args, settings, store, ruleset, period)


def _eval(args: argparse.Namespace, settings: Any, store: Any, ruleset: RuleSet,
          period: int) -> int:
    dataset, sources = _read(store, settings, ruleset)
    result, published = publish_month(_evaluator(settings, ruleset), dataset, period, sources)
    rows = published.scorecard()
    alerts = [r for r in result.records.values()
              if r.state in (AlertState.FIRING, AlertState.PENDING)
              and r.group != sourcehealth.GROUP]
    health = [r for r in result.records.values()
              if r.state in (AlertState.FIRING, AlertState.PENDING)
              and r.group == sourcehealth.GROUP]
    if args.format == "json":
        write_json_lines({"at": args.at, "scorecard": [_row_json(r) for r in rows],
                          "alerts": [_alert_json(a) for a in alerts],
                          "sources_unhealthy": sorted(result.unhealthy),
                          "alerts_held": result.held,
                          "errors": result.errors}, sys.stdout)
    else:
        print_scorecard(rows, sys.stdout)
        print()
        print(f"Alerts as of {args.at} ({len(alerts)}):")
        for a in sorted(alerts, key=lambda r: (r.rule, sorted(r.labels.items()))):
            print(f"  [{a.labels.get('severity', '')}] {a.rule}"
                  f" {_label_text(a.labels)}\n      {one_line(a.explanation)}")
        for h in health:
            print(f"  [{h.labels.get('severity', '')}] {h.rule} {_label_text(h.labels)}\n"
                  f"      {one_line(h.explanation)}")
        if result.unhealthy:
            print(f"  rules reading {', '.join(sorted(result.unhealthy))} are held: their "
                  "alerts neither fire nor resolve until the source recovers")
        for rule, error in result.errors.items():
            print(f"  rule {rule} failed: {one_line(error)}")
    return 1 if result.errors else 0


def write_json_lines(document: dict[str, Any], out: TextIO) -> None:
    """Write ``document`` as JSON with each key on a line of its own and each element
    of a list value on a line of its own (one scorecard row, one alert per line: easy to
    read, grep and diff). Each line is ``json.dumps`` of its value, encoded by json's C
    encoder made once: ``indent`` would take the pure-Python one, which needs about a
    minute for 100,000 rows, and ``json.dumps`` makes a C encoder for every line."""
    dumps = encoder()
    out.write("{\n")
    for k, (key, value) in enumerate(document.items()):
        out.write(f"  {dumps(key)}: ")
        if isinstance(value, list) and value:
            out.write("[\n    ")
            out.write(",\n    ".join(map(dumps, value)))
            out.write("\n  ]")
        else:
            out.write(dumps(value))
        out.write(",\n" if k < len(document) - 1 else "\n")
    out.write("}\n")


def _label_text(labels: dict[str, str]) -> str:
    shown = {k: v for k, v in labels.items()
             if k not in ("alertname", "severity", "indicator")}
    return "{" + ", ".join(f'{k}="{one_line(v)}"' for k, v in sorted(shown.items())) + "}"


def _row_json(row: SeriesDetail) -> dict[str, Any]:
    return {"indicator": row.indicator.id, "reference": row.indicator.reference,
            "name": row.indicator.name, "labels": row.labels, "period": row.period_label,
            "window": row.window_label, "value": row.value, "value_text": row.value_text,
            "target": row.target, "target_text": row.target_text,
            "target_year": row.target_year, "judged_year": row.judged_year,
            "judged_target_text": row.judged_target_text,
            "status": row.status.value, "spc": row.spc_icon, "assurance": row.assurance,
            "comment": row.comment,
            "comment_parts": [_flat(part) for part in row.comment_parts],
            "ranks": [_flat(rank) for rank in row.ranks]}


def _flat(item: CommentPart | RankFact) -> dict[str, Any]:
    """``dataclasses.asdict`` of a dataclass whose fields are plain values, without its
    deep copy of each (a tenth of ``monitor eval``'s time at 100,000 rows)."""
    return {name: getattr(item, name) for name in _FIELDS[type(item)]}


_FIELDS = {kind: tuple(f.name for f in fields(kind)) for kind in (CommentPart, RankFact)}


def _alert_json(a: AlertRecord) -> dict[str, Any]:
    return {"alertname": a.rule, "state": a.state.value, "labels": dict(a.labels),
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
            out.write(f"{one_line(str(group))}\n")
        name = one_line(row.indicator.name)
        if per_indicator[row.indicator.id] > 1:  # several series: say which one this is
            name = f"{name} {_label_text(row.labels)}"
        name = name if len(name) <= 46 else name[:45] + "…"
        out.write(one_line(f"{row.indicator.reference:<11} {name:<46} {row.value_text:>9} "
                           f"{row.window_label[:22]:<22} {row.target_text[:20]:<20} "
                           f"{row.status.word.upper()}") + "\n")
        if row.comment:
            out.write(f"{'':<11} {one_line(row.comment)}\n")


# --- backtest -----------------------------------------------------------------------


def backtest(evaluator: Evaluator, dataset: Dataset, start: int, end: int, *,
             rules: list[LoadedRule] | None = None,
             progress: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:
    """Evaluate every month from ``start`` to ``end`` as the daemon does (``replay``);
    return the firing and resolving events in order, with the numbers that explain them."""
    events: list[dict[str, Any]] = []
    total = end - start + 1
    for k, (period, result) in enumerate(replay(evaluator, dataset, start, end, rules=rules)):
        for t in result.transitions:
            if t.to_state in (AlertState.FIRING, AlertState.RESOLVED):
                events.append({"period": Frequency.MONTHLY.label(period),
                               "alertname": t.rule, "event": t.to_state.value,
                               "labels": dict(t.labels), "value": t.value,
                               "explanation": t.explanation})
        if progress is not None:
            progress(k + 1, total)
    return events


def cmd_backtest(args: argparse.Namespace) -> int:
    settings, store, ruleset = _open(args)
    dataset, _ = _read(store, settings, ruleset)
    try:
        start, end = Frequency.MONTHLY.parse(args.start), Frequency.MONTHLY.parse(args.end)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if end < start:
        print("error: --to is before --from", file=sys.stderr)
        return 2
    rules = [r for r in ruleset.rules if not args.rule or r.rule.alert in args.rule]
    unknown = set(args.rule) - {r.rule.alert for r in ruleset.rules}
    if unknown:
        print(f"error: unknown rule(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    evaluator = _evaluator(settings, ruleset)
    show_progress = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if show_progress:
            width = 30
            filled = int(width * done / total)
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} months")
            if done == total:
                sys.stderr.write("\n")
            sys.stderr.flush()

    events = backtest(evaluator, dataset, start, end,
                      rules=rules if args.rule else None, progress=progress)
    if args.format == "json":
        json.dump({"from": args.start, "to": args.end, "events": events}, sys.stdout, indent=2)
        print()
        return 0
    print(f"Backtest {args.start} to {args.end}: {len(events)} events")
    for e in events:
        print(f"{e['period']}  {e['event'].upper():<8} {e['alertname']} "
              f"{_label_text(e['labels'])}\n         {one_line(e['explanation'])}")
    return 0


# --- diff ---------------------------------------------------------------------------


def cmd_diff(args: argparse.Namespace) -> int:
    """Evaluate the edited rules exactly as the daemon's next cycle would — the stored
    alert state, the sources' health, ``rules.as_of``, ``rules.history`` — and print
    every alert whose state would change."""
    if args.backtest:
        return cmd_diff_backtest(args)
    settings, store, _running = _open(args)
    try:
        edited = load_rules(args.paths) if args.paths else load_rules(settings.rules.paths)
        records = store.alerts.load()
    except BaseException:
        store.close()
        raise
    dataset, sources = _read(store, settings, edited)
    now = clock_of(args).now()
    at = evaluation_time(args.at or settings.rules.as_of, now)
    before = {k: r.state for k, r in records.items()}
    kept = {**carry_over(records, edited), **sourcehealth.health_records(records)}
    result = _evaluator(settings, edited).run(dataset, kept,
                                              Cycle(at=at, now=now, sources=sources))
    changes = []
    for key, record in result.records.items():
        old = before.get(key, AlertState.INACTIVE)
        if record.state is not old:
            changes.append((record.rule, _label_text(record.labels), old.value,
                            record.state.value, record.explanation))
    for key, state in before.items():
        if key not in result.records and key not in result.removed \
                and state in (AlertState.FIRING, AlertState.PENDING):
            record = records[key]
            changes.append((record.rule, _label_text(record.labels), state.value,
                            "removed", "the rule no longer exists"))
    if result.unhealthy:
        print(f"held (source stale or failing): rules reading "
              f"{', '.join(sorted(result.unhealthy))} keep their alerts as they are")
    if not changes:
        print("no alert would change state")
        return 0
    for rule, labels, old_state, new_state, why in sorted(changes):
        print(f"{rule} {labels}: {old_state} -> {new_state}\n    {one_line(why)}")
    return 0


# --- diff --backtest ------------------------------------------------------------------


@dataclass(frozen=True)
class RuleChange:
    """How one rule's alerts over a backtest differ between the running and edited rules:
    how often it fired and first fired in each, and which series only one fires on."""

    rule: str
    fired_before: int
    fired_after: int
    first_before: str  # "Feb-08"; "" when it never fired
    first_after: str
    series_added: tuple[str, ...] = ()  # series only the edited rules fire on
    series_removed: tuple[str, ...] = ()  # series only the running rules fire on
    status: str = "changed"  # changed | new | removed | same

    def summary(self) -> str:
        """``fired 4× → 9×, first Feb-07``: the change in words."""
        if self.status == "new":
            return f"new rule: fired {self.fired_after}×" + \
                (f", first {self.first_after}" if self.first_after else "")
        if self.status == "removed":
            return f"rule removed: had fired {self.fired_before}×"
        if self.status == "same":
            return f"unchanged: fired {self.fired_before}×"
        text = f"fired {self.fired_before}× → {self.fired_after}×"
        if self.first_after and self.first_after != self.first_before:
            text += f", first {self.first_after}" + \
                (f" (was {self.first_before})" if self.first_before else "")
        if self.series_added or self.series_removed:
            text += f"; +{len(self.series_added)}/-{len(self.series_removed)} series"
        return text


def parse_span(text: str) -> tuple[int, int]:
    """Return the monthly ordinals of ``FROM..TO``. Raises ValueError saying the form."""
    start, sep, end = text.partition("..")
    if not sep:
        raise ValueError(f"--backtest {text!r}: write the months as FROM..TO, "
                         "e.g. 2007-04..2008-07")
    first, last = Frequency.MONTHLY.parse(start), Frequency.MONTHLY.parse(end)
    if last < first:
        raise ValueError(f"--backtest {text!r}: TO is before FROM")
    return first, last


def compare_backtests(before: list[dict[str, Any]], after: list[dict[str, Any]],
                      rules_before: set[str], rules_after: set[str]) -> list[RuleChange]:
    """Return, per rule of either set, how its firings differ (from ``backtest`` events)."""

    def fired(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for e in events:
            if e["event"] == "firing":
                out.setdefault(e["alertname"], []).append(e)
        return out

    was, now = fired(before), fired(after)
    changes = []
    for rule in sorted(rules_before | rules_after):
        old, new = was.get(rule, []), now.get(rule, [])
        old_series = {_label_text(e["labels"]) for e in old}
        new_series = {_label_text(e["labels"]) for e in new}
        status = "new" if rule not in rules_before else \
            "removed" if rule not in rules_after else \
            "same" if _firings(old) == _firings(new) else "changed"
        changes.append(RuleChange(
            rule, len(old), len(new), _month_text(old[0]["period"]) if old else "",
            _month_text(new[0]["period"]) if new else "",
            tuple(sorted(new_series - old_series)), tuple(sorted(old_series - new_series)),
            status))
    return changes


def _firings(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["period"], _label_text(e["labels"])) for e in events]


def _month_text(period: str) -> str:
    """``2008-02`` -> ``Feb-08``, as comments write a month."""
    return f"{Frequency.MONTHLY.start(Frequency.MONTHLY.parse(period)):%b-%y}"


def cmd_diff_backtest(args: argparse.Namespace) -> int:
    """Replay the running rules and the edited ones over the same months, each through
    ``backtest`` (the evaluation cycle's ``replay``), and print how their alerts differ."""
    try:
        start, end = parse_span(args.backtest)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    settings, store, running = _open(args)
    try:
        edited = load_rules(args.paths) if args.paths else running
        data_running = read_dataset(store, running, _milestone_sources(settings))
        data_edited = data_running if edited is running else \
            read_dataset(store, edited, _milestone_sources(settings))
    finally:
        store.close()
    before = backtest(_evaluator(settings, running), data_running, start, end)
    after = backtest(_evaluator(settings, edited), data_edited, start, end)
    changes = compare_backtests(before, after, {r.rule.alert for r in running.rules},
                                {r.rule.alert for r in edited.rules})
    span = f"{Frequency.MONTHLY.label(start)}..{Frequency.MONTHLY.label(end)}"
    edited_name = ", ".join(args.paths) if args.paths else "the running rules"
    if args.format == "json":
        json.dump({"from": Frequency.MONTHLY.label(start), "to": Frequency.MONTHLY.label(end),
                   "edited": args.paths, "rules": [
                       {**asdict(c), "summary": c.summary()} for c in changes]},
                  sys.stdout, indent=2)
        print()
    elif args.format == "markdown":
        print_backtest_markdown(changes, span, edited_name, sys.stdout)
    else:
        print_backtest_table(changes, span, edited_name, sys.stdout)
    return 0


def print_backtest_table(changes: list[RuleChange], span: str, edited: str,
                         out: TextIO) -> None:
    """Print the per-rule comparison as a plain-text table, changed rules first."""
    shown = [c for c in changes if c.status != "same"]
    out.write(f"Backtest {span}: running rules vs {one_line(edited)}; "
              f"{len(shown)} of {len(changes)} rules would alert differently\n")
    width = max([len("Rule"), *(len(c.rule) for c in changes)])
    header = (f"{'Rule':<{width}}  {'Before':>6}  {'After':>6}  {'First before':<12}  "
              f"{'First after':<12}  Change")
    out.write(header + "\n" + "-" * len(header) + "\n")
    for c in sorted(changes, key=lambda c: (c.status == "same", c.rule)):
        out.write(f"{c.rule:<{width}}  {c.fired_before:>6}  {c.fired_after:>6}  "
                  f"{c.first_before or '—':<12}  {c.first_after or '—':<12}  "
                  f"{c.summary()}\n")
    for c in shown:
        for series in c.series_added:
            out.write(f"  + {c.rule} {series}\n")
        for series in c.series_removed:
            out.write(f"  - {c.rule} {series}\n")


def print_backtest_markdown(changes: list[RuleChange], span: str, edited: str,
                            out: TextIO) -> None:
    """Print the comparison as Markdown for a pull-request comment."""
    shown = [c for c in changes if c.status != "same"]
    out.write(f"### Backtest {span}: {len(shown)} of {len(changes)} rules would alert "
              f"differently\n\n")
    out.write(f"Running rules compared with `{_md(edited)}`, each replayed month by month "
              "as the daemon evaluates.\n\n")
    out.write("| Rule | Fired before | Fired after | First before | First after | Change |\n")
    out.write("|---|---:|---:|---|---|---|\n")
    for c in sorted(changes, key=lambda c: (c.status == "same", c.rule)):
        out.write(f"| `{_md(c.rule)}` | {c.fired_before} | {c.fired_after} | "
                  f"{c.first_before or '—'} | {c.first_after or '—'} | {_md(c.summary())} |\n")
    for c in shown:
        if not (c.series_added or c.series_removed):
            continue
        out.write(f"\n<details><summary>{_md(c.rule)}: series that change</summary>\n\n")
        for series in c.series_added:
            out.write(f"- added `{_md(series)}`\n")
        for series in c.series_removed:
            out.write(f"- removed `{_md(series)}`\n")
        out.write("\n</details>\n")


def _md(text: str) -> str:
    """Return ``text`` safe in a Markdown table cell: one line, pipes and backticks
    escaped."""
    return one_line(text).replace("|", "\\|").replace("`", "'")
