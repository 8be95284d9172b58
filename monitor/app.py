"""The daemon's lifecycle: build, start, reload, stop. Owns the scheduler and the signals.

``run()`` is what ``monitor run`` calls: it migrates the store, loads rules, starts the
scheduler jobs and the HTTP server, then waits for signals — SIGTERM/SIGINT stop it
within ``daemon.shutdown_timeout``, SIGHUP reloads config and rules.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from apscheduler.events import EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from prometheus_client import CollectorRegistry, Gauge, Info

from monitor import __version__
from monitor import settings as settings_mod
from monitor.clock import Clock, SystemClock
from monitor.errors import MonitorError
from monitor.logs import get_logger
from monitor.model import fingerprint
from monitor.notify.notifier import Notifier
from monitor.rules.engine import Evaluation
from monitor.rules.service import RuleService
from monitor.settings import Settings
from monitor.sources.poller import JOB_PREFIX, Poller, PollResult
from monitor.store import Store, open_store

log = get_logger(__name__)


class DaemonMetrics:
    """The daemon's own metrics: build, readiness, config reloads."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.build = Info("monitor_build", "Version of the running kpi-monitor.",
                          registry=registry)
        self.build.info({"version": __version__})
        self.ready = Gauge("monitor_ready", "1 when the store answers and rules are loaded.",
                           registry=registry)
        self.start_time = Gauge("monitor_start_time_seconds",
                                "Unix time the daemon started.", registry=registry)
        self.config_reload_ok = Gauge("monitor_config_last_reload_successful",
                                      "1 when the last config reload succeeded.",
                                      registry=registry)
        self.config_reload_time = Gauge("monitor_config_last_reload_success_timestamp_seconds",
                                        "Unix time of the last successful config reload.",
                                        registry=registry)


