"""The Centrifuge protocol v2 JSON codec: what real SDKs send is understood, malformed input
closes the connection as a bad request, and what we send is what the SDKs parse."""

import time

import orjson
import pytest

from feeds_server.realtime import protocol as proto


# --- decoding ------------------------------------------------------------------------------

COMMANDS = [
    # (frame, kind, params) — shapes as centrifuge-js / centrifuge-python send them
    (
        {"id": 1, "connect": {"token": "t", "data": {"x": [1]}, "name": "js", "version": "5.8.0",
                              "subs": {"org": {"recover": True, "epoch": "e", "offset": 7}}, "headers": {"a": "b"}}},
        "connect",
        {"token": "t", "data": {"x": [1]}, "name": "js", "version": "5.8.0",
         "subs": {"org": {"recover": True, "epoch": "e", "offset": 7}}, "headers": {"a": "b"}},
    ),
    (
        {"id": 2, "subscribe": {"channel": "news", "token": "s", "recover": True, "epoch": "e", "offset": 3,
                                "data": None, "positioned": True, "recoverable": True, "join_leave": True,
                                "delta": "fossil", "flag": 1}},
        "subscribe",
        {"channel": "news", "token": "s", "recover": True, "epoch": "e", "offset": 3, "positioned": True,
         "recoverable": True, "join_leave": True, "delta": "fossil", "flag": 1},
    ),
    ({"id": 3, "unsubscribe": {"channel": "news"}}, "unsubscribe", {"channel": "news"}),
    ({"id": 4, "publish": {"channel": "news", "data": {"text": "hi"}}}, "publish", {"channel": "news", "data": {"text": "hi"}}),
    ({"id": 5, "presence": {"channel": "news"}}, "presence", {"channel": "news"}),
    ({"id": 6, "presence_stats": {"channel": "news"}}, "presence_stats", {"channel": "news"}),
    (
        {"id": 7, "history": {"channel": "news", "limit": -1, "since": {"offset": 2, "epoch": "e"}, "reverse": True}},
        "history",
        {"channel": "news", "limit": -1, "since": {"offset": 2, "epoch": "e"}, "reverse": True},
    ),
    ({"id": 8, "ping": {}}, "ping", {}),
    ({"send": {"data": "fire and forget"}}, "send", {"data": "fire and forget"}),
    ({"id": 10, "rpc": {"method": "sum", "data": [1, 2]}}, "rpc", {"method": "sum", "data": [1, 2]}),
    ({"id": 11, "refresh": {"token": "new"}}, "refresh", {"token": "new"}),
    ({"id": 12, "sub_refresh": {"channel": "news", "token": "new"}}, "sub_refresh", {"channel": "news", "token": "new"}),
    ({}, "pong", {}),
]


@pytest.mark.parametrize(("command", "kind", "params"), COMMANDS, ids=[c[1] for c in COMMANDS])
def test_every_command_kind_decodes_to_its_kind_id_and_params(command, kind, params):
    [cmd] = proto.decode_commands(orjson.dumps(command))
    assert cmd == proto.Command(command.get("id", 0), kind, params)


def test_a_text_frame_decodes_like_its_bytes():
    assert proto.decode_commands('{"id":1,"ping":{}}') == [proto.Command(1, "ping", {})]


def test_several_newline_separated_commands_in_one_frame_decode_in_order():
    frame = b'{"id":1,"ping":{}}\n{}\n{"id":2,"rpc":{"method":"m"}}\n'
    assert [(c.id, c.kind) for c in proto.decode_commands(frame)] == [(1, "ping"), (0, "pong"), (2, "rpc")]


def test_the_python_sdk_s_spaced_json_and_blank_lines_are_accepted():
    frame = b'{"id": 1, "connect": {"name": "python"}}\n\n{}\r\n'
    assert [c.kind for c in proto.decode_commands(frame)] == ["connect", "pong"]


def test_the_empty_command_is_a_pong():
    assert proto.decode_commands(b"{}") == [proto.Command(0, "pong", {})]
    assert proto.decode_commands(b'{"id":0}') == [proto.Command(0, "pong", {})]


