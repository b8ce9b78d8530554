"""The state store: seen state and settings in real files, written atomically."""

from __future__ import annotations

import stat
from pathlib import Path

from drkonqi_lite.adapters.state_store import StateStore
from drkonqi_lite.domain.seen import SeenState


def test_state_store_atomic_round_trip(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state", tmp_path / "config")
    assert store.load().cursor == ""
    state = SeenState()
    state.advance("s=1;i=2", 42)
    state.mute("/usr/bin/kate", "Kate")
    store.save(state)
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    again = store.load()
    assert again.cursor == "s=1;i=2"
    assert again.is_muted("/usr/bin/kate")
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["state.json"]
    store.path.write_text("{not json")
    assert store.load().cursor == ""
    (tmp_path / "config").mkdir()
    (tmp_path / "config/settings.ini").write_text("[App]\ncatchup_days = 1\n")
    assert store.settings().catchup_days == 1.0
