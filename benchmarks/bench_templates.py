"""How long and how much memory hostile templates take to be refused, with the defaults.

Run from the repository root: ``python benchmarks/bench_templates.py``. Each template
renders as a rule annotation in a fresh process (so one's memory does not hide
another's) under the default ``[templates]`` budget. Prints one line per template: the
limit that refused it, the CPU time of the render, and the memory it added — the peak
of Python allocations (tracemalloc, its own run) and the growth of the process's peak
resident set. Deterministic apart from the times; the time-bound template takes about
the ``timeout`` of wall-clock time, however fast the machine.

Then the four the issue named, as a Slack receiver's title template, each in a fresh
process: the notifier takes an alert from a SQLite store and delivers it to a Slack-like
receiver on loopback; the line gives the CPU time of ``process_transitions`` and
``dispatch`` together (under tracemalloc, so an upper bound), their peak of Python
allocations, and whether the receiver got the plain fallback text. The run exits 1 if any
of them took 1 s of CPU or more, allocated 50 MiB or more, or was not delivered with the
fallback.
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


DELIVERED = {  # the acceptance cases of the template budget, in a receiver template
    "nested loops over range(99999)": CASES["nested loops over range(99999)"],
    "range(10**8)|list": CASES["range(10**8)|list"],
    "'a'|center(10**9)": CASES["'a'|center(10**9)"],
    "macro calling itself": CASES["macro calling itself"],
}


def deliver(template: str) -> dict[str, object]:
    """Deliver an alert through a Slack receiver whose title is ``template``, under
    tracemalloc (so the CPU time includes tracing's overhead: an upper bound)."""
    import tempfile

    from prometheus_client import CollectorRegistry

    from monitor.store import open_store
    from tests.notify.helpers import T0, make_notifier, notify_config, record
    from tests.notify.loopback import LoopbackReceiver, validate_slack

    slack = LoopbackReceiver(validate_slack)
    with tempfile.TemporaryDirectory() as folder:
        store = open_store(f"sqlite:///{folder}/bench.db")
        try:
            registry = CollectorRegistry()
            config = notify_config([{"name": "ops", "slack": [{
                "url": slack.url("/services/T/B/x"), "templates": {"title": template}}]}],
)
            notifier = make_notifier(store, config, registry=registry)
            record(store, "camden", "firing", T0, 6.1)
            tracemalloc.start()
            cpu = time.process_time()
            notifier.process_transitions()
            outcomes = [o.outcome for o in notifier.dispatch()]
            cpu = time.process_time() - cpu
            peak = tracemalloc.get_traced_memory()[1] / 1024 / 1024
            tracemalloc.stop()
            texts = [r.payload["text"] for r in slack.requests]
            errors = registry.get_sample_value("monitor_notify_template_errors_total",
                                               {"receiver": "ops", "integration": "slack"})
        finally:
            store.close()
            slack.close()
    fallback = texts == ["[FIRING] BurglaryRising (1 firing)"]
    return {"cpu": cpu, "peak": peak, "outcomes": outcomes, "fallback": fallback,
            "errors": errors}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        print(json.dumps(measure(CASES[sys.argv[2]])))
        return
    if len(sys.argv) == 3 and sys.argv[1] == "--deliver":
        print(json.dumps(deliver(DELIVERED[sys.argv[2]])))
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
    print(f"\nin a Slack receiver's title, delivered to a receiver on loopback:\n"
          f"{'template':<46} {'CPU s':>6} {'alloc MiB':>9} {'outcomes':<22} fallback")
    good = True
    for name in DELIVERED:
        done = subprocess.run([sys.executable, __file__, "--deliver", name],
                              capture_output=True, text=True, check=True)
        row = json.loads(done.stdout.strip().splitlines()[-1])
        ok = (row["cpu"] < 1.0 and row["peak"] < 50 and row["fallback"]
              and row["outcomes"] == ["delivered"])
        good = good and ok
        print(f"{name:<46} {row['cpu']:>6.3f} {row['peak']:>9.1f} "
              f"{','.join(row['outcomes']):<22} {'yes' if row['fallback'] else 'NO'}"
              f"{'' if ok else '  OVER (1 s CPU, 50 MiB, fallback delivered)'}")
    if not good:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
