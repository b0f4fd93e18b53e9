"""What a member hears of, on which channel and when: the defaults, their choices, snooze and quiet hours.

Pure: the actions read a member's settings row and mutes, then ask here. Every kind has a default per
channel (the spec's: email only for mentions; push for what is addressed to the person); a member's
`channels` override them one by one. Snooze silences email and push until it ends (in-app items are
kept, unread, so nothing is lost); quiet hours hold email and push until they end, in the member's time
zone (their own, else their org's); in-app is never held.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# Kinds of notification a member can steer.
MENTION = "mention"
PRIVATE_MESSAGE = "private_message"
GROUP_POST = "group_post"
RECORD_OWNED = "record_owned"
RECORD_FOLLOWED = "record_followed"
REACTION = "reaction"
RECORD_DORMANT = "record_dormant"
DIGEST = "digest"
KINDS = (MENTION, PRIVATE_MESSAGE, GROUP_POST, RECORD_OWNED, RECORD_FOLLOWED, REACTION, RECORD_DORMANT, DIGEST)

# Channels.
IN_APP = "in_app"
EMAIL = "email"
PUSH = "push"
CHANNELS = (IN_APP, EMAIL, PUSH)

# The defaults; a channel a kind does not list does not apply to it (a digest is only ever an email,
# and is on when the member picks a frequency).
DEFAULTS: Mapping[str, Mapping[str, bool]] = {
    MENTION: {IN_APP: True, EMAIL: True, PUSH: True},
    PRIVATE_MESSAGE: {IN_APP: True, EMAIL: False, PUSH: True},
    GROUP_POST: {IN_APP: False, EMAIL: False, PUSH: False},
    RECORD_OWNED: {IN_APP: True, EMAIL: False, PUSH: False},
    RECORD_FOLLOWED: {IN_APP: True, EMAIL: False, PUSH: False},
    REACTION: {IN_APP: True, EMAIL: False, PUSH: False},
    RECORD_DORMANT: {IN_APP: True, EMAIL: False, PUSH: False},
    DIGEST: {EMAIL: True},
}

DIGEST_OFF, DIGEST_DAILY, DIGEST_WEEKLY = "off", "daily", "weekly"
DIGEST_FREQUENCIES = (DIGEST_OFF, DIGEST_DAILY, DIGEST_WEEKLY)
MINUTES_PER_DAY = 24 * 60


class SettingsRow(Protocol):
    """The columns of `notification_settings` read here (store/models/notify.py)."""

    mention_emails: bool
    channels: dict[str, Any]
    snooze_until: datetime | None
    quiet_start_minute: int | None
    quiet_end_minute: int | None
    time_zone: str | None


def zone(name: str | None, fallback: str = "UTC") -> ZoneInfo:
    """The IANA zone `name`, else `fallback`, else UTC: a zone removed from the system's database
    after it was stored never stops a notification."""
    for candidate in (name, fallback, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


@dataclass(frozen=True)
class Preferences:
    """One member's choices in one org; `Preferences()` is the defaults."""

    channels: Mapping[str, Mapping[str, bool]] = field(default_factory=dict)
    snooze_until: datetime | None = None
    quiet: tuple[int, int] | None = None  # (start, end) minutes after local midnight; may wrap midnight
    time_zone: str = "UTC"
    # A burst of changes to one record within this many seconds is one notification (0: never merged).
    record_merge_seconds: int = 60
    # Emails of notifications wait this many seconds to go out together (0: each at once).
    batch_window_seconds: int = 60

    @classmethod
    def of(cls, row: SettingsRow | None, org_time_zone: str) -> "Preferences":
        """From a settings row (None: the defaults), in the member's zone or else the org's."""
        if row is None:
            return cls(time_zone=org_time_zone)
        channels = {k: dict(v) for k, v in (row.channels or {}).items() if isinstance(v, Mapping)}
        channels.setdefault(MENTION, {})[EMAIL] = bool(row.mention_emails)
        quiet = None
        if row.quiet_start_minute is not None and row.quiet_end_minute is not None and row.quiet_start_minute != row.quiet_end_minute:
            quiet = (row.quiet_start_minute, row.quiet_end_minute)
        merge = getattr(row, "record_merge_seconds", None)
        window = getattr(row, "batch_window_seconds", None)
        return cls(
            channels=channels, snooze_until=row.snooze_until, quiet=quiet, time_zone=row.time_zone or org_time_zone,
            record_merge_seconds=cls.record_merge_seconds if merge is None else merge,
            batch_window_seconds=cls.batch_window_seconds if window is None else window,
        )

    def wants(self, kind: str, channel: str) -> bool:
        """Whether this kind reaches the member on this channel at all (their choice, else the default)."""
        default = DEFAULTS.get(kind, {}).get(channel)
        if default is None:
            return False
        chosen = self.channels.get(kind, {}).get(channel)
        return default if chosen is None else bool(chosen)

    def snoozed(self, now: datetime) -> bool:
        return self.snooze_until is not None and now < self.snooze_until

    def quiet_until(self, now: datetime) -> datetime | None:
        """The end of the quiet hours `now` falls in (UTC), or None when it falls in none."""
        if self.quiet is None:
            return None
        start, end = self.quiet
        tz = zone(self.time_zone)
        local = now.astimezone(tz)
        minute = local.hour * 60 + local.minute
        inside = start <= minute < end if start < end else (minute >= start or minute < end)
        if not inside:
            return None
        day = local.date() if minute < end else local.date() + timedelta(days=1)
        ends = datetime(day.year, day.month, day.day, end // 60, end % 60, tzinfo=tz)
        return ends.astimezone(timezone.utc)

    def send_at(self, kind: str, channel: str, now: datetime) -> datetime | None:
        """When to deliver on `channel`: None for not at all (turned off, or email or push while
        snoozed), otherwise `now`, or the end of the quiet hours for email and push."""
        if not self.wants(kind, channel):
            return None
        if channel == IN_APP:
            return now
        if self.snoozed(now):
            return None
        return self.quiet_until(now) or now


def check_channels(value: Mapping[str, Any]) -> dict[str, dict[str, bool]]:
    """A member's `{"kind": {"channel": bool}}` as given through the API: ValueError naming the first
    kind or channel that does not exist or does not apply to its kind (a digest is only an email)."""
    out: dict[str, dict[str, bool]] = {}
    for kind, channels in value.items():
        if kind not in DEFAULTS:
            raise ValueError(f"unknown kind {kind!r}")
        if not isinstance(channels, Mapping):
            raise ValueError(f"{kind}: expected an object of channels")
        for channel, on in channels.items():
            if channel not in DEFAULTS[kind]:
                raise ValueError(f"{kind}: channel {channel!r} does not apply")
            if not isinstance(on, bool):
                raise ValueError(f"{kind}.{channel}: expected true or false")
            out.setdefault(kind, {})[channel] = on
    return out


def matrix(prefs: Preferences) -> dict[str, dict[str, bool]]:
    """Every kind's every applicable channel, on or off, as the member's settings show them."""
    return {kind: {channel: prefs.wants(kind, channel) for channel in DEFAULTS[kind]} for kind in KINDS}