class App:
    """One daemon process: the store, the scheduler and the HTTP server."""

    def __init__(self, settings: Settings, config_file: Path | None = None,
                 clock: Clock | None = None, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.config_file = config_file
        self.clock = clock or SystemClock()
        self.registry = registry or CollectorRegistry()
        self.metrics = DaemonMetrics(self.registry)
        self.instance = settings.daemon.instance or f"{socket.gethostname()}:{os.getpid()}"
        self.store: Store | None = None
        self.scheduler: BackgroundScheduler | None = None
        self._http: Any = None
        self._stopping = threading.Event()
        self._reload_requested = threading.Event()
        self._reload_lock = threading.Lock()
        self._rules_loaded = False
        self.poller: Poller | None = None
        self.rules: RuleService | None = None
        self.notifier: Notifier | None = None

    # --- the Daemon protocol the HTTP layer sees -------------------------------------

    def readiness(self) -> tuple[bool, str]:
        if self._stopping.is_set():
            return False, "shutting down"
        if self.store is None or not self.store.ping():
            return False, "store unreachable"
        if not self._rules_loaded:
            return False, "rules not loaded"
        return True, "ready"

    def request_reload(self) -> tuple[bool, str]:
        return self.reload()

    def api_token(self) -> str | None:
        token = self.settings.server.api_token
        return token.get_secret_value() if token else None

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Open the store, load rules, start jobs and the HTTP server.

        Raises MonitorError (store unreachable or locked, rules invalid) or OSError
        (port in use) with a message that says what to do.
        """
        from monitor.http.server import HttpServer, create_app

        self.metrics.start_time.set(time.time())
        cfg = self.settings.store
        self.store = open_store(cfg.url.get_secret_value(), busy_timeout=cfg.busy_timeout,
                                pool_size=cfg.pool_size)
        self.store.lock_single_process()
        settings = self.settings
        self.poller = Poller(self.store, settings.sources, self.clock, self.registry)
        self.rules = RuleService(self.store, settings.rules.paths, self.clock, self.registry,
                                 as_of=settings.rules.as_of, history=settings.rules.history,
                                 milestone_sources=self._milestone_sources,
                                 on_evaluated=self._on_evaluated)
        self.rules.load()
        self._rules_loaded = True
        self.scheduler = BackgroundScheduler(
            timezone="UTC",
            executors={"default": ThreadPoolExecutor(max_workers=4)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300},
        )
        self.notifier = Notifier(self.store, settings.notify, self.clock, self.registry,
                                 instance=self.instance,
                                 external_url=settings.server.external_url,
                                 status_provider=self._statuses)
        self.notifier.schedule(self.scheduler)
        self.poller.schedule(self.scheduler)
        self.rules.schedule(self.scheduler, settings.rules.evaluation_interval,
                            settings.rules.watch, settings.rules.watch_interval)
        self.scheduler.add_listener(self._on_job_executed, EVENT_JOB_EXECUTED)
        self.scheduler.start()
        server = self.settings.server
        from monitor.observing import DaemonView

        self._http = HttpServer(create_app(self, DaemonView(self), clock=self.clock),
                                server.host, server.port)
        self._http.start()
        self.metrics.ready.set(1)
        self.metrics.config_reload_ok.set(1)
        self.metrics.config_reload_time.set(time.time())
        log.info("daemon started", version=__version__, listen=server.listen,
                 store=self.store.dialect, instance=self.instance)

    def _statuses(self) -> dict[tuple[str, str], tuple[str, str]]:
        """Each scorecard row's status and comment, for the notifier's digests."""
        rows = self.rules.scorecard() if self.rules is not None else []
        return {(row.indicator.id, fingerprint(row.labels)): (row.status.value, row.comment)
                for row in rows}

    def _on_evaluated(self, _result: Evaluation) -> None:
        """Hand new transitions to the notifier at once instead of at its next tick."""
        if self.notifier is not None and not self._stopping.is_set():
            try:
                self.notifier.process_transitions()
            except Exception as exc:  # the notifier's own job retries on its next tick
                log.error("handing transitions to the notifier failed", error=str(exc))

    def _milestone_sources(self) -> list[str]:
        return [s.name for s in self.settings.sources if s.kind == "milestones"]

    def _on_job_executed(self, event: JobExecutionEvent) -> None:
        """After a poll that changed data, evaluate now rather than at the next tick."""
        result = event.retval
        if not str(event.job_id).startswith(JOB_PREFIX) or not isinstance(result, PollResult):
            return
        changed = result.stored.changed or (result.milestones is not None and (
            result.milestones.inserted or result.milestones.updated or result.milestones.removed))
        if changed and self.rules is not None and not self._stopping.is_set():
            self.rules.request_evaluation()

    def reload(self) -> tuple[bool, str]:
        """Re-read the config file and the rules; keep the running ones when invalid."""
        with self._reload_lock:
            try:
                new = settings_mod.load(self.config_file)
                if self.poller is not None:
                    self.poller.update(new.sources)
            except MonitorError as exc:
                self.metrics.config_reload_ok.set(0)
                log.error("config reload failed; keeping the running config", error=str(exc))
                return False, str(exc)
            if self.notifier is not None:
                self.notifier.reload(new.notify)
            self.settings = new
            self.metrics.config_reload_ok.set(1)
            self.metrics.config_reload_time.set(time.time())
            log.info("config reloaded", config=str(self.config_file or "(defaults)"))
            if self.rules is None:
                return True, "reloaded"
            self.rules.paths = list(new.rules.paths)
            self.rules.as_of = new.rules.as_of
            ok, message = self.rules.reload()
            if ok:
                self.rules.request_evaluation()
            return ok, "reloaded" if ok else message

    def stop(self) -> None:
        """Stop taking work, finish what is in flight, flush state, close the store."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self.metrics.ready.set(0)
        deadline = time.monotonic() + self.settings.daemon.shutdown_timeout
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.pause()
            waiter = threading.Thread(target=self.scheduler.shutdown, kwargs={"wait": True},
                                      daemon=True)
            waiter.start()
            waiter.join(max(0.0, deadline - time.monotonic()))
            if waiter.is_alive():
                log.warning("jobs still running at the shutdown timeout; leaving them")
        if self.notifier is not None:
            self.notifier.stop(max(0.5, deadline - time.monotonic()))
        if self._http is not None:
            self._http.stop(max(0.5, deadline - time.monotonic()))
        if self.poller is not None:
            self.poller.close()
        if self.store is not None:
            self.store.close()
        log.info("daemon stopped")

    def run_forever(self) -> int:
        """Block until SIGTERM/SIGINT; handle SIGHUP reloads. Return the exit status."""

        def on_stop(signum: int, _frame: FrameType | None) -> None:
            log.info("signal received; stopping", signal=signal.Signals(signum).name)
            self._stopping_requested.set()

        def on_hup(_signum: int, _frame: FrameType | None) -> None:
            self._reload_requested.set()

        self._stopping_requested = threading.Event()
        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)
        while not self._stopping_requested.wait(0.2):
            if self._reload_requested.is_set():
                self._reload_requested.clear()
                self.reload()
        self.stop()
        return 0
