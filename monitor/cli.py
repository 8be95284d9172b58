"""The ``monitor`` command: a thin layer that parses arguments and calls the subsystems.

Subsystems contribute their own commands through ``register(subparsers)`` functions
(``monitor.sources.commands``, ``monitor.rules.commands``, ``monitor.notify.commands``);
their handlers get what they need from the CLI on ``args`` (``args.load_settings``,
``args.clock``), so no command module imports this one.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from monitor import __version__, logs, sandbox
from monitor.clock import Clock
from monitor.errors import ConfigError, MonitorError
from monitor.settings import Settings, config_path, load

Handler = Callable[[argparse.Namespace], int]
COMMAND_MODULES = ("monitor.sources.commands", "monitor.rules.commands",
                   "monitor.notify.commands")


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", metavar="PATH",
                        help="config file (default: $MONITOR_CONFIG, else built-in defaults)")


def load_settings(args: argparse.Namespace) -> tuple[Settings, Path | None]:
    """Return the settings named by ``--config``/``MONITOR_CONFIG``; set up logging.

    Raises ConfigError with every problem when the config is invalid.
    """
    path = config_path(getattr(args, "config", None))
    settings = load(path)
    logs.setup(getattr(args, "log_level", None) or settings.logging.level,
               getattr(args, "log_format", None) or settings.logging.format)
    sandbox.configure(settings.templates)
    return settings, path


def cmd_run(args: argparse.Namespace) -> int:
    from monitor.app import App

    settings, path = load_settings(args)
    app = App(settings, path)
    app.install_signal_handlers()
    try:
        app.start()
    except (MonitorError, OSError) as exc:
        logs.get_logger("monitor").error("cannot start", error=str(exc))
        app.stop()
        return 1
    return app.run_forever()


def cmd_check_config(args: argparse.Namespace) -> int:
    path = config_path(args.config)
    try:
        settings = load(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        count = len(exc.problems)
        print(f"{count} problem{'s' if count != 1 else ''} found", file=sys.stderr)
        return 1
    print(f"{path or '(defaults)'}: OK ({len(settings.sources)} sources)")
    from monitor.clock import clock_of
    from monitor.notify.checks import budget_warnings

    for warning in budget_warnings(settings.notify, settings.templates, clock_of(args).now()):
        print(warning, file=sys.stderr)
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from monitor.store import open_store

    settings, _ = load_settings(args)
    cfg = settings.store
    store = open_store(cfg.url.get_secret_value(), busy_timeout=cfg.busy_timeout, migrate=False)
    try:
        before, after = store.upgrade()
    finally:
        store.close()
    if before == after:
        print(f"store already at revision {after}; nothing to do")
    else:
        print(f"store upgraded from {before or 'empty'} to {after}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="monitor",
        description="Watch performance indicators and explain when one needs attention.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-format", choices=["logfmt", "json"])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser("run", help="run the daemon")
    add_config_option(run)
    run.set_defaults(handler=cmd_run)

    check_config = sub.add_parser("check-config", help="validate the config; print every error")
    add_config_option(check_config)
    check_config.set_defaults(handler=cmd_check_config)

    db = sub.add_parser("db", help="manage the store")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    upgrade = db_sub.add_parser("upgrade", help="apply schema migrations (a no-op when current)")
    add_config_option(upgrade)
    upgrade.set_defaults(handler=cmd_db_upgrade)

    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.register(sub, add_config_option)
    return parser


def main(argv: Sequence[str] | None = None, *, clock: Clock | None = None) -> int:
    """Run one command; ``clock`` (default: the wall clock) is the time it runs at."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.clock = clock
    args.load_settings = load_settings  # passed down: command modules never import the CLI
    handler: Handler = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    except MonitorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
