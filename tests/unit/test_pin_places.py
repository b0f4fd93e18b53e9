"""Where a post is pinned and who may pin it there (domain/pins.py)."""

from __future__ import annotations

import pytest

from feeds_server.domain.pins import PinPlace, check_may_pin, place_of
from feeds_server.errors import Forbidden, ValidationFailed


def test_a_status_post_is_pinned_on_the_org_feed_and_a_group_post_in_its_group() -> None:
    assert place_of("status", None) == PinPlace(None)
    assert place_of("group", 12) == PinPlace(12)


@pytest.mark.parametrize(("kind", "group_id"), [("private", None), ("private", 12), ("record", None)])
def test_private_messages_and_record_updates_have_no_place(kind: str, group_id: int | None) -> None:
    with pytest.raises(ValidationFailed) as err:
        place_of(kind, group_id)
    assert err.value.code == "post_not_pinnable"


def test_admins_pin_anywhere_group_owners_in_their_group_only() -> None:
    check_may_pin(PinPlace(None), 1, True, None)
    check_may_pin(PinPlace(12), 1, True, 2)
    check_may_pin(PinPlace(12), 2, False, 2)
    for place, owner in ((PinPlace(None), None), (PinPlace(12), 3), (PinPlace(12), None)):
        with pytest.raises(Forbidden) as err:
            check_may_pin(place, 2, False, owner)
        assert err.value.code == "pin_not_allowed"
