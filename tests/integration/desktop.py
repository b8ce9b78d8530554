"""Desktop pieces for the app's integration tests: Xvfb + trayer (shared), and per-user sessions.

Like tools/desktop-env, but as pytest fixtures and for unprivileged users: every test user is a
fresh uid without a passwd entry (TESTING.md: journald files its entries in user-UID.journal,
readable by it) with its own home, /run/user/UID, session dbus-daemon and, when asked, a dunst
on that bus. Only the uid that started a session bus may connect to it, so the app, dunst and
the D-Bus clients of a user all run as that user (setpriv). Processes started here are ended
by their pid. Under CI=true a missing piece fails instead of skipping (tests/conftest.need).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from drkonqi_lite_collector.journal.schema import MESSAGE_ID
from tests.conftest import CORE_PATTERN, need

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
MESSAGE_ID_MATCH = f"MESSAGE_ID={MESSAGE_ID}"


def wait_for(cond: Callable[[], object], timeout: float = 10.0, what: str = "") -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what or cond}")
        time.sleep(0.02)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Display:
    """Xvfb on a free display, with trayer as the XEmbed tray host."""

    def __init__(self, workdir: Path) -> None:
        for tool in ("Xvfb", "trayer", "xdotool"):
            need(shutil.which(tool) is not None, f"{tool} not installed")
        self._procs: list[subprocess.Popen[bytes]] = []
        self.display = ""
        # Other sessions on this machine start X servers concurrently and -displayfd can lose
        # a race for a display number (the server then dies): start again on a fresh one.
        for attempt in range(5):
            try:
                self._start(workdir)
                return
            except TimeoutError:
                self.close()
                self._procs = []
                if attempt == 4:
                    raise

    def _start(self, workdir: Path) -> None:
        rfd, wfd = os.pipe()
        xvfb = subprocess.Popen(
            ["Xvfb", "-displayfd", str(wfd), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
            pass_fds=(wfd,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=(workdir / "xvfb.log").open("ab"),
        )  # fmt: skip
        os.close(wfd)
        self._procs.append(xvfb)
        with os.fdopen(rfd) as f:
            self.display = ":" + f.readline().strip()
        env = {**os.environ, "DISPLAY": self.display}

        def x_works() -> bool:
            ok = subprocess.run(["xdotool", "getdisplaygeometry"], env=env, capture_output=True,
                                check=False).returncode == 0  # fmt: skip
            return ok and xvfb.poll() is None

        wait_for(x_works, timeout=5, what="Xvfb")
        tray = subprocess.Popen(
            ["trayer", "--edge", "top", "--align", "right", "--widthtype", "pixel", "--width",
             "200", "--height", "32"],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=(workdir / "trayer.log").open("ab"),
        )  # fmt: skip
        self._procs.append(tray)
        wait_for(lambda: subprocess.run(["xdotool", "search", "--classname", "trayer"], env=env,
                                        capture_output=True, check=False).returncode == 0
                 and xvfb.poll() is None,
                 timeout=10, what="trayer")  # fmt: skip

    def screenshot(self, path: Path) -> Path:
        need(shutil.which("import") is not None, "imagemagick not installed")
        subprocess.run(["import", "-display", self.display, "-window", "root", str(path)],
                       check=True, capture_output=True)  # fmt: skip
        return path

    def close(self) -> None:
        for proc in reversed(self._procs):
            _stop(proc)


SESSION_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <keep_umask/>
  <listen>unix:path={bus}</listen>
  <auth>EXTERNAL</auth>
  <servicedir>{services}</servicedir>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


class User:
    """One unprivileged desktop user: uid, home, runtime dir, session bus, maybe dunst."""

    def __init__(self, uid: int, workdir: Path, display: Display | None) -> None:
        self.uid = uid
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
        self.logs = workdir / f"logs-{uid}"
        self.logs.mkdir()
        self._procs: list[subprocess.Popen[bytes]] = []
        self.env: dict[str, str] = {
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
            self.env["DISPLAY"] = display.display
        self.services = self.home / "dbus-services"
        self.services.mkdir()
        os.chown(self.services, uid, uid)
        config = self.home / "session.conf"
        config.write_text(SESSION_CONF.format(services=self.services, bus=self.bus))
        # Only our service dir: no activatable notification server sneaks in from /usr/share.
        self.spawn(["dbus-daemon", f"--config-file={config}", "--nofork", "--nopidfile"], "dbus")
        wait_for(self.bus.exists, what="session bus")
        self.dunst_dir = self.home / "dunst"

    def argv(self, argv: list[str], groups: tuple[int, ...] = ()) -> list[str]:
        """argv run as this user; `groups` adds supplementary groups (e.g. systemd-journal)."""
        grouping = f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups"
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.uid}", grouping,
                "--", "env", "-i", *(f"{k}={v}" for k, v in self.env.items()), *argv]  # fmt: skip

    def spawn(
        self, argv: list[str], log: str, groups: tuple[int, ...] = ()
    ) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(self.argv(argv, groups), stdin=subprocess.DEVNULL,
                                stdout=(self.logs / f"{log}.out").open("ab"),
                                stderr=(self.logs / f"{log}.log").open("ab"))  # fmt: skip
        self._procs.append(proc)
        return proc

    def run(
        self, argv: list[str], timeout: float = 30, groups: tuple[int, ...] = ()
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(argv, groups), capture_output=True, text=True,
                              timeout=timeout, check=False)  # fmt: skip

    # --- the app ----------------------------------------------------------------------------
    def start_app(self, log: str = "app", groups: tuple[int, ...] = ()) -> subprocess.Popen[bytes]:
        return self.spawn([PYTHON, "-m", "drkonqi_lite"], log, groups)

    def app_log(self, log: str = "app") -> str:
        path = self.logs / f"{log}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_log(self, text: str, log: str = "app", timeout: float = 15) -> None:
        wait_for(lambda: text in self.app_log(log), timeout, f"{text!r} in {log}.log")

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        _stop(proc)

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
        need(shutil.which("dunst") is not None, "dunst not installed")
        self.dunst_dir.mkdir(exist_ok=True)
        dmenu = self.dunst_dir / "dmenu"
        # dunst's context menu pipes "#Action label [summary]" lines to dmenu; pick one.
        dmenu.write_text(f"#!/bin/sh\ngrep -F -m1 -- '{dmenu_choice or 'zzz-none'}'\n")
        dmenu.chmod(0o755)
        rc = self.dunst_dir / "dunstrc"
        rc.write_text(
            "[global]\n  width = 350\n  origin = top-left\n  offset = 10x50\n"
            "  font = Monospace 9\n  mouse_left_click = do_action, close_current\n"
            "  markup = full\n"
            f"  dmenu = {dmenu}\n  history_length = 100\n"
            "[urgency_low]\n  timeout = 0\n[urgency_normal]\n  timeout = 0\n"
            "[urgency_critical]\n  timeout = 0\n"
        )
        for path in (self.dunst_dir, dmenu, rc):
            os.chown(path, self.uid, self.uid)
        self.spawn(["dunst", "-config", str(rc)], "dunst")
        wait_for(lambda: "true" in self.run(
            ["dbus-send", "--session", "--print-reply", "--dest=org.freedesktop.DBus", "/",
             "org.freedesktop.DBus.NameHasOwner", "string:org.freedesktop.Notifications"]).stdout,
            what="dunst on the bus")  # fmt: skip

    def dunstctl(self, *args: str) -> str:
        out = self.run(["dunstctl", *args])
        assert out.returncode == 0, out.stderr
        return out.stdout

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
        for proc in reversed(self._procs):
            _stop(proc)
        for record in self._records:
            record.unlink(missing_ok=True)
        shutil.rmtree(self.runtime, ignore_errors=True)


USERDB = Path("/run/userdb")


def register_user(uid: int, home: Path) -> list[Path]:
    """Make `uid` resolvable without touching /etc/passwd: an nss-systemd drop-in record.

    dbus-daemon refuses to start for a uid without a passwd entry ("Could not get password
    database information"); nss-systemd (nsswitch `passwd: files systemd`) reads JSON user
    records from /run/userdb without any daemon.
    """
    USERDB.mkdir(exist_ok=True)
    name = f"dkl-test-{uid}"
    user = {"userName": name, "uid": uid, "gid": uid, "homeDirectory": str(home),
            "shell": "/bin/sh"}  # fmt: skip
    paths = []
    for kind, record in (("user", user), ("group", {"groupName": name, "gid": uid})):
        path = USERDB / f"{name}.{kind}"
        path.write_text(json.dumps(record))
        link = USERDB / f"{uid}.{kind}"
        link.unlink(missing_ok=True)
        link.symlink_to(path.name)
        paths += [link, path]
    try:
        pwd.getpwuid(uid)
    except KeyError:
        for p in paths:
            p.unlink(missing_ok=True)
        need(False, "uid not resolvable through /run/userdb: install libnss-systemd "
                    "(nsswitch.conf: 'passwd: files systemd')")  # fmt: skip
    return paths


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
