"""Pure rules of import and erasure: ids rewritten in imported data, a person taken out of documents (F-OPS-3)."""

from __future__ import annotations

from feeds_server.actions.audit import url_without_credentials, without_secrets
from feeds_server.domain.remap import remap_channels, remap_followers, remap_record_ref, remap_text
from feeds_server.domain.scrub import Person, scrub, scrub_text, search_terms

IDS = {("user", 1): 101, ("role", 2): 202, ("group", 3): 303, ("territory", 4): 404, ("record", 5): 505}


def lookup(kind: str, old: int) -> int | None:
    return IDS.get((kind, old))


def test_mention_tokens_take_the_new_ids_and_a_target_left_behind_never_lands_elsewhere():
    text = "Hi @[user:1], @[role:2] and @[group:3]; @[group:9] is gone, @[user:1] again"
    assert remap_text(text, lookup) == "Hi @[user:101], @[role:202] and @[group:303]; @(deleted) is gone, @[user:101] again"


def test_audiences_followers_and_record_cards_take_the_new_ids():
    assert remap_channels(["org", "u:1", "g:3", "r:2", "g:9", "x:1", "u:1"], lookup) == ["g:303", "org", "r:202", "u:101"]
    followers = {"creator": True, "users": [1, 7, 1], "roles": [2], "groups": [9], "territories": [4]}
    assert remap_followers(followers, lookup) == {"creator": True, "users": [101], "roles": [202], "groups": [], "territories": [404]}
    card = {"record": {"module": "Deals", "id": 5, "owner": {"id": 1, "name": "Old name"}}, "change": "edited"}
    assert remap_record_ref(card, lookup, {101: "New name"}.get) == {
        "record": {"module": "Deals", "id": 505, "owner": {"id": 101, "name": "New name"}}, "change": "edited"}
    assert remap_record_ref({"via": "user"}, lookup) == {"via": "user"}


BOB = Person(7, "bob@example.com", "Bob Stone")


def test_a_person_leaves_documents_that_named_them_and_others_stay():
    doc = {
        "post": {"author": {"id": 7, "name": "Bob Stone"}, "recipient": {"id": 8, "name": "Ann"}, "body": "to @[user:7] and @[user:70]",
                 "segments": [{"type": "mention", "kind": "user", "id": 7, "name": "Bob Stone"},
                              {"type": "mention", "kind": "group", "id": 7, "name": "Team"}]},
        "notification": {"actor_id": 7, "data": {"excerpt": "thanks @Bob Stone, and @Bob Stoneman"}},
        "member": {"user_id": 7, "name": "Bob Stone", "role_id": 2},
        "email": "BOB@example.com",
        "note": {"author": {"email": "bob@example.com", "name": "Bob Stone"}},
        "inviter": "Bob Stone",
    }
    assert scrub(doc, BOB) == {
        "post": {"author": None, "recipient": {"id": 8, "name": "Ann"}, "body": "to @(deleted) and @[user:70]",
                 "segments": [{"type": "text", "text": "@(deleted)"}, {"type": "mention", "kind": "group", "id": 7, "name": "Team"}]},
        "notification": {"actor_id": None, "data": {"excerpt": "thanks @(deleted), and @Bob Stoneman"}},
        "member": {"user_id": 7, "name": None, "role_id": 2},
        "email": None,
        "note": {"author": None},
        "inviter": "(deleted)",
    }
    untouched = {"post": {"author": {"id": 8, "name": "Ann"}, "body": "@[user:8] says Bob Stone"}}
    assert scrub(untouched, BOB) == untouched
    assert scrub_text("@Bob Stone wrote to @[user:7]", BOB) == "@Bob Stone wrote to @(deleted)"  # raw text: tokens only


def test_the_search_terms_find_names_as_json_stores_them():
    assert search_terms(Person(7, "o@example.com", 'Ann "the" O\'Neil')) == [
        "@[user:7]", "o@example.com", 'Ann "the" O\'Neil', 'Ann \\"the\\" O\'Neil']


def test_the_audit_log_keeps_no_secret():
    details = {"name": "CRM", "token": "fsk_x", "nested": [{"password": "p", "ok": 1}], "signing_secret": "s", "token_hash": "h"}
    assert without_secrets(details) == {"name": "CRM", "nested": [{"ok": 1}]}
    assert url_without_credentials("https://user:pw@crm.example.com:8443/hook?key=k#f") == "https://crm.example.com:8443/hook"
