"""The daemon's settings: ``config.example.toml`` documents every one.

Values come from a TOML file (:func:`config_path`: ``--config``, else ``MONITOR_CONFIG``,
else ``./config.toml`` when it exists) and are overridden by ``MONITOR_…`` environment
variables, nested with ``__`` (``MONITOR_SERVER__LISTEN``).
:func:`load` reports every problem at once, each with ``file:line`` and the key path.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from monitor.cluster import ClusterSettings
from monitor.configtypes import Duration, Section
from monitor.errors import ConfigError, Problem
from monitor.notify.config import NotifyConfig
from monitor.sandbox import TemplateLimits
from monitor.sources.config import SourceConfig

if TYPE_CHECKING:
    from monitor.schedule import Schedule

ENV_PREFIX = "MONITOR_"
CONFIG_ENV = "MONITOR_CONFIG"
DEFAULT_CONFIG = "config.toml"  # in the current folder
CONFIG_LOOKUP = f"--config, then ${CONFIG_ENV}, then ./{DEFAULT_CONFIG}"  # config_path's order


class ServerSettings(Section):
    listen: str = "127.0.0.1:9108"
    api_token: SecretStr | None = None
    protect_reads: bool = False
    external_url: str = ""
    max_exported_series: int = Field(default=200_000, ge=0)

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        _host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{value!r} is not host:port (for example 127.0.0.1:9108)")
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]") or "127.0.0.1"

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class StoreSettings(Section):
    url: SecretStr = SecretStr("sqlite:///var/monitor.db")
    busy_timeout: Duration = 5.0
    pool_size: int = Field(default=5, ge=1, le=100)

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: SecretStr) -> SecretStr:
        url = value.get_secret_value()
        if not re.match(r"^(sqlite|postgresql)(\+\w+)?://", url):
            raise ValueError("store.url must start with sqlite:// or postgresql://")
        return value


class RulesSettings(Section):
    paths: list[str] = Field(default_factory=lambda: ["rules"])
    evaluation_interval: Duration = 60.0
    watch: bool = True
    watch_interval: Duration = 5.0
    as_of: str | None = None
    history: int = Field(default=60, ge=12, le=600)

    @field_validator("as_of")
    @classmethod
    def _month(cls, value: str | None) -> str | None:
        if value:
            from monitor.model import Frequency

            Frequency.MONTHLY.parse(value)
        return value or None


class EngineSettings(Section):
    """``[engine]``: where rule evaluation runs (docs/operations.md, "The scale path")."""

    scheduler: str = "in-process"  # in-process, local, or tcp://host:8786 (a Dask scheduler)
    partitions: int = Field(default=1, ge=1, le=4096)
    local_workers: int = Field(default=2, ge=1, le=256)
    partition_by: list[str] = Field(default_factory=list)

    @field_validator("scheduler")
    @classmethod
    def _scheduler(cls, value: str) -> str:
        if value not in ("in-process", "local") and \
                not re.match(r"^(tcp|tls|inproc|ucx)://[^\s]+$", value):
            raise ValueError(f"{value!r} is not in-process, local or a Dask scheduler's "
                             "address such as tcp://scheduler:8786")
        return value

    @property
    def partitioned(self) -> bool:
        """True when cycles go through the distributed engine."""
        return self.partitions > 1 or self.scheduler != "in-process"


class LogSettings(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["logfmt", "json"] = "logfmt"


class DaemonSettings(Section):
    shutdown_timeout: Duration = 10.0
    instance: str = ""


ReportFormat = Literal["pdf", "xlsx", "html"]


def _pdf_only() -> list[ReportFormat]:
    return ["pdf"]


class ReportSettings(Section):
    """A scheduled performance pack (``[[reports]]``): when, which formats, where to."""

    name: str = Field(default="monthly", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    title: str = "Monthly performance report"
    organisation: str = ""
    # A 5-field crontab in ``timezone``; with ``working_day`` only that working day of the
    # month (Monday to Friday, ``holidays`` left out) counts: "0 9 * * *" + 5 = the 5th
    # working day of every month at 09:00.
    schedule: str = "0 9 * * *"
    timezone: str = "UTC"
    working_day: int | None = None
    holidays: list[date] = Field(default_factory=list)
    # An occurrence the daemon was down for is still delivered up to this long after it.
    catch_up: Duration = 86400.0
    formats: list[ReportFormat] = Field(default_factory=_pdf_only, min_length=1)
    # Where every generated pack is written (and kept: emails attach it from there).
    directory: str = "var/reports"
    # Receivers (``[[notify.receivers]]``): email integrations attach the files, the others
    # carry a link to the pack.
    receivers: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _schedule(self) -> ReportSettings:
        from monitor.schedule import ScheduleError

        try:
            self.calendar()
        except ScheduleError as exc:
            raise ValueError(f"report {self.name!r}: {exc}") from None
        return self

    def calendar(self) -> Schedule:
        """Return the schedule. Raises ScheduleError when it cannot be used."""
        from monitor.schedule import Schedule

        return Schedule(self.schedule, self.timezone, self.working_day,
                        tuple(self.holidays))


class Settings(BaseSettings):
    """The whole configuration."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True,
    )

    server: ServerSettings = Field(default_factory=ServerSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    rules: RulesSettings = Field(default_factory=RulesSettings)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    logging: LogSettings = Field(default_factory=LogSettings)
    daemon: DaemonSettings = Field(default_factory=DaemonSettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    sources: list[SourceConfig] = Field(default_factory=list)
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    templates: TemplateLimits = Field(default_factory=TemplateLimits)
    reports: list[ReportSettings] = Field(default_factory=list)

    @model_validator(mode="after")
    def _report_receivers(self) -> Settings:
        known = {r.name for r in self.notify.receivers}
        problems = [f"reports[{i}].receivers: unknown receiver {name!r}; define it in "
                    f"[[notify.receivers]] (known: {', '.join(sorted(known)) or 'none'})"
                    for i, report in enumerate(self.reports) for name in report.receivers
                    if name not in known]
        names = [r.name for r in self.reports]
        problems += [f"reports: the name {name!r} is used twice"
                     for name in sorted({n for n in names if names.count(n) > 1})]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the file; the file arrives as init kwargs.
        return (env_settings, init_settings)


def config_path(cli_value: str | None, environ: Mapping[str, str] | None = None) -> Path | None:
    """Return the config file every command reads: ``--config``, else ``$MONITOR_CONFIG``,
    else ``./config.toml`` when it exists; None when there is none (built-in defaults).

    A path named by ``--config`` or ``MONITOR_CONFIG`` is returned even when it does not
    exist, so that :func:`load` reports it.
    """
    env = os.environ if environ is None else environ
    value = cli_value or env.get(CONFIG_ENV)
    if value:
        return Path(value)
    default = Path(DEFAULT_CONFIG)
    return default if default.is_file() else None


def load(path: Path | None, environ: Mapping[str, str] | None = None) -> Settings:
    """Return the validated settings.

    Raises ConfigError carrying every problem, each located at ``file:line`` with its key
    path, when the file cannot be read, is not TOML, or does not validate.
    """
    text = ""
    data: dict[str, Any] = {}
    shown = str(path) if path else "(defaults)"
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError([Problem(shown, None, None, "",
                                       f"cannot read the config file: {exc.strerror}")]) from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            at = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
            line, column = (int(at.group(1)), int(at.group(2))) if at else (None, None)
            message = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", str(exc))
            raise ConfigError([Problem(shown, line, column, "", f"not valid TOML: {message}")]) \
                from None
    env = os.environ if environ is None else environ
    saved = _swap_environ(env)
    try:
        return Settings(**data)
    except ValidationError as exc:
        lines = toml_key_lines(text)
        problems = [_problem(shown, err, data, lines) for err in exc.errors()]
        raise ConfigError(problems) from None
    except SettingsError as exc:
        raise ConfigError([_environment_problem(exc)]) from None
    finally:
        _swap_environ(saved)


def _environment_problem(exc: SettingsError) -> Problem:
    """Return the problem of a MONITOR_* variable that pydantic-settings cannot decode
    (a list or table that is not JSON); the value itself is not repeated."""
    found = re.search(r'field "([^"]+)"', str(exc))
    field = found.group(1) if found else ""
    name = ENV_PREFIX + field.upper() if field else "MONITOR_…"
    cause = f" ({exc.__cause__})" if exc.__cause__ is not None else ""
    return Problem(f"environment {name}", None, None, field,
                   f"not valid JSON{cause}; lists and tables given in the environment are "
                   "written as JSON, e.g. '[\"a\", \"b\"]'")


def _swap_environ(env: Mapping[str, str]) -> dict[str, str]:
    """Make ``env`` the process environment's MONITOR_* part; return the previous part."""
    previous = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIX)}
    if env is os.environ:
        return previous
    for key in previous:
        del os.environ[key]
    os.environ.update({k: v for k, v in env.items() if k.startswith(ENV_PREFIX)})
    return previous


