"""Issue 12 under a real systemd user manager: the installed user units in test_deb.py's
throw-away container (systemd as PID 1 on this machine's /usr, with the package installed).

A user with a session: user@1000.service (systemd --user, its D-Bus, the package's
drkonqi-lite.socket enabled for every user), a stand-in desktop session target that pulls in
graphical-session.target, and a small but real org.freedesktop.Notifications server on the
user's bus that records each Notify and can invoke an action, as a user clicking it would.
Qt runs offscreen (no X server in the container).

What a user notices: no notifier process before a crash; a notification after a kernel crash
(our collector) and after a crash the real systemd-coredump handles (the coredump hook); the
notifier gone again a few seconds after Dismiss; a crash from while logged out announced once
at the next login, and nothing started at a login with nothing unseen.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from tests.integration.processes import crash
from tests.packaging.container import in_container

USER = 1000
NAME = "dkluser"
HOME = f"/home/{NAME}"
RUNTIME = f"/run/user/{USER}"
VENV_PYTHON = "/usr/lib/drkonqi-lite/venv/bin/python"
NOTIFY_LOG = f"{HOME}/notifications.jsonl"

#: The notification server: the spec's methods and signals, plus Invoke(id, action) for the
#: test to play the user's click. dbus-next from the package's venv.
NOTIFY_SERVER = r"""
import asyncio, json, sys
from dbus_next.aio import MessageBus
from dbus_next.service import ServiceInterface, method, signal

class Notifications(ServiceInterface):
    def __init__(self, log):
        super().__init__("org.freedesktop.Notifications")
        self.log, self.last = log, 0

    @method()
    def GetCapabilities(self) -> "as":
        return ["actions", "body"]

    @method()
    def GetServerInformation(self) -> "ssss":
        return ["dkl-test", "drkonqi-lite tests", "1", "1.2"]

    @method()
    def Notify(self, app: "s", replaces: "u", icon: "s", summary: "s", body: "s",
               actions: "as", hints: "a{sv}", timeout: "i") -> "u":
        if not replaces:
            self.last += 1
        nid = replaces or self.last
        with open(self.log, "a") as f:
            f.write(json.dumps({"id": nid, "summary": summary, "body": body,
                                "actions": actions}) + "\n")
        return nid

    @method()
    def CloseNotification(self, nid: "u"):
        self.NotificationClosed(nid, 3)

    @method()
    def Invoke(self, nid: "u", action: "s"):
        self.ActionInvoked(nid, action)

    @signal()
    def NotificationClosed(self, nid, reason) -> "uu":
        return [nid, reason]

    @signal()
    def ActionInvoked(self, nid, action) -> "us":
        return [nid, action]

async def main():
    bus = await MessageBus().connect()
    bus.export("/org/freedesktop/Notifications", Notifications(sys.argv[1]))
    await bus.request_name("org.freedesktop.Notifications")
    await asyncio.Future()

asyncio.run(main())
"""

USER_UNITS = {
    "dkl-notifications.service": f"""[Unit]
Description=A notification server that records what it is sent (drkonqi-lite tests)
[Service]
Type=dbus
BusName=org.freedesktop.Notifications
ExecStart={VENV_PYTHON} {HOME}/notify_server.py {NOTIFY_LOG}
""",
    # What a desktop's session target does (plasma-workspace.target, gnome-session.target).
    "dkl-session.target": """[Unit]
