"""The session bus connection: claiming our name (single instance) and talking to the owner.

One app per session: the first start exports the service and owns
org.drkonqi_lite.CrashNotifier; a later start finds the name taken (DO_NOT_QUEUE), asks the
owner to ShowCrashList, and exits. Only the uid that started a session bus may connect to it.
"""

from __future__ import annotations

from dbus_next.aio.message_bus import MessageBus  # noqa: TID251
from dbus_next.constants import NameFlag, RequestNameReply  # noqa: TID251 (adapters own D-Bus)
from dbus_next.message import Message  # noqa: TID251

from drkonqi_lite.adapters.notification import bus_call
from drkonqi_lite.adapters.service import BUS_NAME, INTERFACE, OBJECT_PATH, CrashNotifierService

__all__ = ["MessageBus", "call_running", "claim_name", "connect"]


async def connect() -> MessageBus:
    """Connect to $DBUS_SESSION_BUS_ADDRESS (OSError-like failures propagate)."""
    return await MessageBus().connect()


async def claim_name(bus: MessageBus, service: CrashNotifierService) -> bool:
    """Export the service and take the bus name; False when another instance has it."""
    bus.export(OBJECT_PATH, service)
    reply = await bus.request_name(BUS_NAME, NameFlag.DO_NOT_QUEUE)
    if reply in {RequestNameReply.PRIMARY_OWNER, RequestNameReply.ALREADY_OWNER}:
        return True
    bus.unexport(OBJECT_PATH, service)
    return False


async def call_running(
    bus: MessageBus, member: str, signature: str = "", args: list[object] | None = None
) -> list[object]:
    """Call a method of the running instance's service."""
    msg = Message(
        destination=BUS_NAME,
        path=OBJECT_PATH,
        interface=INTERFACE,
        member=member,
        signature=signature,
        body=args or [],
    )
    return await bus_call(bus, msg)


def disconnect(bus: MessageBus) -> None:
    bus.disconnect()  # type: ignore[no-untyped-call]


async def wait_closed(bus: MessageBus) -> None:
    """Returns when the bus connection ends (the session is over)."""
    await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]