def _problem(shown: str, err: Any, data: dict[str, Any], lines: dict[tuple[Any, ...], int]
             ) -> Problem:
    path = _data_path(err["loc"], data)
    line = _nearest_line(path, lines)
    where = format_key_path(path)
    message = str(err["msg"])
    if err["type"] == "extra_forbidden":
        message = "unknown key; check its spelling against config.example.toml"
    elif err["type"] == "missing":
        message = "required key is missing"
    elif message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    secret_file = re.match(r"(\w+_file): (.*)", message)
    if secret_file and (*path, secret_file.group(1)) in lines:
        path = (*path, secret_file.group(1))
        line = lines[path]
        message = secret_file.group(2)
        where = format_key_path(path)
    if line is None and path and not _in_data(path, data):
        env_name = ENV_PREFIX + "__".join(str(p).upper() for p in path)
        if env_name in os.environ:
            return Problem(f"environment {env_name}", None, None, where, message)
    return Problem(shown, line, None, where, message)


def _data_path(loc: tuple[Any, ...], data: Any) -> tuple[Any, ...]:
    """Drop the pieces of a pydantic location that are not keys in the file (union tags)."""
    out: list[Any] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and isinstance(part, str) and part not in node \
                and node.get("kind") == part:
            continue  # discriminator tag
        if isinstance(part, str) and part.startswith(("function-", "json-or-python")):
            continue
        out.append(part)
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            node = None
    return tuple(out)


