"""Config loading: every problem located, environment overrides, secrets kept secret."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from monitor import settings
from monitor.configtypes import parse_duration
from monitor.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]

THREE_MISTAKES = """\
[server]
listen = "127.0.0.1:9108"
colour = "blue"

[store]
busy_timeout = "soon"

[[sources]]
name = "first"
kind = "csv"
path = "a.csv"
indicator = "burglary"

[[sources]]
name = "second"
kind = "csv"
indicator = "robbery"
url = 42
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_it_reports_three_mistakes_with_their_lines(tmp_path: Path) -> None:
    path = write(tmp_path, THREE_MISTAKES)
    with pytest.raises(ConfigError) as caught:
        settings.load(path, environ={})
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:3: server.colour: unknown key; check its spelling against config.example.toml",
        f"{path}:6: store.busy_timeout: 'soon' is not a duration; write it like 30s, 5m, "
        "1h30m or 2d",
        f"{path}:18: sources[1].url: Input should be a valid string",
    ]


def test_check_config_prints_every_error_and_exits_1(tmp_path: Path) -> None:
    path = write(tmp_path, THREE_MISTAKES)
    result = subprocess.run([sys.executable, "-m", "monitor", "check-config", "--config",
                             str(path)], capture_output=True, text=True, cwd=REPO, check=False)
    assert result.returncode == 1
    assert f"{path}:3: server.colour" in result.stderr
    assert f"{path}:6: store.busy_timeout" in result.stderr
    assert f"{path}:18: sources[1].url" in result.stderr
    assert "3 problems found" in result.stderr


def test_check_config_accepts_the_example() -> None:
    result = subprocess.run([sys.executable, "-m", "monitor", "check-config", "--config",
                             "config.example.toml"], capture_output=True, text=True, cwd=REPO,
                            check=False)
    assert result.returncode == 0, result.stderr


def test_it_reports_invalid_toml_with_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\nlisten = "127.0.0.1:9108\n')
    with pytest.raises(ConfigError, match=rf"{path}:2:\d+: not valid TOML"):
        settings.load(path, environ={})


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\nlisten = "127.0.0.1:9108"\n')
    loaded = settings.load(path, environ={"MONITOR_SERVER__LISTEN": "127.0.0.1:9999",
                                          "MONITOR_RULES__EVALUATION_INTERVAL": "5m"})
    assert loaded.server.listen == "127.0.0.1:9999"
    assert loaded.rules.evaluation_interval == 300.0


def test_it_names_the_environment_variable_that_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"environment MONITOR_STORE__BUSY_TIMEOUT: "
                                          r"store.busy_timeout: .never. is not a duration"):
        settings.load(None, environ={"MONITOR_STORE__BUSY_TIMEOUT": "never"})


def test_it_reads_a_secret_from_a_file_and_never_prints_it(tmp_path: Path) -> None:
    secret_file = tmp_path / "token"
    secret_file.write_text("s3cr3t-token-value\n")
    path = write(tmp_path, f'[server]\napi_token_file = "{secret_file}"\n')
    loaded = settings.load(path, environ={})
    assert loaded.server.api_token is not None
    assert loaded.server.api_token.get_secret_value() == "s3cr3t-token-value"
    assert "s3cr3t" not in repr(loaded)
    assert "s3cr3t" not in str(loaded.model_dump())


def test_it_says_when_a_secret_file_is_missing(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\napi_token_file = "/nonexistent/token"\n')
    with pytest.raises(ConfigError, match=r":2: server.api_token_file: cannot read "
                                          r"/nonexistent/token: No such file"):
        settings.load(path, environ={})


@pytest.mark.parametrize(("text", "seconds"), [
    pytest.param("30s", 30.0, id="seconds"),
    pytest.param("5m", 300.0, id="minutes"),
    pytest.param("1h30m", 5400.0, id="compound"),
    pytest.param("2d", 172800.0, id="days"),
    pytest.param("500ms", 0.5, id="milliseconds"),
    pytest.param(12, 12.0, id="number"),
])
def test_it_parses_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5 minutes", "-3", "1y", "true"])
def test_it_rejects_what_is_not_a_duration(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)
