"""Notification commands: silences, template previews, receiver tests, dead letters.

    monitor silence add MATCHER… --comment TEXT [--author NAME] [--duration 2h | --end T]
                        [--start T] [--weekdays saturday:sunday] [--times 00:00-24:00]
                        [--timezone Europe/London]
    monitor silence list [--all] [--json]
    monitor silence expire ID
    monitor template render --receiver NAME [--alert-file F | --alert ID] [--resolved]
    monitor receiver test NAME
    monitor notifications dead-letters [--limit N] [--json]
    monitor notifications resend ID
    monitor alerts query [MATCHER…] [--suppressed | --active] [--history [--since T]
                         [--until T]] [--json]
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from monitor.clock import clock_of
from monitor.configtypes import parse_duration
from monitor.errors import DeliveryError, MonitorError
from monitor.model import utc
from monitor.textsafe import one_line

AddConfigOption = Callable[[argparse.ArgumentParser], None]


def register(sub: Any, add_config_option: AddConfigOption) -> None:
    """Add the ``silence``, ``template``, ``receiver`` and ``notifications`` commands."""
    silence = sub.add_parser("silence", help="add, list or expire silences")
    silence_sub = silence.add_subparsers(dest="silence_command", metavar="ACTION",
                                         required=True)
    add = silence_sub.add_parser("add", help="silence alerts matching label matchers")
    add_config_option(add)
    add.add_argument("matchers", nargs="+", metavar="MATCHER",
                     help='label matcher, e.g. borough="Camden" or alertname=~"Burglary.*"')
    add.add_argument("--comment", "-m", required=True, help="why the alerts are silenced")
    add.add_argument("--author", "-a", default=None, help="who silences (default: $USER)")
    add.add_argument("--start", help="start, ISO 8601 (default: now)")
    window = add.add_mutually_exclusive_group()
    window.add_argument("--duration", "-d", help="how long, e.g. 2h, 3d (default: 1h)")
    window.add_argument("--end", help="end, ISO 8601")
    add.add_argument("--weekdays", action="append", default=[],
                     help="recurring: only on these days, e.g. saturday:sunday")
    add.add_argument("--times", action="append", default=[],
                     help="recurring: only at these times, e.g. 18:00-24:00")
    add.add_argument("--timezone", default="UTC",
                     help="IANA zone of --weekdays/--times (default: UTC)")
    add.add_argument("--until-next-period", action="store_true",
                     help="mute until the next period's data arrives for the matched series "
                          "(a KPI silence; --duration/--end is then a backstop, default 400d)")
    add.add_argument("--json", action="store_true", help="print the silence as JSON")
    add.set_defaults(handler=cmd_silence_add)

    listing = silence_sub.add_parser("list", help="list silences")
    add_config_option(listing)
    listing.add_argument("--all", action="store_true", help="include expired silences")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=cmd_silence_list)

    expire = silence_sub.add_parser("expire", help="end a silence now (it is kept for audit)")
    add_config_option(expire)
    expire.add_argument("id", help="silence id (a unique prefix is enough)")
    expire.set_defaults(handler=cmd_silence_expire)

    template = sub.add_parser("template", help="preview notification templates")
    template_sub = template.add_subparsers(dest="template_command", metavar="ACTION",
                                           required=True)
    render = template_sub.add_parser("render", help="show what a receiver would be sent")
    add_config_option(render)
    render.add_argument("--receiver", "-r", required=True, help="receiver name")
    source = render.add_mutually_exclusive_group()
    source.add_argument("--alert-file", "-f", help="JSON file with one alert or a list")
    source.add_argument("--alert", help="id of a real alert in the store")
    render.add_argument("--resolved", action="store_true",
                        help="render the sample alerts as resolved")
    render.add_argument("--integration", help="only this integration, e.g. slack:0")
    render.set_defaults(handler=cmd_template_render)

    receiver = sub.add_parser("receiver", help="test receivers")
    receiver_sub = receiver.add_subparsers(dest="receiver_command", metavar="ACTION",
                                           required=True)
    test = receiver_sub.add_parser("test", help="send a test notification now")
    add_config_option(test)
    test.add_argument("name", help="receiver name")
    test.set_defaults(handler=cmd_receiver_test)

    notifications = sub.add_parser("notifications", help="inspect and resend notifications")
    notifications_sub = notifications.add_subparsers(dest="notifications_command",
                                                     metavar="ACTION", required=True)
    dead = notifications_sub.add_parser("dead-letters", help="list messages that gave up")
    add_config_option(dead)
    dead.add_argument("--limit", type=int, default=50)
    dead.add_argument("--json", action="store_true", help="print JSON")
    dead.set_defaults(handler=cmd_dead_letters)
    resend = notifications_sub.add_parser("resend", help="queue a dead letter again")
    add_config_option(resend)
    resend.add_argument("id", type=int, help="message id (see dead-letters)")
    resend.set_defaults(handler=cmd_resend)

    alerts = sub.add_parser("alerts", help="query current alerts and the alert history")
    alerts_sub = alerts.add_subparsers(dest="alerts_command", metavar="ACTION", required=True)
    query = alerts_sub.add_parser(
        "query", help="list alerts matching label matchers (like amtool alert query)")
    add_config_option(query)
    query.add_argument("matchers", nargs="*", metavar="MATCHER",
                       help='label matcher, e.g. alertname="BurglaryRising" or '
                            'borough=~"Cam.*"')
    muted = query.add_mutually_exclusive_group()
    muted.add_argument("--suppressed", "-s", action="store_true",
                       help="only alerts a silence or an inhibition mutes")
    muted.add_argument("--active", "-a", action="store_true",
                       help="only alerts nothing mutes")
    query.add_argument("--history", action="store_true",
                       help="list past episodes from the alert history instead")
    query.add_argument("--since", help="with --history: from (2008-07, or ISO 8601)")
    query.add_argument("--until", help="with --history: to, exclusive")
    query.add_argument("--json", action="store_true", help="print JSON")
    query.set_defaults(handler=cmd_alerts_query)


@contextmanager
def _notifier(args: argparse.Namespace) -> Iterator[Any]:
    from prometheus_client import CollectorRegistry

    from monitor.clock import clock_of
    from monitor.notify.notifier import Notifier
    from monitor.store import open_store

    settings, _ = args.load_settings(args)
    cfg = settings.store
    store = open_store(cfg.url.get_secret_value(), busy_timeout=cfg.busy_timeout,
                       pool_size=cfg.pool_size)
    notifier = Notifier(store, settings.notify, clock_of(args), CollectorRegistry(),
                        instance=settings.daemon.instance or "cli",
                        external_url=settings.server.external_url)
    try:
        yield notifier
    finally:
        store.close()


def _time(text: str | None, default: datetime) -> datetime:
    if not text:
        return default
    try:
        return utc(datetime.fromisoformat(text))
    except ValueError:
        raise MonitorError(f"{text!r} is not a time; write it like 2026-11-28T18:00 or "
                           "2026-11-28T18:00+00:00") from None


def cmd_silence_add(args: argparse.Namespace) -> int:
    from monitor.matchers import (
        MatcherError,
        known_label_names,
        matches_all,
        parse_matchers,
        silence_warnings,
    )
    from monitor.notify.silences import SilenceSpec, recurrence_from, recurrence_summary

    now = clock_of(args).now()
    try:
        matchers = tuple(m for text in args.matchers for m in parse_matchers(text))
    except MatcherError as exc:
        raise MonitorError(str(exc)) from None
    start = _time(args.start, now)
    if args.end:
        end = _time(args.end, now)
    else:
        try:
            end = start + timedelta(seconds=parse_duration(args.duration or "1h"))
        except ValueError as exc:
            raise MonitorError(f"--duration: {exc}") from None
    recurrence = None
    if args.weekdays or args.times:
        times = []
        for item in args.times:
            first, sep, last = item.partition("-")
            if not sep:
                raise MonitorError(f"--times {item!r}: write a range like 18:00-24:00")
            times.append({"start_time": first.strip(), "end_time": last.strip()})
        try:
            recurrence = recurrence_from({"weekdays": args.weekdays, "times": times,
                                          "location": args.timezone})
        except ValueError as exc:
            raise MonitorError(str(exc)) from None
    author = args.author or getpass.getuser()
    with _notifier(args) as notifier:
        current = _current(notifier)
        # The names the API and the silence form know: every alert's labels and every
        # series' (the daemon reads them from its snapshot, this command from the store).
        known = known_label_names((r.labels for r in notifier.store.alerts.load().values()),
                                  [notifier.store.observations.label_names()])
        warnings = silence_warnings(matchers, [r.labels for r in current], known)
        until_period = None
        if args.until_next_period:
            periods = [r.annotations["period_id"] for r in current
                       if r.annotations.get("period_id") and matches_all(matchers, r.labels)]
            if not periods:
                raise MonitorError("--until-next-period: no current alert with a data period "
                                   "matches these matchers, so there is no period to wait "
                                   "past; give --duration instead")
            until_period = max(periods)
            if not args.end and not args.duration:
                end = start + timedelta(days=400)
        spec = SilenceSpec(matchers, start, end, author, args.comment, recurrence,
                           until_period)
        try:
            silence = notifier.create_silence(spec)
        except ValueError as exc:
            raise MonitorError(str(exc)) from None
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps(_silence_json(silence, now), indent=2))
    else:
        recurring = recurrence_summary(silence)
        print(f"silence {silence.id} created: {silence.describe()}; "
              f"{silence.starts_at:%Y-%m-%d %H:%M} → {silence.ends_at:%Y-%m-%d %H:%M} UTC"
              + (f"; recurring {recurring}" if recurring else ""))
    return 0


def _silence_json(silence: Any, now: datetime) -> dict[str, Any]:
    from monitor.notify.silences import recurrence_summary

    return {
        "id": silence.id, "matchers": [m.to_dict() for m in silence.matchers],
        "starts_at": silence.starts_at.isoformat(), "ends_at": silence.ends_at.isoformat(),
        "created_by": silence.created_by, "comment": silence.comment,
        "state": silence.state(now), "recurrence": recurrence_summary(silence) or None,
        "expired_at": silence.expired_at.isoformat() if silence.expired_at else None,
        "until_period": silence.until_period,
    }


def _current(notifier: Any) -> list[Any]:
    """Return the stored firing and pending alert records: what the daemon last evaluated."""
    from monitor.model import AlertState

    records = notifier.store.alerts.load().values()
    return sorted((r for r in records if r.state in (AlertState.FIRING, AlertState.PENDING)),
                  key=lambda r: (r.state is not AlertState.FIRING, r.rule,
                                 sorted(r.labels.items())))


def cmd_alerts_query(args: argparse.Namespace) -> int:
    from monitor.matchers import MatcherError, matches_all, parse_matchers
    from monitor.model import AlertState
    from monitor.notify.notification import FIRING, RESOLVED, NotifyAlert

    try:
        matchers = tuple(m for text in args.matchers for m in parse_matchers(text))
    except MatcherError as exc:
        raise MonitorError(str(exc)) from None
    now = clock_of(args).now()
    with _notifier(args) as notifier:
        if args.history:
            return _history(args, notifier, matchers)
        records = [r for r in _current(notifier) if matches_all(matchers, r.labels)]
        muted = notifier.suppressed([NotifyAlert(
            alert_id=r.id, rule=r.rule, labels=r.labels, annotations=r.annotations,
            status=FIRING if r.state is AlertState.FIRING else RESOLVED, value=r.value,
            explanation=r.explanation, starts_at=r.fired_at or r.active_since or now)
            for r in records])
    if args.suppressed or args.active:
        records = [r for r in records if (r.id in muted) == args.suppressed]
    rows = []
    for r in records:
        why = muted.get(r.id)
        rows.append({
            "fingerprint": r.id, "alertname": r.labels.get("alertname", r.rule),
            "state": r.state.value, "status": {
                "state": "suppressed" if why else "active",
                "silencedBy": list(why.silenced_by) if why else [],
                "inhibitedBy": list(why.inhibited_by) if why else []},
            "period": r.annotations.get("period", ""), "value": r.value,
            "since": (r.fired_at or r.active_since or now).isoformat(),
            "labels": dict(r.labels), "explanation": r.explanation})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no alerts match" + (" (only suppressed ones were asked for)"
                                   if args.suppressed else ""))
        return 0
    # The name column as wide as the longest name, as amtool's table is.
    name = max(len("ALERTNAME"), *(len(row["alertname"]) for row in rows))
    print(f"{'STATE':<22} {'ALERTNAME':<{name}} {'DATA':<7} {'SINCE':<16} LABELS")
    for row in rows:
        status = row["status"]
        state = row["state"] + (" suppressed" if status["state"] == "suppressed" else "")
        labels = ", ".join(f"{k}={v}" for k, v in sorted(row["labels"].items())
                           if k != "alertname")
        since = datetime.fromisoformat(row["since"])
        print(one_line(f"{state:<22} {row['alertname']:<{name}} {row['period'] or '—':<7} "
                       f"{since:%Y-%m-%d %H:%M} {labels}"))
        if status["silencedBy"]:
            print(f"{'':<22} silenced by {', '.join(status['silencedBy'])}")
        if status["inhibitedBy"]:
            print(f"{'':<22} inhibited by {', '.join(status['inhibitedBy'])}")
    return 0


def _history(args: argparse.Namespace, notifier: Any, matchers: tuple[Any, ...]) -> int:
    from monitor.model import episodes

    def when(text: str | None, name: str) -> datetime | None:
        if not text:
            return None
        if len(text) == 7 and text[4] == "-":
            text += "-01T00:00:00+00:00"
        try:
            return utc(datetime.fromisoformat(text))
        except ValueError:
            raise MonitorError(f"{name} {text!r} is not a time; write 2008-07, 2008-07-31 or "
                               "2008-07-31T12:00+00:00") from None

    found = list(episodes(notifier.store.history.events(
        matchers=matchers, since=when(args.since, "--since"), until=when(args.until, "--until"))))
    if args.json:
        print(json.dumps([{
            "alert_id": ep.alert_id, "rule": ep.rule, "labels": dict(ep.labels),
            "state": ep.state, "started_at": ep.started_at.isoformat(),
            "fired_at": ep.fired_at.isoformat() if ep.fired_at else None,
            "resolved_at": ep.resolved_at.isoformat() if ep.resolved_at else None,
            "notifications": ep.notifications, "muted": ep.muted,
            "events": [{"kind": e.kind, "at": e.at.isoformat(), "from_state": e.from_state,
                        "to_state": e.to_state, "value": e.value, "period": e.period,
                        "explanation": e.explanation, "detail": dict(e.detail)}
                       for e in ep.events]} for ep in found], indent=2))
        return 0
    if not found:
        print("no alert episodes match in the kept history")
        return 0
    name = max(len("ALERTNAME"), *(len(ep.rule) for ep in found))
    print(f"{'STARTED':<16} {'ALERTNAME':<{name}} {'STATE':<9} {'FIRED':<16} {'RESOLVED':<16} "
          f"{'SENT':>4} {'MUTED':>5} LABELS")
    for ep in found:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(ep.labels.items())
                           if k != "alertname")
        fired = f"{ep.fired_at:%Y-%m-%d %H:%M}" if ep.fired_at else "—"
        resolved = f"{ep.resolved_at:%Y-%m-%d %H:%M}" if ep.resolved_at else "—"
        print(one_line(f"{ep.started_at:%Y-%m-%d %H:%M} {ep.rule:<{name}} {ep.state:<9} "
                       f"{fired:<16} {resolved:<16} {ep.notifications:>4} {ep.muted:>5} "
                       f"{labels}"))
    return 0


def cmd_silence_list(args: argparse.Namespace) -> int:
    from monitor.notify.silences import EXPIRED, recurrence_summary

    now = clock_of(args).now()
    with _notifier(args) as notifier:
        silences = [s for s in notifier.silences() if args.all or s.state(now) != EXPIRED]
    if args.json:
        print(json.dumps([_silence_json(s, now) for s in silences], indent=2))
        return 0
    if not silences:
        print("no silences" + ("" if args.all else " (use --all to include expired ones)"))
        return 0
    for s in silences:
        recurring = recurrence_summary(s)
        print(f"{s.id}  {s.state(now):8}  {s.starts_at:%Y-%m-%d %H:%M} → "
              f"{s.effective_end():%Y-%m-%d %H:%M} UTC  {s.describe()}"
              + (f"  [recurring {recurring}]" if recurring else ""))
    return 0


def cmd_silence_expire(args: argparse.Namespace) -> int:
    with _notifier(args) as notifier:
        matches = [s for s in notifier.silences() if s.id.startswith(args.id)]
        if len(matches) > 1:
            raise MonitorError(f"{args.id!r} matches {len(matches)} silences; give more of "
                               "the id")
        if not matches:
            raise MonitorError(f"no silence with id {args.id!r}; see `monitor silence list "
                               "--all`")
        silence = notifier.expire_silence(matches[0].id)
    assert silence is not None
    print(f"silence {silence.id} expired (kept for audit)")
    return 0


def cmd_template_render(args: argparse.Namespace) -> int:
    from monitor.notify.notification import RESOLVED, sample_alerts
    from monitor.notify.notifier import load_alerts_file

    now = clock_of(args).now()
    with _notifier(args) as notifier:
        alerts = None
        if args.alert_file:
            try:
                alerts = load_alerts_file(Path(args.alert_file).read_text(encoding="utf-8"), now)
            except OSError as exc:
                raise MonitorError(f"{args.alert_file}: {exc.strerror}") from None
            except ValueError as exc:
                raise MonitorError(f"{args.alert_file}: {exc}") from None
        elif args.alert:
            found = notifier.notify_store.find_alert(args.alert)
            if found is None:
                raise MonitorError(f"no alert with id {args.alert!r} in the store")
            alerts = [found]
        elif args.resolved:
            alerts = list(sample_alerts(now, RESOLVED))
        try:
            rendered = notifier.preview(args.receiver, alerts)
        except KeyError as exc:
            raise MonitorError(str(exc.args[0])) from None
    shown = 0
    for integration, message in rendered:
        if args.integration and integration != args.integration:
            continue
        shown += 1
        print(f"===== {args.receiver} / {integration} =====")
        if message.template_error:
            print(f"(template error: {message.template_error}; this is the fallback body)")
        print(message.preview.rstrip("\n"))
        print()
    if not shown:
        print(f"receiver {args.receiver!r} has no integration"
              + (f" {args.integration!r}" if args.integration else ""), file=sys.stderr)
        return 1
    return 0


def cmd_receiver_test(args: argparse.Namespace) -> int:
    with _notifier(args) as notifier:
        try:
            results = notifier.test_receiver(args.name)
        except KeyError as exc:
            raise MonitorError(str(exc.args[0])) from None
    if not results:
        print(f"receiver {args.name!r} has no integrations: nothing to test")
        return 1
    failed = 0
    for integration, result in results:
        if isinstance(result, DeliveryError):
            failed += 1
            kind = "retryable" if result.retryable else "permanent"
            print(one_line(f"{integration}: FAILED ({kind}): {result}"))
        else:
            print(f"{integration}: {result.outcome}" + (f" ({result.detail})"
                                                        if result.detail else ""))
    return 1 if failed else 0


def cmd_dead_letters(args: argparse.Namespace) -> int:
    with _notifier(args) as notifier:
        items = notifier.notify_store.messages("dead", limit=args.limit)
    if args.json:
        print(json.dumps([{
            "id": i.id, "receiver": i.receiver, "integration": i.integration,
            "group_key": i.group_key, "attempts": i.attempts,
            "created_at": i.created_at.isoformat(), "error": i.last_error,
        } for i in items], indent=2))
        return 0
    if not items:
        print("no dead letters")
        return 0
    for i in items:
        print(one_line(f"{i.id}  {i.receiver}/{i.integration}  attempts={i.attempts}  "
                       f"{i.created_at:%Y-%m-%d %H:%M}  {i.last_error}"))
    print("\nresend one with: monitor notifications resend ID")
    return 0


def cmd_resend(args: argparse.Namespace) -> int:
    with _notifier(args) as notifier:
        if not notifier.resend(args.id):
            raise MonitorError(f"no message with id {args.id}; see `monitor notifications "
                               "dead-letters`")
    print(f"message {args.id} queued again; the daemon sends it on its next pass")
    return 0


__all__ = ["register"]
