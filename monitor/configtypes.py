"""Building blocks of the configuration models: strict sections, durations, secrets.

Each subsystem owns the schema of its own part of the config (``sources/config.py``,
``notify/config.py``, ``ClusterSettings`` in ``cluster.py``); ``settings.py`` composes them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, SecretStr, model_validator

from monitor import logs

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(value: Any) -> float:
    """Return seconds for ``"90s"``, ``"1h30m"``, ``"2d"``, ``"500ms"`` or a number of seconds.

    Raises ValueError with the accepted forms when the text is not a duration.
    """
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m, 1h30m, 2d")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        if text and _DURATION.sub("", text) == "":
            return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION.findall(text))
    raise ValueError(f"{value!r} is not a duration; write it like 30s, 5m, 1h30m or 2d")


def format_duration(seconds: float) -> str:
    """Return the shortest ``1h30m``-style text for ``seconds``."""
    if seconds == 0:
        return "0s"
    out = []
    remaining = seconds
    for unit in ("d", "h", "m", "s"):
        size = _UNIT_SECONDS[unit]
        count = int(remaining // size)
        if count:
            out.append(f"{count}{unit}")
            remaining -= count * size
    if remaining > 1e-9:
        out.append(f"{round(remaining * 1000)}ms")
    return "".join(out)


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""Seconds, written in the config as ``30s``, ``5m``, ``1h30m``, ``2d`` or a number."""


class Section(BaseModel):
    """A config section: unknown keys are errors, and every secret may come from a file.

    For each ``SecretStr`` field ``x`` the section also accepts ``x_file``: a path whose
    content (trailing newline stripped) becomes the secret. Secret values are registered
    with the log redactor as soon as they are read.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for key in [k for k in data if isinstance(k, str) and k.endswith("_file")]:
            stem = key.removesuffix("_file")
            field = cls.model_fields.get(stem)
            if field is None or "SecretStr" not in str(field.annotation):
                continue
            path = Path(str(data.pop(key)))
            try:
                data[stem] = path.read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as exc:
                raise ValueError(f"{key}: cannot read {path}: {exc.strerror}") from None
        return data

    @model_validator(mode="after")
    def _register_secrets(self) -> Section:
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                logs.register_secret(value.get_secret_value())
        return self