def test_json_nulls_read_as_absent_fields_as_go_reads_them():
    [cmd] = proto.decode_commands(b'{"id":1,"connect":{"token":null,"subs":{"a":null,"b":{"offset":null}}},"subscribe":null}')
    assert cmd == proto.Command(1, "connect", {"subs": {"b": {}}})


def test_unknown_request_fields_are_kept_for_forward_compatibility():
    [cmd] = proto.decode_commands(b'{"id":1,"subscribe":{"channel":"c","future":{"x":1}},"extra":true}')
    assert cmd.params == {"channel": "c", "future": {"x": 1}}


def test_connect_request_gives_typed_recovery_positions():
    [cmd] = proto.decode_commands(orjson.dumps(COMMANDS[0][0]))
    req = proto.connect_request(cmd)
    assert (req.token, req.name, req.version, req.data, dict(req.headers)) == ("t", "js", "5.8.0", {"x": [1]}, {"a": "b"})
    assert req.subs == {"org": proto.SubscribeRequest("org", recover=True, epoch="e", offset=7)}


def test_subscribe_request_is_typed_with_defaults_for_absent_fields():
    [cmd] = proto.decode_commands(b'{"id":2,"subscribe":{"channel":"news","join_leave":true}}')
    assert proto.subscribe_request(cmd) == proto.SubscribeRequest("news", join_leave=True)
    with pytest.raises(ValueError):
        proto.connect_request(cmd)


# --- malformed input: bad request ----------------------------------------------------------

BAD_FRAMES = {
    "invalid JSON": b'{"id":1,',
    "trailing garbage": b'{"id":1,"ping":{}} x',
    "invalid UTF-8": b'{"id":1,"rpc":{"method":"\xff"}}',
    "UTF-8 encoded surrogate": '{"id":1,"rpc":{"method":"\ud800"}}'.encode("utf-8", "surrogatepass"),
    "lone high surrogate escape": b'{"id":1,"rpc":{"method":"\\ud800"}}',
    "lone low surrogate escape": b'{"id":1,"rpc":{"method":"\\udc00"}}',
    "NaN": b'{"id":1,"rpc":{"data":NaN}}',
    "byte order mark": b'\xef\xbb\xbf{"id":1,"ping":{}}',
    "empty frame": b"",
    "only blank lines": b"\n \n",
    "array": b"[]",
    "string": b'"connect"',
    "number": b"1",
    "null": b"null",
    "unknown command": b'{"id":1,"track":{}}',
    "unknown command without id": b'{"track":{}}',
    "two methods": b'{"id":1,"ping":{},"rpc":{}}',
    "id without method": b'{"id":5}',
    "method without id": b'{"ping":{}}',
    "id is a string": b'{"id":"1","ping":{}}',
    "id is a float": b'{"id":1.0,"ping":{}}',
    "id is a boolean": b'{"id":true,"ping":{}}',
    "id is negative": b'{"id":-1,"ping":{}}',
    "id past uint32": b'{"id":4294967296,"ping":{}}',
    "params not an object": b'{"id":1,"connect":"token"}',
    "channel not a string": b'{"id":1,"subscribe":{"channel":1}}',
    "token not a string": b'{"id":1,"connect":{"token":["t"]}}',
    "recover not a boolean": b'{"id":1,"subscribe":{"channel":"c","recover":1}}',
    "offset negative": b'{"id":1,"subscribe":{"channel":"c","offset":-1}}',
    "offset past uint64": b'{"id":1,"subscribe":{"channel":"c","offset":18446744073709551616}}',
    "offset a string": b'{"id":1,"subscribe":{"channel":"c","offset":"5"}}',
    "subs not an object": b'{"id":1,"connect":{"subs":["org"]}}',
    "subs entry not an object": b'{"id":1,"connect":{"subs":{"org":true}}}',
    "subs entry with bad offset": b'{"id":1,"connect":{"subs":{"org":{"offset":1.5}}}}',
    "headers not strings": b'{"id":1,"connect":{"headers":{"a":1}}}',
    "history limit past int32": b'{"id":1,"history":{"channel":"c","limit":2147483648}}',
    "history since not an object": b'{"id":1,"history":{"channel":"c","since":5}}',
    "one bad command among good ones": b'{}\n{"id":1,"ping":{}}\n[1]',
    "too many commands": b"\n".join([b"{}"] * (proto.MAX_COMMANDS_PER_FRAME + 1)),
    "nesting past the bound": b'{"id":1,"rpc":{"data":' + b"[" * 40 + b"]" * 40 + b"}}",
}


