"""Who is outside an item's audience, the rule behind refusing a mention (F-POST-3, F-POST-4, F-POST-5)."""

from __future__ import annotations

from feeds_server.domain.audience import (
    ORG,
    SOURCE_GROUP,
    SOURCE_ROLE_AND_SUBORDINATES,
    SOURCE_USER,
    OrgGraph,
    group_channel,
    outside_audience,
    role_channel,
    user_channel,
)

# Roles: 1 (top) > 2 (rep) > 3 (junior). Group 10 holds user 100 and group 11; group 11 holds role 2 and below.
GRAPH = OrgGraph(
    role_parents={1: None, 2: 1, 3: 2},
    group_sources={10: ((SOURCE_USER, 100), (SOURCE_GROUP, 11)), 11: ((SOURCE_ROLE_AND_SUBORDINATES, 2),)},
)
MEMBERS = {100: None, 101: 3, 102: 1, 103: None}


def test_nobody_is_outside_an_org_wide_item() -> None:
    assert outside_audience(GRAPH, [ORG], MEMBERS) == []


def test_a_group_item_leaves_out_everyone_outside_the_group_and_its_nested_groups() -> None:
    """101 is in group 11 through a subordinate role; 102 holds the role above it and 103 nothing."""
    assert outside_audience(GRAPH, [group_channel(10)], MEMBERS) == [102, 103]


def test_a_private_message_leaves_out_everyone_but_its_two_people() -> None:
    assert outside_audience(GRAPH, [user_channel(100), user_channel(103)], MEMBERS) == [101, 102]


def test_a_role_channel_never_comes_from_a_mention_but_counts_if_the_item_was_sent_to_it() -> None:
    assert outside_audience(GRAPH, [role_channel(1)], MEMBERS) == [100, 101, 103]
