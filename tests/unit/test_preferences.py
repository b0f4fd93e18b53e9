"""What a member hears of, on which channel and when (domain/preferences.py): defaults, their
choices, snooze, quiet hours in their zone (across midnight and a change of clocks)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from feeds_server.domain import preferences as p
from feeds_server.domain.preferences import Preferences

UTC = timezone.utc


@dataclass
class Row:
    """The settings columns the domain reads."""

    mention_emails: bool = True
    channels: dict[str, Any] | None = None
    snooze_until: datetime | None = None
    quiet_start_minute: int | None = None
    quiet_end_minute: int | None = None
    time_zone: str | None = None
    batch_window_seconds: int = 60
    record_merge_seconds: int = 60


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_defaults_are_email_for_mentions_only_and_push_for_what_is_addressed_to_you():
    prefs = Preferences.of(None, "UTC")
    assert prefs.wants(p.MENTION, p.EMAIL) and prefs.wants(p.MENTION, p.PUSH) and prefs.wants(p.MENTION, p.IN_APP)
    assert prefs.wants(p.PRIVATE_MESSAGE, p.PUSH) and not prefs.wants(p.PRIVATE_MESSAGE, p.EMAIL)
    assert [k for k in p.KINDS if prefs.wants(k, p.EMAIL)] == [p.MENTION, p.DIGEST]
    assert not any(prefs.wants(p.GROUP_POST, c) for c in p.CHANNELS)
    assert not prefs.wants(p.DIGEST, p.PUSH), "a digest is only ever an email"


def test_choices_override_defaults_one_by_one_and_the_mention_email_column_wins():
    row = Row(mention_emails=False, channels={p.GROUP_POST: {p.PUSH: True}, p.REACTION: {p.IN_APP: False}, p.MENTION: {p.EMAIL: True}})
    prefs = Preferences.of(row, "UTC")
    assert prefs.wants(p.GROUP_POST, p.PUSH) and not prefs.wants(p.GROUP_POST, p.IN_APP)
    assert not prefs.wants(p.REACTION, p.IN_APP)
    assert not prefs.wants(p.MENTION, p.EMAIL), "one-click unsubscribe turns the column off: it decides"
    matrix = p.matrix(prefs)
    assert set(matrix) == set(p.KINDS) and matrix[p.DIGEST] == {p.EMAIL: True}
    assert matrix[p.GROUP_POST] == {p.IN_APP: False, p.EMAIL: False, p.PUSH: True}


def test_check_channels_names_what_does_not_exist():
    assert p.check_channels({"mention": {"push": False}}) == {"mention": {"push": False}}
    for bad in ({"nope": {"email": True}}, {"digest": {"push": True}}, {"mention": {"email": "yes"}}, {"mention": True}):
        with pytest.raises(ValueError):
            p.check_channels(bad)


def test_snooze_holds_email_and_push_but_not_in_app_until_it_ends():
    now = at(2026, 3, 2, 12)
    prefs = Preferences.of(Row(snooze_until=now + timedelta(hours=1)), "UTC")
    assert prefs.send_at(p.MENTION, p.IN_APP, now) == now
    assert prefs.send_at(p.MENTION, p.EMAIL, now) is None and prefs.send_at(p.MENTION, p.PUSH, now) is None
    later = now + timedelta(hours=1)
    assert prefs.send_at(p.MENTION, p.EMAIL, later) == later, "the snooze has ended"


def test_a_kind_turned_off_is_not_sent_at_all():
    prefs = Preferences.of(Row(channels={p.MENTION: {p.PUSH: False}}), "UTC")
    assert prefs.send_at(p.MENTION, p.PUSH, at(2026, 1, 1)) is None


def test_quiet_hours_wrapping_midnight_hold_email_and_push_until_they_end():
    prefs = Preferences.of(Row(quiet_start_minute=22 * 60, quiet_end_minute=7 * 60, time_zone="UTC"), "UTC")
    evening, night, morning, day = at(2026, 1, 5, 23, 30), at(2026, 1, 6, 3), at(2026, 1, 6, 7), at(2026, 1, 6, 12)
    assert prefs.send_at(p.MENTION, p.EMAIL, evening) == at(2026, 1, 6, 7)
    assert prefs.send_at(p.MENTION, p.PUSH, night) == at(2026, 1, 6, 7)
    assert prefs.send_at(p.MENTION, p.IN_APP, night) == night, "in-app is never held"
    assert prefs.send_at(p.MENTION, p.EMAIL, morning) == morning, "the end itself is outside"
    assert prefs.send_at(p.MENTION, p.EMAIL, day) == day
    assert prefs.send_at(p.MENTION, p.EMAIL, at(2026, 1, 5, 22)) == at(2026, 1, 6, 7), "the start itself is inside"


def test_quiet_hours_within_one_day():
    prefs = Preferences.of(Row(quiet_start_minute=12 * 60, quiet_end_minute=14 * 60), "UTC")
    assert prefs.send_at(p.MENTION, p.EMAIL, at(2026, 1, 5, 13)) == at(2026, 1, 5, 14)
    assert prefs.send_at(p.MENTION, p.EMAIL, at(2026, 1, 5, 15)) == at(2026, 1, 5, 15)


def test_quiet_hours_are_read_in_the_members_zone_else_the_orgs():
    row = Row(quiet_start_minute=22 * 60, quiet_end_minute=7 * 60)
    # 21:30 UTC on a winter day is 22:30 in Paris: inside; 06:00 UTC is 07:00 in Paris: outside.
    paris_org = Preferences.of(row, "Europe/Paris")
    assert paris_org.send_at(p.MENTION, p.EMAIL, at(2026, 1, 5, 21, 30)) == at(2026, 1, 6, 6)
    assert paris_org.send_at(p.MENTION, p.EMAIL, at(2026, 1, 6, 6)) == at(2026, 1, 6, 6)
    own = Preferences.of(Row(quiet_start_minute=22 * 60, quiet_end_minute=7 * 60, time_zone="America/New_York"), "Europe/Paris")
    assert own.time_zone == "America/New_York"
    assert own.send_at(p.MENTION, p.EMAIL, at(2026, 1, 6, 3)) == at(2026, 1, 6, 12)  # 22:00 in New York


def test_quiet_hours_on_the_day_paris_moves_its_clocks_forward():
    """29 March 2026: 02:00 becomes 03:00 in Paris (UTC+1 to UTC+2). Quiet 22:00–07:00 ends at
    07:00 summer time, 05:00 UTC, not 06:00 UTC."""
    prefs = Preferences.of(Row(quiet_start_minute=22 * 60, quiet_end_minute=7 * 60, time_zone="Europe/Paris"), "UTC")
    assert prefs.send_at(p.MENTION, p.EMAIL, at(2026, 3, 28, 23)) == at(2026, 3, 29, 5)
    assert prefs.send_at(p.MENTION, p.EMAIL, at(2026, 3, 29, 5, 30)) == at(2026, 3, 29, 5, 30)
    # And the autumn change (25 October 2026, UTC+2 to UTC+1): 07:00 local is 06:00 UTC.
    assert prefs.send_at(p.MENTION, p.EMAIL, at(2026, 10, 24, 23)) == at(2026, 10, 25, 6)


def test_a_zone_that_does_not_exist_falls_back_to_the_orgs_then_utc():
    assert p.zone("Mars/Olympus", "Europe/Paris").key == "Europe/Paris"
    assert p.zone("Mars/Olympus", "Nowhere/Else").key == "UTC"
    assert p.zone(None, "Europe/Paris").key == "Europe/Paris"
    prefs = Preferences.of(Row(quiet_start_minute=22 * 60, quiet_end_minute=7 * 60, time_zone="Mars/Olympus"), "Also/Wrong")
    assert prefs.send_at(p.MENTION, p.EMAIL, at(2026, 1, 5, 23)) == at(2026, 1, 6, 7), "read in UTC"


def test_equal_start_and_end_mean_no_quiet_hours():
    prefs = Preferences.of(Row(quiet_start_minute=600, quiet_end_minute=600), "UTC")
    assert prefs.quiet is None
