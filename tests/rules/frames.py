"""The snapshot's frames as comparable text, for tests that compare a partitioned or
distributed cycle's snapshot with one process's."""

from __future__ import annotations

from typing import Any


def frame_lines(frames: dict[str, Any]) -> dict[str, list[str]]:
    """Each indicator's snapshot frame as one line per series, in the series' order."""
    out = {}
    for name, f in frames.items():
        columns = [f.period, f.value, f.target, f.status, f.provisional, f.spc,
                   *[f.changes[k] for k in sorted(f.changes)]]
        out[name] = sorted(repr((sorted(lab.items()), *[c[i] for c in columns]))
                           for i, lab in enumerate(f.labels))
        out[name].append(repr((f.info, sorted(f.changes))))
    return out