@pytest.mark.parametrize("frame", BAD_FRAMES.values(), ids=BAD_FRAMES.keys())
def test_malformed_frames_close_the_connection_as_bad_request(frame):
    with pytest.raises(proto.ProtocolError) as caught:
        proto.decode_commands(frame)
    assert caught.value.disconnect == proto.DISCONNECT_BAD_REQUEST == proto.Disconnect(3501, "bad request")


def test_a_str_frame_with_a_lone_surrogate_is_a_bad_request():
    with pytest.raises(proto.ProtocolError):
        proto.decode_commands('{"id":1,"rpc":{"method":"\ud800"}}')


def test_a_surrogate_pair_escape_is_a_valid_character():
    [cmd] = proto.decode_commands(b'{"id":1,"rpc":{"method":"\\ud83d\\ude00"}}')
    assert cmd.params["method"] == "\N{GRINNING FACE}"


def test_nesting_up_to_the_bound_is_accepted():
    depth_left = proto.MAX_DEPTH - 2  # the command and the rpc request are two levels
    frame = b'{"id":1,"rpc":{"data":' + b"[" * depth_left + b"]" * depth_left + b"}}"
    assert proto.decode_commands(frame)[0].kind == "rpc"
    deeper = b'{"id":1,"rpc":{"data":' + b"[" * (depth_left + 1) + b"]" * (depth_left + 1) + b"}}"
    with pytest.raises(proto.ProtocolError):
        proto.decode_commands(deeper)


@pytest.mark.parametrize("opening", [b"[", b'{"a":'])
def test_a_hundred_thousand_nested_containers_fail_fast_without_recursion_error(opening):
    closing = b"]" if opening == b"[" else b"}"
    frame = b'{"id":1,"rpc":{"data":' + opening * 100_000 + closing * 100_000 + b"}}"
    start = time.perf_counter()
    with pytest.raises(proto.ProtocolError):
        proto.decode_commands(frame)
    assert time.perf_counter() - start < 1.0


def test_wide_but_shallow_data_is_accepted():
    data = [{"k": [i]} for i in range(5_000)]
    [cmd] = proto.decode_commands(orjson.dumps({"id": 1, "rpc": {"data": data}}))
    assert cmd.params["data"] == data


# --- encoding ------------------------------------------------------------------------------


def test_ping_is_the_empty_reply():
    assert proto.encode_ping() == b"{}"


def test_reply_carries_the_command_id_and_the_result_under_the_method_name():
    assert orjson.loads(proto.encode_reply(7, "ping", {})) == {"id": 7, "ping": {}}
    assert orjson.loads(proto.encode_reply(8, "presence_stats", {"num_clients": 2, "num_users": 1})) == {
        "id": 8, "presence_stats": {"num_clients": 2, "num_users": 1}}
    with pytest.raises(ValueError):
        proto.encode_reply(9, "pub", {})


def test_error_reply_has_code_and_message_and_temporary_only_when_set():
    assert orjson.loads(proto.encode_error(3, 103, "permission denied")) == {
        "id": 3, "error": {"code": 103, "message": "permission denied"}}
    assert orjson.loads(proto.encode_error(4, 107, "bad request", temporary=True)) == {
        "id": 4, "error": {"code": 107, "message": "bad request", "temporary": True}}


def test_error_message_and_temporary_default_to_centrifuge_s_for_the_code():
    assert orjson.loads(proto.encode_error(5, proto.ERROR_TOO_MANY_REQUESTS)) == {
        "id": 5, "error": {"code": 111, "message": "too many requests", "temporary": True}}
    assert orjson.loads(proto.encode_error(6, proto.ERROR_TOKEN_EXPIRED)) == {
        "id": 6, "error": {"code": 109, "message": "token expired"}}


