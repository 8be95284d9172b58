"""The ``monitor`` command lists every command and loads only the one that runs.

``monitor --help`` lists each subsystem's command from the table in ``monitor/cli.py``
(``COMMANDS``); a command's module is imported, and registers its options, only when
that command runs or prints its help. Each import test runs a fresh interpreter.
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys

import pytest

from monitor.cli import COMMANDS, add_config_option, main

COMMAND_MODULES = sorted({c.module for c in COMMANDS})
HEAVY = ("monitor.settings", "monitor.sources", "monitor.store", "monitor.rules",
         "monitor.notify", "monitor.report", "monitor.http", "sqlalchemy", "pydantic")
REPORT = """
import json, sys
from monitor.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
print(json.dumps(sorted(name for name in sys.modules if name.startswith({names!r}))))
"""


def _loaded(argv: list[str], names: tuple[str, ...]) -> list[str]:
    """Return the modules, of those whose names start with one of ``names``, that a fresh
    interpreter holds after ``monitor ARGV``."""
    code = REPORT.format(argv=argv, names=names)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _registered(module: str) -> list[tuple[str, str]]:
    """Return (name, help) of each command ``module`` registers, in its order."""
    sub = argparse.ArgumentParser().add_subparsers()
    importlib.import_module(module).register(sub, add_config_option)
    return [(action.dest, str(action.help)) for action in sub._get_subactions()]


@pytest.mark.parametrize("module", COMMAND_MODULES)
def test_the_table_lists_each_command_as_its_module_registers_it(module: str) -> None:
    assert [(c.name, c.help) for c in COMMANDS if c.module == module] == _registered(module)


def test_the_top_level_help_lists_every_command_with_its_help(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    shown = " ".join(capsys.readouterr().out.split())
    for command in COMMANDS:
        assert f"{command.name} {command.help}" in shown


def test_a_command_s_help_shows_its_own_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["eval", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: monitor eval [-h] --at YYYY-MM")
    assert "--config PATH" in out


def test_an_unknown_command_is_refused_with_the_commands_there_are(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["evaluate"])
    assert exited.value.code == 2
    assert "invalid choice: 'evaluate' (choose from 'run', 'check-config', 'db', 'poll'" \
        in capsys.readouterr().err


def test_version_and_help_load_no_command_and_no_config_machinery() -> None:
    assert _loaded(["--version"], HEAVY) == []
    assert _loaded(["--help"], HEAVY) == []


def test_a_command_loads_its_own_module_and_no_other_command_s() -> None:
    loaded = _loaded(["eval", "--help"], tuple(COMMAND_MODULES))
    assert loaded == ["monitor.rules.commands"]
