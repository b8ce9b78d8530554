"""The session bus connection: claiming our name (single instance) and talking to the owner.

One app per session: the first start exports the service and owns
org.drkonqi_lite.CrashNotifier; a later start finds the name taken (DO_NOT_QUEUE), asks the
owner to ShowCrashList, and exits. Only the uid that started a session bus may connect to it.
"""

from __future__ import annotations

import asyncio

from dbus_next.aio.message_bus import MessageBus, _MessageWriter
from dbus_next.constants import NameFlag, RequestNameReply
from dbus_next.message import Message

from drkonqi_lite.adapters.notification import bus_call
from drkonqi_lite.adapters.service import BUS_NAME, INTERFACE, OBJECT_PATH, CrashNotifierService

__all__ = ["MessageBus", "call_running", "claim_name", "connect", "move_to_loop"]


class _PatientWriter(_MessageWriter):
    """dbus-next 0.2.3's writer, except that a full socket buffer means "wait", not "die".

    Its write_callback sends queued messages back to back and treats EAGAIN from send() as a
    fatal error: a burst (1,000 CrashDetected signals at a login catch-up, a crash storm) tears
    the bus connection down. Same algorithm, but EAGAIN returns and waits for the loop's next
    "writable" callback (the writer stays registered). Pinned to dbus-next==0.2.3.
    """

    def write_callback(self) -> None:
        try:
            while True:
                if self.buf is None:
                    if self.messages.qsize() == 0:
                        self.loop.remove_writer(self.fd)
                        return
                    buf, unix_fds, fut = self.messages.get_nowait()
                    self.unix_fds = unix_fds
                    self.buf = memoryview(buf)
                    self.offset = 0
                    self.fut = fut
                try:
                    self.offset += self.sock.send(self.buf[self.offset :])
                except BlockingIOError:
                    return  # the socket buffer is full: the loop calls us again when writable
                if self.offset < len(self.buf):
                    return
                self.buf = None
                if self.fut is not None and not self.fut.done():
                    self.fut.set_result(None)
        except Exception as exc:  # noqa: BLE001 (the library's own contract: finalize the bus)
            if self.fut is not None and not self.fut.done():
                self.fut.set_exception(exc)
            self.bus._finalize(exc)


async def connect() -> MessageBus:
    """Connect to $DBUS_SESSION_BUS_ADDRESS (OSError-like failures propagate)."""
    bus = await MessageBus().connect()
    # We never pass unix fds, so the fd-passing branch of the original is not needed.
    bus._writer.__class__ = _PatientWriter
    return bus


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


def move_to_loop(bus: MessageBus, loop: asyncio.AbstractEventLoop) -> None:
    """Hand a connected bus over to another event loop (app.py: from the plain asyncio loop
    of the notification to Qt's). Nothing is lost: what arrived meanwhile waits in the socket,
    what was queued to send is sent by the new loop. Call with no bus call pending (their
    futures belong to the old loop). dbus-next 0.2.3's internals, pinned like _PatientWriter.
    """
    # dbus-next's bus is untyped inside: these are its attributes, read as such.
    old: asyncio.AbstractEventLoop = bus._loop
    fd: int = bus._fd
    old.remove_reader(fd)
    old.remove_writer(fd)
    bus._loop = loop
    bus._writer.loop = loop
    if not bus._disconnect_future.done():
        bus._disconnect_future = loop.create_future()
    loop.add_reader(fd, bus._message_reader)
    if bus._writer.buf is not None or bus._writer.messages.qsize():
        loop.add_writer(fd, bus._writer.write_callback)