def test_publication_push_embeds_data_bytes_as_raw_json():
    frame = proto.encode_publication_push("org", b'{"type":"post.created","id":5}', 42)
    assert frame == b'{"push":{"channel":"org","pub":{"data":{"type":"post.created","id":5},"offset":42}}}'


def test_publication_push_with_tags_and_info_is_what_the_sdks_read():
    frame = proto.encode_publication_push("org", {"a": 1}, 3, tags={"k": "v"},
                                          info={"user": "1", "client": "c", "conn_info": {"name": "x"}})
    assert orjson.loads(frame) == {"push": {"channel": "org", "pub": {
        "data": {"a": 1}, "offset": 3, "tags": {"k": "v"},
        "info": {"user": "1", "client": "c", "conn_info": {"name": "x"}}}}}


def test_publication_push_leaves_out_a_zero_offset_and_empty_tags_as_go_does():
    assert proto.encode_publication_push("c", b"1", 0, tags={}) == b'{"push":{"channel":"c","pub":{"data":1}}}'


def test_publication_data_that_spans_lines_is_compacted_so_framing_holds():
    frame = proto.encode_publication_push("c", b'{\n  "a": "x\\ny"\n}', 1)
    assert b"\n" not in frame
    assert orjson.loads(frame)["push"]["pub"]["data"] == {"a": "x\ny"}


def test_publication_data_that_is_not_json_is_refused():
    with pytest.raises(ValueError):
        proto.encode_publication_push("c", b"{not json", 1)


def test_one_encoded_publication_is_shared_by_every_subscriber():
    frame = proto.encode_publication_push("org", b'{"n":1}', 1)
    outboxes = [[] for _ in range(3)]
    for outbox in outboxes:
        outbox.append(frame)
    assert all(outbox[0] is frame for outbox in outboxes)


def test_subscribe_push_announces_a_recoverable_server_side_subscription():
    assert orjson.loads(proto.encode_subscribe_push("g:1", epoch="ep", offset=9)) == {
        "push": {"channel": "g:1", "subscribe": {"recoverable": True, "epoch": "ep", "offset": 9, "positioned": True}}}
    assert orjson.loads(proto.encode_subscribe_push("g:2", recoverable=False, positioned=False, data={"x": 1})) == {
        "push": {"channel": "g:2", "subscribe": {"data": {"x": 1}}}}


def test_unsubscribe_push_carries_code_and_reason():
    assert orjson.loads(proto.encode_unsubscribe_push("g:1", proto.UNSUBSCRIBE_SERVER, "no longer allowed")) == {
        "push": {"channel": "g:1", "unsubscribe": {"code": 2000, "reason": "no longer allowed"}}}


def test_disconnect_push_has_code_and_reason_without_v1_reconnect():
    d = proto.DISCONNECT_FORCE_NO_RECONNECT
    assert orjson.loads(proto.encode_disconnect_push(d.code, d.reason)) == {
        "push": {"disconnect": {"code": 3503, "reason": "force disconnect"}}}


def test_connect_result_leaves_out_zero_values_and_nests_subscribe_results():
    sub = proto.subscribe_result(recoverable=True, epoch="e", offset=4, recovered=True, was_recovering=True,
                                 positioned=True, publications=[proto.publication(b'{"n":4}', 4)])
    result = proto.connect_result("c1", "0.1.0", subs={"org": sub}, ping=25, pong=True, data=0)
    assert orjson.loads(proto.encode_reply(1, "connect", result)) == {"id": 1, "connect": {
        "client": "c1", "version": "0.1.0", "data": 0, "ping": 25, "pong": True,
        "subs": {"org": {"recoverable": True, "epoch": "e", "offset": 4, "recovered": True,
                         "was_recovering": True, "positioned": True,
                         "publications": [{"data": {"n": 4}, "offset": 4}]}}}}
    assert proto.connect_result("c2") == {"client": "c2"}