Description=A stand-in desktop session (drkonqi-lite tests)
BindsTo=graphical-session.target
Wants=graphical-session.target dkl-notifications.service
""",
}


def _wait(cond: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


class Session:
    """The container's user 1000: logins, crashes, what the notifier does."""

    def __init__(self, leader: int) -> None:
        self.leader = leader
        self.root = Path(f"/proc/{leader}/root")

    def root_run(self, *cmd: str, check: bool = True) -> str:
        return in_container(self.leader, *cmd, check=check)

    def user_run(self, *cmd: str, check: bool = True) -> str:
        return self.root_run(
            "setpriv", f"--reuid={USER}", f"--regid={USER}", "--clear-groups", "env",
            f"XDG_RUNTIME_DIR={RUNTIME}", f"DBUS_SESSION_BUS_ADDRESS=unix:path={RUNTIME}/bus",
            *cmd, check=check,
        )  # fmt: skip

    def user_ctl(self, *args: str, check: bool = True) -> str:
        return self.user_run("systemctl", "--user", *args, check=check).strip()

    def create_user(self) -> None:
        """passwd/shadow/group entries and PAM's configuration (the volatile root has no
        host /etc): user@.service opens a PAM session."""
        etc = self.root / "etc"
        for name, line in (("passwd", f"{NAME}:x:{USER}:{USER}::{HOME}:/bin/sh"),
                           ("group", f"{NAME}:x:{USER}:"),
                           ("shadow", f"{NAME}:*:19000:0:99999:7:::")):  # fmt: skip
            with (etc / name).open("a") as f:
                f.write(line + "\n")
        for name in ("pam.d", "security"):
            shutil.copytree(Path("/etc") / name, etc / name, symlinks=True, dirs_exist_ok=True)
        shutil.copy2("/etc/login.defs", etc / "login.defs")
        self.root_run("install", "-d", "-o", str(USER), "-g", str(USER), HOME)
        (self.root / HOME.lstrip("/") / "notify_server.py").write_text(NOTIFY_SERVER)
        units = etc / "systemd/user"
        units.mkdir(parents=True, exist_ok=True)
        for name, text in USER_UNITS.items():
            (units / name).write_text(text)
        (etc / "environment.d").mkdir(exist_ok=True)
        (etc / "environment.d/90-dkl-tests.conf").write_text("QT_QPA_PLATFORM=offscreen\n")

    def login(self) -> None:
        self.root_run("systemctl", "start", f"user@{USER}.service")
        _wait(lambda: self.user_ctl("is-system-running", check=False) in {"running", "degraded"},
              30, "the user manager")  # fmt: skip
        self.user_ctl("start", "dkl-session.target")
        _wait(lambda: self.user_ctl("is-active", "dkl-notifications.service", check=False)
              == "active", 30, "the notification server")  # fmt: skip
        _wait(lambda: self.user_ctl("is-active", "drkonqi-lite-login.service", check=False)
              != "activating", 30, "the login check")  # fmt: skip

    def logout(self) -> None:
        self.root_run("systemctl", "stop", f"user@{USER}.service")

    def notifier(self) -> str:
        return self.user_ctl("is-active", "drkonqi-lite.service", check=False)

    def notifier_pids(self) -> list[str]:
        return self.root_run("pgrep", "-u", str(USER), "-f", "drkonqi-lite --autostart",
                             check=False).split()  # fmt: skip

    def notifications(self) -> list[dict[str, object]]:
        log = self.root / NOTIFY_LOG.lstrip("/")
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def wait_notification(self, before: int, timeout: float = 30) -> dict[str, object]:
        """The one notification sent after the first `before` ones."""
        try:
            _wait(lambda: len(self.notifications()) > before, timeout, "a notification")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the notifier's log:\n{self.app_log()}") from None
        time.sleep(1)  # a second one would show now
        new = self.notifications()[before:]
        assert len(new) == 1, new
        return new[0]

    def click(self, nid: object, action: str) -> None:
        self.user_run("busctl", "--user", "call", "org.freedesktop.Notifications",
                      "/org/freedesktop/Notifications", "org.freedesktop.Notifications",
                      "Invoke", "us", str(nid), action)  # fmt: skip

    def wait_notifier_gone(self) -> None:
        _wait(lambda: self.notifier() in {"inactive", "failed"}, 30, "the notifier to end")
        result = self.user_ctl("show", "-P", "Result", "drkonqi-lite.service")
        assert result == "success", f"{result}:\n{self.app_log()}"
        assert not self.notifier_pids()

    def passed_on(self) -> dict[str, str]:
        """What a program the running notifier starts (a crashed one restarted from its
        window, a browser) inherits from it that the user manager does not impose on every
        program: the no_new_privs flag, seccomp filters, its own mount or user namespace."""
        pid = self.notifier_pids()[0]
        manager = self.root_run("pgrep", "-u", str(USER), "-x", "systemd").split()[0]
        status = {p: dict(line.split(":\t", 1) for line in self.root_run(
            "cat", f"/proc/{p}/status").splitlines() if ":\t" in line)
            for p in (pid, manager)}  # fmt: skip
        links = self.root_run("readlink", *(f"/proc/{p}/ns/{ns}" for ns in ("mnt", "user")
                                            for p in (pid, manager))).split()  # fmt: skip
        extra_filters = int(status[pid]["Seccomp_filters"]) - int(
            status[manager]["Seccomp_filters"])  # fmt: skip
        return {"NoNewPrivs": status[pid]["NoNewPrivs"], "seccomp filters": str(extra_filters),
                "own mounts": str(links[0] != links[1]),
                "own users": str(links[2] != links[3])}  # fmt: skip

    def app_log(self) -> str:
        return self.root_run("journalctl", "--no-pager", "-q", f"_UID={USER}",
                             "_SYSTEMD_USER_UNIT=drkonqi-lite.service", check=False)  # fmt: skip

    def crash_under_systemd_coredump(self) -> int:
        """A process of the user crashes and the real systemd-coredump of the container
        handles it, exactly as the kernel would run it (argv of its core_pattern, the core
        on stdin): systemd-coredump@.service, with our hook wanted by it, takes over."""
        pid = self.root_run(
            "sh",
            "-c",
            f"setpriv --reuid={USER} --regid={USER} "
            "--clear-groups /bin/sleep 1000 >/dev/null 2>&1 & echo $!",
        ).strip()
        time.sleep(0.3)
        self.root_run("gcore", "-o", "/tmp/core", pid)
        self.root_run("kill", "-STOP", pid)
        self.root_run(
            "sh",
            "-c",
            f"/lib/systemd/systemd-coredump {pid} {USER} {USER} 11 "
            f"$(date +%s) 9223372036854775808 dkl-deb-test 1 < /tmp/core.{pid}",
        )
        self.root_run("kill", "-KILL", pid)
        return int(pid)


