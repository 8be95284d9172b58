"""``monitor report``: the monthly performance pack of a month, as PDF, Excel or HTML."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from monitor.clock import clock_of
from monitor.model import Frequency
from monitor.report.generate import FORMATS, month_pack, render
from monitor.rules.loader import load_rules
from monitor.settings import ReportSettings

AddConfig = Callable[[argparse.ArgumentParser], None]


def register(sub: Any, add_config_option: AddConfig) -> None:
    report = sub.add_parser("report", help="write the monthly performance pack of a month "
                                           "(PDF, Excel or HTML)")
    report.add_argument("--at", required=True, metavar="YYYY-MM", help="the month to report")
    report.add_argument("--format", choices=FORMATS, default="pdf")
    report.add_argument("--out", required=True, metavar="PATH",
                        help="the file to write (- for standard output)")
    report.add_argument("--report", metavar="NAME",
                        help="take the title and organisation of this [[reports]] entry "
                             "(default: the first one)")
    report.add_argument("--poll", action="store_true",
                        help="poll every enabled source into the store first")
    add_config_option(report)
    report.set_defaults(handler=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from monitor.store import open_store

    settings, path = args.require_config(args)
    try:
        period = Frequency.MONTHLY.parse(args.at)
    except ValueError as exc:
        print(f"error: --at: {exc}", file=sys.stderr)
        return 2
    chosen = _report(settings.reports, args.report)
    if chosen is None:
        known = ", ".join(r.name for r in settings.reports) or "none"
        print(f"error: --report: no [[reports]] entry named {args.report!r} in {path} "
              f"(known: {known})", file=sys.stderr)
        return 2
    ruleset = load_rules(settings.rules.paths)
    cfg = settings.store
    store = open_store(cfg.url.get_secret_value(), busy_timeout=cfg.busy_timeout)
    try:
        if args.poll:
            _poll_all(args, settings, store)
        else:
            args.require_observations(args, store, path)
        pack = month_pack(settings, store, ruleset, period,
                          generated_at=clock_of(args).now(), title=chosen.title,
                          organisation=chosen.organisation)
    finally:
        store.close()
    data = render(pack, [args.format])[args.format]
    if args.out == "-" and args.format == "html":
        sys.stdout.write(data.decode("utf-8"))
    elif args.out == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
        print(f"wrote {out} ({args.format}, {len(data):,} bytes): {len(pack.rows)} rows, "
              f"{len(pack.exceptions)} exceptions, {len(pack.charts)} SPC charts, data to "
              f"{pack.data_to or 'no data'}", file=sys.stderr)
    return 0


def _report(reports: list[ReportSettings], name: str | None) -> ReportSettings | None:
    if name is None:
        return reports[0] if reports else ReportSettings()
    return next((r for r in reports if r.name == name), None)


def _poll_all(args: argparse.Namespace, settings: Any, store: Any) -> None:
    from prometheus_client import CollectorRegistry

    from monitor.sources.poller import Poller

    poller = Poller(store, settings.sources, clock_of(args), CollectorRegistry())
    for source in settings.sources:
        if source.enabled:
            result = poller.poll(source.name)
            print(f"polled {source.name}: {result.outcome}", file=sys.stderr)
