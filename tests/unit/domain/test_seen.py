"""The seen state: its JSON round trip and its bounds."""

from __future__ import annotations

from drkonqi_lite.domain.seen import MAX_SEEN_IDS, SeenState


def test_seen_state_round_trip_and_bounds() -> None:
    state = SeenState()
    state.advance("cur", 10)
    state.advance("older", 5)
    state.mute("/usr/bin/kate", "Kate")
    state.mark_seen(f"c{i}" for i in range(MAX_SEEN_IDS + 10))
    again = SeenState.from_json(state.to_json())
    assert again.cursor == "cur"
    assert again.is_muted("/usr/bin/kate")
    assert len(again.seen_ids) == MAX_SEEN_IDS
    assert again.is_seen(f"c{MAX_SEEN_IDS + 9}")
    assert SeenState.from_json({"cursor": 3, "seen": "x", "muted": []}).cursor == ""

