"""What a user's session bus carries that a user or another program notices, one JSON line each.

Run as the test user (only they may connect to their bus), started with their session:
`notify` for every notification sent to the notification server (summary, body, replaces id),
`close` for every CloseNotification asked of it, `action` and `closed` for the server's
ActionInvoked and NotificationClosed signals, and `crash` for the app's CrashDetected signal
(the crash dict, plain values), and `call` for every method called on the app (what another
program, or a second start of the app, asks of it). Prints "ready" once it listens. The
session's bus policy allows eavesdropping (drkonqi_lite/session/user.py), so it watches calls
to dunst without a monitor connection; it never answers what it overhears.
"""

from __future__ import annotations

import asyncio
import json

from dbus_next.aio.message_bus import MessageBus
from dbus_next.constants import MessageType
from dbus_next.message import Message
from dbus_next.signature import Variant

NOTIFICATIONS = "org.freedesktop.Notifications"
APP_IFACE = "org.drkonqi_lite.CrashNotifier1"
RULES = (
    f"type='method_call',interface='{NOTIFICATIONS}',member='Notify',eavesdrop='true'",
    f"type='method_call',interface='{NOTIFICATIONS}',member='CloseNotification',eavesdrop='true'",
    f"type='signal',interface='{NOTIFICATIONS}',eavesdrop='true'",
    f"type='signal',interface='{APP_IFACE}',member='CrashDetected'",
    f"type='method_call',interface='{APP_IFACE}',eavesdrop='true'",
)


def plain(value: object) -> object:
    if isinstance(value, Variant):
        return plain(value.value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def event(msg: Message) -> dict[str, object] | None:
    """The line for `msg`, or None for what is not watched."""
    body = msg.body
    if msg.member == "Notify" and msg.message_type == MessageType.METHOD_CALL:
        return {"event": "notify", "replaces": body[1], "summary": body[3], "body": body[4],
                "actions": body[5]}  # fmt: skip
    if msg.member == "CloseNotification" and msg.message_type == MessageType.METHOD_CALL:
        return {"event": "close", "id": body[0]}
    if msg.member == "ActionInvoked":
        return {"event": "action", "id": body[0], "action": body[1]}
    if msg.member == "NotificationClosed":
        return {"event": "closed", "id": body[0], "reason": body[1]}
    if msg.member == "CrashDetected":
        return {"event": "crash", "crash": plain(body[0])}
    if msg.interface == APP_IFACE and msg.message_type == MessageType.METHOD_CALL:
        return {"event": "call", "member": msg.member, "args": plain(body)}
    return None


async def main() -> None:
    bus = await MessageBus().connect()
    for rule in RULES:
        await bus.call(
            Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                    interface="org.freedesktop.DBus", member="AddMatch", signature="s",
                    body=[rule])
        )  # fmt: skip

    def on_message(msg: Message) -> bool:
        line = event(msg)
        if line is not None:
            print(json.dumps(line), flush=True)
        return True  # overheard: never answered (a reply would be a second, wrong one)

    bus.add_message_handler(on_message)
    print("ready", flush=True)
    await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    asyncio.run(main())
