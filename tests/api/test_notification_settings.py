"""What a member chooses to hear of (GET/PATCH notification-settings): every kind and channel,
snooze, quiet hours, time zone, digest, dormancy and windows; partial changes; boundaries."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from feeds_server import limits
from feeds_server.domain import preferences as p
from feeds_server.notify.emails import digest_unsubscribe_token, unsubscribe_token
from tests import factory

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def team(client, settings):  # type: ignore[no-untyped-def]
    owner, ann, bob, org = await factory.team(client, settings.mail_dir)
    return owner, ann, bob, org


def url(org) -> str:  # type: ignore[no-untyped-def]
    return f"{factory.org_path(org)}/notification-settings"


async def test_defaults_show_the_whole_matrix_and_the_orgs_zone(team):
    owner, ann, bob, org = team
    r = await ann.get(url(org))
    assert r.status_code == 200, r.text
    s = r.json()["settings"]
    assert s["channels"] == p.matrix(p.Preferences())
    assert s["mention_emails"] is True and s["batch_window_seconds"] == limits.DEFAULT_MENTION_BATCH_SECONDS
    assert s["snooze_until"] is None and s["quiet_hours"] is None and s["time_zone"] is None
    assert s["effective_time_zone"] == "UTC"
    assert s["digest"] == {"frequency": "off", "hour": 8, "weekday": 0}
    assert s["dormant_days"] is None and s["record_merge_seconds"] == limits.DEFAULT_RECORD_MERGE_SECONDS


async def test_patch_is_partial_and_channels_merge(team):
    owner, ann, bob, org = team
    r = await ann.patch(url(org), json={"channels": {"group_post": {"push": True}}})
    assert r.status_code == 200, r.text
    r = await ann.patch(url(org), json={"channels": {"reaction": {"in_app": False}}, "batch_window_seconds": 0})
    s = r.json()["settings"]
    assert s["channels"]["group_post"] == {"in_app": False, "email": False, "push": True}
    assert s["channels"]["reaction"]["in_app"] is False and s["batch_window_seconds"] == 0
    assert s["channels"]["mention"] == {"in_app": True, "email": True, "push": True}
    assert (await ann.get(url(org))).json()["settings"] == s
    assert (await bob.get(url(org))).json()["settings"]["channels"]["group_post"]["push"] is False, "one member's choice only"
    r = await ann.patch(url(org), json={"channels": None, "mention_emails": None, "digest": None})
    assert r.status_code == 200 and r.json()["settings"] == s, "null where null clears nothing changes nothing"


async def test_the_mention_email_channel_is_the_mention_emails_setting(team):
    owner, ann, bob, org = team
    s = (await ann.patch(url(org), json={"channels": {"mention": {"email": False}}})).json()["settings"]
    assert s["mention_emails"] is False and s["channels"]["mention"]["email"] is False
    s = (await ann.patch(url(org), json={"mention_emails": True})).json()["settings"]
    assert s["channels"]["mention"]["email"] is True


@pytest.mark.parametrize("channels", [{"nope": {"email": True}}, {"digest": {"push": True}}, {"mention": {"fax": True}}])
async def test_unknown_kinds_and_channels_are_refused(team, channels):
    owner, ann, bob, org = team
    r = await ann.patch(url(org), json={"channels": channels})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_channels"


async def test_time_zone_must_be_an_iana_zone_and_null_returns_to_the_orgs(team):
    owner, ann, bob, org = team
    r = await ann.patch(url(org), json={"time_zone": "Mars/Olympus"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_time_zone"
    s = (await ann.patch(url(org), json={"time_zone": "Europe/Paris"})).json()["settings"]
    assert s["time_zone"] == "Europe/Paris" and s["effective_time_zone"] == "Europe/Paris"
    s = (await ann.patch(url(org), json={"time_zone": None})).json()["settings"]
    assert s["time_zone"] is None and s["effective_time_zone"] == "UTC"


async def test_quiet_hours_are_hh_mm_and_null_clears_them(team):
    owner, ann, bob, org = team
    s = (await ann.patch(url(org), json={"quiet_hours": {"start": "22:00", "end": "07:30"}})).json()["settings"]
    assert s["quiet_hours"] == {"start": "22:00", "end": "07:30"}
    for bad in ({"start": "24:00", "end": "07:00"}, {"start": "7:00", "end": "08:00"}, {"start": "09:00", "end": "09:00"}):
        r = await ann.patch(url(org), json={"quiet_hours": bad})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_quiet_hours", bad
    s = (await ann.patch(url(org), json={"quiet_hours": None})).json()["settings"]
    assert s["quiet_hours"] is None


async def test_snooze_until_a_time_with_its_offset_then_wake(team):
    owner, ann, bob, org = team
    until = (datetime.now(timezone.utc) + timedelta(hours=3)).replace(microsecond=0)
    s = (await ann.patch(url(org), json={"snooze_until": until.isoformat()})).json()["settings"]
    assert datetime.fromisoformat(s["snooze_until"].replace("Z", "+00:00")) == until
    r = await ann.patch(url(org), json={"snooze_until": "2026-01-01T10:00:00"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_snooze_until"
    r = await ann.patch(url(org), json={"snooze_until": (datetime.now(timezone.utc) + timedelta(days=limits.MAX_SNOOZE_DAYS + 1)).isoformat()})
    assert r.status_code == 422 and r.json()["error"]["code"] == "snooze_too_long"
    s = (await ann.patch(url(org), json={"snooze_until": None})).json()["settings"]
    assert s["snooze_until"] is None


@pytest.mark.parametrize("until", ["9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00+05:00"])
async def test_snooze_until_beyond_what_utc_can_hold_is_422_not_500(team, until):
    owner, ann, bob, org = team
    r = await ann.patch(url(org), json={"snooze_until": until})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_snooze_until", r.text
    assert (await ann.get(url(org))).json()["settings"]["snooze_until"] is None


async def test_digest_dormancy_and_merge_window_boundaries(team):
    owner, ann, bob, org = team
    s = (await ann.patch(url(org), json={"digest": {"frequency": "weekly", "hour": 23, "weekday": 6}})).json()["settings"]
    assert s["digest"] == {"frequency": "weekly", "hour": 23, "weekday": 6}
    s = (await ann.patch(url(org), json={"digest": {"hour": 0}})).json()["settings"]
    assert s["digest"] == {"frequency": "weekly", "hour": 0, "weekday": 6}
    for body in ({"digest": {"hour": 24}}, {"digest": {"weekday": 7}}, {"digest": {"frequency": "hourly"}},
                 {"dormant_days": limits.MIN_DORMANT_DAYS - 1}, {"dormant_days": limits.MAX_DORMANT_DAYS + 1},
                 {"record_merge_seconds": -1}, {"record_merge_seconds": limits.MAX_RECORD_MERGE_SECONDS + 1},
                 {"batch_window_seconds": limits.MAX_MENTION_BATCH_SECONDS + 1}, {"unknown": 1}):
        assert (await ann.patch(url(org), json=body)).status_code == 422, body
    s = (await ann.patch(url(org), json={"dormant_days": limits.MAX_DORMANT_DAYS, "record_merge_seconds": limits.MAX_RECORD_MERGE_SECONDS})).json()["settings"]
    assert s["dormant_days"] == limits.MAX_DORMANT_DAYS and s["record_merge_seconds"] == limits.MAX_RECORD_MERGE_SECONDS
    s = (await ann.patch(url(org), json={"dormant_days": limits.MIN_DORMANT_DAYS, "record_merge_seconds": 0})).json()["settings"]
    assert s["dormant_days"] == limits.MIN_DORMANT_DAYS and s["record_merge_seconds"] == 0
    s = (await ann.patch(url(org), json={"dormant_days": None})).json()["settings"]
    assert s["dormant_days"] is None


async def test_one_click_unsubscribe_turns_every_notification_email_off(team, client, settings):
    owner, ann, bob, org = team
    await ann.patch(url(org), json={"channels": {"private_message": {"email": True}}})
    token = unsubscribe_token(settings.secret_key, org["id"], ann.id)
    assert (await client.get(f"/api/v1/unsubscribe/{token}")).status_code == 200
    assert (await ann.get(url(org))).json()["settings"]["mention_emails"] is True, "a GET changes nothing"
    assert (await client.post(f"/api/v1/unsubscribe/{token}")).status_code == 200
    s = (await ann.get(url(org))).json()["settings"]
    assert s["mention_emails"] is False
    assert not any(channels.get("email") for kind, channels in s["channels"].items() if kind != "digest")
    assert (await client.post("/api/v1/unsubscribe/1.2.bad")).status_code == 404


async def test_digest_one_click_unsubscribe_turns_only_the_digest_off(team, client, settings):
    """Each link stops its own emails only: the digest's link cannot turn notification emails off, nor
    the other way round."""
    owner, ann, bob, org = team
    await ann.patch(url(org), json={"digest": {"frequency": "weekly", "hour": 7, "weekday": 4}})
    token = digest_unsubscribe_token(settings.secret_key, org["id"], ann.id)
    page = await client.get(f"/api/v1/unsubscribe/digest/{token}")
    assert page.status_code == 200 and "<form method=post>" in page.text
    assert (await ann.get(url(org))).json()["settings"]["digest"]["frequency"] == "weekly", "a GET changes nothing"
    mention_token = unsubscribe_token(settings.secret_key, org["id"], ann.id)
    assert (await client.post(f"/api/v1/unsubscribe/digest/{mention_token}")).status_code == 404
    assert (await client.post(f"/api/v1/unsubscribe/{token}")).status_code == 404
    assert (await client.post("/api/v1/unsubscribe/digest/1.2.bad")).status_code == 404
    assert (await client.get("/api/v1/unsubscribe/digest/nothing")).status_code == 404
    assert (await client.post(f"/api/v1/unsubscribe/digest/{token}")).status_code == 200
    s = (await ann.get(url(org))).json()["settings"]
    assert s["digest"] == {"frequency": "off", "hour": 7, "weekday": 4}
    assert s["mention_emails"] is True
    assert (await client.post(f"/api/v1/unsubscribe/digest/{token}")).status_code == 200, "twice is fine"


async def test_the_documented_settings_calls_are_accepted(team):
    """Every body `docs/notifications.md` sends to notification-settings in "Choosing what reaches you"."""
    owner, ann, bob, org = team
    text = (ROOT / "docs" / "notifications.md").read_text()
    section = text[text.index("## Choosing what reaches you"):text.index("## Why you got it")]
    bodies = re.findall(r"-d '(\{.*?\})'", section, flags=re.S)
    assert len(bodies) >= 3
    for body in bodies:
        r = await ann.patch(url(org), json=json.loads(body))
        assert r.status_code == 200, (body, r.text)
