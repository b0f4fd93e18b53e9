"""When digests fall due: period boundaries at a local hour, daily or on one weekday, in a time zone.

Pure. A boundary is the chosen hour on a local calendar day, so a daily period is 23, 24 or 25 hours
long across a change of clocks, and "8:00" stays 8:00 on the wall all year. An hour that does not
exist on the day clocks go forward is read with the offset before the change (2:30 in Paris on that
day is 3:30 summer time); an hour that happens twice is its first occurrence. Each local day has one
boundary at most, so boundaries in UTC strictly increase.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

DAILY, WEEKLY = "daily", "weekly"
FREQUENCIES = (DAILY, WEEKLY)


def _boundary(day: date, hour: int, tz: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=tz).astimezone(timezone.utc)


def _is_day(day: date, frequency: str, weekday: int) -> bool:
    return frequency == DAILY or day.weekday() == weekday


def _check(frequency: str, hour: int, weekday: int) -> None:
    if frequency not in FREQUENCIES:
        raise ValueError(f"no periods for frequency {frequency!r}")
    if not 0 <= hour <= 23 or not 0 <= weekday <= 6:
        raise ValueError("hour is 0-23 and weekday 0-6 (Monday = 0)")


def latest_boundary(now: datetime, frequency: str, hour: int, weekday: int, tz: ZoneInfo) -> datetime:
    """The last boundary at or before `now` (UTC)."""
    _check(frequency, hour, weekday)
    today = now.astimezone(tz).date()
    # From tomorrow back: a boundary shifted by a change of clocks may sit on either side of midnight.
    for back in range(-1, 16):
        day = today - timedelta(days=back)
        if _is_day(day, frequency, weekday):
            at = _boundary(day, hour, tz)
            if at <= now:
                return at
    raise AssertionError("a boundary is at most two weeks back")


def next_boundary(after: datetime, frequency: str, hour: int, weekday: int, tz: ZoneInfo) -> datetime:
    """The first boundary strictly after `after` (UTC)."""
    _check(frequency, hour, weekday)
    today = after.astimezone(tz).date()
    for ahead in range(-1, 16):
        day = today + timedelta(days=ahead)
        if _is_day(day, frequency, weekday):
            at = _boundary(day, hour, tz)
            if at > after:
                return at
    raise AssertionError("a boundary is at most two weeks ahead")


def previous_boundary(boundary: datetime, frequency: str, hour: int, weekday: int, tz: ZoneInfo) -> datetime:
    """The boundary one period before `boundary`: where a full period ending there starts."""
    return latest_boundary(boundary - timedelta(microseconds=1), frequency, hour, weekday, tz)


def period_ending(end: datetime, since: datetime | None, frequency: str, hour: int, weekday: int, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The period a digest due at `end` covers: since the last one (`since`), at most one period.

    A digest just turned on covers the time since then; one that was not sent for a while (the
    worker was down) covers the last period, not the whole gap.
    """
    start = previous_boundary(end, frequency, hour, weekday, tz)
    if since is not None and start < since < end:
        start = since
    return start, end


def iso_utc(at: datetime) -> str:
    """`2026-03-29T06:00:00Z`: how a period's end is named in a digest's dedupe key."""
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
