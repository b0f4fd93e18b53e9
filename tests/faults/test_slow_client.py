"""A client that stops reading is closed as slow within seconds, not only when its queue is full."""

from __future__ import annotations

from feeds_server import limits
from feeds_server.realtime import hub
from feeds_server.realtime import protocol as proto
from feeds_server.realtime.hub import Connection


class _FullSocket:
    """A socket whose buffer never takes another byte."""

    def write_now(self, frame: bytes) -> bool:
        return False

    def flush_later(self) -> None:
        pass


def test_frames_waiting_longer_than_the_stall_bound_close_the_connection_as_slow(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(hub.time, "monotonic", lambda: now[0])
    conn = Connection("c1", user_id=1, org_id=1, auth_token_id=1, profile_id=1, role_id=None)
    conn.sink = _FullSocket()
    conn.push(b"first")
    now[0] += limits.WS_SEND_STALL_SECONDS / 2
    conn.push(b"second")
    assert conn.close_request is None, "a short stall is tolerated"
    now[0] += limits.WS_SEND_STALL_SECONDS
    conn.push(b"third")
    assert conn.close_request == proto.DISCONNECT_SLOW
    assert len(conn.outbox) == 2 < limits.WS_SEND_QUEUE_FRAMES
