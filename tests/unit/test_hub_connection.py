"""A connection's outbound side: bounded queue, held publications while connecting, no repeats."""

from feeds_server import limits
from feeds_server.realtime import protocol as proto
from feeds_server.realtime.hub import Connection


def _conn() -> Connection:
    return Connection("c1", user_id=1, org_id=1, auth_token_id=1, profile_id=1, role_id=None)


def test_a_client_that_cannot_keep_up_is_closed_as_slow_and_publishers_never_wait():
    conn = _conn()
    for i in range(limits.WS_SEND_QUEUE_FRAMES):
        conn.push(b"x%d" % i)
    assert conn.close_request is None
    conn.push(b"one too many")
    assert conn.close_request == proto.DISCONNECT_SLOW
    assert len(conn.outbox) == limits.WS_SEND_QUEUE_FRAMES
    conn.push(b"after close")
    assert len(conn.outbox) == limits.WS_SEND_QUEUE_FRAMES


def test_publications_are_held_while_connecting_and_not_repeated_after_recovery():
    conn = _conn()
    conn.held = {}
    conn.push_publication("org", 5, b"p5")
    conn.push_publication("org", 6, b"p6")
    assert not conn.outbox
    held, conn.held = conn.held, None
    conn.floor["org"] = 5  # recovery already sent offset 5
    for offset, frame in held["org"]:
        conn.push_publication("org", offset, frame)
    assert list(conn.outbox) == [b"p6"]


def test_queued_frames_are_coalesced_into_one_frame():
    assert proto.join_frames([b'{"a":1}', b'{"b":2}']) == b'{"a":1}\n{"b":2}'


def test_a_revocation_that_arrived_after_the_sign_in_was_read_closes_the_connection():
    from types import SimpleNamespace

    from feeds_server.realtime.hub import Hub

    hub = Hub(SimpleNamespace(settings=SimpleNamespace(ws_ping_interval=25.0, ws_pong_timeout=10.0, node_name="test", host="127.0.0.1", port=0), sessions=None, clock=None), None)  # type: ignore[arg-type]
    conn = _conn()
    conn.checked_at = 0.0
    hub._on_control({"control": "auth_revoked", "auth_token_id": 1})
    assert hub.revoked_since(conn) == proto.DISCONNECT_INVALID_TOKEN
    conn.checked_at = float("inf")  # read after the revocation: the database answered for it
    assert hub.revoked_since(conn) is None
    other = Connection("c2", user_id=2, org_id=1, auth_token_id=2, profile_id=1, role_id=None)
    assert hub.revoked_since(other) is None
    hub._on_control({"control": "user_removed", "user_id": 2, "org_id": 1})
    assert hub.revoked_since(other) == proto.DISCONNECT_FORCE_NO_RECONNECT
