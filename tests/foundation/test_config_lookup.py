"""Every command finds its config one way: ``--config``, else ``$MONITOR_CONFIG``, else
``./config.toml``; commands that evaluate or read data refuse the built-in defaults."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from monitor import settings
from monitor.cli import main

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "mps-2008-09" / "data"


@pytest.fixture
def bare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A current folder without a config file, and no MONITOR_* variable set."""
    for name in [n for n in os.environ if n.startswith("MONITOR_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_config(folder: Path, *, rules: str = str(REPO / "rules")) -> Path:
    path = folder / "config.toml"
    path.write_text(f"""
[store]
url = "sqlite:///{folder / 'monitor.db'}"
[rules]
paths = ["{rules}"]
[[sources]]
name = "mps"
kind = "csv"
path = "{EXAMPLE / 'indicators.csv'}"
indicator_column = "indicator"
labels = {{force = "force"}}
denominator_column = "denominator"
provisional_column = "provisional"
[[sources]]
name = "ct_plan"
kind = "milestones"
path = "{EXAMPLE / 'ct-milestones.yaml'}"
""")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, "\n".join(line for line in out.err.splitlines()
                                    if not line.startswith("ts="))


def test_it_looks_for_the_flag_then_the_variable_then_config_toml_here(bare: Path) -> None:
    assert settings.config_path(None) is None
    (bare / "config.toml").write_text("")
    assert settings.config_path(None) == Path("config.toml")
    assert settings.config_path(None, {"MONITOR_CONFIG": "/etc/m.toml"}) == Path("/etc/m.toml")
    assert settings.config_path("x.toml", {"MONITOR_CONFIG": "/etc/m.toml"}) == Path("x.toml")


def test_eval_without_a_config_file_says_where_it_looked_and_how_to_name_one(
        bare: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "eval", "--at", "2008-07")
    assert (code, out) == (1, "")
    assert err == (
        f"no config file: `monitor eval` looked for --config, then $MONITOR_CONFIG, then "
        f"./config.toml (in {bare}), found none, and does not run on the built-in defaults.\n"
        "Point it at one: monitor eval --config config.example.toml --at 2008-07 (the bundled "
        "example), or set MONITOR_CONFIG=PATH, or put a config.toml in this folder.")


@pytest.mark.parametrize("argv", [
    pytest.param(["backtest", "--from", "2008-04", "--to", "2008-07"], id="backtest"),
    pytest.param(["diff"], id="diff"),
    pytest.param(["poll", "--all"], id="poll"),
    pytest.param(["ingest", "--source", "mps", "data.csv"], id="ingest"),
    pytest.param(["sources"], id="sources"),
])
def test_commands_that_read_data_refuse_the_built_in_defaults(
        bare: Path, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, out, err = run(capsys, *argv)
    assert (code, out) == (1, "")
    assert err.startswith(f"no config file: `monitor {argv[0]}` looked for --config, then "
                          f"$MONITOR_CONFIG, then ./config.toml (in {bare})")
    assert f"monitor {argv[0]} --config config.example.toml" in err
    assert not (bare / "var").exists(), "it opened the default store"


def test_it_reads_config_toml_in_the_current_folder(
        bare: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_config(bare)
    code, out, err = run(capsys, "eval", "--at", "2008-07")
    assert (code, out) == (1, "")
    assert err == (
        "config.toml: store.url: the store holds no observations, so `monitor eval` has "
        "nothing to evaluate. Fill it first: run with --poll, or "
        "`monitor poll --all --config config.toml`; or point --config at the daemon's "
        "config, whose store the daemon fills.")
    code, out, _ = run(capsys, "eval", "--at", "2008-07", "--poll")
    assert code == 0
    assert "Alerts as of 2008-07" in out
    code, out, _ = run(capsys, "eval", "--at", "2008-07")
    assert code == 0 and "Alerts as of 2008-07" in out


def test_it_reads_the_config_monitor_config_names(
        bare: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = bare / "etc"
    elsewhere.mkdir()
    path = write_config(elsewhere)
    monkeypatch.setenv("MONITOR_CONFIG", str(path))
    code, out, _ = run(capsys, "poll", "mps")
    assert code == 0 and out.startswith("mps: ")
    code, out, _ = run(capsys, "diff")
    assert code == 0


def test_it_refuses_rules_paths_that_find_no_rule_file(
        bare: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (bare / "empty").mkdir()
    write_config(bare, rules="empty")
    code, out, err = run(capsys, "backtest", "--from", "2008-04", "--to", "2008-07")
    assert (code, out) == (1, "")
    assert err == (
        f'config.toml: rules.paths: ["empty"] finds no rule files (*.yaml) (relative paths '
        f"are read from {bare}); set [rules] paths in config.toml to your rule files or "
        "folders, or point --config at another config: monitor backtest --config "
        "config.example.toml --from 2008-04 --to 2008-07")


def test_the_suggested_command_replaces_the_config_it_was_given(
        bare: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (bare / "empty").mkdir()
    (bare / "etc").mkdir()
    config = write_config(bare / "etc", rules=str(bare / "empty"))
    code, _, err = run(capsys, "eval", "-c", str(config), "--at", "2008-07")
    assert code == 1
    assert err.endswith("point --config at another config: monitor eval --config "
                        "config.example.toml --at 2008-07")


def test_diff_on_an_empty_store_says_to_poll_first(
        bare: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (bare / "etc").mkdir()
    config = write_config(bare / "etc")
    code, _, err = run(capsys, "diff", "--config", str(config))
    assert code == 1
    assert err.startswith(f"{config}: store.url: the store holds no observations, so "
                          "`monitor diff` has nothing to evaluate. Fill it first: "
                          f"`monitor poll --all --config {config}`; or point")


def test_run_without_a_config_file_warns_and_runs_on_the_defaults(
        bare: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    started = []

    class App:
        def __init__(self, settings: object, path: Path | None, clock: object = None) -> None:
            started.append(path)

        def install_signal_handlers(self) -> None:
            pass

        def start(self) -> None:
            pass

        def run_forever(self) -> int:
            return 0

    monkeypatch.setattr("monitor.app.App", App)
    assert main(["run"]) == 0
    assert started == [None]
    warning = [line for line in capsys.readouterr().err.splitlines() if "level=warning" in line]
    assert len(warning) == 1
    assert ('msg="no config file; running on the built-in defaults" looked_for="--config, '
            'then $MONITOR_CONFIG, then ./config.toml"') in warning[0]


def test_check_config_says_it_found_no_config_file(
        bare: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config"]) == 0
    assert capsys.readouterr().out == (
        "(no config file: looked for --config, then $MONITOR_CONFIG, then ./config.toml; "
        "built-in defaults): OK (0 sources)\n")
    write_config(bare)
    assert main(["check-config"]) == 0
    assert capsys.readouterr().out == "config.toml: OK (2 sources)\n"
