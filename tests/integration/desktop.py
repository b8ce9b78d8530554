"""Desktop sessions for the app's integration tests, as pytest fixtures: the shipped harness
(drkonqi_lite/session/, which `drkonqi-lite demo` runs too) with what only tests want.

Xvfb + trayer are shared by a test session; every test user is a fresh uid without a passwd
entry (TESTING.md: journald files its entries in user-UID.journal, readable by it) with its own
home, /run/user/UID, session dbus-daemon and, when asked, a dunst on that bus. Under CI=true a
missing piece fails instead of skipping (tests/conftest.need).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from drkonqi_lite.session import userdb
from drkonqi_lite.session.display import TOOLS as X_TOOLS
from drkonqi_lite.session.display import Display as _Display
from drkonqi_lite.session.process import stop, wait_for
from drkonqi_lite.session.user import SessionUser
from drkonqi_lite_collector.journal.schema import MESSAGE_ID
from tests.conftest import CORE_PATTERN, REPO, need

PYTHON = sys.executable
MESSAGE_ID_MATCH = f"MESSAGE_ID={MESSAGE_ID}"
APP_NAME = "org.drkonqi_lite.CrashNotifier"


__all__ = ["REPO", "Display", "wait_for"]


class Display(_Display):
    """The session's X server, for a test: a missing tool skips (fails under CI)."""

    def __init__(self, workdir: Path) -> None:
        for tool in X_TOOLS:
            need(shutil.which(tool) is not None, f"{tool} not installed")
        super().__init__(workdir)

    def screenshot(self, path: Path, window: str = "root") -> Path:
        need(shutil.which("import") is not None, "imagemagick not installed")
        return super().screenshot(path, window)


