"""What this user has already been told about: the journal cursor, seen crashes, muted programs.

Pure: (de)serialisation and bounded bookkeeping. The state adapter writes it atomically to
`$XDG_STATE_HOME/drkonqi-lite/state.json`. A crash is never announced twice: everything up to
`cursor` has been announced (or deliberately skipped), across restarts and logins.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

#: Seen ids kept (older ones fall off; their crashes are older than the listing window anyway).
MAX_SEEN_IDS = 5000
STATE_VERSION = 1


@dataclasses.dataclass(slots=True)
class SeenState:
    """Mutable bookkeeping of one user's app; `to_json`/`from_json` for persistence."""

    #: Journal cursor of the last entry processed (announced or skipped); "" before the first run.
    cursor: str = ""
    #: Its realtime timestamp (µs), to tell old entries from new ones without the cursor's entry.
    cursor_realtime_us: int = 0
    seen_ids: dict[str, None] = dataclasses.field(default_factory=dict)
    muted: dict[str, str] = dataclasses.field(default_factory=dict)

    def advance(self, cursor: str, realtime_us: int) -> None:
        """Record that the entry at `cursor` has been handled."""
        if cursor and realtime_us >= self.cursor_realtime_us:
            self.cursor = cursor
            self.cursor_realtime_us = realtime_us

    def mark_seen(self, ids: Iterable[str]) -> bool:
        """Mark crashes seen; True when anything changed."""
        changed = False
        for crash_id in ids:
            if crash_id not in self.seen_ids:
                self.seen_ids[crash_id] = None
                changed = True
        while len(self.seen_ids) > MAX_SEEN_IDS:
            del self.seen_ids[next(iter(self.seen_ids))]
        return changed

    def is_seen(self, crash_id: str) -> bool:
        return crash_id in self.seen_ids

    def mute(self, program_key: str, display_name: str) -> None:
        self.muted[program_key] = display_name

    def unmute(self, program_key: str) -> None:
        self.muted.pop(program_key, None)

    def is_muted(self, program_key: str) -> bool:
        return program_key in self.muted

    def to_json(self) -> dict[str, object]:
        return {
            "version": STATE_VERSION,
            "cursor": self.cursor,
            "cursor_realtime_us": self.cursor_realtime_us,
            "seen": list(self.seen_ids),
            "muted": dict(self.muted),
        }

    @classmethod
    def from_json(cls, data: object) -> SeenState:
        """Parse persisted state; anything malformed is dropped field by field, never fatal."""
        state = cls()
        if not isinstance(data, Mapping):
            return state
        cursor = data.get("cursor")
        realtime = data.get("cursor_realtime_us")
        if isinstance(cursor, str) and isinstance(realtime, int):
            state.cursor, state.cursor_realtime_us = cursor, realtime
        seen = data.get("seen")
        if isinstance(seen, list):
            state.mark_seen(s for s in seen if isinstance(s, str))
        muted = data.get("muted")
        if isinstance(muted, Mapping):
            state.muted = {
                k: v for k, v in muted.items() if isinstance(k, str) and isinstance(v, str)
            }
        return state