def check_user_session(leader: int) -> None:
    """The whole user-facing contract of issue 12 with the installed units (see above)."""
    s = Session(leader)
    s.create_user()
    s.login()
    assert s.user_ctl("is-active", "drkonqi-lite.socket", check=False) == "active"
    assert s.user_ctl("show", "-P", "Result", "drkonqi-lite-login.service") == "exec-condition"
    assert s.notifier() == "inactive", "nothing runs before a crash"
    assert not s.notifier_pids()

    # A kernel crash: our collector (the container's socket-activated service) pokes the
    # user's socket; the notifier starts, tells, and ends once the crash is dismissed.
    crash(["/bin/sleep", "1000"], USER, USER)
    live = s.wait_notification(0)
    # (The host's crashed process has no PID in the container, so its name is unknown there.)
    assert str(live["summary"]).endswith("crashed"), live
    assert "since you last logged in" not in str(live["summary"])
    assert s.notifier() == "active"
    # What it starts (sudo in a restarted terminal) may gain privileges, sees the session's
    # files; and nothing it writes (state, settings, the .desktop cache) failed.
    passed_on = s.passed_on()
    assert passed_on == {"NoNewPrivs": "0", "seccomp filters": "0", "own mounts": "False",
                         "own users": "False"}, passed_on  # fmt: skip
    assert "cannot save" not in s.app_log()
    s.click(live["id"], "dismiss")
    s.wait_notifier_gone()

    # A crash the real systemd-coredump handles: the hook wakes the same socket.
    before = len(s.notifications())
    s.crash_under_systemd_coredump()
    coredump = s.wait_notification(before, timeout=60)
    assert coredump["summary"] == "sleep crashed", coredump
    hook = s.root_run("journalctl", "--no-pager", "-u", "drkonqi-lite-coredump-hook@*")
    assert f"woke uid {USER}'s crash notifier" in hook, hook
    s.click(coredump["id"], "dismiss")
    s.wait_notifier_gone()

    # Logged out: the crash waits in the journal; the next login announces it, once.
    s.logout()
    crash(["/bin/sleep", "1000"], USER, USER)
    time.sleep(2)
    assert not s.notifier_pids()
    before = len(s.notifications())
    s.login()
    away = s.wait_notification(before)
    assert str(away["summary"]).endswith("crashed since you last logged in"), away
    s.click(away["id"], "dismiss")
    s.wait_notifier_gone()
    s.logout()
    s.login()
    time.sleep(3)
    assert s.user_ctl("show", "-P", "Result", "drkonqi-lite-login.service") == "exec-condition"
    assert s.notifier() == "inactive"
    assert len(s.notifications()) == before + 1, "announced once"
    s.logout()
