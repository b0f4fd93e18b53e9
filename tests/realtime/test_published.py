"""A published event's broker message: the publication's bytes as encoded for clients, carried as is."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from feeds_server.realtime.history import publication_data
from feeds_server.realtime.hub import Published
from feeds_server.store.events import NewEvent


def _event(payload: dict) -> NewEvent:
    return NewEvent(7, "notifications.created", payload, 3, ["u:1", "u:2"], datetime(2026, 11, 29, 12, 0, tzinfo=UTC), seq=41)


def test_message_carries_the_publication_bytes_and_the_payload_read_from_them() -> None:
    payload = {"notifications": [{"id": 1, "text": 'a "quoted"\nline \u2028 é'}]}
    sent = Published.from_event(_event(payload), at=1234.5)
    message = sent.to_message()
    assert message.endswith(b"\n" + sent.data)
    got = Published.from_message(7, message)
    assert (got.org_id, got.seq, got.type, got.channels, got.at) == (7, 41, "notifications.created", ("u:1", "u:2"), 1234.5)
    assert got.data == sent.data
    assert orjson.loads(got.data)["payload"] == payload
    assert got.payload == payload


def test_message_of_the_earlier_form_is_read() -> None:
    sent = Published.from_event(_event({"user_id": 5}), at=1.0)
    old = orjson.dumps({"seq": 41, "type": "member.removed", "channels": ["u:1"], "payload": {"user_id": 5}, "data": sent.data.decode(), "at": 1.0})
    got = Published.from_message(7, old)
    assert (got.seq, got.type, got.channels, got.data, got.payload) == (41, "member.removed", ("u:1",), sent.data, {"user_id": 5})


def test_publication_of_an_event_just_written_reuses_its_encoded_payload() -> None:
    payload = {"post": {"id": 9, "body": "x\u2028\"y\"", "data": {"n": [1, 2.5, None, True]}}}
    fresh = _event(payload)
    written = _event(payload)
    written.payload_json = orjson.dumps(payload)
    assert publication_data(written) == publication_data(fresh)
    assert orjson.loads(publication_data(written)) == {"seq": 41, "type": "notifications.created", "actor": 3, "payload": payload, "at": "2026-11-29T12:00:00+00:00"}
