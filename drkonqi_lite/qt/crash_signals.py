"""Everything that tells the running app "read the journal now", wired into Qt's loop.

- the wake-up datagram (adapters/wakeup.py): bound by the app, or passed by the socket unit
  (or the resident waiter) that started it;
- one of this user's cores appearing in the storage directories (adapters/storage_watch.py);
- the journal fd, or, when our collector is the crash handler, a coarse fallback timer instead
  (qt/lifetime.py: the fd fires on every journal write of the machine).
After a datagram or a core the journal is read at once and then retried until the entry shows:
quickly for ~0.5 s (journald may need a few ms; systemd-coredump links the core ~50-100 ms
before it sends the entry), then every SLOW_RETRY_MS for up to EXPECT_S, because a busy
journald can take seconds, and an entry on its way keeps the on-demand app from ending (it
would otherwise end with the crash unannounced until its next start). No other timer runs.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Protocol

from PySide6.QtCore import QObject, QSocketNotifier, QTimer, Signal

from drkonqi_lite.adapters.crash_handler import collector_is_handler
from drkonqi_lite.adapters.storage_watch import StorageWatch
from drkonqi_lite.adapters.wakeup import WakeupSocket
from drkonqi_lite.domain.trust import STORAGE_DIRS
from drkonqi_lite.qt.lifetime import fallback_timer

log = logging.getLogger("drkonqi_lite")
#: Re-read delays (ms) after a wake-up until the entry shows; ~0.5 s bound in all.
WAKEUP_RETRIES_MS = (0, 2, 4, 8, 16, *(25,) * 18)
#: Then a re-read this often, for up to EXPECT_S after the wake-up (the collector sends its
#: datagram after the entry, so an entry is on its way; a lost or forged one ends the wait).
SLOW_RETRY_MS = 500
EXPECT_S = 30.0


class JournalFd(Protocol):
    """What this needs of adapters/journal.JournalSource (Qt code does not import systemd)."""

    def fileno(self) -> int: ...
    def process(self) -> None: ...


class CrashSignals(QObject):
    """Calls `drain()` (which returns how many entries it read) whenever a crash may be due."""

    #: The entry a wake-up announced was read, or did not show within EXPECT_S: the
    #: on-demand app may end now.
    settled = Signal()

    def __init__(
        self,
        source: JournalFd,
        drain: Callable[[], int],
        wakeup: WakeupSocket | None,
        parent: QObject,
    ) -> None:
        super().__init__(parent)
        self._source = source
        self._drain = drain
        self._gen = 0
        self._expect_until = 0.0
        self._notifiers: list[QSocketNotifier] = []
        #: adapters/wakeup.open_for_app's, opened before Qt was loaded.
        self.wakeup = wakeup
        self._storage: StorageWatch | None = None
        self.fallback: QTimer | None = None
        self._journal_fd: QSocketNotifier | None = None

    def start(self) -> None:
        # sd_journal_get_fd() sets up the inotify watch through which process() finds journal
        # files created later (a user's first crash creates user-UID.journal), watched or not.
        self._source.fileno()
        if self.wakeup is not None:
            self._watch(self.wakeup.fileno(), self._on_wakeup)
        self._choose_journal_watch()
        self._open_storage_watch()

    def _choose_journal_watch(self) -> None:
        """The fallback timer while our collector is the handler, else the journal fd; checked
        again whenever either fires (the handler can change while the app runs)."""
        ours = self.wakeup is not None and collector_is_handler()
        if ours and self.fallback is None:
            if self._journal_fd is not None:
                self._journal_fd.setEnabled(False)
                self._notifiers.remove(self._journal_fd)
                self._journal_fd.deleteLater()
                self._journal_fd = None
            self.fallback = fallback_timer(self._on_journal, self)
            log.info("our collector handles crashes: its datagram is the signal, the journal is "
                     "re-read every %d s", self.fallback.interval() // 1000)  # fmt: skip
        elif not ours and self._journal_fd is None:
            if self.fallback is not None:
                self.fallback.stop()
                self.fallback.deleteLater()
                self.fallback = None
            self._journal_fd = self._watch(self._source.fileno(), self._on_journal)

    def _open_storage_watch(self) -> None:
        try:
            storage = StorageWatch(os.getuid())
        except OSError as exc:
            log.info("no storage watch: %s", exc)
            return
        storage.watch(STORAGE_DIRS)
        self._storage = storage
        self._watch(storage.fileno(), self._on_storage)

    def _watch(self, fd: int, slot: Callable[[], None]) -> QSocketNotifier:
        notifier = QSocketNotifier(fd, QSocketNotifier.Type.Read, self)
        notifier.activated.connect(slot)
        self._notifiers.append(notifier)
        return notifier

    def _read(self) -> None:
        self._source.process()  # acknowledges the fd; picks up a journal file created just now
        if self._drain() and self._expect_until:
            self._settle()

    def _settle(self) -> None:
        self._expect_until = 0.0
        self.settled.emit()

    def _on_journal(self) -> None:
        self._read()
        self._choose_journal_watch()

    def _on_storage(self) -> None:
        if self._storage is not None and self._storage.drain():
            self.expect_entry()

    def _on_wakeup(self) -> None:
        if self.wakeup is not None:
            self.wakeup.drain()
        self.expect_entry()

    def expect_entry(self) -> None:
        """A crash entry is on its way: read now, then retry until it shows up (or EXPECT_S)."""
        self._gen += 1
        self._expect_until = time.monotonic() + EXPECT_S
        self._retry(self._gen, 0)

    def expecting(self) -> bool:
        """A wake-up's entry has not shown yet (the on-demand app must not end)."""
        return time.monotonic() < self._expect_until

    def _retry(self, gen: int, step: int) -> None:
        if gen != self._gen or not self._expect_until:
            return  # a newer wake-up took over, or a read (of any path) found the entry
        self._read()
        if not self._expect_until:
            return
        if not self.expecting():
            log.warning("woken for a crash whose entry did not show within %g s", EXPECT_S)
            self._settle()
            return
        step += 1
        delay = WAKEUP_RETRIES_MS[step] if step < len(WAKEUP_RETRIES_MS) else SLOW_RETRY_MS
        QTimer.singleShot(delay, lambda: self._retry(gen, step))

    def close(self) -> None:
        for notifier in self._notifiers:
            notifier.setEnabled(False)
        if self.fallback is not None:
            self.fallback.stop()
        if self.wakeup is not None:
            self.wakeup.close()
        if self._storage is not None:
            self._storage.close()
