"""Configuration schema of data sources (``[[sources]]`` in the config file).

Owned by the sources subsystem; ``settings.py`` composes it into the whole config.
``SourceConfig`` is a union discriminated by ``kind`` of the config models that each
kind's module owns (``CsvSource`` in ``csv.py``, …). The models are built from three
mixins, each beside the code that reads it: the schedule every source has
(:class:`~monitor.sources.base.SourceBase`), HTTP options for sources fetched over the
network (:class:`~monitor.sources.http.HttpOptions`) and the mapping of rows to indicator
series (:class:`~monitor.sources.mapping.MappingOptions`); they are importable from here
too. ``docs/sources.md`` documents every key.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from monitor.sources.base import (
    DEFAULT_INTERVAL,
    FileOrUrl,
    IndicatorId,
    LabelName,
    SourceBase,
    SourceName,
    cron_trigger,
)
from monitor.sources.csv import CsvSource
from monitor.sources.http import MIB, Auth, BasicAuth, BearerAuth, HeaderAuth, HttpOptions
from monitor.sources.json import JsonSource
from monitor.sources.mapping import MappingOptions
from monitor.sources.milestones import MilestonesSource
from monitor.sources.police_uk import PoliceUkSource
from monitor.sources.prometheus import PrometheusSource
from monitor.sources.sql import SqlSource

__all__ = [
    "DEFAULT_INTERVAL", "KINDS", "MIB", "Auth", "BasicAuth", "BearerAuth", "CsvSource",
    "FileOrUrl", "HeaderAuth", "HttpOptions", "IndicatorId", "JsonSource", "LabelName",
    "MappingOptions", "MilestonesSource", "PoliceUkSource", "PrometheusSource", "SourceBase",
    "SourceConfig", "SourceName", "SqlSource", "check_unique_names", "cron_trigger",
]

SourceConfig = Annotated[
    CsvSource | JsonSource | SqlSource | PrometheusSource | PoliceUkSource | MilestonesSource,
    Field(discriminator="kind"),
]
"""One ``[[sources]]`` table, validated by the model its ``kind`` names."""

KINDS: tuple[str, ...] = ("csv", "json", "sql", "prometheus", "police_uk", "milestones")


def check_unique_names(configs: list[Any]) -> list[str]:
    """Return one message per source name used more than once (empty when all are unique)."""
    seen: dict[str, int] = {}
    for config in configs:
        seen[config.name] = seen.get(config.name, 0) + 1
    return [f"source name {name!r} is used by {count} sources; names must be unique"
            for name, count in sorted(seen.items()) if count > 1]
