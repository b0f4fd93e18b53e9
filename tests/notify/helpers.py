"""Steps the notification pipeline tests share: moving the clock on and posting."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests import factory


def later(services, delta: timedelta) -> None:  # type: ignore[no-untyped-def]
    """Move the services' clock on, so batching windows and snoozes can pass without waiting."""
    now = services.clock()
    services.clock = lambda: now + delta


async def post(actor: factory.Actor, org: dict[str, Any], body: str, **extra: Any) -> dict[str, Any]:
    r = await actor.post(f"{factory.org_path(org)}/posts", json={"body": body, **extra})
    assert r.status_code == 201, r.text
    return r.json()["post"]
