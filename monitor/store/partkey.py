"""The partition key the store keeps each series' position under.

A distributed evaluation cuts the series by the values of some key labels (the rules
choose them; the store knows no rules). So that a partition reads only its own series,
every series row holds its *position* under the current key — a 32-bit number, indexed
with its indicator — and partition ``i`` of ``n`` is the range of positions
:func:`span` gives: a read of one partition is an index range, not a scan.

The key is the label names and the *pins* (a label value whose series all go to one
position: the members of a peer group, ranked together). It is stored once, in
``monitor_meta`` with a generation that moves on every change:

1. a series created at ingest gets its position under the stored key, read (on
   PostgreSQL: share-locked) in the ingest's transaction;
2. a new key (the rules' ``on:`` labels changed on reload) recomputes every series'
   position in one transaction holding the key's row (:func:`set_key`): O(series),
   once per key change; ingests wait for it, and it waits for them;
3. a reader whose key is not the stored one, or whose read the generation moved under,
   reads the way it did before positions were stored (every series' key values,
   filtered here): slower, never different.

Nothing here opens a connection: the functions take a DB-API cursor.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SEP = "\x1f"  # between key values: no label value holds a unit separator
META_KEY = "partition_key"
POSITIONS = 1 << 32


@dataclass(frozen=True)
class PartitionKey:
    """The labels a series' position is a function of, and the pinned values."""

    names: tuple[str, ...]
    pins: Mapping[str, int] = field(default_factory=dict)  # label value -> its position

    def position(self, values: Sequence[str]) -> int:
        """Return the position (0 to 2**32 - 1) of a series whose key labels have
        ``values`` (in the key's order; an absent label is the empty string)."""
        for value in values:
            pinned = self.pins.get(value)
            if pinned is not None:
                return pinned
        return zlib.crc32(SEP.join(values).encode())

    def position_of(self, labels: Mapping[str, str]) -> int:
        return self.position([labels.get(name, "") for name in self.names])

    def spec(self) -> str:
        """Return the key as stored (the generation apart)."""
        return json.dumps({"names": list(self.names), "pins": dict(sorted(self.pins.items()))},
                          ensure_ascii=False)


def span(index: int, partitions: int) -> tuple[int, int]:
    """Return the positions ``[lo, hi)`` of partition ``index`` of ``partitions``: those
    whose ``position * partitions >> 32`` is ``index``."""
    return -(-(index * POSITIONS) // partitions), -(-((index + 1) * POSITIONS) // partitions)


def partition_of(position: int, partitions: int) -> int:
    """Return the partition of ``partitions`` that holds ``position``."""
    return position * partitions >> 32


def parse(value: str | None) -> tuple[str, int]:
    """Return (the key as stored, its generation) of a ``monitor_meta`` value; ("", n)
    when no key is stored."""
    if not value:
        return "", 0
    stored = json.loads(value)
    return stored.get("spec", ""), int(stored.get("generation", 0))


def stored_key(cur: Any, pg: bool, *, lock: str = "") -> tuple[str, int]:
    """Return (spec, generation) of the stored key; ``lock`` ("FOR SHARE", "FOR UPDATE")
    locks its row on PostgreSQL (SQLite's writers are serialised anyway)."""
    if pg:
        cur.execute(f"SELECT value FROM monitor_meta WHERE key = %s {lock}",  # noqa: S608
                    (META_KEY,))
    else:
        cur.execute("SELECT value FROM monitor_meta WHERE key = ?", (META_KEY,))
    row = cur.fetchone()
    return parse(row[0] if row else None)


def from_spec(spec: str) -> PartitionKey:
    """Return the key ``spec`` (as :meth:`PartitionKey.spec` made it) describes."""
    stored = json.loads(spec)
    return PartitionKey(tuple(stored["names"]), {k: int(v) for k, v in stored["pins"].items()})
