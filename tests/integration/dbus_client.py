"""Another program on the session bus: subscribes to CrashDetected, then calls every method.

Run as the test user (its own bus). Prints "ready" once subscribed, then one JSON document with
everything it saw. Used by test_app_dbus.py; it is deliberately a separate process.
"""

from __future__ import annotations

import asyncio
import json
import sys

from dbus_next.aio.message_bus import MessageBus
from dbus_next.constants import MessageType
from dbus_next.message import Message
from dbus_next.signature import Variant

NAME = "org.drkonqi_lite.CrashNotifier"
PATH = "/org/drkonqi_lite/CrashNotifier"
IFACE = "org.drkonqi_lite.CrashNotifier1"


def plain(value: object) -> object:
    if isinstance(value, Variant):
        return {"sig": value.signature, "value": plain(value.value)}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


async def main() -> None:
    bus = await MessageBus().connect()
    signals: list[dict[str, object]] = []
    detected = asyncio.Event()
    dismissed = asyncio.Event()

    def on_message(msg: Message) -> None:
        if msg.message_type != MessageType.SIGNAL or msg.path != PATH:
            return
        signals.append({"member": msg.member, "body": plain(msg.body)})
        if msg.member == "CrashDetected":
            detected.set()
        if msg.member == "CrashDismissed":
            dismissed.set()

    bus.add_message_handler(on_message)

    async def call(
        iface: str,
        member: str,
        sig: str = "",
        body: list[object] | None = None,
        dest: str = NAME,
        path: str = PATH,
    ) -> dict[str, object]:
        reply = await bus.call(
            Message(
                destination=dest,
                path=path,
                interface=iface,
                member=member,
                signature=sig,
                body=body or [],
            )
        )
        assert reply is not None
        if reply.message_type == MessageType.ERROR:
            return {"error": reply.error_name}
        return {"body": plain(reply.body)}

    for rule in (
        f"type='signal',interface='{IFACE}',path='{PATH}'",
        f"type='signal',interface='org.freedesktop.DBus.Properties',path='{PATH}'",
    ):
        await call(
            "org.freedesktop.DBus",
            "AddMatch",
            "s",
            [rule],
            dest="org.freedesktop.DBus",
            path="/org/freedesktop/DBus",
        )
    print("ready", flush=True)
    await asyncio.wait_for(detected.wait(), 20)
    crash_id = signals[0]["body"][0]["id"]["value"]  # type: ignore[index]
    out: dict[str, object] = {"id": crash_id}
    props = "org.freedesktop.DBus.Properties"
    out["unseen_before"] = await call(props, "Get", "ss", [IFACE, "UnseenCount"])
    out["version"] = await call(props, "Get", "ss", [IFACE, "Version"])
    out["list"] = await call(IFACE, "ListCrashes")
    out["get"] = await call(IFACE, "GetCrash", "s", [crash_id])
    out["get_unknown"] = await call(IFACE, "GetCrash", "s", ["nope"])
    out["show"] = await call(IFACE, "ShowCrash", "s", [crash_id])
    out["show_list"] = await call(IFACE, "ShowCrashList")
    out["dismiss"] = await call(IFACE, "Dismiss", "s", [crash_id])
    await asyncio.wait_for(dismissed.wait(), 10)
    out["dismiss_all"] = await call(IFACE, "DismissAll")
    out["unseen_after"] = await call(props, "Get", "ss", [IFACE, "UnseenCount"])
    out["introspect"] = await call("org.freedesktop.DBus.Introspectable", "Introspect")
    await asyncio.sleep(0.2)
    out["signals"] = signals
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
