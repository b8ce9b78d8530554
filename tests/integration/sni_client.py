"""What a StatusNotifierItem host sees of the tray icon, asked over the user's session bus.

Run as the test user: `sni_client.py items` prints the watcher's registered items (JSON);
`sni_client.py show ITEM` prints the item's properties and its menu's labels;
`sni_client.py activate ITEM` clicks it the way a panel does. ITEM is "busname/path", as the
watcher lists it. Used by test_app_tray_sni.py.
"""

from __future__ import annotations

import asyncio
import json
import sys

from dbus_next.aio.message_bus import MessageBus
from dbus_next.constants import MessageType
from dbus_next.message import Message
from dbus_next.signature import Variant

WATCHER = ("org.kde.StatusNotifierWatcher", "/StatusNotifierWatcher")
ITEM_IFACE = "org.kde.StatusNotifierItem"
PROPS = "org.freedesktop.DBus.Properties"


async def call(
    bus: MessageBus, dest: str, path: str, iface: str, member: str, sig: str = "",
    body: list[object] | None = None,
) -> list[object]:  # fmt: skip
    reply = await bus.call(Message(destination=dest, path=path, interface=iface, member=member,
                                   signature=sig, body=body or []))  # fmt: skip
    assert reply is not None
    if reply.message_type == MessageType.ERROR:
        raise RuntimeError(f"{member}: {reply.error_name} {reply.body}")
    return list(reply.body)


def labels(node: list[object]) -> list[str]:
    """Every menu item's label, depth first (com.canonical.dbusmenu layout (ia{sv}av))."""
    _id, props, children = node
    assert isinstance(props, dict)
    assert isinstance(children, list)
    out = [str(props["label"].value)] if "label" in props else []
    for child in children:
        out += labels(child.value)
    return out


async def main(argv: list[str]) -> None:
    bus = await MessageBus().connect()
    if argv[0] == "items":
        (value,) = await call(bus, *WATCHER, PROPS, "Get", "ss",
                              [WATCHER[0], "RegisteredStatusNotifierItems"])  # fmt: skip
        assert isinstance(value, Variant)
        print(json.dumps(value.value))
        return
    dest, _, path = argv[1].partition("/")
    path = "/" + path
    if argv[0] == "activate":
        await call(bus, dest, path, ITEM_IFACE, "Activate", "ii", [0, 0])
        print("activated")
        return
    (props,) = await call(bus, dest, path, PROPS, "GetAll", "s", [ITEM_IFACE])
    assert isinstance(props, dict)
    tooltip = props["ToolTip"].value
    out = {
        "Id": props["Id"].value,
        "Title": props["Title"].value,
        "Status": props["Status"].value,
        "Category": props["Category"].value,
        "ToolTip": [tooltip[2], tooltip[3]],
        "Icon": bool(props["IconName"].value or props["IconPixmap"].value),
    }
    menu = props["Menu"].value
    _rev, layout = await call(bus, dest, menu, "com.canonical.dbusmenu", "GetLayout", "iias",
                              [0, -1, []])  # fmt: skip
    assert isinstance(layout, list)
    out["menu"] = labels(layout)
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
