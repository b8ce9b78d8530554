"""Client of the desktop notification server (org.freedesktop.Notifications) over dbus-next.

Follows the Desktop Notifications spec 1.2: capabilities decide whether actions and a body are
sent and whether the body must be markup-escaped (every text here is hostile: a comm like
`<a href=…>` must show literally). `ActionInvoked`/`NotificationClosed` are accepted only from
the current owner of the server's name. AnnouncementSender turns the domain's announcements
into calls (coalesced per program group, the tray balloon when there is no server). No Qt here.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Sequence

from dbus_next.aio.message_bus import MessageBus
from dbus_next.constants import MessageType
from dbus_next.message import Message
from dbus_next.signature import Variant

from drkonqi_lite.domain.announcement import Announcement, Announcer
from drkonqi_lite.domain.plain_text import one_line

log = logging.getLogger(__name__)

NAME = "org.freedesktop.Notifications"
PATH = "/org/freedesktop/Notifications"
IFACE = "org.freedesktop.Notifications"
_DBUS = ("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus")
URGENCY_NORMAL = 1
URGENCY_CRITICAL = 2
#: The spec's body markup is a subset of XML: these three make text inert (html.escape without
#: quote=, but the html package's import costs a cold start ~2 ms of its 200 for this table).
_MARKUP = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


class NotificationError(Exception):
    """The server refused or is gone."""


@dataclasses.dataclass(frozen=True, slots=True)
class Note:
    """One notification as the app wants it shown (plain text)."""

    summary: str
    body: str
    actions: Sequence[tuple[str, str]]
    replaces_id: int = 0
    icon: str = ""
    desktop_entry: str = ""
    urgency: int = URGENCY_NORMAL
    timeout_ms: int = -1


async def bus_call(bus: MessageBus, message: Message) -> list[object]:
    reply = await bus.call(message)
    if reply is None:
        return []
    if reply.message_type == MessageType.ERROR:
        raise NotificationError(f"{reply.error_name}: {reply.body[0] if reply.body else ''}")
    return list(reply.body)


def _dbus(member: str, signature: str = "", body: Sequence[object] = ()) -> Message:
    dest, path, iface = _DBUS
    return Message(
        destination=dest,
        path=path,
        interface=iface,
        member=member,
        signature=signature,
        body=list(body),
    )


class NotificationsClient:
    """Sends notifications and reports actions/closures through the callbacks."""

    def __init__(
        self,
        bus: MessageBus,
        on_action: Callable[[int, str], None],
        on_closed: Callable[[int, int], None],
        app_name: str = "drkonqi-lite",
    ) -> None:
        self._bus = bus
        self._on_action = on_action
        self._on_closed = on_closed
        self._app_name = app_name
        self._owner = ""
        self._owner_changed = asyncio.Event()
        self._caps: frozenset[str] | None = None

    async def start(self) -> None:
        """Subscribe to the server's signals and to its name changing owner."""
        self._bus.add_message_handler(self._on_message)
        rules = [
            f"type='signal',interface='{IFACE}',path='{PATH}'",
            f"type='signal',interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='{NAME}'",
        ]
        for rule in rules:
            await bus_call(self._bus, _dbus("AddMatch", "s", [rule]))
        with contextlib.suppress(NotificationError):
            (owner,) = await bus_call(self._bus, _dbus("GetNameOwner", "s", [NAME]))
            self._owner = str(owner)

    async def wait_available(self, timeout_s: float) -> bool:
        """True once a server owns the name or can be activated; False after `timeout_s`."""
        if self._owner:
            return True
        (names,) = await bus_call(self._bus, _dbus("ListActivatableNames"))
        if isinstance(names, list) and NAME in names:
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._owner_changed.wait(), timeout_s)
        return bool(self._owner)

    @property
    def available(self) -> bool:
        return bool(self._owner)

    def _on_message(self, msg: Message) -> None:
        if msg.message_type != MessageType.SIGNAL:
            return
        if msg.member == "NameOwnerChanged" and msg.body and msg.body[0] == NAME:
            self._owner = str(msg.body[2])
            self._caps = None
            if self._owner:
                self._owner_changed.set()
            else:
                self._owner_changed.clear()
            return
        if msg.interface != IFACE or msg.path != PATH or not self._owner:
            return
        if msg.sender != self._owner:
            log.info("ignored %s from %s (not the notification server)", msg.member, msg.sender)
            return
        if msg.member == "ActionInvoked" and msg.signature == "us":
            self._on_action(int(msg.body[0]), str(msg.body[1]))
        elif msg.member == "NotificationClosed" and msg.signature == "uu":
            self._on_closed(int(msg.body[0]), int(msg.body[1]))

    async def capabilities(self) -> frozenset[str]:
        if self._caps is None:
            msg = Message(destination=NAME, path=PATH, interface=IFACE, member="GetCapabilities")
            body = await bus_call(self._bus, msg)
            caps = body[0] if body and isinstance(body[0], list) else []
            self._caps = frozenset(str(c) for c in caps)
        return self._caps

    async def notify(self, note: Note) -> int:
        """Show or replace a notification; its id."""
        caps = await self.capabilities()
        body = note.body if "body" in caps else ""
        if "body-markup" in caps:
            body = body.translate(_MARKUP)
        actions: list[str] = []
        if "actions" in caps:
            for key, label in note.actions:
                actions += [key, label]
        hints: dict[str, Variant] = {"urgency": Variant("y", note.urgency)}
        if note.desktop_entry:
            hints["desktop-entry"] = Variant("s", note.desktop_entry)
        msg = Message(
            destination=NAME,
            path=PATH,
            interface=IFACE,
            member="Notify",
            signature="susssasa{sv}i",
            body=[
                self._app_name,
                note.replaces_id,
                note.icon,
                note.summary,
                body,
                actions,
                hints,
                note.timeout_ms,
            ],
        )
        (nid,) = await bus_call(self._bus, msg)
        return int(str(nid))

    async def close(self, notification_id: int) -> None:
        msg = Message(
            destination=NAME,
            path=PATH,
            interface=IFACE,
            member="CloseNotification",
            signature="u",
            body=[notification_id],
        )
        with contextlib.suppress(NotificationError):
            await bus_call(self._bus, msg)


