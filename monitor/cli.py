"""The ``monitor`` command: a thin layer that parses arguments and calls the subsystems.

Subsystems contribute their own commands through ``register(subparsers)`` functions
(``monitor.sources.commands``, ``monitor.rules.commands``, ``monitor.notify.commands``),
each listed in :data:`COMMANDS` with its help, so that a command imports its own module
alone, when it runs: ``monitor --version`` and ``monitor --help`` import none. Their
handlers get what they need from the CLI on ``args`` (``args.load_settings``,
``args.require_config``, ``args.require_observations``, ``args.clock``), so no command
module imports this one.

Every command finds its config the same way (:func:`monitor.settings.config_path`):
``--config``, else ``$MONITOR_CONFIG``, else ``./config.toml`` when it exists. Commands
that evaluate or read data call :func:`require_config` and refuse to run on the built-in
defaults; ``monitor run`` runs on them with a warning.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shlex
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from monitor import __version__
from monitor.errors import ConfigError, MonitorError, Problem

if TYPE_CHECKING:
    from monitor.clock import Clock
    from monitor.settings import Settings
    from monitor.store import Store

Handler = Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class Command:
    """A command a subsystem contributes: its name and help as ``monitor --help`` lists
    them, and the module whose ``register(subparsers, add_config_option)`` adds its
    options and handler (with the same help: tests/foundation/test_cli.py checks)."""

    name: str
    help: str
    module: str


# Every subsystem's command, in the order ``monitor --help`` lists them. A command's module
# is imported only when that command runs (or prints its help): ``monitor --version`` and
# ``monitor eval`` load none of the notification, report and page machinery.
COMMANDS = (
    Command("poll", "poll data sources once now and print what was stored",
            "monitor.sources.commands"),
    Command("ingest", "backfill a source from a local file, read with that source's mapping",
            "monitor.sources.commands"),
    Command("sources", "list the configured sources and their health",
            "monitor.sources.commands"),
    Command("check", "check rule files; print every error with file:line",
            "monitor.rules.commands"),
    Command("test", "run rule unit tests (*.test.yaml)", "monitor.rules.commands"),
    Command("eval", "evaluate once as of a month and print the scorecard",
            "monitor.rules.commands"),
    Command("backtest", "replay history month by month; report alerts",
            "monitor.rules.commands"),
    Command("diff", "show which alerts would change state with edited rules",
            "monitor.rules.commands"),
    Command("silence", "add, list or expire silences", "monitor.notify.commands"),
    Command("template", "preview notification templates", "monitor.notify.commands"),
    Command("receiver", "test receivers", "monitor.notify.commands"),
    Command("notifications", "inspect and resend notifications", "monitor.notify.commands"),
    Command("alerts", "query current alerts and the alert history", "monitor.notify.commands"),
    Command("routes", "show the routing tree; test where an alert goes",
            "monitor.notify.routecommands"),
    Command("report", "write the monthly performance pack of a month (PDF, Excel or HTML)",
            "monitor.report.commands"),
)


EXAMPLE_CONFIG = "config.example.toml"  # the bundled example, in the source tree


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", metavar="PATH",
                        help="config file (default: $MONITOR_CONFIG, else ./config.toml "
                             "when it exists)")


def load_settings(args: argparse.Namespace) -> tuple[Settings, Path | None]:
    """Return the settings of the config file ``config_path`` finds, or the built-in
    defaults and None when there is none; set up logging.

    Raises ConfigError with every problem when the config is invalid.
    """
    from monitor import logs, sandbox
    from monitor.settings import config_path, load

    path = config_path(getattr(args, "config", None))
    settings = load(path)
    logs.setup(getattr(args, "log_level", None) or settings.logging.level,
               getattr(args, "log_format", None) or settings.logging.format)
    sandbox.configure(settings.templates)
    return settings, path


def require_config(args: argparse.Namespace, *, rules: bool = True) -> tuple[Settings, Path]:
    """Return the settings and the path of the config file a command that reads data runs on.

    Raises ConfigError saying what it looked for and how to point the command at a config
    when no config file was found (the built-in defaults would evaluate an empty store),
    with every problem when the config is invalid, and, when ``rules``, when its
    ``rules.paths`` find no rule file.
    """
    from monitor.rules.loader import rule_files
    from monitor.settings import CONFIG_LOOKUP

    settings, path = load_settings(args)
    if path is None:
        raise ConfigError([Problem(
            "", None, None, "",
            f"no config file: `{_command(args)}` looked for {CONFIG_LOOKUP} (in {Path.cwd()}), "
            "found none, and does not run on the built-in defaults.\n"
            f"Point it at one: {_with_config(args, EXAMPLE_CONFIG)} (the bundled example), "
            "or set MONITOR_CONFIG=PATH, or put a config.toml in this folder.")])
    paths = settings.rules.paths
    if rules and not any(p.is_file() for p in rule_files(paths)):
        relative = [p for p in paths if not Path(p).is_absolute()]
        where = f" (relative paths are read from {Path.cwd()})" if relative else ""
        raise ConfigError([Problem(
            str(path), None, None, "rules.paths",
            f"{json.dumps(paths)} finds no rule files (*.yaml){where}; set [rules] paths in "
            f"{path} to your rule files or folders, or point --config at another config: "
            f"{_with_config(args, EXAMPLE_CONFIG)}")])
    return settings, path


def require_observations(args: argparse.Namespace, store: Store, path: Path) -> None:
    """Return when ``store`` holds observations or milestones to evaluate.

    Raises ConfigError, after closing ``store``, when it holds none: evaluating it would
    show every indicator without data and every firing alert as resolved.
    """
    if store.observations.count() or store.observations.milestones():
        return
    store.close()
    poll = "run with --poll, or " if hasattr(args, "poll") else ""
    fill = shlex.join(["monitor", "poll", "--all", "--config", str(path)])
    raise ConfigError([Problem(
        str(path), None, None, "store.url",
        f"the store holds no observations, so `{_command(args)}` has nothing to evaluate. "
        f"Fill it first: {poll}`{fill}`; or point --config at the daemon's config, whose "
        "store the daemon fills.")])


def _command(args: argparse.Namespace) -> str:
    """Return the command as typed: ``monitor eval``."""
    return f"monitor {args.command}"


def _with_config(args: argparse.Namespace, config: str) -> str:
    """Return the command line the user typed with ``--config CONFIG`` after the command
    in place of any ``--config`` it had."""
    typed = list(getattr(args, "argv", None) or [args.command])
    argv: list[str] = []
    skip = False
    for arg in typed:
        if skip:
            skip = False
        elif arg in ("--config", "-c"):
            skip = True
        elif not arg.startswith(("--config=", "-c")):
            argv.append(arg)
    at = argv.index(args.command) + 1 if args.command in argv else len(argv)
    return shlex.join(["monitor", *argv[:at], "--config", config, *argv[at:]])


def cmd_run(args: argparse.Namespace) -> int:
    from monitor import logs
    from monitor.app import App
    from monitor.clock import clock_of
    from monitor.settings import CONFIG_LOOKUP

    settings, path = load_settings(args)
    if path is None:
        logs.get_logger("monitor").warning(
            "no config file; running on the built-in defaults", looked_for=CONFIG_LOOKUP,
            cwd=str(Path.cwd()))
    app = App(settings, path, clock=clock_of(args))
    app.install_signal_handlers()
    try:
        app.start()
    except (MonitorError, OSError) as exc:
        logs.get_logger("monitor").error("cannot start", error=str(exc))
        app.stop()
        return 1
    return app.run_forever()


def cmd_check_config(args: argparse.Namespace) -> int:
    from monitor.settings import CONFIG_LOOKUP, config_path, load

    path = config_path(args.config)
    try:
        settings = load(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        count = len(exc.problems)
        print(f"{count} problem{'s' if count != 1 else ''} found", file=sys.stderr)
        return 1
    shown = path or f"(no config file: looked for {CONFIG_LOOKUP}; built-in defaults)"
    print(f"{shown}: OK ({len(settings.sources)} sources)")
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


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Return the ``monitor`` parser with every command and its help, the built-in ones
    (``run``, ``check-config``, ``db``) whole, and of the subsystems' commands only
    ``command``'s module's: it is imported and registers its commands' options and
    handlers. Every other command is a placeholder that takes any arguments, which is
    enough to list it in ``monitor --help`` and to find which command runs."""
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

    wanted = {c.module for c in COMMANDS if c.name == command}
    for c in COMMANDS:
        if c.module not in wanted:
            sub.add_parser(c.name, help=c.help, add_help=False)
        elif c.name not in sub.choices:  # the module's first command: register them all
            importlib.import_module(c.module).register(sub, add_config_option)
    return parser


def main(argv: Sequence[str] | None = None, *, clock: Clock | None = None) -> int:
    """Run one command; ``clock`` (default: the wall clock) is the time it runs at."""
    # Two passes: the first finds the command (and answers --help, --version and an
    # unknown command) without importing any command's module; the second parses the
    # command's own options with its module's parser.
    found, _ = build_parser().parse_known_args(argv)
    args = build_parser(found.command).parse_args(argv)
    args.clock = clock
    args.argv = list(sys.argv[1:] if argv is None else argv)
    # Passed down: command modules never import the CLI.
    args.load_settings = load_settings
    args.require_config = require_config
    args.require_observations = require_observations
    handler: Handler = args.handler
    try:
        code = handler(args)
        sys.stdout.flush()  # a closed pipe is found here, not at the interpreter's exit
        return code
    except BrokenPipeError:
        # The reader went away (`monitor eval --format json | head`): stop quietly, as
        # a program killed by SIGPIPE does, and write nothing more to the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    except MonitorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
