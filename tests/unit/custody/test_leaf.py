"""Events and their leaves: an event's id is made with it, and is not in the leaf's bytes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bwv.base.errors import BwvError
from bwv.custody.leaf import Event, parse_leaf

WHEN = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def _event(**fields: str) -> Event:
    return Event(actor="pc-1", role="officer", action="clip.viewed", target="EV-1", **fields)


def test_every_event_is_given_an_id_of_its_own_when_made() -> None:
    ids = {_event().id for _ in range(1000)}
    assert len(ids) == 1000


def test_an_id_given_by_the_caller_is_kept() -> None:
    assert _event(id="dock-7:upload-42").id == "dock-7:upload-42"


@pytest.mark.parametrize("bad", ["", "a b", "x" * 101, "ev\n1", "é"])
def test_an_id_that_is_not_a_short_plain_name_is_refused(bad: str) -> None:
    with pytest.raises(BwvError, match="event id"):
        _event(id=bad)


def test_the_id_is_not_in_the_leaf_body() -> None:
    event = _event(id="the-id")
    body = event.leaf(5, WHEN)
    assert b"the-id" not in body
    assert "id" not in parse_leaf(body)
    assert body == _event(id="another-id").leaf(5, WHEN)  # the leaf format is unchanged
