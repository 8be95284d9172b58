"""Write data/london-total.csv: London-wide monthly counts, the sum over every area.

The borough files hold no London row, and the rules engine's ``total`` cannot add these
areas up yet (see README.md, "London as a whole"), so London comes from this file. It is
built with the product's own parser from the other ``[[sources]]`` of config.toml, so
London is exactly the sum of the series those sources store: for each indicator and
month, the sum over every area with a row for it (a file leaves out a category's row
for an area with no such crime in any of its months; that area adds nothing).

Run from the repository root::

    .venv/bin/python examples/london-boroughs/london_totals.py          # rewrite the file
    .venv/bin/python examples/london-boroughs/london_totals.py --check  # exit 1 if stale
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from monitor.model import Frequency, Observation
from monitor.settings import load
from monitor.sources.config import CsvSource
from monitor.sources.csv import parse_csv

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CONFIG = HERE / "config.toml"
TOTAL_SOURCE = "london-total"
AREA = "London"


def area_sources(config: Path = CONFIG) -> list[CsvSource]:
    """Return the config's CSV sources of per-area data (every one but the London total)."""
    settings = load(config)
    return [s for s in settings.sources
            if isinstance(s, CsvSource) and s.name != TOTAL_SOURCE and s.enabled]


def read_observations(source: CsvSource, root: Path = REPO) -> list[Observation]:
    """Return what ``source`` stores from its file (``path`` is relative to ``root``).

    Raises ValueError when the file has rejected rows: a total over a partial read would
    be silently wrong.
    """
    assert source.path is not None, f"source {source.name!r} reads a url, not a path"
    path = root / source.path
    parsed = parse_csv(source, path.read_bytes(), origin=str(path))
    if parsed.problems:
        first = parsed.problems[0]
        raise ValueError(f"{path}: {len(parsed.problems)} rejected cells, first: {first}")
    return list(parsed.observations)


def totals(observations: Iterable[Observation]) -> dict[str, dict[int, float]]:
    """Return indicator → period → the sum of the values of every series."""
    out: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    for obs in observations:
        out[obs.indicator][obs.period] += obs.value
    return out


def render(sums: dict[str, dict[int, float]]) -> str:
    """Return the wide CSV text: ``Area, Indicator, YYYYMM …``, one row per indicator.

    Each indicator's row covers the months from its first to its last; a month inside
    that span with no data stays empty (none does in the shipped files).
    """
    periods = sorted({p for by_period in sums.values() for p in by_period})
    columns = [Frequency.MONTHLY.label(p).replace("-", "") for p in periods]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["Area", "Indicator", *columns])
    for indicator in sorted(sums):
        by_period = sums[indicator]
        writer.writerow([AREA, indicator, *(_cell(by_period.get(p)) for p in periods)])
    return buffer.getvalue()


def _cell(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else repr(value)


def build(config: Path = CONFIG, root: Path = REPO) -> str:
    """Return the text of data/london-total.csv computed from the area sources."""
    observations: list[Observation] = []
    for source in area_sources(config):
        observations.extend(read_observations(source, root))
    return render(totals(observations))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when the file differs from what would be written")
    args = parser.parse_args(argv)
    target = HERE / "data" / "london-total.csv"
    text = build()
    if args.check:
        current = target.read_text(encoding="utf-8") if target.exists() else ""
        if current != text:
            print(f"{target} is out of date; run {Path(__file__).name} to rewrite it",
                  file=sys.stderr)
            return 1
        print(f"{target} is up to date")
        return 0
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
