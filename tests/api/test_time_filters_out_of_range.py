"""A time a client sends with an offset but beyond what UTC can hold (year 9999 west of Greenwich,
year 1 east of it) is refused with 422, never a 500: the notification settings' snooze (its own test)
and the `from` / `to` filters of the feeds and the audit log."""

from __future__ import annotations

import pytest

from tests import factory

OUT_OF_RANGE = ["9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00+05:00"]


@pytest.mark.parametrize("value", OUT_OF_RANGE)
@pytest.mark.parametrize("name", ["from", "to"])
async def test_feed_and_audit_time_filters_out_of_utc_range_are_422(client, settings, name, value):
    owner, ann, bob, org = await factory.team(client, settings.mail_dir)
    base = factory.org_path(org)
    for path in ("/feed", "/audit"):
        r = await owner.get(base + path, params={name: value})
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation_failed", (path, r.text)
    assert (await owner.get(base + "/feed", params={name: "2026-01-01T00:00:00+05:00"})).status_code == 200
