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
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from apscheduler.events import EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from prometheus_client import CollectorRegistry, Gauge, Info
from sqlalchemy.exc import SQLAlchemyError

from monitor import __version__, memory, sandbox
from monitor import settings as settings_mod
from monitor.clock import Clock, SystemClock
from monitor.clockwatch import ClockWatch
from monitor.cluster import ClusterMember, Ownership, digest_key, source_key
from monitor.errors import MonitorError, StoreError
from monitor.logs import get_logger
from monitor.model import fingerprint
from monitor.notify.notifier import Notifier
from monitor.report.delivery import Reports
from monitor.rules.distributed import DistributedEngine, EngineConfig
from monitor.rules.engine import Evaluation
from monitor.rules.loader import RuleSet
from monitor.rules.service import RuleService
from monitor.settings import Settings
from monitor.sources.poller import JOB_PREFIX, Poller, PollResult
from monitor.store import Store, open_store
from monitor.store.alerts import Saved

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
        sandbox.configure(settings.templates)
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
        self._stopping_requested = threading.Event()
        self._reload_lock = threading.Lock()
        self._rules_loaded = False
        self.poller: Poller | None = None
        self.rules: RuleService | None = None
        self.notifier: Notifier | None = None
        self.reports: Reports | None = None
        self._clock_watch: ClockWatch | None = None
        self.cluster: ClusterMember | None = None  # PostgreSQL: this process as a replica

    # --- the Daemon protocol the HTTP layer sees -------------------------------------

    def readiness(self) -> tuple[bool, str]:
        if self._stopping.is_set():
            return False, "shutting down"
        if self.store is None or not self.store.ping():
            return False, "store unreachable"
        if self.cluster is not None:
            healthy, why = self.cluster.health()
            if not healthy:
                return False, f"not a live cluster member: {why}"
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
        self.assemble()
        assert self.store is not None and self.notifier is not None \
            and self.poller is not None and self.rules is not None
        settings = self.settings
        self.scheduler = BackgroundScheduler(
            timezone="UTC",
            executors={"default": ThreadPoolExecutor(max_workers=4)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300},
        )
        self.notifier.schedule(self.scheduler)
        if self.reports is not None:
            self.reports.schedule(self.scheduler)
        self.poller.schedule(self.scheduler)
        self.rules.schedule(self.scheduler, settings.rules.evaluation_interval,
                            settings.rules.watch, settings.rules.watch_interval)
        if self.rules.engine is not None:  # the worker pool starts with the daemon
            self.rules.engine.start()
        self.scheduler.add_listener(self._on_job_executed, EVENT_JOB_EXECUTED)
        self.scheduler.start()
        self._clock_watch = ClockWatch(self.registry, self._on_clock_jump)
        self._clock_watch.start()
        server = self.settings.server
        from monitor.observing import DaemonView

        # monitor_ready is /-/ready's answer, asked at each scrape: set once after the
        # server started, a scrape between the two read 0 from a ready daemon.
        self.metrics.ready.set_function(lambda: 1.0 if self.readiness()[0] else 0.0)
        self.metrics.config_reload_ok.set(1)
        self.metrics.config_reload_time.set(time.time())
        self._http = HttpServer(create_app(self, DaemonView(self), clock=self.clock),
                                server.host, server.port)
        self._http.start()
        log.info("daemon started", version=__version__, listen=server.listen,
                 store=self.store.dialect, instance=self.instance)

    def assemble(self) -> None:
        """Open and migrate the store (joining the replicas on PostgreSQL), build the
        poller, the rule service and the notifier, and load the rules — everything but
        the scheduler, the clock watch and the HTTP server. ``start`` calls it; tests
        that drive the daemon step by step on a movable clock call it alone.

        Raises MonitorError (store unreachable or locked, rules invalid).
        """
        cfg = self.settings.store
        url = cfg.url.get_secret_value()
        self.store = open_store(url, busy_timeout=cfg.busy_timeout, pool_size=cfg.pool_size,
                                migrate=False)
        self.store.lock_single_process()
        settings = self.settings
        self._join_store(settings)
        owns_source = None if self.cluster is None else \
            (lambda name: self._owns(source_key(name)))
        self.poller = Poller(self.store, settings.sources, self.clock, self.registry,
                             owns=owns_source)
        self.rules = RuleService(self.store, settings.rules.paths, self.clock, self.registry,
                                 as_of=settings.rules.as_of, history=settings.rules.history,
                                 milestone_sources=self._milestone_sources,
                                 sources=lambda: self.settings.sources,
                                 unsettled=self.poller.unsettled,
                                 on_evaluated=self._on_evaluated,
                                 partition=self.cluster, engine=self._engine(),
                                 interval=settings.rules.evaluation_interval)
        self.rules.load()
        self._rules_loaded = True
        self.notifier = Notifier(self.store, settings.notify, self.clock, self.registry,
                                 instance=self.instance,
                                 external_url=settings.server.external_url,
                                 status_provider=self._statuses,
                                 owns_digest=None if self.cluster is None else
                                 (lambda name: self._owns(digest_key(name))))
        self.reports = Reports(self.store, lambda: self.settings, self._ruleset, self.clock,
                               wake=self._wake_notifier, ready=self._settled,
                               owns=None if self.cluster is None else
                               (lambda name: self._owns(digest_key(f"report:{name}"))))

    def _ruleset(self) -> RuleSet | None:
        return self.rules.ruleset if self.rules is not None else None

    def _settled(self) -> bool:
        """True once the rules evaluated and no poll is in flight."""
        return self.rules is not None and self.rules.last is not None \
            and self.poller is not None and not self.poller.unsettled()

    def _wake_notifier(self) -> None:
        if self.notifier is not None:
            self.notifier.dispatcher.wake()

    def _join_store(self, settings: Settings) -> None:
        """Migrate the store and, on PostgreSQL, join the cluster of replicas.

        Raises StoreError when the database cannot be migrated or reached, and
        ClusterError when the cluster refuses this replica (a live namesake, another
        shard count).
        """
        assert self.store is not None
        if self.store.is_sqlite:
            self.store.upgrade()
            return
        try:
            with self.store.cluster.migration_lock():  # replicas starting together
                self.store.upgrade()
            self.cluster = ClusterMember(self.store.cluster, settings.cluster, self.instance,
                                         self.registry, host=socket.gethostname(),
                                         pid=os.getpid(), on_change=self._on_shards_changed,
                                         on_health=self._on_cluster_health)
            ownership = self.cluster.join()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot join the cluster of replicas: {exc}") from exc
        self.cluster.start()  # heartbeats from now on: the leases must not lapse
        log.info("cluster member", replica=self.instance, live=len(self.cluster.replicas),
                 held=len(ownership.epochs), shards=settings.cluster.shards)

    def _owns(self, key: str) -> bool:
        return self.cluster is None or self.cluster.owns(key)

    def _on_shards_changed(self, _ownership: Ownership) -> None:
        """Shards came or went: evaluate now, and poll the sources taken over that are
        due (their schedules start again from their last successful poll)."""
        if self._stopping.is_set() or self.scheduler is None or not self.scheduler.running:
            return
        if self.rules is not None:
            self.rules.request_evaluation()
        if self.poller is not None:
            with self._reload_lock:
                self.poller.schedule(self.scheduler)

    def _on_cluster_health(self, healthy: bool) -> None:
        """The database went away or came back: hold every job while it is away (the
        heartbeat retries with backoff, readiness says why), resume them after."""
        scheduler = self.scheduler
        if scheduler is None or not scheduler.running or self._stopping.is_set():
            return
        if healthy:
            scheduler.resume()
            log.info("cluster membership restored; jobs resumed", replica=self.instance)
        else:
            scheduler.pause()
            log.warning("cluster membership lost; jobs paused until the database answers",
                        replica=self.instance)

    def _statuses(self) -> dict[tuple[str, str], tuple[str, str]]:
        """Each scorecard row's status and comment, for the notifier's digests."""
        rows = self.rules.scorecard() if self.rules is not None else []
        return {(row.indicator.id, fingerprint(row.labels)): (row.status.value, row.comment)
                for row in rows}

    def _on_evaluated(self, _result: Evaluation, saved: Saved) -> None:
        """Hand the transitions just saved to the notifier at once (in memory: it claims
        them in the store but need not decode them) instead of at its next tick; then
        give the cycle's freed matrices back to the operating system."""
        if self.notifier is not None and not self._stopping.is_set():
            try:
                self.notifier.process_transitions(saved=saved)
            except Exception as exc:  # the notifier's own job retries on its next tick
                log.error("handing transitions to the notifier failed", error=str(exc))
        memory.trim()

    def _on_clock_jump(self, offset: float) -> None:
        """The wall clock jumped: make every timer set before the jump due now, so a jump
        back does not stall polls, evaluations and deliveries for as long as the jump."""
        scheduler = self.scheduler
        if scheduler is not None and scheduler.running and not self._stopping.is_set():
            now = datetime.now(UTC)  # the scheduler's own clock
            for job in scheduler.get_jobs():
                if isinstance(job.trigger, CronTrigger):
                    job.modify(next_run_time=job.trigger.get_next_fire_time(None, now))
                else:
                    job.modify(next_run_time=now)
        if self.poller is not None:
            self.poller.clock_jumped()
        if self.notifier is not None:
            self.notifier.clock_jumped(offset)

    def _milestone_sources(self) -> list[str]:
        return [s.name for s in self.settings.sources if s.kind == "milestones"]

    def _on_job_executed(self, event: JobExecutionEvent) -> None:
        """After a poll that changed data, evaluate now rather than at the next tick."""
        result = event.retval
        if not str(event.job_id).startswith(JOB_PREFIX) or not isinstance(result, PollResult):
            return
        changed = result.stored.changed or (result.milestones is not None and (
            result.milestones.inserted or result.milestones.updated or result.milestones.removed))
        waiting = self.rules is not None and bool(self.rules.deferred)
        if (changed or waiting) and self.rules is not None and not self._stopping.is_set():
            self.rules.request_evaluation(data_changed=bool(changed))

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
            sandbox.configure(new.templates)
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

    def _engine(self) -> DistributedEngine | None:
        """Return the distributed engine ``[engine]`` asks for (None: in this process)."""
        engine = self.settings.engine
        if not engine.partitioned:
            return None
        return DistributedEngine(
            self.settings.store.url.get_secret_value(),
            EngineConfig(engine.scheduler, engine.partitions, engine.local_workers,
                         tuple(engine.partition_by)), history=self.settings.rules.history)

    def stop(self) -> None:
        """Stop taking work, finish what is in flight, flush state, close the store."""
        if self._stopping.is_set():
            return
        self._stopping.set()  # monitor_ready reads 0 from here on, as /-/ready does
        if self._clock_watch is not None:
            self._clock_watch.stop()
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
        if self.cluster is not None:
            self.cluster.stop(max(0.5, deadline - time.monotonic()))
        if self._http is not None:
            self._http.stop(max(0.5, deadline - time.monotonic()))
        if self.poller is not None:
            self.poller.close()
        if self.rules is not None and self.rules.engine is not None:
            self.rules.engine.close()
        if self.store is not None:
            self.store.close()
        log.info("daemon stopped")

    def install_signal_handlers(self) -> None:
        """Route SIGTERM/SIGINT to a clean stop and SIGHUP to a reload.

        Called before :meth:`start`, so a signal that arrives while the daemon is still
        starting is handled (SIGHUP's default action would otherwise kill it).
        """

        def on_stop(signum: int, _frame: FrameType | None) -> None:
            log.info("signal received; stopping", signal=signal.Signals(signum).name)
            self._stopping_requested.set()

        def on_hup(_signum: int, _frame: FrameType | None) -> None:
            self._reload_requested.set()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)

    def run_forever(self) -> int:
        """Block until SIGTERM/SIGINT; handle SIGHUP reloads. Return the exit status."""
        while not self._stopping_requested.wait(0.2):
            if self._reload_requested.is_set():
                self._reload_requested.clear()
                self.reload()
        self.stop()
        return 0
