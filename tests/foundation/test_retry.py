"""Waiting before trying again: backoff, ``Retry-After`` and the token bucket, each
with an injected clock or randomness."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from monitor.retry import TokenBucket, backoff, retry_after_seconds

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


# --- Retry-After --------------------------------------------------------------------------

@pytest.mark.parametrize(("header", "seconds"), [
    pytest.param("120", 120.0, id="seconds"),
    pytest.param(" 7 ", 7.0, id="seconds-with-spaces"),
    pytest.param("1.5", 1.5, id="fractional-seconds"),
    pytest.param("Fri, 27 Nov 2026 09:02:00 GMT", 120.0, id="http-date"),
    pytest.param("Fri, 27 Nov 2026 11:02:00 +0200", 120.0, id="http-date-with-offset"),
    pytest.param("Fri, 27 Nov 2026 09:01:00 -0000", 60.0, id="http-date-without-zone-is-utc"),
    pytest.param("Fri, 27 Nov 2026 08:00:00 GMT", 0.0, id="date-in-the-past-is-now"),
    pytest.param("soon", None, id="garbage"),
    pytest.param("-5", None, id="negative"),
    pytest.param("inf", None, id="infinite"),
    pytest.param("nan", None, id="not-a-number"),
    pytest.param("", None, id="empty"),
    pytest.param(None, None, id="absent"),
])
def test_retry_after_is_read_as_seconds_or_a_date(header: str | None,
                                                  seconds: float | None) -> None:
    assert retry_after_seconds(header, NOW) == seconds


def test_a_retry_after_date_is_measured_from_the_injected_now() -> None:
    header = "Fri, 27 Nov 2026 09:10:00 GMT"
    assert retry_after_seconds(header, NOW) == 600.0
    assert retry_after_seconds(header, datetime(2026, 11, 27, 9, 9, tzinfo=UTC)) == 60.0


def test_an_absurd_retry_after_is_still_a_finite_number() -> None:
    wait = retry_after_seconds("9" * 400, NOW)
    assert wait is None or wait < float("inf")


# --- backoff ------------------------------------------------------------------------------

def test_the_wait_doubles_per_retry_up_to_the_cap() -> None:
    assert [backoff(n, 1.0, 8.0) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_the_multiplier_sets_the_growth() -> None:
    assert [backoff(n, 10.0, 1000.0, multiplier=3.0) for n in (0, 1, 2, 3)] == [
        10.0, 10.0, 30.0, 90.0]


def test_jitter_spreads_waits_within_the_band_and_never_past_the_cap() -> None:
    rng = random.Random(3)
    early = [backoff(1, 10.0, 300.0, jitter=0.2, rng=rng) for _ in range(200)]
    capped = [backoff(20, 10.0, 300.0, jitter=0.2, rng=rng) for _ in range(200)]
    assert all(8.0 <= w <= 12.0 for w in early) and len(set(early)) > 100
    assert all(240.0 <= w <= 300.0 for w in capped) and len(set(capped)) > 100


def test_a_thousand_failures_wait_the_cap_and_do_not_overflow() -> None:
    assert backoff(100_000, 5.0, 15.0) == 15.0
    assert 13.5 <= backoff(100_000, 5.0, 15.0, jitter=0.1, rng=random.Random(1)) <= 15.0


# --- token bucket -------------------------------------------------------------------------

class FakeTime:
    """A monotonic clock that moves only when slept on."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_the_bucket_allows_a_burst_then_the_rate() -> None:
    time = FakeTime()
    bucket = TokenBucket(rate=2 / 60.0, burst=2, monotonic=time.monotonic)
    assert [bucket.take(), bucket.take()] == [0.0, 0.0]
    assert bucket.take() == pytest.approx(30.0)  # refused: nothing taken
    time.now = 30.0
    assert bucket.take() == 0.0
    assert bucket.take() == pytest.approx(30.0)


def test_an_idle_bucket_refills_only_up_to_its_burst() -> None:
    time = FakeTime()
    bucket = TokenBucket(rate=1.0, burst=3, monotonic=time.monotonic)
    for _ in range(3):
        bucket.take()
    time.now = 1000.0
    assert [bucket.take() for _ in range(4)][:3] == [0.0, 0.0, 0.0]
    assert bucket.take() > 0


def test_waiting_sleeps_just_enough_to_keep_the_rate() -> None:
    time = FakeTime()
    bucket = TokenBucket(rate=15.0, burst=15, monotonic=time.monotonic)
    slept = sum(bucket.wait(time.sleep) for _ in range(45))
    assert len(time.sleeps) == 30  # the first 15 go at once
    assert slept == pytest.approx(2.0) == pytest.approx(sum(time.sleeps))


@pytest.mark.parametrize(("rate", "burst"), [pytest.param(0.0, 1, id="no-rate"),
                                             pytest.param(1.0, 0, id="no-burst")])
def test_a_bucket_that_could_never_give_a_token_is_refused(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="token bucket"):
        TokenBucket(rate, burst)