def _in_data(path: tuple[Any, ...], data: Any) -> bool:
    node = data
    for part in path:
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if in_dict or in_list:
            node = node[part]
        else:
            return False
    return True


def format_key_path(path: tuple[Any, ...]) -> str:
    """``('sources', 1, 'url')`` -> ``sources[1].url``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _nearest_line(path: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> int | None:
    for end in range(len(path), 0, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*(\]\]?)\s*(#.*)?$")
_BARE = r"""(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""
_KEY = re.compile(rf"^\s*({_BARE}(?:\s*\.\s*{_BARE})*)\s*=")


def _split_key(text: str) -> list[str]:
    parts = re.findall(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""", text)
    return [p[1:-1] if p[:1] in "\"'" else p for p in parts]


def toml_key_lines(text: str) -> dict[tuple[Any, ...], int]:
    """Map each key path in a TOML document to the line that defines it.

    Array-of-tables headers (``[[sources]]``) add their index to the path, so the second
    ``[[sources]]`` table's ``url`` is ``("sources", 1, "url")``. Lines inside multi-line
    values are skipped.
    """
    lines: dict[tuple[Any, ...], int] = {}
    counters: dict[tuple[Any, ...], int] = {}
    current: tuple[Any, ...] = ()
    depth = 0
    in_multiline: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        if in_multiline:
            if raw.count(in_multiline) % 2 == 1:
                in_multiline = None
            continue
        if depth > 0:
            depth += _bracket_balance(raw)
            continue
        header = _HEADER.match(raw)
        if header and not _KEY.match(raw):
            names = _split_key(header.group(2))
            resolved: list[Any] = []
            for name in names[:-1]:
                resolved.append(name)
                if tuple(resolved) in counters:
                    resolved.append(counters[tuple(resolved)])
            resolved.append(names[-1])
            if header.group(1) == "[[":
                array = tuple(resolved)
                counters[array] = counters.get(array, -1) + 1
                resolved.append(counters[array])
            current = tuple(resolved)
            lines.setdefault(current, number)
            if header.group(1) == "[[":
                lines.setdefault(current[:-1], number)
            continue
        key = _KEY.match(raw)
        if key:
            full = current + tuple(_split_key(key.group(1)))
            lines.setdefault(full, number)
            rest = raw[key.end():]
            for quote in ('"""', "'''"):
                if rest.count(quote) % 2 == 1:
                    in_multiline = quote
            depth = max(0, _bracket_balance(rest))
    return lines


def _bracket_balance(text: str) -> int:
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'[^\']*\'', "", text).split("#", 1)[0]
    return text.count("[") + text.count("{") - text.count("]") - text.count("}")
