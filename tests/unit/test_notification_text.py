"""The one line a notification says in an email and a push (domain/notification_text.py)."""

from __future__ import annotations

from feeds_server.domain.notification_text import body, headline


def test_each_kind_says_what_it_is():
    assert headline("mention", "Ann", {}) == "Ann mentioned you"
    assert headline("mention", "Ann", {}, {"code": "mentioned_via_group", "group_name": "Deals desk"}) == "Ann mentioned Deals desk"
    assert headline("private_message", "Ann", {}) == "Ann sent you a private message"
    assert headline("group_post", "Ann", {}, {"code": "group_member", "group_name": "Crew"}) == "Ann posted in Crew"
    assert headline("reaction", "Bob", {"emoji": "👍"}) == "Bob reacted 👍 to what you wrote"
    record = {"record": {"module": "Deals", "id": 9, "name": "Globex"}}
    assert headline("record_followed", "Bob", record) == "Globex changed"
    assert headline("record_owned", None, {**record, "count": 3}) == "Globex changed 3 times"
    assert headline("record_dormant", None, {**record, "days": 30}) == "Globex has been quiet for 30 days"


def test_names_stay_on_one_line_and_bodies_are_short():
    assert headline("mention", "Eve\r\nBcc: x@example.com", {}) == "Eve Bcc: x@example.com mentioned you"
    assert headline("private_message", None, {}) == "Someone sent you a private message"
    assert len(body({"excerpt": "x" * 1000})) == 200 and body({}) == ""
