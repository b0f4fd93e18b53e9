"""Digest period boundaries: a local hour, daily or weekly, in a zone, across changes of clocks."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from feeds_server.domain import digest_periods as dp
from feeds_server.notify.digests import dedupe_key, plan

UTC = timezone.utc
PARIS = ZoneInfo("Europe/Paris")
NY = ZoneInfo("America/New_York")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_daily_boundary_is_the_local_hour_in_the_zone():
    # 8:00 in Paris is 7:00 UTC in winter.
    assert dp.latest_boundary(utc(2026, 12, 7, 7, 0), dp.DAILY, 8, 0, PARIS) == utc(2026, 12, 7, 7, 0)
    assert dp.latest_boundary(utc(2026, 12, 7, 6, 59), dp.DAILY, 8, 0, PARIS) == utc(2026, 12, 6, 7, 0)
    assert dp.next_boundary(utc(2026, 12, 7, 7, 0), dp.DAILY, 8, 0, PARIS) == utc(2026, 12, 8, 7, 0)
    assert dp.next_boundary(utc(2026, 12, 7, 6, 59), dp.DAILY, 8, 0, PARIS) == utc(2026, 12, 7, 7, 0)


def test_a_late_hour_west_of_utc_falls_on_the_next_utc_day():
    # 22:00 in New York (winter, UTC-5) is 03:00 UTC the next day.
    assert dp.latest_boundary(utc(2026, 12, 8, 4, 0), dp.DAILY, 22, 0, NY) == utc(2026, 12, 8, 3, 0)
    assert dp.next_boundary(utc(2026, 12, 8, 2, 0), dp.DAILY, 22, 0, NY) == utc(2026, 12, 8, 3, 0)


def test_weekly_on_the_chosen_weekday():
    # 7 Dec 2026 is a Monday; weekday 2 = Wednesday 9 Dec, 8:00 Paris = 7:00 UTC.
    assert dp.next_boundary(utc(2026, 12, 7, 12), dp.WEEKLY, 8, 2, PARIS) == utc(2026, 12, 9, 7)
    assert dp.latest_boundary(utc(2026, 12, 7, 12), dp.WEEKLY, 8, 2, PARIS) == utc(2026, 12, 2, 7)
    assert dp.previous_boundary(utc(2026, 12, 9, 7), dp.WEEKLY, 8, 2, PARIS) == utc(2026, 12, 2, 7)


def test_daily_periods_are_23_and_25_hours_on_the_days_clocks_change():
    # Paris: summer time from 29 Mar 2026 (2:00 -> 3:00), back on 25 Oct 2026 (3:00 -> 2:00).
    spring = dp.next_boundary(utc(2026, 3, 28, 12), dp.DAILY, 8, 0, PARIS)
    assert spring == utc(2026, 3, 29, 6)  # 8:00 CEST
    assert spring - dp.previous_boundary(spring, dp.DAILY, 8, 0, PARIS) == timedelta(hours=23)
    autumn = dp.next_boundary(utc(2026, 10, 24, 12), dp.DAILY, 8, 0, PARIS)
    assert autumn == utc(2026, 10, 25, 7)  # 8:00 CET
    assert autumn - dp.previous_boundary(autumn, dp.DAILY, 8, 0, PARIS) == timedelta(hours=25)


def test_an_hour_that_does_not_exist_or_happens_twice_gives_one_boundary_that_day():
    # 2:00 does not exist in Paris on 29 Mar 2026, and happens twice on 25 Oct 2026.
    gap = [dp.next_boundary(utc(2026, 3, 27, 12) + timedelta(days=i), dp.DAILY, 2, 0, PARIS) for i in range(3)]
    assert gap == sorted(set(gap)) and len(gap) == 3
    twice = dp.next_boundary(utc(2026, 10, 24, 12), dp.DAILY, 2, 0, PARIS)
    assert twice == utc(2026, 10, 25, 0)  # the first 2:00 (CEST)
    assert dp.next_boundary(twice, dp.DAILY, 2, 0, PARIS) == utc(2026, 10, 26, 1)


def test_boundaries_strictly_increase_through_a_year_of_clock_changes():
    at = utc(2026, 1, 1)
    for _ in range(400):
        following = dp.next_boundary(at, dp.DAILY, 2, 0, PARIS)
        assert timedelta(hours=23) <= following - at or at == utc(2026, 1, 1)
        assert dp.latest_boundary(following, dp.DAILY, 2, 0, PARIS) == following
        at = following


def test_a_period_covers_since_the_last_digest_at_most_one_period():
    end = utc(2026, 12, 8, 7)
    assert dp.period_ending(end, None, dp.DAILY, 8, 0, PARIS) == (utc(2026, 12, 7, 7), end)
    assert dp.period_ending(end, utc(2026, 12, 7, 15), dp.DAILY, 8, 0, PARIS) == (utc(2026, 12, 7, 15), end)
    assert dp.period_ending(end, utc(2026, 12, 1), dp.DAILY, 8, 0, PARIS) == (utc(2026, 12, 7, 7), end)


def test_unknown_frequency_or_hour_is_refused():
    with pytest.raises(ValueError):
        dp.next_boundary(utc(2026, 1, 1), "hourly", 8, 0, PARIS)
    with pytest.raises(ValueError):
        dp.next_boundary(utc(2026, 1, 1), dp.DAILY, 24, 0, PARIS)


def _row(**kw):  # type: ignore[no-untyped-def]
    base = dict(digest="daily", digest_hour=8, digest_weekday=0, time_zone=None, digest_sent_until=None, digest_due_at=None,
                mention_emails=True, channels={}, snooze_until=None, quiet_start_minute=None, quiet_end_minute=None)
    return SimpleNamespace(**{**base, **kw})


def test_plan_of_a_digest_just_turned_on_starts_the_first_period_now():
    now = utc(2026, 12, 7, 12)
    p = plan(_row(), "Europe/Paris", now)
    assert p.period is None and p.sent_until == now and p.due_at == utc(2026, 12, 8, 7)
    due = plan(_row(digest_sent_until=now, digest_due_at=p.due_at), "Europe/Paris", p.due_at)
    assert due.period == (now, p.due_at) and due.sent_until == p.due_at and due.due_at == utc(2026, 12, 9, 7)
    assert due.send_at == p.due_at


def test_plan_waits_for_quiet_hours_and_skips_while_snoozed():
    end = utc(2026, 12, 8, 7)
    quiet = plan(_row(digest_sent_until=end - timedelta(days=1), digest_due_at=end, quiet_start_minute=7 * 60, quiet_end_minute=9 * 60),
                 "Europe/Paris", end)
    assert quiet.send_at == utc(2026, 12, 8, 8)
    snoozed = plan(_row(digest_sent_until=end - timedelta(days=1), digest_due_at=end, snooze_until=end + timedelta(hours=1)), "Europe/Paris", end)
    assert snoozed.period is not None and snoozed.send_at is None and snoozed.sent_until == end


def test_dedupe_key_names_org_person_and_period_end_in_utc():
    assert dedupe_key(3, 9, datetime(2026, 12, 8, 8, tzinfo=PARIS)) == "digest:3:9:2026-12-08T07:00:00Z"
