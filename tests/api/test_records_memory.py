"""A record batch leaves no reference cycle behind: its state (records, items, notifications, the
request and its session) is freed when the request ends, not traced by the cyclic collector."""

from __future__ import annotations

import gc

from tests.api.records_helpers import crm, ev, send  # noqa: F401 - `crm` is a fixture


async def test_a_record_batch_leaves_nothing_to_the_cyclic_collector(crm):
    rep = crm["rep"]
    await send(crm, ev("m0", crm_id="D-0", name="Warm-up", owner_email=rep.email))
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        r = await send(
            crm,
            ev("m1", name="Acme", owner_email=rep.email, fields={"Amount": 5}),
            ev("m2", "edited", fields={"Amount": 6}, changes=[{"field": "Amount", "old": 5, "new": 6}]),
            ev("m3", "note_added", note={"id": "N-1", "text": "Called them"}),
        )
        assert [x["status"] for x in r.json()["results"]] == ["applied"] * 3
        gc.collect()
        left = {type(o).__qualname__ for o in gc.garbage}
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert not left & {"_Tracked", "_PostItem", "_NoteItem", "_Notification", "_Batch", "Ctx", "BatchIn", "EventIn", "AsyncSession"}
