"""What stays resident where no systemd user manager starts the app per crash (issue 12).

Other inits, containers, CI: XDG autostart runs `drkonqi-lite --autostart`, and this waiter is
all that stays: Python, one journal reader and the wake-up socket; no Qt, no D-Bus (its RSS
beside the Qt app's in benchmarks/APP.md). It plays drkonqi-lite.socket's part: it binds the
wake-up socket and runs the app on demand in a child (forked, not exec'd: the interpreter and
the journal code are loaded already), the socket as fd 3 with LISTEN_FDS as systemd passes it;
that app ends once nothing is unseen and no window is open (--exit-when-idle), and the waiter
waits again. The app is run when
- the collector's datagram arrives (sent after the crash's journal entry),
- the journal has a trusted crash entry the app has not handled: at the start (crashes from
  before the login; as drkonqi-lite-login.service, when something is unseen), at the coarse
  re-read every FALLBACK_S (a datagram that got lost: what bounds how late it is) or, where
  another program is the kernel's crash handler, on the journal fd (which wakes up at every
  journal write of the machine: there is no other signal then). The waiter pokes its own
  socket first, so that the app announces that crash as the live one it is.
D-Bus activation (org.drkonqi_lite.CrashNotifier.service) starts the app for API callers by
itself. Where the tray icon is to show always (tray_always) the tray needs Qt: there the app
itself stays resident, as before (its RSS in benchmarks/APP.md).
"""

from __future__ import annotations

import logging
import os
import select
import signal
import sys
import time
from types import FrameType

from drkonqi_lite.adapters.crash_handler import FALLBACK_S, collector_is_handler
from drkonqi_lite.adapters.journal import JournalSource, trust_policy_for
from drkonqi_lite.adapters.state_store import StateStore
from drkonqi_lite.adapters.wakeup import LISTEN_FDS_START, WakeupSocket, poke, wakeup_path

log = logging.getLogger("drkonqi_lite")
#: After an app that failed, wait this long (doubling, up to MAX_BACKOFF_S) before the next.
BACKOFF_S = 2.0
MAX_BACKOFF_S = 60.0


class Waiter:
    """Waits for a crash with the wake-up socket and a journal reader; runs the app for it."""

    def __init__(self, store: StateStore, wakeup: WakeupSocket) -> None:
        self.store = store
        self.wakeup = wakeup
        self.source = JournalSource(trust_policy_for(os.getuid()))
        # sd_journal_get_fd() sets up the inotify watch through which process() finds journal
        # files created later (a user's first crash creates user-UID.journal), polled or not.
        self.source.fileno()
        #: Realtime of the newest entry read before the last app started: it had its chance at
        #: those (and its catch-up reads from its saved cursor, so none is lost by this).
        self._handed_us = 0
        #: Realtime of the app's saved cursor: entries up to it were announced (or muted).
        self._done_us = 0
        self._backoff = 0.0
        self.child = 0

    def serve(self) -> None:
        if self._unseen_at_start():
            self._run_app()
        while True:
            watch_journal = not collector_is_handler()
            fds = [self.wakeup.fileno()] + ([self.source.fileno()] if watch_journal else [])
            ready, _, _ = select.select(fds, [], [], FALLBACK_S)
            if self.wakeup.fileno() in ready:
                self._run_app()  # its datagram stays queued: the app reads it, as from systemd
                continue
            if self._new_crash(since_us=self._done_us):
                log.info("a crash without a datagram: starting the app")
                poke(self.wakeup.path)
                self._run_app()

    def _unseen_at_start(self) -> bool:
        """Anything unseen in the catch-up window (what `drkonqi-lite unseen` counts)."""
        settings, state = self.store.settings(), self.store.load()
        since = int((time.time() - settings.catchup_days * 86400) * 1e6)
        handled, new = self.source.history(since, state.cursor, state.cursor_realtime_us)
        self._done_us = state.cursor_realtime_us
        return any(not state.is_seen(crash.id) for crash in handled + new)

    def _new_crash(self, since_us: int) -> bool:
        """Reads on to the journal's end: was there a trusted crash entry newer than
        `since_us`? (Every entry is read: the reader must end up at the end.)"""
        # Acknowledges the fd, and adds journal files created since (a user's first crash
        # creates user-UID.journal): before reading, or their entries come a round late.
        self.source.process()
        found = False
        for entry in self.source.raw_entries():
            if self.source.position.realtime_us > since_us and self.source.crash(entry):
                found = True
        return found

    def _run_app(self) -> None:
        self._new_crash(since_us=0)  # to the end: what the app starts for, or older
        self._handed_us = self.source.position.realtime_us
        status = self._fork_app()
        if status != 0:
            self._backoff = min(max(BACKOFF_S, self._backoff * 2), MAX_BACKOFF_S)
            log.warning("the app ended with status %d; waiting %g s", status, self._backoff)
            time.sleep(self._backoff)
        else:
            self._backoff = 0.0
        # What the app handled is behind its saved cursor; what came since is still due.
        state = self.store.load()
        self._done_us = state.cursor_realtime_us
        if state.cursor:
            self.source.seek_after(state.cursor)
        if self._new_crash(since_us=max(self._handed_us, self._done_us)):
            log.info("a crash came as the app ended: starting it again")
            poke(self.wakeup.path)

    def _fork_app(self) -> int:
        """The app in a child, the socket passed as systemd passes it; its exit status."""
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: never returns into the waiter's loop
            status = 1
            try:
                status = _app_in_child(self.wakeup.fileno())
            finally:
                logging.shutdown()
                os._exit(status)
        self.child = pid
        _, wait_status = os.waitpid(pid, 0)
        self.child = 0
        return os.waitstatus_to_exitcode(wait_status)

    def close(self) -> None:
        if self.child:
            os.kill(self.child, signal.SIGTERM)
        self.wakeup.close()
        self.source.close()


def _app_in_child(wakeup_fd: int) -> int:
    for signo in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signo, signal.SIG_DFL)
    if wakeup_fd != LISTEN_FDS_START:
        os.dup2(wakeup_fd, LISTEN_FDS_START)
    os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="1")
    from drkonqi_lite.app import run  # noqa: PLC0415 (the app's modules only in the child)

    return run(autostart=True, exit_when_idle=True)


def _end(_signo: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


def run() -> int:
    """`drkonqi-lite --autostart` (XDG autostart): the waiter, or where it cannot be (the tray
    always shown, no runtime directory), the resident app itself."""
    logging.basicConfig(level=logging.INFO, format="drkonqi-lite: %(message)s")
    store = StateStore.from_environment()
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if store.settings().tray_always or not runtime.startswith("/"):
        from drkonqi_lite.app import run as run_app  # noqa: PLC0415

        return run_app(autostart=True)
    wakeup = WakeupSocket(wakeup_path(runtime))
    try:
        wakeup.open()
    except OSError as exc:
        # Bound by a running app, another waiter or the socket unit: nothing to do here.
        log.info("not waiting: %s", exc)
        return 0
    waiter = Waiter(store, wakeup)
    signal.signal(signal.SIGTERM, _end)
    signal.signal(signal.SIGHUP, _end)
    log.info("waiting for crashes (the app starts when one comes)")
    try:
        waiter.serve()
    except KeyboardInterrupt:
        pass
    finally:
        waiter.close()
    return 0
