"""The app's two lives (issue 12): started by a crash's datagram and ended once nothing is
unseen; resident, and then, with our collector as the crash handler, deaf to the journal fd
but never to a crash whose datagram got lost.

Real journald, session bus and dunst (tests/integration/desktop.py); the wake-up socket unit is
played by the real systemd-socket-activate (under a real systemd user manager:
tests/packaging/test_deb.py), the crash handler by our collector from a scratch prefix.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from drkonqi_lite.adapters.crash_handler import FALLBACK_S
from drkonqi_lite.qt.lifetime import GRACE_MS
from tests.conftest import need
from tests.entries import live_entry
from tests.integration import desktop as dk
from tests.integration.desktop import PYTHON, Desktop, User, wait_for
from tests.integration.harness import make_prefix
from tests.integration.processes import crash

app_desktop = dk.app_desktop


def _apps(user: User) -> list[int]:
    """PIDs of this user's running tray app (python -m drkonqi_lite without a command)."""
    out = subprocess.run(["pgrep", "-u", str(user.uid), "-f", "-x",
                          f"{PYTHON} -m drkonqi_lite --autostart --exit-when-idle"],
                         capture_output=True, text=True, check=False)  # fmt: skip
    return [int(p) for p in out.stdout.split()]


def _socket_unit(user: User) -> tuple[subprocess.Popen[bytes], Path]:
    """drkonqi-lite.socket played by systemd-socket-activate: it starts the on-demand app at
    the first datagram, the socket as fd 3."""
    activate = shutil.which("systemd-socket-activate")
    need(activate is not None, "systemd-socket-activate not installed")
    path = user.runtime / "drkonqi-lite" / "wakeup"
    user.run(["mkdir", "-m", "0700", "-p", str(path.parent)])
    # (systemd-socket-activate passes on only the variables named with -E, like a unit.)
    keep = [f"-E{name}" for name in user.env]
    socket_unit = user.spawn(
        [str(activate), "--datagram", *keep, "-l", str(path), PYTHON, "-m", "drkonqi_lite",
         "--autostart", "--exit-when-idle"], "app")  # fmt: skip
    wait_for(path.is_socket, what="the socket unit's socket")
    return socket_unit, path


def test_a_crash_starts_the_app_which_ends_after_the_dismissal(app_desktop: Desktop) -> None:
    """No app until the crash; its datagram starts one that takes the socket, notifies, and
    ends a few seconds after the user dismisses; the next start still knows it was seen."""
    user = app_desktop.user()
    user.start_dunst()
    socket_unit, path = _socket_unit(user)
    time.sleep(1)
    assert not _apps(user), "nothing but the socket before a crash"
    assert not user.on_bus(dk.APP_NAME), "the app has not started"

    user.send_entry(live_entry(user.uid, comm="ondemand", pid=4711))
    try:
        user.wait_notification("ondemand crashed", timeout=20)
    finally:
        print(user.app_log(), (user.logs / "app.out").read_text(errors="replace"))
    assert _apps(user) == [socket_unit.pid], "the socket's process became the app"
    assert [n["summary"] for n in user.notified()] == ["ondemand crashed"], "as the crash it is"
    (crash_id,) = [c["id"] for c in json.loads(user.cli("list", "--json").stdout)]
    user.dunstctl("close-all")
    time.sleep(4)
    assert socket_unit.poll() is None, "an unseen crash keeps the app (and its tray icon)"

    out = user.dbus_call("Dismiss", f"string:{crash_id}")
    assert out.returncode == 0, out.stderr
    assert socket_unit.wait(timeout=20) == 0
    assert "nothing unseen and no window open: exiting" in user.app_log()
    assert path.is_socket(), "the unit's socket stays for the next crash"

    user.install_activation_file()
    unseen = user.run(["dbus-send", "--session", "--print-reply",
                       "--dest=org.drkonqi_lite.CrashNotifier", "/org/drkonqi_lite/CrashNotifier",
                       "org.freedesktop.DBus.Properties.Get",
                       "string:org.drkonqi_lite.CrashNotifier1", "string:UnseenCount"])  # fmt: skip
    assert "uint32 0" in unseen.stdout, unseen.stdout + unseen.stderr
    none = user.cli("unseen")
    assert (none.stdout.strip(), none.returncode) == ("0", 1)


