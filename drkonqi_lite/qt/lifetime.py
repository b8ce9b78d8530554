"""How long the app lives, and what wakes it while it lives (issue 12, DESIGN.md §5 idle).

Two modes, chosen by the session:
- on-demand (`--exit-when-idle`: the systemd user unit, or elsewhere the Qt-free waiter of
  XDG autostart, waiter.py): the wake-up socket (unit or waiter), D-Bus activation or the
  login check starts the app; it ends once nothing is unseen, no window is open and nothing is
  being sent, after a short grace period (a crash right after a dismissal would otherwise
  start a second process within a second);
- resident (`drkonqi-lite` started by hand, or the tray icon always shown): it stays.

In both, the journal fd is watched only when someone else is the kernel's crash handler.
sd-journal's inotify watch fires on every journal write on the machine, whatever the match
(66-70 wake-ups in 20 s next to a program logging 10 lines/s); when our collector is the
handler its wake-up datagram is the signal, the core storage watch a second one, and a
coarse timer re-reads the journal every FALLBACK_S so that a lost datagram delays a crash by
at most that much.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
from collections.abc import Callable

from PySide6.QtCore import QObject, QSocketNotifier, Qt, QTimer

from drkonqi_lite.adapters.crash_handler import FALLBACK_S

log = logging.getLogger(__name__)
#: On-demand mode: how long the app waits with nothing to do before it ends.
GRACE_MS = 3000


def fallback_timer(slot: Callable[[], None], parent: QObject) -> QTimer:
    """The bounded fallback: a very coarse repeating timer (the kernel may batch it)."""
    timer = QTimer(parent)
    timer.setTimerType(Qt.TimerType.VeryCoarseTimer)
    timer.setInterval(FALLBACK_S * 1000)
    timer.timeout.connect(slot)
    timer.start()
    return timer


class IdleExit(QObject):
    """Calls `end` once `busy()` has said None (nothing to do) for a whole grace period.

    `check()` is called whenever something `busy` looks at may have changed (a crash read or
    seen, a window closed, a notification sent); no polling.
    """

    def __init__(
        self,
        busy: Callable[[], str | None],
        end: Callable[[], None],
        parent: QObject,
        grace_ms: int = GRACE_MS,
    ) -> None:
        super().__init__(parent)
        self._busy = busy
        self._end = end
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(grace_ms)
        self._timer.timeout.connect(self._expired)

    def check(self) -> None:
        if self._busy() is None:
            if not self._timer.isActive():
                self._timer.start()
        else:
            self._timer.stop()

    def _expired(self) -> None:
        reason = self._busy()
        if reason is None:
            log.info("nothing unseen and no window open: exiting until the next crash")
            self._end()
        else:
            log.debug("staying: %s", reason)


def quit_on_signals(end: Callable[[], None], parent: QObject) -> QSocketNotifier:
    """SIGTERM/SIGINT end the app cleanly: the handler only writes to a socket Qt watches."""
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    signal.set_wakeup_fd(writer.fileno())
    for signo in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signo, lambda *_: None)
    notifier = QSocketNotifier(reader.fileno(), QSocketNotifier.Type.Read, parent)

    def on_signal() -> None:
        with contextlib.suppress(BlockingIOError):
            reader.recv(64)
        end()

    notifier.activated.connect(on_signal)
    notifier.setProperty("sockets", (reader, writer))  # keep them alive with the notifier
    return notifier
