"""The one backoff of the email outbox and CRM webhooks (domain/retry.py): doubling, capped, equal jitter."""

import pytest

from feeds_server import limits
from feeds_server.domain.retry import backoff_seconds


def test_first_attempt_waits_between_half_the_base_and_the_base():
    assert backoff_seconds(1, 2.0, 3600.0, draw=0.0) == 1.0
    assert backoff_seconds(1, 2.0, 3600.0, draw=0.999) == pytest.approx(1.999)
    assert all(1.0 <= backoff_seconds(1, 2.0, 3600.0) < 2.0 for _ in range(100))


def test_the_ceiling_doubles_with_each_attempt():
    assert [backoff_seconds(n, 2.0, 3600.0, draw=0.0) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]


def test_the_cap_bounds_the_delay_however_many_attempts():
    # 2 s doubling reaches 4096 s at the 12th attempt: the first ceiling above an hour.
    assert backoff_seconds(11, 2.0, 3600.0, draw=0.0) == 1024.0
    assert backoff_seconds(12, 2.0, 3600.0, draw=0.0) == 1800.0
    assert backoff_seconds(1000, 2.0, 3600.0, draw=0.0) == 1800.0
    assert all(1800.0 <= backoff_seconds(1000, 2.0, 3600.0) < 3600.0 for _ in range(100))


def test_jitter_spreads_retries_that_failed_together():
    assert len({backoff_seconds(5, 2.0, 3600.0) for _ in range(20)}) > 1


@pytest.mark.parametrize(
    "base,cap,attempts",
    [
        (limits.EMAIL_RETRY_BASE_SECONDS, limits.EMAIL_RETRY_MAX_SECONDS, limits.EMAIL_MAX_ATTEMPTS),
        (limits.WEBHOOK_RETRY_BASE_SECONDS, limits.WEBHOOK_RETRY_MAX_SECONDS, limits.WEBHOOK_MAX_ATTEMPTS),
    ],
)
def test_the_workers_limits_stay_within_the_cap_up_to_their_last_attempt(base, cap, attempts):
    assert backoff_seconds(1, base, cap, draw=0.0) == base / 2
    assert cap / 2 <= backoff_seconds(attempts, base, cap) <= cap
