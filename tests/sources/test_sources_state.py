"""Source state on SQLite and PostgreSQL: validators, health, bounded poll history."""

from __future__ import annotations

from datetime import timedelta

import pytest

from monitor.store import Store, sourcestate
from monitor.store.sourcestate import Validators
from tests.sources.sourcekit import NOW


def test_it_keeps_validators_only_for_the_config_they_were_taken_with(store: Store) -> None:
    state = store.source_state
    assert state.validators("feed") == Validators()
    taken = Validators(etag='"v1"', last_modified="Wed, 31 Jan 2024 10:00:00 GMT",
                       content_hash="ab" * 32, cursor="2024-01", config_digest="d1")
    state.record_success("feed", started=NOW, finished=NOW, outcome="success",
                         validators=taken, observations=3, inserted=3)
    assert state.validators("feed") == taken
    assert state.validators("feed").for_config("d1") == taken
    assert state.validators("feed").for_config("d2") == Validators(config_digest="d2")


def test_it_counts_failures_in_a_row_until_a_success(store: Store) -> None:
    state = store.source_state
    later = NOW + timedelta(minutes=5)
    assert state.record_failure("feed", started=NOW, finished=NOW, error="HTTP 500") == 1
    assert state.record_failure("feed", started=later, finished=later, error="HTTP 502") == 2
    [health] = state.health()
    assert (health.source, health.consecutive_failures, health.last_error) == ("feed", 2,
                                                                               "HTTP 502")
    assert (health.last_attempt_at, health.last_success_at, health.healthy) == (later, None,
                                                                                False)
    state.record_success("feed", started=later, finished=later, outcome="success",
                         validators=None)
    health = state.get("feed")
    assert health is not None
    assert (health.consecutive_failures, health.last_error, health.healthy) == (0, "", True)
    assert [p.outcome for p in state.polls("feed")] == ["success", "failed", "failed"]


def test_it_keeps_a_bounded_poll_history(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sourcestate, "KEEP_POLLS", 3)
    state = store.source_state
    for minute in range(6):
        at = NOW + timedelta(minutes=minute)
        state.record_success("feed", started=at, finished=at, outcome="unchanged",
                             validators=None)
    assert state.poll_count("feed") == 3
    assert [p.started_at for p in state.polls("feed")] == [
        NOW + timedelta(minutes=m) for m in (5, 4, 3)]
