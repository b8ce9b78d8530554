"""The crashes the app knows about this session, with their seen/dismissed state.

Pure bookkeeping behind ListCrashes/GetCrash/Dismiss, the tray menu and the crash list: crashes
by id, newest first, unseen count, lookups by PID. The seen-state persists through SeenState
(saved by the state adapter). Bounded: the oldest records fall off past MAX_CRASHES.
"""

from __future__ import annotations

from drkonqi_lite.domain.crash import Crash
from drkonqi_lite.domain.seen import SeenState
from drkonqi_lite.domain.summary import CrashDetail, CrashSummary, detail, summary

MAX_CRASHES = 20_000


class CrashInbox:
    """Crash records by id plus the user's seen-state."""

    def __init__(self, state: SeenState) -> None:
        self.state = state
        #: crash id → event id of its delivered report (set by the app from the report queue).
        self.reported: dict[str, str] = {}
        self._crashes: dict[str, Crash] = {}
        self._sorted: list[Crash] | None = None

    def add(self, crash: Crash) -> bool:
        """Add a record; False when it was already known (the same entry read twice)."""
        if crash.id in self._crashes:
            return False
        self._crashes[crash.id] = crash
        self._sorted = None
        if len(self._crashes) > MAX_CRASHES:
            oldest = min(self._crashes.values(), key=lambda c: c.timestamp_us)
            del self._crashes[oldest.id]
        return True

    def newest_first(self) -> list[Crash]:
        if self._sorted is None:
            self._sorted = sorted(self._crashes.values(), key=lambda c: -c.timestamp_us)
        return self._sorted

    def get(self, crash_id: str) -> Crash | None:
        return self._crashes.get(crash_id)

    def by_pid(self, pid: int) -> Crash | None:
        """The newest crash of process `pid`."""
        return next((c for c in self.newest_first() if c.pid == pid), None)

    def is_seen(self, crash_id: str) -> bool:
        return self.state.is_seen(crash_id)

    def unseen(self) -> list[Crash]:
        return [c for c in self.newest_first() if not self.state.is_seen(c.id)]

    def unseen_count(self) -> int:
        return sum(1 for c in self._crashes if not self.state.is_seen(c))

    def mark_seen(self, ids: list[str]) -> list[str]:
        """Mark known crashes seen; the ids that changed."""
        changed = [i for i in ids if i in self._crashes and not self.state.is_seen(i)]
        self.state.mark_seen(changed)
        return changed

    def summaries(self) -> list[CrashSummary]:
        return [
            summary(c, seen=self.state.is_seen(c.id), reported=self.reported.get(c.id, ""))
            for c in self.newest_first()
        ]

    def summary(self, crash_id: str) -> CrashSummary | None:
        crash = self._crashes.get(crash_id)
        if crash is None:
            return None
        return summary(crash, seen=self.is_seen(crash_id), reported=self.reported.get(crash_id, ""))

    def detail(self, crash_id: str) -> CrashDetail | None:
        crash = self._crashes.get(crash_id)
        if crash is None:
            return None
        return detail(crash, seen=self.is_seen(crash_id), reported=self.reported.get(crash_id, ""))