#: Notification actions (key, label); "default" is what a click on the bubble does.
ACTIONS = (("default", "Details"), ("details", "Details"), ("mute", "Mute this program"),
           ("dismiss", "Dismiss"))  # fmt: skip


class AnnouncementSender:
    """Shows the domain's Announcements: coalesced per group, the tray balloon as fallback.

    A crash loop makes many announcements for one group; while the group's Notify is in flight
    only its newest text waits (no queue of 50 calls), and each call replaces the group's
    notification in place (`replaces_id` from the Announcer).
    """

    def __init__(
        self,
        client: NotificationsClient,
        announcer: Announcer,
        *,
        fallback: Callable[[str, str], None],
        after: Callable[[], None],
    ) -> None:
        self._client = client
        self._announcer = announcer
        self._fallback = fallback
        self._after = after
        self._inflight: set[str] = set()
        self._pending: dict[str, Announcement] = {}
        #: A server was there at start-up (or activatable).
        self.server = False

    @property
    def busy(self) -> bool:
        return bool(self._inflight)

    async def present(self, ann: Announcement) -> None:
        key = ann.group_key or f"catchup-{id(ann)}"
        if key in self._inflight:
            self._pending[key] = ann
            return
        self._inflight.add(key)
        try:
            current: Announcement | None = ann
            while current is not None:
                await self._send(current)
                current = self._pending.pop(key, None)
        finally:
            self._inflight.discard(key)
            self._after()

    async def _send(self, ann: Announcement) -> None:
        replaces = self._announcer.notification_id(ann.group_key) if ann.group_key else 0
        if self.server or self._client.available:
            note = Note(
                summary=ann.title,
                body=ann.body,
                actions=ACTIONS,
                replaces_id=replaces,
                icon=ann.icon or "drkonqi-lite",
                desktop_entry=ann.desktop_entry,
            )
            try:
                nid = await self._client.notify(note)
            except NotificationError as exc:
                log.warning("notification failed (%s); using the tray", exc)
            else:
                self._announcer.shown(ann, nid)
                log.info("notified %d: %s", nid, one_line(ann.title))
                return
        self._fallback(ann.title, ann.body)
        log.info("tray balloon: %s", one_line(ann.title))
