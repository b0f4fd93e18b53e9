"""The connect check under a crowd: one read per batch, batches as large as what arrives during a
read, correct answers for every connect, and no connect left waiting (feeds_server/realtime/admission.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select, update

from feeds_server.realtime.admission import SPACING, Admissions
from feeds_server.store.base import utcnow
from feeds_server.store.models import AuthToken, Org
from feeds_server.store.scope import account_session
from tests import factory


class CountedAdmissions(Admissions):
    """Counts the database reads; the first `held` reads wait for `gate` before reading, and the
    first `failing` reads fail as a lost connection would."""

    def __init__(self, services: Any, held: int = 0, failing: int = 0) -> None:
        super().__init__(services)
        self.reads: list[int] = []  # batch sizes, in the order the reads started
        self.started: list[float] = []  # when each read started (loop time)
        self.gate = asyncio.Event()
        self.held, self.failing = held, failing

    async def _read_batch(self, org_id: int, batch: Any) -> None:
        self.reads.append(len(batch.waiting))
        self.started.append(asyncio.get_running_loop().time())
        if len(self.reads) <= self.held:
            await self.gate.wait()
        if len(self.reads) <= self.failing:
            for _, _, done in batch.waiting:
                done.set_exception(ConnectionError("lost"))
            return
        await super()._read_batch(org_id, batch)


async def _sign_ins(client, services) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """An org with its admin (two sign-ins, one then revoked) and an outsider's sign-in."""
    admin = await factory.sign_up(client)
    slug = (await factory.create_org(admin))["slug"]
    await factory.sign_in(client, admin.email)
    outsider = await factory.sign_up(client)
    async with account_session(services.sessions) as s:
        org_id = (await s.execute(select(Org.id).where(Org.slug == slug))).scalar_one()
        rows = (await s.execute(select(AuthToken.id, AuthToken.user_id).order_by(AuthToken.id))).all()
        admin_tokens = [tid for tid, uid in rows if uid == admin.id]
        outsider_token = next(tid for tid, uid in rows if uid == outsider.id)
        await s.execute(update(AuthToken).where(AuthToken.id == admin_tokens[1]).values(revoked_at=utcnow()))
    return {"org": org_id, "user": admin.id, "live": admin_tokens[0], "revoked": admin_tokens[1],
            "outsider": (outsider.id, outsider_token)}


async def _one_read_in_flight(adm: CountedAdmissions, ids: dict[str, Any]) -> asyncio.Future[Any]:
    """A first connect whose read has started (and waits at the gate)."""
    first = asyncio.ensure_future(adm.check(ids["org"], ids["user"], ids["live"]))
    while not adm.reads:
        await asyncio.sleep(0.001)
    return first


async def test_a_crowd_is_read_in_few_batches_and_each_connect_gets_its_own_answer(client, services):  # type: ignore[no-untyped-def]
    ids = await _sign_ins(client, services)
    adm = CountedAdmissions(services)
    outsider_user, outsider_token = ids["outsider"]
    checks = []
    for i in range(300):
        if i % 3 == 0:
            checks.append(adm.check(ids["org"], ids["user"], ids["live"]))
        elif i % 3 == 1:
            checks.append(adm.check(ids["org"], ids["user"], ids["revoked"]))
        else:
            checks.append(adm.check(ids["org"], outsider_user, outsider_token))
    answers = await asyncio.gather(*checks)
    assert all(a is not None for a in answers[0::3])
    assert all(a is None for a in answers[1::3])  # signed out
    assert all(a is None for a in answers[2::3])  # not a member of the org
    assert sum(adm.reads) == 300 and len(adm.reads) <= 3
    await adm.close()


async def test_connects_arriving_during_a_read_wait_for_it_then_go_in_one_batch(client, services):  # type: ignore[no-untyped-def]
    ids = await _sign_ins(client, services)
    adm = CountedAdmissions(services, held=1)
    first = await _one_read_in_flight(adm, ids)
    later = [asyncio.ensure_future(adm.check(ids["org"], ids["user"], ids["live"])) for _ in range(50)]
    await asyncio.sleep(0.05)  # far past the batching window: still waiting for the read in flight
    assert adm.reads == [1] and not any(f.done() for f in [first, *later])
    adm.gate.set()
    answers = await asyncio.gather(first, *later)
    assert all(a is not None for a in answers)
    assert adm.reads == [1, 50]
    await adm.close()


async def test_reads_of_one_org_are_spaced_so_a_crowd_fills_each_batch(client, services):  # type: ignore[no-untyped-def]
    ids = await _sign_ins(client, services)
    adm = CountedAdmissions(services)
    assert await adm.check(ids["org"], ids["user"], ids["live"]) is not None
    crowd = []
    for _ in range(10):  # arriving one by one, each after the last read ended
        crowd.append(asyncio.ensure_future(adm.check(ids["org"], ids["user"], ids["live"])))
        await asyncio.sleep(0.001)
    assert all(a is not None for a in await asyncio.gather(*crowd))
    assert sum(adm.reads) == 11 and len(adm.reads) <= 6  # not a read each
    assert all(later - earlier >= SPACING * 0.99 for earlier, later in zip(adm.started, adm.started[1:]))
    await asyncio.sleep(SPACING)
    arrived = asyncio.get_running_loop().time()
    assert await adm.check(ids["org"], ids["user"], ids["live"]) is not None
    assert adm.started[-1] - arrived < SPACING  # a lone connect later waits its 2 ms only
    await adm.close()


async def test_a_failed_read_fails_its_batch_only(client, services):  # type: ignore[no-untyped-def]
    ids = await _sign_ins(client, services)
    adm = CountedAdmissions(services, held=1, failing=1)
    first = await _one_read_in_flight(adm, ids)
    later = asyncio.ensure_future(adm.check(ids["org"], ids["user"], ids["live"]))
    adm.gate.set()
    assert (await asyncio.gather(first, return_exceptions=True))[0].__class__ is ConnectionError
    assert await later is not None
    await adm.close()


async def test_connects_waiting_at_shutdown_are_failed_not_left_waiting(client, services):  # type: ignore[no-untyped-def]
    ids = await _sign_ins(client, services)
    adm = CountedAdmissions(services, held=1)
    first = await _one_read_in_flight(adm, ids)
    later = asyncio.ensure_future(adm.check(ids["org"], ids["user"], ids["live"]))
    await adm.close()
    results = await asyncio.wait_for(asyncio.gather(first, later, return_exceptions=True), 5)
    assert all(isinstance(r, BaseException) for r in results)
