"""Pure record logic: follower resolution, business cards, field changes, cursors, webhook signing and backoff
(F-FOLLOW-1, F-FOLLOW-5, F-FEED-4, F-FOLLOW-10)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from feeds_server import limits
from feeds_server.actions.webhooks import backoff_seconds, is_permanent, sign
from feeds_server.domain.audience import SOURCE_ROLE, SOURCE_USER, OrgGraph
from feeds_server.domain.records import (
    ADMIN_ONLY_OPTIONS,
    Directory,
    Followers,
    RecordFacts,
    business_card,
    decode_followed_cursor,
    encode_followed_cursor,
    field_changes,
    key_field_names,
    rule_followers,
    summary,
)
from feeds_server.errors import Forbidden, ValidationFailed

# Roles: 1 CEO → 2 VP → 3 Manager → 4 Rep. Users: 10 CEO, 20 and 21 VPs, 30 manager, 40 and 41 reps, 50 without a role.
ROLES = {1: None, 2: 1, 3: 2, 4: 3}
MEMBERS = {10: 1, 20: 2, 21: 2, 30: 3, 40: 4, 41: 4, 50: None}
GROUPS = {7: ((SOURCE_USER, 50), (SOURCE_ROLE, 3))}
# Territories: 100 EMEA → 101 DACH → 102 Bavaria; 200 Americas.
TERRITORY_PARENTS = {100: None, 101: 100, 102: 101, 200: None}
TERRITORY_MEMBERS = {100: frozenset({20}), 101: frozenset({40}), 102: frozenset({41}), 200: frozenset({21})}


def directory() -> Directory:
    return Directory(OrgGraph(ROLES, GROUPS, MEMBERS), TERRITORY_PARENTS, TERRITORY_MEMBERS)


def follow(record: RecordFacts = RecordFacts(40, 41, None), creator: int = 30, **options) -> frozenset[int]:  # type: ignore[no-untyped-def]
    return rule_followers(creator, Followers(**options), record, directory())


def test_the_rules_creator_follows_by_default():
    assert follow() == {30}
    assert follow(creator=False) == set()


def test_owner_superior_role_is_everyone_holding_the_role_directly_above_the_owners():
    """F-FOLLOW-5: the rep's manager role, not the VPs or the CEO above it."""
    assert follow(creator=False, owner_superior_role=True) == {30}
    assert follow(RecordFacts(30, None, None), creator=False, owner_superior_role=True) == {20, 21}
    assert follow(RecordFacts(10, None, None), creator=False, owner_superior_role=True) == set()  # the top role
    assert follow(RecordFacts(50, None, None), creator=False, owner_superior_role=True) == set()  # no role
    assert follow(RecordFacts(None, None, None), creator=False, owner_superior_role=True) == set()  # no owner


def test_record_creator_named_users_roles_groups_and_territories():
    assert follow(creator=False, record_creator=True) == {41}
    assert follow(RecordFacts(40, None, None), creator=False, record_creator=True) == set()
    assert follow(creator=False, users=(10, 50)) == {10, 50}
    assert follow(creator=False, roles=(2,)) == {20, 21}
    assert follow(creator=False, groups=(7,)) == {50, 30}


def test_a_territory_includes_the_territories_below_it():
    """F-ORG-10: territories form a tree."""
    assert follow(creator=False, territories=(100,)) == {20, 40, 41}
    assert follow(creator=False, territories=(101,)) == {40, 41}
    assert follow(creator=False, territories=(102, 200)) == {41, 21}


def test_only_members_of_the_org_follow():
    assert follow(creator=999, users=(998,)) == set()


@pytest.mark.parametrize("option", ADMIN_ONLY_OPTIONS)
def test_follower_options_other_than_the_creator_are_for_admins(option):
    followers = Followers(**{option: True if option in ("record_creator", "owner_superior_role") else (1,)})
    with pytest.raises(Forbidden) as caught:
        followers.check_allowed(is_admin=False)
    assert caught.value.code == "admin_only_follower_option" and caught.value.details == {"option": option}
    followers.check_allowed(is_admin=True)


def test_a_rule_without_any_follower_is_refused():
    with pytest.raises(ValidationFailed):
        Followers(creator=False).check_allowed(is_admin=True)
    Followers(creator=False, territories=(1,)).check_allowed(is_admin=True)


def test_followers_round_trip_through_json():
    f = Followers(creator=False, record_creator=True, owner_superior_role=True, users=(1,), roles=(2,), groups=(3,), territories=(4,))
    assert Followers.from_json(f.to_json()) == f
    assert Followers.from_json({}) == Followers()


def test_business_card_key_fields():
    """F-FEED-4."""
    fields = {f"f{i}": i for i in range(limits.BUSINESS_CARD_FIELDS + 2)}
    assert key_field_names(fields, None) == [f"f{i}" for i in range(limits.BUSINESS_CARD_FIELDS)]
    assert key_field_names(fields, ["f3", "missing"]) == ["f3", "missing"]
    card = business_card("Deals", 7, "D-7", "Globex", {"id": 1, "name": "Maya"}, fields, ["f3", "missing"])
    assert card == {
        "module": "Deals", "id": 7, "crm_id": "D-7", "name": "Globex", "owner": {"id": 1, "name": "Maya"},
        "key_fields": [{"field": "f3", "value": 3}, {"field": "missing", "value": None}],
    }


def test_field_changes_use_the_crms_report_or_the_difference():
    """F-FOLLOW-1: changed fields with old and new values."""
    assert field_changes({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}) == [{"field": "b", "old": 2, "new": 3}, {"field": "c", "old": None, "new": 4}]
    assert field_changes({"a": 1}, {"a": 1}) == []
    assert field_changes({"a": 1}, {"a": 2}, [{"field": "a", "old": 0, "new": 2}]) == [{"field": "a", "old": 0, "new": 2}]


def test_summary_names_the_module_record_and_change():
    assert summary("Deals", "Globex", "edited") == "Deals record “Globex” was edited"
    assert summary("Deals", "Globex", "note_added") == "Deals record “Globex” has a new note"


def test_followed_cursor_round_trip_and_refusals():
    assert decode_followed_cursor(encode_followed_cursor("Deals", 42)) == ("Deals", 42)
    assert decode_followed_cursor(encode_followed_cursor("Ünïcode mødule", 2**63 - 1)) == ("Ünïcode mødule", 2**63 - 1)
    for bad in ("", "!!!", encode_followed_cursor("Deals", 42)[:-3], "WzEsMl0", "WyJhIiwwXQ"):  # [1,2] and ["a",0]
        with pytest.raises(ValidationFailed):
            decode_followed_cursor(bad)


def test_the_webhook_signature_is_hmac_sha256_of_timestamp_dot_body():
    body = b'{"type":"note.created"}'
    expected = hmac.new(b"secret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("secret", "1700000000", body) == f"sha256={expected}"


def test_backoff_doubles_with_jitter_up_to_the_cap():
    for attempts in range(1, 40):
        ceiling = min(limits.WEBHOOK_RETRY_MAX_SECONDS, limits.WEBHOOK_RETRY_BASE_SECONDS * 2 ** (attempts - 1))
        delays = [backoff_seconds(attempts) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert len({backoff_seconds(5) for _ in range(20)}) > 1  # jitter spreads retries out


@pytest.mark.parametrize("status,permanent", [(400, True), (404, True), (410, True), (408, False), (429, False), (500, False), (503, False)])
def test_client_errors_are_not_retried_except_timeouts_and_rate_limits(status, permanent):
    assert is_permanent(status) is permanent
