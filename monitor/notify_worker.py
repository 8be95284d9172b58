"""Run the notifier alone: ``python -m monitor.notify_worker --config PATH``.

It claims the transitions the engine records, runs the pipeline and delivers the
outbox until SIGTERM/SIGINT — the notification half of ``monitor run``, for running
delivery in its own process (and for the crash tests). Exit status 0 after a clean stop.
Like ``app.py`` it wires settings, store and notifier together, so it stands beside
``app.py`` rather than inside ``notify/``.
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Sequence
from types import FrameType

from prometheus_client import CollectorRegistry

from monitor import logs, sandbox
from monitor.clock import SystemClock
from monitor.errors import ConfigError, MonitorError
from monitor.notify.notifier import Notifier
from monitor.settings import config_path, load
from monitor.store import open_store


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitor.notify_worker",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--config", "-c", metavar="PATH")
    args = parser.parse_args(argv)
    log = logs.get_logger("monitor.notify_worker")
    try:
        settings = load(config_path(args.config))
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem)
        return 1
    logs.setup(settings.logging.level, settings.logging.format)
    sandbox.configure(settings.templates)
    cfg = settings.store
    try:
        store = open_store(cfg.url.get_secret_value(), busy_timeout=cfg.busy_timeout,
                           pool_size=cfg.pool_size)
    except MonitorError as exc:
        log.error("cannot open the store", error=str(exc))
        return 1
    try:
        store.lock_single_process()  # recovering leases assumes one process per SQLite file
    except MonitorError as exc:
        log.error("cannot start", error=str(exc))
        store.close()
        return 1
    notifier = Notifier(store, settings.notify, SystemClock(), CollectorRegistry(),
                        instance=settings.daemon.instance,
                        external_url=settings.server.external_url)
    stopping = threading.Event()

    def on_stop(signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    notifier.start()
    log.info("notifier worker started", instance=notifier.instance)
    while not stopping.is_set():
        notifier.tick()
        stopping.wait(settings.notify.poll_interval)
    notifier.stop(settings.daemon.shutdown_timeout)
    store.close()
    log.info("notifier worker stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
