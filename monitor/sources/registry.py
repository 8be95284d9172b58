"""Source kinds by name: ``kind = "csv"`` in the config selects :class:`CsvKind`, and so on.

Adding a kind is one module with a :class:`~monitor.sources.base.Source` subclass and its
config model, that model added to the ``SourceConfig`` union in ``config.py``, and one
line here; the contract tests in ``tests/sources/test_sources_contract.py`` then cover it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from monitor.sources.base import Source, SourceDeps
from monitor.sources.config import KINDS as CONFIG_KINDS
from monitor.sources.config import SourceBase
from monitor.sources.csv import CsvKind
from monitor.sources.json import JsonKind
from monitor.sources.milestones import MilestonesKind
from monitor.sources.police_uk import PoliceUkKind
from monitor.sources.prometheus import PrometheusKind
from monitor.sources.sql import SqlKind

KINDS: Mapping[str, type[Source[Any]]] = {
    cls.kind: cls
    for cls in (CsvKind, JsonKind, SqlKind, PrometheusKind, PoliceUkKind, MilestonesKind)
}
assert tuple(KINDS) == CONFIG_KINDS, "config.KINDS and the registry must list the same kinds"


def build(config: SourceBase, deps: SourceDeps | None = None,
          kinds: Mapping[str, type[Source[Any]]] = KINDS) -> Source[Any]:
    """Return the source object for ``config``.

    Raises KeyError naming the known kinds when ``config.kind`` has no implementation.
    """
    try:
        cls = kinds[config.kind]
    except KeyError:
        raise KeyError(f"no source kind {config.kind!r}; known kinds: "
                       f"{', '.join(sorted(kinds))}") from None
    return cls(config, deps)
