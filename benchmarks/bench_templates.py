"""How long and how much memory hostile templates take to be refused, with the defaults.

Run from the repository root: ``python benchmarks/bench_templates.py``. Each template
renders as a rule annotation in a fresh process (so one's memory does not hide
another's) under the default ``[templates]`` budget. Prints one line per template: the
limit that refused it, the CPU time of the render, and the memory it added — the peak
of Python allocations (tracemalloc, its own run) and the growth of the process's peak
resident set. Deterministic apart from the times; the time-bound template takes about
the ``timeout`` of wall-clock time, however fast the machine.
"""

from __future__ import annotations

import contextlib
import json
import re
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CASES = {
    "nested loops over range(99999)":
        "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
    "range(10**8)|list": "{{ range(10**8)|list }}",
    "'a'|center(10**9)": "{{ 'a'|center(10**9) }}",
    "macro calling itself": "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "'a' * 10**9": "{{ 'a' * 10**9 }}",
    "'{:>1000000000}'.format(1)": "{{ '{:>1000000000}'.format(1) }}",
    "1,000 x 900 kB |join": "{{ (['x' * 900000] * 1000)|join }}",
    "doubling ~ in a namespace": "{% set ns = namespace(s='ab') %}{% for i in range(40) %}"
                                 "{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
    "shared lists compared": "{% set ns = namespace(x=[1], y=[1]) %}{% for i in range(60) %}"
                             "{% set ns.x = [ns.x, ns.x] %}{% set ns.y = [ns.y, ns.y] %}"
                             "{% endfor %}{{ ns.x == ns.y }}",
    "1 MB string scanned 99,999 times (time-bound)":
        "{% set s = 'a' * 999999 %}{% for i in range(99999) %}{{ s.count('b') }}{% endfor %}",
}


def measure(template: str) -> dict[str, object]:
    """Render ``template`` twice in this process: timed, then under tracemalloc."""
    from monitor.rules.templating import make_environment

    context = {"labels": {"alertname": "X"}, "value": 1.0, "explanation": "e"}
    compiled = make_environment().from_string(template)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        compiled.render(**context)
        outcome = "rendered"
    except Exception as exc:  # the point: what each one raises
        outcome = str(exc)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    rss = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    tracemalloc.start()
    with contextlib.suppress(Exception):  # what it raises was recorded above
        compiled.render(**context)
    peak = tracemalloc.get_traced_memory()[1] / 1024 / 1024
    tracemalloc.stop()
    return {"outcome": outcome, "cpu": cpu, "wall": wall, "rss": rss, "peak": peak}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        print(json.dumps(measure(CASES[sys.argv[2]])))
        return
    print(f"{'template':<46} {'refused by':<26} {'CPU s':>6} {'wall s':>6} "
          f"{'alloc MiB':>9} {'RSS MiB':>8}")
    for name in CASES:
        done = subprocess.run([sys.executable, __file__, "--one", name], capture_output=True,
                              text=True, check=True)
        row = json.loads(done.stdout)
        outcome = str(row["outcome"])
        found = re.search(r"\((templates\.\w+|RecursionError|a fixed limit)\)", outcome)
        limit = found.group(1) if found else outcome[:26]
        print(f"{name:<46} {limit:<26} {row['cpu']:>6.3f} {row['wall']:>6.3f} "
              f"{row['peak']:>9.1f} {row['rss']:>8.1f}")


if __name__ == "__main__":
    main()
