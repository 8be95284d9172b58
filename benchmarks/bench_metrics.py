"""Time ``/metrics`` with 100,000 indicator series.

Run from the repository root: ``python benchmarks/bench_metrics.py [n_series]``.

Builds a snapshot of ``n_series`` series (20 indicators, three labels each, two change
windows, some targets missing) shaped like the London borough crime data, then prints
the best of five timings of:

- the fast path ``IndicatorCollector.render()`` that ``/metrics`` serves;
- the whole ``/metrics`` body (the daemon's registry plus the indicator families);
- one real ``GET /metrics`` through uvicorn on loopback;
- for comparison, prometheus_client's generic ``generate_latest`` over the same collector.

The target is the whole body in at most 1 s.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
from prometheus_client import CollectorRegistry, Gauge, generate_latest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.http.metrics import IndicatorCollector, exposition
from monitor.http.server import HttpServer, create_app
from monitor.model import Frequency, month
from monitor.rules.snapshot import IndicatorFrame, IndicatorInfo, Snapshot
from monitor.settings import Settings
from tests.conftest import free_port

N_INDICATORS = 20


def build_snapshot(n_series: int, seed: int = 20080731) -> Snapshot:
    """Return a snapshot of ``n_series`` series spread over ``N_INDICATORS`` indicators."""
    rng = np.random.default_rng(seed)
    frames: dict[str, IndicatorFrame] = {}
    per = n_series // N_INDICATORS
    for k in range(N_INDICATORS):
        n = per if k < N_INDICATORS - 1 else n_series - per * (N_INDICATORS - 1)
        info = IndicatorInfo(id=f"crime_category_{k:02d}", name=f"Crime category {k}",
                             reference=f"SPI 5.{k}", unit="count", direction="down",
                             frequency=Frequency.MONTHLY.value, aggregation="sum", window=12,
                             group="Tackle serious acquisitive crime")
        labels = [{"borough": f"Borough {i % 33:02d}", "ward": f"Ward {i // 33:05d}",
                   "force": "Metropolitan Police Service"} for i in range(n)]
        value = rng.gamma(2.0, 400.0, n).round()
        target = np.where(rng.random(n) < 0.2, np.nan, value * rng.uniform(0.9, 1.1, n))
        frames[info.id] = IndicatorFrame(
            info=info, labels=labels,
            period=np.full(n, month("2009-12"), dtype=np.int64),
            value=value, target=target,
            status=rng.integers(-1, 4, n).astype(np.int64),
            changes={"12m": rng.normal(0, 0.1, n), "1m": rng.normal(0, 0.2, n)},
        )
    return Snapshot(datetime(2010, 1, 5, tzinfo=UTC), frames, [], [])


def best_of(fn: Callable[[], object], repeat: int = 5) -> tuple[float, object]:
    """Return the fastest wall-clock time of ``repeat`` calls of ``fn`` and its last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


class _Daemon:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.settings = Settings()

    def readiness(self) -> tuple[bool, str]:
        return True, "ready"

    def request_reload(self) -> tuple[bool, str]:
        return True, "reloaded"

    def api_token(self) -> str | None:
        return None


class _Observed:
    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap

    def snapshot(self) -> Snapshot:
        return self.snap


def main() -> None:
    n_series = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    snap = build_snapshot(n_series)
    registry = CollectorRegistry()
    Gauge("monitor_ready", "1 when ready.", registry=registry).set(1)
    collector = IndicatorCollector(lambda: snap)

    fast, text = best_of(collector.render)
    body_time, body = best_of(lambda: exposition(registry, collector))
    lines = str(text).count("\n")
    print(f"series: {n_series:,}; exposition lines: {lines:,}; "
          f"body: {len(body) / 1e6:.1f} MB")  # type: ignore[arg-type]
    print(f"IndicatorCollector.render()           {fast * 1000:8.1f} ms")
    print(f"whole /metrics body                    {body_time * 1000:8.1f} ms"
          f"   (target <= 1000 ms: {'OK' if body_time <= 1.0 else 'MISSED'})")

    from monitor.http.observed import EmptyObserved

    observed = EmptyObserved(snap)
    port = free_port()
    server = HttpServer(create_app(_Daemon(registry), observed), "127.0.0.1", port)
    server.start()
    try:
        with httpx.Client(timeout=30) as client:
            http_time, response = best_of(
                lambda: client.get(f"http://127.0.0.1:{port}/metrics"))
        size = len(response.content)  # type: ignore[attr-defined]
        print(f"GET /metrics over loopback (uvicorn)   {http_time * 1000:8.1f} ms"
              f"   ({size / 1e6:.1f} MB)")
    finally:
        server.stop()
    generic = CollectorRegistry()
    generic.register(collector)
    slow, _ = best_of(lambda: generate_latest(generic), repeat=1)
    print(f"generic generate_latest (comparison)   {slow * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