class User(SessionUser):
    """One unprivileged desktop user: uid, home, runtime dir, session bus, maybe dunst."""

    def __init__(self, uid: int, workdir: Path, display: Display | None) -> None:
        self.display = display
        self.home = workdir / f"home-{uid}"
        self.home.mkdir(mode=0o700)
        os.chown(self.home, uid, uid)
        self.runtime = Path(f"/run/user/{uid}")
        if self.runtime.exists():
            shutil.rmtree(self.runtime)
        self.runtime.mkdir(mode=0o700, parents=True)
        os.chown(self.runtime, uid, uid)
        self.bus = self.runtime / "bus"
        self._records = register_user(uid, self.home)
        logs = workdir / f"logs-{uid}"
        logs.mkdir()
        env: dict[str, str] = {
            "HOME": str(self.home),
            "PATH": f"{Path(PYTHON).parent}:/usr/local/bin:/usr/bin:/bin",
            "XDG_RUNTIME_DIR": str(self.runtime),
            "XDG_DATA_DIRS": f"{self.home}/share:/usr/local/share:/usr/share",
            "DBUS_SESSION_BUS_ADDRESS": f"unix:path={self.bus}",
            "LANG": "C.UTF-8",
            "PYTHONPATH": str(REPO),
            "QT_QPA_PLATFORM": "xcb" if display else "offscreen",
        }
        if display is not None:
            env["DISPLAY"] = display.display
        super().__init__(uid, uid, env, logs)
        self.services = self.home / "dbus-services"
        self.services.mkdir()
        os.chown(self.services, uid, uid)
        self.start_bus(self.bus, self.services, self.home / "session.conf")
        self.dunst_dir = self.home / "dunst"
        # What the user (notifications) and other programs (CrashDetected) see, from the start.
        self.spawn([PYTHON, "-m", "tests.integration.bus_watch"], "bus")
        wait_for(lambda: "ready" in self._bus_lines(), what="the bus watcher")

    # --- what the user and other programs notice ---------------------------------------------
    def _bus_lines(self) -> list[str]:
        path = self.logs / "bus.out"
        return path.read_text(errors="replace").splitlines() if path.exists() else []

    def bus_events(self, kind: str) -> list[dict[str, Any]]:
        """What bus_watch.py saw so far of `kind` (notify, close, action, closed, crash, call)."""
        events = [json.loads(line) for line in self._bus_lines() if line.startswith("{")]
        return [e for e in events if e["event"] == kind]

    def notified(self) -> list[dict[str, Any]]:
        """Every notification the app sent to the notification server, oldest first."""
        return self.bus_events("notify")

    def wait_notified(self, count: int = 1, timeout: float = 15) -> list[dict[str, Any]]:
        """Wait until `count` notifications were sent; them all."""
        wait_for(lambda: len(self.notified()) >= count, timeout, f"{count} notification(s)")
        return self.notified()

    def wait_notification(self, summary: str, timeout: float = 15) -> dict[str, Any]:
        """Wait for a notification titled `summary`; it."""
        found = wait_for(lambda: [n for n in self.notified() if n["summary"] == summary],
                         timeout, f"a notification {summary!r}")  # fmt: skip
        return found[-1]  # type: ignore[index,no-any-return]

    def detected(self) -> list[dict[str, Any]]:
        """The crash dict of every CrashDetected signal, oldest first."""
        return [e["crash"] for e in self.bus_events("crash")]

    def wait_detected(
        self, pid: int | None = None, count: int = 1, timeout: float = 15
    ) -> dict[str, Any]:
        """Wait for CrashDetected of the crash of `pid` (or for `count` of them); the last."""

        def seen() -> list[dict[str, Any]]:
            crashes = self.detected()
            if pid is not None:
                return [c for c in crashes if c["pid"] == pid]
            return crashes if len(crashes) >= count else []

        found = wait_for(seen, timeout, f"CrashDetected ({pid=}, {count=})")
        return found[-1]  # type: ignore[index,no-any-return]

    def wakeup_bound(self) -> bool:
        """Someone (the app, or the waiter) has bound the user's wake-up socket: the collector
        can reach them. /proc/net/unix lists bound sockets only, not a stale socket file left by
        a process that was killed."""
        path = str(self.runtime / "drkonqi-lite" / "wakeup")
        sockets = Path("/proc/net/unix").read_text().splitlines()
        return any(line.endswith(" " + path) for line in sockets)

    def app_ready(self) -> bool:
        """The app owns its bus name and has bound its wake-up socket (done once it watches the
        journal)."""
        return self.wakeup_bound() and self.on_bus(APP_NAME)

    def wait_app(self, timeout: float = 15) -> None:
        wait_for(self.app_ready, timeout, "the app on the bus, listening for crashes")

    def calls(self, member: str) -> list[dict[str, Any]]:
        """The calls of the app's method `member` on this bus (by anyone)."""
        return [e for e in self.bus_events("call") if e["member"] == member]

    def windows(self, title: str) -> list[str]:
        """The visible X windows whose title contains `title`."""
        assert self.display is not None, "windows need a display"
        out = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", title],
                             env={**os.environ, "DISPLAY": self.display.display},
                             capture_output=True, text=True, check=False)  # fmt: skip
        return out.stdout.split()

    def balloons(self, app: subprocess.Popen[bytes]) -> list[str]:
        """The app's visible tooltip windows: with no notification server, Qt draws a tray
        balloon (QSystemTrayIcon.showMessage) as one."""
        assert self.display is not None, "balloons need a display"
        env = {**os.environ, "DISPLAY": self.display.display}
        found = subprocess.run(["xdotool", "search", "--onlyvisible", "--pid", str(app.pid)],
                               env=env, capture_output=True, text=True, check=False)  # fmt: skip
        return [w for w in found.stdout.split()
                if "_NET_WM_WINDOW_TYPE_TOOLTIP" in subprocess.run(
                    ["xprop", "-id", w, "_NET_WM_WINDOW_TYPE"], env=env, capture_output=True,
                    text=True, check=False).stdout]  # fmt: skip

    def wait_window(self, title: str, timeout: float = 15) -> None:
        wait_for(lambda: self.windows(title), timeout, f"a window titled {title!r}")

    def state(self) -> dict[str, Any]:
        """The app's saved state (seen crashes, muted programs), as it is on disk."""
        path = self.home / ".local/state/drkonqi-lite/state.json"
        return json.loads(path.read_text()) if path.exists() else {}

    # --- the app ----------------------------------------------------------------------------
    def start_app(self, log: str = "app", groups: tuple[int, ...] = ()) -> subprocess.Popen[bytes]:
        return self.spawn([PYTHON, "-m", "drkonqi_lite"], log, groups)

    def app_log(self, log: str = "app") -> str:
        path = self.logs / f"{log}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_log(self, text: str, log: str = "app", timeout: float = 15) -> None:
        wait_for(lambda: text in self.app_log(log), timeout, f"{text!r} in {log}.log")

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        stop(proc)

    def cli(self, *args: str, groups: tuple[int, ...] = ()) -> subprocess.CompletedProcess[str]:
        return self.run([PYTHON, "-m", "drkonqi_lite", *args], groups=groups)

    def dbus_call(self, method: str, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(["dbus-send", "--session", "--print-reply",
                         "--dest=org.drkonqi_lite.CrashNotifier", "/org/drkonqi_lite/CrashNotifier",
                         f"org.drkonqi_lite.CrashNotifier1.{method}", *args])  # fmt: skip

    def install_activation_file(self) -> None:
        """Our D-Bus activation file, pointing at this checkout's interpreter."""
        text = (REPO / "packaging/org.drkonqi_lite.CrashNotifier.service").read_text()
        text = text.replace("Exec=/usr/bin/drkonqi-lite", f"Exec={PYTHON} -m drkonqi_lite")
        path = self.services / "org.drkonqi_lite.CrashNotifier.service"
        path.write_text(text)
        self.run(["dbus-send", "--session", "--dest=org.freedesktop.DBus", "/",
                  "org.freedesktop.DBus.ReloadConfig"])  # fmt: skip

    # --- dunst ------------------------------------------------------------------------------
    def start_dunst(self, dmenu_choice: str = "") -> None:
        """dunst on this user's bus; its context menu (dmenu) picks `dmenu_choice`."""
        need(shutil.which("dunst") is not None, "dunst not installed")
        self.dunst_dir.mkdir(exist_ok=True)
        dmenu = self.dunst_dir / "dmenu"
        # dunst's context menu pipes "#Action label [summary]" lines to dmenu; pick one.
        dmenu.write_text(f"#!/bin/sh\ngrep -F -m1 -- '{dmenu_choice or 'zzz-none'}'\n")
        dmenu.chmod(0o755)
        rc = self.dunst_dir / "dunstrc"
        rc.touch()
        for path in (self.dunst_dir, dmenu, rc):
            os.chown(path, self.uid, self.uid)
        extra = f"  markup = full\n  dmenu = {dmenu}\n  history_length = 100\n"
        self.start_notification_server(rc, width=350, font="Monospace 9", extra=extra)

    def notifications(self) -> list[dict[str, str]]:
        """Every notification dunst has shown (displayed ones first closed into history)."""
        self.dunstctl("close-all")
        time.sleep(0.1)
        data = json.loads(self.dunstctl("history"))
        out = []
        for item in data["data"][0]:
            out.append({k: str(v.get("data", "")) for k, v in item.items()})
        return out

    def displayed(self) -> int:
        return int(self.dunstctl("count", "displayed").strip())

    # --- crashes ----------------------------------------------------------------------------
    def send_entry(
        self, fields: Mapping[str, str], *, sender_uid: int | None = None, wake: bool = True
    ) -> None:
        """File an entry exactly like our collector: fork, drop to the uid, journal.send, poke."""
        uid = self.uid if sender_uid is None else sender_uid
        send_entry_as(uid, fields, self.runtime / "drkonqi-lite" / "wakeup" if wake else None)

    def close(self) -> None:
        super().close()
        userdb.remove(self._records)
        shutil.rmtree(self.runtime, ignore_errors=True)


def register_user(uid: int, home: Path) -> list[Path]:
    """Make `uid` resolvable without touching /etc/passwd (session/userdb.py)."""
    try:
        return userdb.register(uid, f"dkl-test-{uid}", home)
    except LookupError as exc:
        need(False, str(exc))
        raise


def send_entry_as(uid: int, fields: Mapping[str, str], wakeup: Path | None = None) -> None:
    """fork; setgroups([]); setresgid; setresuid(uid); systemd.journal.send(...); poke wakeup.

    The collector's contract: after the entry is sent, one datagram (content ignored) to the
    user's wake-up socket, as the crashing user; a missing socket (app not running) is fine.
    """
    pid = os.fork()
    if pid == 0:  # pragma: no cover (child)
        code = 1
        try:
            from systemd import journal  # noqa: PLC0415

            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            message = fields.get("MESSAGE", "Process (x) dumped core.")
            rest = {k: v for k, v in fields.items() if k != "MESSAGE"}
            journal.send(message, MESSAGE_ID=MESSAGE_ID, PRIORITY="2", **rest)
            if wakeup is not None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                with sock, contextlib.suppress(OSError):
                    sock.sendto(b"crash", str(wakeup))
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


_UIDS = iter(range(random.randint(52000, 58000), 60000))


def _in_journal(uid: int) -> bool:
    from systemd import journal  # noqa: PLC0415

    for field in ("COREDUMP_UID", "_UID"):
        reader = journal.Reader()
        try:
            reader.add_match(MESSAGE_ID=MESSAGE_ID, **{field: str(uid)})
            if reader.get_next():
                return True
        finally:
            reader.close()
    return False


def fresh_uid() -> int:
    """A test user's uid that no crash entry has ever named: the journal is persistent, and a
    reused uid would see (and announce) an earlier test's crashes as its own."""
    for uid in _UIDS:
        if not _in_journal(uid):
            return uid
    raise RuntimeError("no unused test uid left")


class Desktop:
    """Factory of fresh users on the shared display."""

    def __init__(self, workdir: Path, display: Display | None) -> None:
        self.workdir = workdir
        self.display = display
        self._users: list[User] = []

    def user(self, *, with_display: bool = True) -> User:
        user = User(fresh_uid(), self.workdir, self.display if with_display else None)
        self._users.append(user)
        return user

    def close(self) -> None:
        for user in self._users:
            user.close()


def desktop_session(with_display: bool) -> Iterator[Desktop]:
    need(os.geteuid() == 0, "needs root (setpriv to test users)")
    for tool in ("dbus-daemon", "setpriv", "dbus-send"):
        need(shutil.which(tool) is not None, f"{tool} not installed")
    workdir = Path(tempfile.mkdtemp(prefix="dkl-app-"))
    workdir.chmod(0o755)
    display = Display(workdir) if with_display else None
    desktop = Desktop(workdir, display)
    try:
        yield desktop
    finally:
        desktop.close()
        if display is not None:
            display.close()
        if not os.environ.get("DKL_KEEP"):
            shutil.rmtree(workdir, ignore_errors=True)


TOOLS = Path(os.environ.get("DKL_TOOLS", "/work/shared/tools"))


@pytest.fixture
def systemd_coredump(core_pattern: None) -> None:
    """The real systemd-coredump as the kernel's handler, for this test only."""
    anchor = TOOLS / "systemd-coredump-anchor"
    need(anchor.exists(), f"{anchor} missing (set DKL_TOOLS)")
    out = subprocess.run([str(anchor), "start"], capture_output=True, text=True, check=True)
    pattern = out.stdout.strip().splitlines()[-1]
    assert pattern.startswith("|/lib/systemd/systemd-coredump"), out.stdout
    CORE_PATTERN.write_text(pattern)  # restored by the core_pattern fixture


@pytest.fixture(scope="session")
def app_desktop(journald: None) -> Iterator[Desktop]:
    """Xvfb + trayer for the session; `app_desktop.user()` makes a fresh user with its own bus.

    Test modules import this fixture by name (a conftest here would collide with the
    collector's integration tests).
    """
    yield from desktop_session(with_display=True)