def test_coalesced_frames_are_joined_by_newlines_and_decode_as_the_sdks_split_them():
    parts = [proto.encode_reply(1, "ping", {}), proto.encode_ping(), proto.encode_publication_push("c", b"[1]", 1)]
    frame = proto.join_frames(parts)
    assert frame == parts[0] + b"\n" + parts[1] + b"\n" + parts[2]
    assert [orjson.loads(line) for line in frame.split(b"\n")] == [orjson.loads(p) for p in parts]


# --- codes -----------------------------------------------------------------------------------


def test_error_codes_are_centrifuge_s():
    assert [proto.ERROR_INTERNAL, proto.ERROR_UNAUTHORIZED, proto.ERROR_UNKNOWN_CHANNEL, proto.ERROR_PERMISSION_DENIED,
            proto.ERROR_METHOD_NOT_FOUND, proto.ERROR_ALREADY_SUBSCRIBED, proto.ERROR_LIMIT_EXCEEDED,
            proto.ERROR_BAD_REQUEST, proto.ERROR_NOT_AVAILABLE, proto.ERROR_TOKEN_EXPIRED, proto.ERROR_EXPIRED,
            proto.ERROR_TOO_MANY_REQUESTS, proto.ERROR_UNRECOVERABLE_POSITION, proto.ERROR_TOKEN_REVOKED] == list(range(100, 114))


DISCONNECTS = [
    (proto.DISCONNECT_SHUTDOWN, 3001, "shutdown", True),
    (proto.DISCONNECT_SERVER_ERROR, 3004, "internal server error", True),
    (proto.DISCONNECT_EXPIRED, 3005, "connection expired", True),
    (proto.DISCONNECT_SUB_EXPIRED, 3006, "subscription expired", True),
    (proto.DISCONNECT_SLOW, 3008, "slow", True),
    (proto.DISCONNECT_WRITE_ERROR, 3009, "write error", True),
    (proto.DISCONNECT_INSUFFICIENT_STATE, 3010, "insufficient state", True),
    (proto.DISCONNECT_FORCE_RECONNECT, 3011, "force reconnect", True),
    (proto.DISCONNECT_NO_PONG, 3012, "no pong", True),
    (proto.DISCONNECT_TOO_MANY_REQUESTS, 3013, "too many requests", True),
    (proto.DISCONNECT_INVALID_TOKEN, 3500, "invalid token", False),
    (proto.DISCONNECT_BAD_REQUEST, 3501, "bad request", False),
    (proto.DISCONNECT_STALE, 3502, "stale", False),
    (proto.DISCONNECT_FORCE_NO_RECONNECT, 3503, "force disconnect", False),
    (proto.DISCONNECT_CONNECTION_LIMIT, 3504, "connection limit", False),
    (proto.DISCONNECT_CHANNEL_LIMIT, 3505, "channel limit", False),
    (proto.DISCONNECT_INAPPROPRIATE_PROTOCOL, 3506, "inappropriate protocol", False),
    (proto.DISCONNECT_PERMISSION_DENIED, 3507, "permission denied", False),
    (proto.DISCONNECT_NOT_AVAILABLE, 3508, "not available", False),
    (proto.DISCONNECT_TOO_MANY_ERRORS, 3509, "too many errors", False),
]


@pytest.mark.parametrize(("disconnect", "code", "reason", "reconnect"), DISCONNECTS, ids=[d[2] for d in DISCONNECTS])
def test_disconnects_are_centrifuge_s_and_advise_reconnecting_by_code(disconnect, code, reason, reconnect):
    assert (disconnect.code, disconnect.reason, disconnect.reconnect) == (code, reason, reconnect)
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(disconnect.reason)  # centrifuge-js would otherwise read it as v1 JSON advice


@pytest.mark.parametrize(("code", "reconnect"), [(4000, True), (4499, True), (4500, False), (4999, False), (5000, True)])
def test_application_disconnect_codes_follow_the_sdk_ranges(code, reconnect):
    assert proto.Disconnect(code, "custom").reconnect is reconnect


def test_a_close_reason_longer_than_a_close_frame_allows_is_refused():
    proto.Disconnect(4000, "x" * 123)
    with pytest.raises(ValueError):
        proto.Disconnect(4000, "x" * 124)