def _host_journald() -> int:
    """The journald of this mount namespace (not a test container's)."""
    pids = subprocess.run(["pgrep", "-x", "systemd-journal"], capture_output=True, text=True,
                          check=False).stdout.split()  # fmt: skip
    mine = os.readlink("/proc/self/ns/mnt")
    (pid,) = [int(p) for p in pids if os.readlink(f"/proc/{p}/ns/mnt") == mine]
    return pid


def test_a_crash_whose_entry_journald_writes_late_is_still_announced(
    app_desktop: Desktop,
) -> None:
    """A busy journald may write an entry seconds after our collector sent it and its datagram
    started the app; the app reads nothing then, and used to end after its grace period with
    the crash unannounced until its next start. Now it keeps looking (EXPECT_S)."""
    user = app_desktop.user()
    user.start_dunst()
    socket_unit, _path = _socket_unit(user)
    journald = _host_journald()
    os.kill(journald, signal.SIGSTOP)
    try:
        user.send_entry(live_entry(user.uid, comm="latecomer", pid=4712))
        wait_for(lambda: _apps(user), what="the app started by the datagram")
        time.sleep(GRACE_MS / 1000 + 2)  # longer than the app's grace period
    finally:
        os.kill(journald, signal.SIGCONT)
    try:
        user.wait_notification("latecomer crashed", timeout=10)
    finally:
        print(user.app_log())
    assert "0 new since last run" in user.app_log(), "the app started before the entry was in"
    assert user.dbus_call("DismissAll").returncode == 0
    assert socket_unit.wait(timeout=20) == 0, "and it ends once that crash is seen"


@pytest.mark.crash
def test_resident_with_our_collector_a_lost_datagram_delays_but_never_hides(
    app_desktop: Desktop, core_pattern: None
) -> None:
    """Our collector handles crashes: the resident app ignores the journal fd and relies on
    the datagram (a real kernel crash is notified at once), and an entry whose datagram never
    came is still notified by the bounded fallback re-read."""
    user = app_desktop.user()
    user.start_dunst()
    prefixes = make_prefix()
    harness = next(prefixes)
    try:
        harness.install()
        app = user.start_app()
        user.wait_app()  # the datagram socket bound: the app has chosen to rely on it
        pid = crash(["/bin/sleep", "1000"], user.uid, user.uid, signal.SIGSEGV)
        t0 = time.monotonic()
        assert user.wait_detected(pid, timeout=20)["signal_name"] == "SIGSEGV"
        assert time.monotonic() - t0 < FALLBACK_S / 2, "the datagram, not the fallback"

        user.send_entry(live_entry(user.uid, comm="lostdgram", pid=4712), wake=False)
        user.wait_notification("lostdgram crashed", timeout=FALLBACK_S + 10)
        user.stop(app)
    finally:
        print(user.app_log())
        for _ in prefixes:
            pass


def test_a_click_right_after_a_cold_start_opens_the_crash(app_desktop: Desktop) -> None:
    """The cold start notifies before it loads Qt (drkonqi_lite/app.py): Details clicked the
    moment the bubble shows, while the windows may still be loading, still opens the crash,
    which then counts as seen; the crash is announced once."""
    user = app_desktop.user()
    user.start_dunst()
    socket_unit, _path = _socket_unit(user)
    before_qt = False
    try:
        user.send_entry(live_entry(user.uid, comm="clickfast", pid=4713))
        wait_for(lambda: user.displayed() == 1, timeout=20, what="the bubble")
        before_qt = "start-up:" not in user.app_log()  # the line is logged once Qt runs
        user.dunstctl("action", "0")
        wait_for(lambda: user.run(["xdotool", "search", "--name", "clickfast"]).returncode == 0,
                 timeout=20, what="the detail window")  # fmt: skip
        (seen,) = json.loads(user.cli("list", "--json").stdout)
        assert seen["seen"] is True
        assert [n["summary"] for n in user.notified()] == ["clickfast crashed"], "announced once"
    finally:
        print("clicked before Qt was loaded:", before_qt, user.app_log())
        socket_unit.send_signal(signal.SIGTERM)
        socket_unit.wait(timeout=20)
