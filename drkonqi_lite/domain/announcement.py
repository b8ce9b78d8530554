"""When and how a crash is announced: grouping, crash loops, muting, the login catch-up.

Pure policy: it says what a notification should say and which earlier notification it
replaces; the app sends it. A program crashing in a loop updates one notification with a
growing count (`replaces_id`), muted programs are counted but not announced, and crashes that
happened while the user was away become one grouped notification at login. The Announcer is
the one place that knows which notification shows which crashes, and so what a click on one
of its actions means (`reaction`).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence

from drkonqi_lite.domain import python_stack
from drkonqi_lite.domain.crash import Crash
from drkonqi_lite.domain.plain_text import one_line

#: Names listed in the catch-up body before "and N more".
CATCHUP_NAMES = 5


class Kind(enum.StrEnum):
    CRASH = "crash"
    CATCHUP = "catchup"


@dataclasses.dataclass(frozen=True, slots=True)
class Announcement:
    """One notification to send (or to update, when `replaces_id` is not 0)."""

    kind: Kind
    group_key: str
    title: str
    body: str
    crash_ids: tuple[str, ...]
    replaces_id: int
    #: desktop-entry hint (the .desktop id without ".desktop"), "" when unknown.
    desktop_entry: str = ""
    icon: str = ""


@dataclasses.dataclass(slots=True)
class _Group:
    name: str
    count: int
    last_us: int
    crash_ids: list[str]
    notification_id: int = 0
    open: bool = True


@dataclasses.dataclass(frozen=True, slots=True)
class Program:
    """How to present a program: its real name and icon when a .desktop file names it."""

    name: str
    icon: str = ""
    desktop_entry: str = ""


class Act(enum.StrEnum):
    """What a notification action asks the app to do."""

    SHOW_CRASH = "show-crash"
    #: The crash list; the notification's crashes count as seen (the user looked at them).
    SHOW_LIST = "show-list"
    MUTE = "mute"
    DISMISS = "dismiss"
    #: Nothing but closing the notification (an action key we never sent).
    CLOSE = "close"


@dataclasses.dataclass(frozen=True, slots=True)
class Reaction:
    """The meaning of one click: `act` on `crash_ids` (MUTE: of the program `group_key`)."""

    act: Act
    crash_ids: tuple[str, ...]
    group_key: str = ""


def crash_title(name: str, count: int) -> str:
    return f"{name} crashed" if count == 1 else f"{name} crashed {count} times"


class Announcer:
    """The notification state of the running app (one instance, owned by the notifier): the
    program groups, the shown notifications by id, the muted programs' counts."""

    def __init__(self, group_window_us: int) -> None:
        self._window = group_window_us
        self._groups: dict[str, _Group] = {}
        #: Shown notifications by the server's id, for their actions.
        self._shown: dict[int, Announcement] = {}
        self.muted_counts: dict[str, int] = {}

    def count_muted(self, program_key: str) -> None:
        """A crash of a muted program: not announced, counted for the tray's "Unmute" menu."""
        self.muted_counts[program_key] = self.muted_counts.get(program_key, 0) + 1

    def live(self, crash: Crash, program: Program, *, muted: bool) -> Announcement | None:
        """The notification for a crash seen live, or None when the program is muted."""
        key = crash.program_key
        if muted:
            self.count_muted(key)
            return None
        group = self._groups.get(key)
        fresh = (
            group is not None and group.open and crash.timestamp_us - group.last_us <= self._window
        )
        if group is None or not fresh:
            group = _Group(name=program.name, count=0, last_us=crash.timestamp_us, crash_ids=[])
            self._groups[key] = group
        group.count += 1
        group.last_us = max(group.last_us, crash.timestamp_us)
        group.crash_ids.append(crash.id)
        return Announcement(
            kind=Kind.CRASH,
            group_key=key,
            title=crash_title(one_line(program.name, 80), group.count),
            body=crash.reason + python_stack.location(crash.python_stack),
            crash_ids=tuple(group.crash_ids),
            replaces_id=group.notification_id,
            desktop_entry=program.desktop_entry,
            icon=program.icon,
        )

    def shown(self, ann: Announcement, notification_id: int) -> None:
        """The server accepted `ann` under `notification_id` (a replaced one keeps its id)."""
        self._shown[notification_id] = ann
        group = self._groups.get(ann.group_key) if ann.group_key else None
        if group is not None:
            group.notification_id = notification_id

    def reaction(self, notification_id: int, action: str) -> Reaction | None:
        """What the user's click on `action` of one of our notifications means; None when the
        notification is not ours (another app's, or from before a restart)."""
        ann = self._shown.get(notification_id)
        if ann is None:
            return None
        if action in {"default", "details"}:
            if ann.kind is Kind.CATCHUP or len(ann.crash_ids) != 1:
                return Reaction(Act.SHOW_LIST, ann.crash_ids)
            return Reaction(Act.SHOW_CRASH, ann.crash_ids[-1:])
        if action == "mute" and ann.kind is Kind.CRASH:
            return Reaction(Act.MUTE, ann.crash_ids[-1:], ann.group_key)
        if action == "dismiss":
            return Reaction(Act.DISMISS, ann.crash_ids)
        return Reaction(Act.CLOSE, ())

    def notification_id(self, group_key: str) -> int:
        """The id to replace for the group (0: a new notification)."""
        group = self._groups.get(group_key)
        return group.notification_id if group is not None and group.open else 0

    def closed(self, notification_id: int) -> str | None:
        """The server closed a notification; the next crash of that program starts a new one."""
        self._shown.pop(notification_id, None)
        for key, group in self._groups.items():
            if group.notification_id == notification_id and notification_id:
                group.open = False
                group.notification_id = 0
                return key
        return None


def catch_up(crashes: Sequence[tuple[Crash, Program]]) -> Announcement | None:
    """ONE grouped notification for the crashes that happened while the user was away.

    `crashes` excludes muted programs (they are counted, not announced). None when empty.
    """
    if not crashes:
        return None
    counts: dict[str, int] = {}
    names: dict[str, str] = {}
    for crash, program in crashes:
        counts[crash.program_key] = counts.get(crash.program_key, 0) + 1
        names.setdefault(crash.program_key, one_line(program.name, 80))
    ordered = sorted(counts, key=lambda k: -counts[k])
    listed = [
        names[k] if counts[k] == 1 else f"{names[k]} ({counts[k]} times)"
        for k in ordered[:CATCHUP_NAMES]
    ]
    if len(ordered) > CATCHUP_NAMES:
        listed.append(f"and {len(ordered) - CATCHUP_NAMES} more")
    n = len(ordered)
    title = (
        f"{names[ordered[0]]} crashed since you last logged in"
        if n == 1
        else f"{n} programs crashed since you last logged in"
    )
    body = (f"{n} programs crashed since you last logged in: " if n > 1 else "") + ", ".join(listed)
    if n == 1:
        body = f"{crashes[-1][0].reason}" + (
            "" if counts[ordered[0]] == 1 else f", {counts[ordered[0]]} times"
        )
    return Announcement(
        kind=Kind.CATCHUP,
        group_key="",
        title=title,
        body=body,
        crash_ids=tuple(c.id for c, _ in crashes),
        replaces_id=0,
    )
