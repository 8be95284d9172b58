"""Commands of the sources subsystem.

``monitor poll NAME…``            poll sources once now (``--all`` for every enabled one)
``monitor ingest --source NAME FILE``  backfill from a local file with that source's mapping
``monitor sources``               list the configured sources and their health
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from monitor.clock import clock_of
from monitor.textsafe import one_line


def register(sub: Any, add_config_option: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``poll``, ``ingest`` and ``sources`` to the ``monitor`` command."""
    poll = sub.add_parser("poll", help="poll data sources once now and print what was stored")
    poll.add_argument("names", nargs="*", metavar="NAME", help="source names")
    poll.add_argument("--all", action="store_true", help="poll every enabled source")
    add_config_option(poll)
    poll.set_defaults(handler=cmd_poll)

    ingest = sub.add_parser("ingest", help="backfill a source from a local file, read with "
                                           "that source's mapping")
    ingest.add_argument("--source", required=True, metavar="NAME", help="source name")
    ingest.add_argument("file", metavar="FILE", type=Path, help="the file to read")
    add_config_option(ingest)
    ingest.set_defaults(handler=cmd_ingest)

    sources = sub.add_parser("sources", help="list the configured sources and their health")
    add_config_option(sources)
    sources.set_defaults(handler=cmd_sources)


def _poller(args: argparse.Namespace) -> Any:
    from monitor.sources.poller import Poller
    from monitor.store import open_store

    settings, _path = args.require_config(args, rules=False)
    cfg = settings.store
    store = open_store(cfg.url.get_secret_value(), busy_timeout=cfg.busy_timeout,
                       pool_size=cfg.pool_size)
    return Poller(store, list(settings.sources), clock_of(args), CollectorRegistry())


def cmd_poll(args: argparse.Namespace) -> int:
    poller = _poller(args)
    try:
        if args.all:
            results = poller.poll_all()
        elif args.names:
            results = [poller.poll(name) for name in args.names]
        else:
            print("name at least one source, or use --all; configured: "
                  f"{', '.join(poller.names) or 'none'}", file=sys.stderr)
            return 2
        for result in results:
            _print_result(result)
        return 0 if all(r.ok for r in results) else 1
    finally:
        poller.close()
        poller.store.close()


def cmd_ingest(args: argparse.Namespace) -> int:
    poller = _poller(args)
    try:
        result = poller.ingest_file(args.source, args.file)
        _print_result(result)
        return 0 if result.ok else 1
    finally:
        poller.close()
        poller.store.close()


def cmd_sources(args: argparse.Namespace) -> int:
    poller = _poller(args)
    try:
        for health in poller.health():
            config = poller.source(health.source).config
            schedule = f"cron {config.cron}" if config.cron else f"every {config.every:g}s"
            state = "never polled" if health.last_attempt_at is None else (
                "ok" if health.consecutive_failures == 0 else
                f"failing ({health.consecutive_failures} in a row)")
            last = health.last_success_at.isoformat() if health.last_success_at else "-"
            enabled = "" if config.enabled else " (disabled)"
            print(f"{health.source}\t{config.kind}\t{schedule}{enabled}\t{state}\t"
                  f"last success {last}")
            if health.last_error:
                print(f"\tlast error: {one_line(health.last_error)}")
        return 0
    finally:
        poller.close()
        poller.store.close()


def _print_result(result: Any) -> None:
    stream = sys.stdout if result.ok else sys.stderr
    print(one_line(result.summary()), file=stream)
    for problem in result.problems:
        print(f"  rejected: {one_line(str(problem))}", file=stream)
    if result.rejected_values > len(result.problems):
        print(f"  … and {result.rejected_values - len(result.problems):,} more rejected values "
              "(see the log)", file=stream)
