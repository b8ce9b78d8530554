"""The fast wake-up socket: the collector pokes the user's running app right after a crash.

An AF_UNIX SOCK_DGRAM socket at `$XDG_RUNTIME_DIR/drkonqi-lite/wakeup` (dir 0700, socket 0600,
owned by the user; the collector's child sends as the crashing user). A datagram carries
nothing the app trusts: its content is discarded and the app only re-reads the journal, so a
poke from any process of the user costs one journal read. journald itself wakes readers
250-500 ms late (it batches inotify events, TESTING.md); this path gets the notification out in
a few ms.

Under a systemd user manager the socket is `drkonqi-lite.socket`'s (socket activation: the
first datagram starts the app, which takes the bound fd, LISTEN_FDS, sd_listen_fds(3)); the
unit owns the path, so the app neither binds nor removes it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat
from pathlib import Path

from drkonqi_lite_collector.journal import schema

log = logging.getLogger(__name__)
#: Datagrams read per wake-up at most (a flood must not keep the GUI thread busy).
MAX_DATAGRAMS = 256


def wakeup_path(runtime_dir: str) -> Path:
    return Path(schema.wakeup_path(runtime_dir))


#: sd_listen_fds(3): the first passed fd.
LISTEN_FDS_START = 3


def listened_socket() -> socket.socket | None:
    """The datagram socket systemd passed us (LISTEN_PID/LISTEN_FDS), or None.

    Clears the variables so that nothing the app starts believes it got the fd too.
    """
    pid, count = os.environ.pop("LISTEN_PID", ""), os.environ.pop("LISTEN_FDS", "")
    os.environ.pop("LISTEN_FDNAMES", None)
    if pid != str(os.getpid()) or not count.isdigit() or int(count) < 1:
        return None
    try:
        sock = socket.socket(fileno=LISTEN_FDS_START)
    except OSError as exc:  # not a socket, or not open: whoever started us got it wrong
        log.warning("ignoring LISTEN_FDS: fd %d: %s", LISTEN_FDS_START, exc.strerror)
        return None
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_DGRAM:
        log.warning("ignoring the passed fd: not an AF_UNIX datagram socket")
        sock.detach()
        return None
    sock.setblocking(False)
    os.set_inheritable(sock.fileno(), False)
    return sock


class WakeupSocket:
    """The bound socket; `fileno()` for a QSocketNotifier, `drain()` in its slot."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sock: socket.socket | None = None
        self._ino = 0

    def adopt(self, sock: socket.socket) -> None:
        """Use the socket the socket unit bound (the unit keeps the path)."""
        self._sock = sock
        self._ino = 0

    def open(self) -> None:
        """Create the directory and bind. Raises OSError if the directory is not safely ours."""
        directory = self.path.parent
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=0o700)
        st = directory.lstat()
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
            raise OSError(f"{directory} is not a directory owned by this user")
        directory.chmod(0o700)
        # Only one app per session holds the D-Bus name, so a leftover socket is stale, unless
        # the socket unit listens there (this app was started by hand): that one must stay.
        if _listening(self.path):
            raise OSError(f"{self.path} belongs to the socket unit (drkonqi-lite.socket)")
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        sock = socket.socket(
            socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
        )
        old_umask = os.umask(0o177)
        try:
            sock.bind(str(self.path))
        finally:
            os.umask(old_umask)
        self.path.chmod(0o600)
        self._ino = self.path.lstat().st_ino
        self._sock = sock

    def fileno(self) -> int:
        if self._sock is None:
            raise RuntimeError("wake-up socket not open")
        return self._sock.fileno()

    def drain(self) -> int:
        """Discard pending datagrams; how many there were."""
        if self._sock is None:
            return 0
        n = 0
        while n < MAX_DATAGRAMS:
            try:
                self._sock.recv(64)
            except BlockingIOError:
                break
            except OSError as exc:
                log.warning("wake-up socket: %s", exc)
                break
            n += 1
        return n

    def close(self) -> None:
        if self._sock is None:
            return
        self._sock.close()
        self._sock = None
        if not self._ino:
            return  # the socket unit's path: it stays, to start us at the next crash
        # Remove the path only if it is still ours (a newer instance may have re-bound it).
        with contextlib.suppress(OSError):
            if self.path.lstat().st_ino == self._ino:
                self.path.unlink()


def _listening(path: Path) -> bool:
    """Is a socket bound at `path`? (connect(2) on a stale one: ECONNREFUSED.)"""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def open_for_app(runtime: str) -> tuple[WakeupSocket | None, bool]:
    """The app's wake-up socket: the one passed by whoever started it (the socket unit, or the
    resident waiter), else bound here; and whether datagrams were waiting, i.e. a crash that
    just happened started the app (they are read: the journal read that follows is for them)."""
    passed = listened_socket()
    if passed is not None:
        wakeup = WakeupSocket(wakeup_path(runtime or "/nonexistent"))
        wakeup.adopt(passed)
        return wakeup, wakeup.drain() > 0
    if not runtime.startswith("/"):
        log.warning("no $XDG_RUNTIME_DIR: no fast wake-up path (the journal still works)")
        return None, False
    wakeup = WakeupSocket(wakeup_path(runtime))
    try:
        wakeup.open()
    except OSError as exc:
        log.warning("no fast wake-up path: %s", exc)
        return None, False
    return wakeup, False


def discard_passed() -> None:
    """An instance that is not needed (another one runs) empties the socket it was passed, or
    the socket unit would start it again and again for the same datagrams."""
    sock = listened_socket()
    if sock is not None:
        wakeup = WakeupSocket(Path("/"))
        wakeup.adopt(sock)
        wakeup.drain()
        wakeup.close()


def poke(path: Path) -> bool:
    """Send one empty datagram (what the collector does; used by tests and `drkonqi-lite`)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(b"", str(path))
        except OSError:
            return False
    return True
