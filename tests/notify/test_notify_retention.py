"""What the notifier has done is forgotten after ``notify.history_retention``, as the
alert history is: delivered and superseded messages and claimed transitions. A daemon at
100,000 series adds a few hundred thousand transitions and hundreds of megabytes of
messages a month; kept forever, they filled the disk. What is still to do is kept."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import func, select

from monitor.clock import FixedClock
from monitor.store import Store
from monitor.store.notify import OUTBOX, TRANSITION, NewMessage
from tests.notify.helpers import T0, make_notifier, notify_config, record
from tests.notify.loopback import LoopbackReceiver

RETENTION = 90 * 86400.0  # the default notify.history_retention


def rows(store: Store) -> tuple[dict[str, int], dict[str, int]]:
    """The outbox's messages by status, and the transitions claimed and not."""
    with store.engine.connect() as conn:
        messages = dict(conn.execute(select(OUTBOX.c.status, func.count())
                                     .group_by(OUTBOX.c.status)).all())
        claimed = conn.execute(select(func.count()).where(
            TRANSITION.c.claimed_by.is_not(None))).scalar_one()
        unclaimed = conn.execute(select(func.count()).where(
            TRANSITION.c.claimed_by.is_(None))).scalar_one()
    return messages, {"claimed": claimed, "unclaimed": unclaimed}


def test_after_the_retention_what_was_done_is_forgotten_and_what_is_to_do_is_kept(
        store: Store, hook: LoopbackReceiver) -> None:
    clock = FixedClock(T0)
    notifier = make_notifier(store, notify_config([{"name": "ops",
                                                    "webhook": [{"url": hook.url()}]}]),
                             clock=clock)
    for borough in ("camden", "brent", "ealing"):
        record(store, borough, "firing", T0, 1.0)
    notifier.process_transitions(T0)
    notifier.dispatch(T0)
    assert len(hook.requests) == 1 and not hook.requests[0].problems
    with store.notify.transaction() as tx:  # two for one group: the first is superseded
        tx.enqueue([NewMessage("ops", "webhook:9", "g", json.dumps({"n": 1}))], T0)
        tx.enqueue([NewMessage("ops", "webhook:9", "g", json.dumps({"n": 2}))], T0)
        [dead] = tx.enqueue([NewMessage("ops", "webhook:8", "h", json.dumps({"n": 3}))], T0)
    store.notify.mark_dead(dead, "HTTP 500")
    record(store, "hackney", "firing", T0, 2.0)  # not claimed yet
    assert rows(store) == ({"delivered": 1, "superseded": 1, "pending": 1, "dead": 1},
                           {"claimed": 3, "unclaimed": 1})
    events = len(store.history.events())

    # Within the retention nothing goes.
    assert notifier.prune_history(T0 + timedelta(seconds=RETENTION - 60)) == 0
    assert rows(store)[0] == {"delivered": 1, "superseded": 1, "pending": 1, "dead": 1}

    # After it, the delivered and superseded messages, the claimed transitions and the
    # history go; the pending message, the dead letter and the unclaimed transition stay.
    later = T0 + timedelta(seconds=RETENTION + 60)
    assert notifier.prune_history(later) == events
    assert rows(store) == ({"pending": 1, "dead": 1}, {"claimed": 0, "unclaimed": 1})

    # The notifier goes on: the unclaimed transition is claimed and sent…
    clock.set(later)
    assert notifier.process_transitions(later).claimed == 1
    notifier.dispatch(later)
    assert len(hook.requests) == 2
    # …with the group's alerts still firing (the notifier's alerts are not history).
    assert sorted(a["labels"]["borough"] for a in hook.requests[-1].payload["alerts"]) == [
        "brent", "camden", "ealing", "hackney"]


def test_the_newest_transition_is_kept_so_ids_go_on_from_it(store: Store) -> None:
    record(store, "camden", "firing", T0, 1.0)
    record(store, "brent", "firing", T0, 1.0)
    with store.notify.transaction() as tx:
        first = [e.id for e in tx.claim_transitions("me", T0)]
    later = T0 + timedelta(seconds=RETENTION + 60)
    assert store.notify.prune(later) == (0, 1)
    record(store, "ealing", "firing", later, 1.0)
    with store.notify.transaction() as tx:
        [after] = [e.id for e in tx.claim_transitions("me", later)]
    assert after > max(first)
