"""Configuration schema of data sources (``[[sources]]`` in the config file).

Owned by the sources subsystem; ``settings.py`` composes it into the whole config.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from monitor.configtypes import Duration, Section

SourceName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,100}$")]


class SourceBase(Section):
    """Settings every source kind has: a name and a schedule."""

    name: SourceName
    kind: str
    interval: Duration | None = None
    cron: str | None = None
    jitter: Duration = 0.0
    enabled: bool = True


class FileCsvSource(SourceBase):
    kind: Literal["csv"]
    path: str | None = None
    url: str | None = None


SourceConfig = Annotated[FileCsvSource, Field(discriminator="kind")]
