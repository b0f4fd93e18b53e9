"""Merging superseding events (reaction counts) in the hub and in recovery, without sockets."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import orjson

from feeds_server import limits
from feeds_server.realtime.history import hidden_by_modules, superseding_key, without_superseded
from feeds_server.realtime.hub import Connection, Hub, Published, Room


def _hub() -> Hub:
    return Hub(SimpleNamespace(settings=SimpleNamespace(ws_ping_interval=25.0, ws_pong_timeout=10.0, node_name="test", host="127.0.0.1", port=0), sessions=None, clock=None), None)  # type: ignore[arg-type]


def _room() -> tuple[Room, Connection]:
    room = Room(1, "epoch", 0, [])
    conn = Connection("c1", user_id=1, org_id=1, auth_token_id=1, profile_id=1, role_id=None)
    room.add(conn, ["org"])
    return room, conn


def _reaction(seq: int, post_id: int, count: int) -> Published:
    payload = {"post_id": post_id, "comment_id": None, "reactions": [{"emoji": "👍", "count": count}]}
    return Published(1, seq, "reaction.changed", ("org",), orjson.dumps({"seq": seq, "type": "reaction.changed", "payload": payload}), 0.0, payload)


def _post(seq: int) -> Published:
    payload = {"post": {"id": seq, "module": None}}
    return Published(1, seq, "post.created", ("org",), orjson.dumps({"seq": seq, "type": "post.created", "payload": payload}), 0.0, payload)


def _sent(conn: Connection) -> list[tuple[int, str, dict]]:
    pubs = [orjson.loads(frame)["push"]["pub"] for frame in conn.outbox]
    return [(p["offset"], p["data"]["type"], p["data"]["payload"]) for p in pubs]


async def test_a_burst_on_one_item_goes_out_first_then_once_per_window_with_the_last_counts():
    hub, (room, conn) = _hub(), _room()
    for seq in range(1, 51):
        await hub._deliver(room, _reaction(seq, post_id=7, count=seq % 3))
    assert [off for off, _, _ in _sent(conn)] == [1]  # the first at once, the rest held
    await asyncio.sleep(limits.REACTION_MERGE_SECONDS + 0.1)
    sent = _sent(conn)
    assert [off for off, _, _ in sent] == [1, 50]
    assert sent[-1][2]["reactions"] == [{"emoji": "👍", "count": 50 % 3}]
    assert room.merge_timer is None and not room.merging


async def test_held_counts_of_several_items_go_out_before_any_later_event_in_sequence_order():
    hub, (room, conn) = _hub(), _room()
    await hub._deliver(room, _reaction(1, post_id=7, count=1))
    await hub._deliver(room, _reaction(2, post_id=8, count=1))
    await hub._deliver(room, _reaction(3, post_id=7, count=2))
    await hub._deliver(room, _reaction(4, post_id=8, count=2))
    await hub._deliver(room, _reaction(5, post_id=7, count=3))
    await hub._deliver(room, _post(6))
    assert [(off, t) for off, t, _ in _sent(conn)] == [(1, "reaction.changed"), (4, "reaction.changed"), (5, "reaction.changed"), (6, "post.created")]
    assert room.merge_timer is None
    await asyncio.sleep(limits.REACTION_MERGE_SECONDS + 0.1)
    assert len(conn.outbox) == 4  # nothing sent twice


async def test_after_a_quiet_window_the_next_change_goes_out_at_once():
    hub, (room, conn) = _hub(), _room()
    await hub._deliver(room, _reaction(1, post_id=7, count=1))
    await asyncio.sleep(limits.REACTION_MERGE_SECONDS + 0.05)
    await hub._deliver(room, _reaction(2, post_id=7, count=2))
    assert [off for off, _, _ in _sent(conn)] == [1, 2]


def test_recovery_keeps_the_last_event_of_each_item_and_every_other_event():
    events = [
        SimpleNamespace(seq=1, type="reaction.changed", payload={"post_id": 7, "comment_id": None}),
        SimpleNamespace(seq=2, type="post.created", payload={"post": {}}),
        SimpleNamespace(seq=3, type="reaction.changed", payload={"post_id": 7, "comment_id": 5}),
        SimpleNamespace(seq=4, type="reaction.changed", payload={"post_id": 7, "comment_id": None}),
        SimpleNamespace(seq=5, type="comment.created", payload={}),
    ]
    assert [e.seq for e in without_superseded(events)] == [2, 3, 4, 5]
    assert superseding_key("post.created", {"post_id": 7}) is None


async def test_reactions_on_items_of_an_unticked_module_never_go_out_live_or_merged():
    hub, (room, conn) = _hub(), _room()
    room.disabled_modules = ["Deals"]
    for seq in (1, 2, 3):
        pub = _reaction(seq, post_id=7, count=seq)
        pub.payload["module"] = "Deals"
        await hub._deliver(room, pub)
    await hub._deliver(room, _post(4))
    await asyncio.sleep(limits.REACTION_MERGE_SECONDS + 0.1)
    assert [(off, t) for off, t, _ in _sent(conn)] == [(4, "post.created")]


def test_unticked_modules_hide_their_items_and_their_reactions_but_not_other_events_naming_them() -> None:
    off = ["Deals"]
    assert hidden_by_modules("post.created", {"post": {"module": "Deals"}}, off)
    assert hidden_by_modules("reaction.changed", {"post_id": 1, "comment_id": None, "module": "Deals"}, off)
    assert not hidden_by_modules("reaction.changed", {"post_id": 1, "comment_id": None, "module": "Leads"}, off)
    # A rule about the module is no item of it: admins still see it arrive.
    assert not hidden_by_modules("rule.created", {"rule_id": 3, "module": "Deals"}, off)
    assert not hidden_by_modules("rule.created", {"rule_id": 3, "module": "Deals"}, [])
