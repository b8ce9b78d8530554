"""A crash reaches its user: dunst shows it, Details opens the detail view, Mute mutes.

Real journald (host namespace), real dunst on the user's own session bus, Xvfb + trayer; the
app runs as an unprivileged uid. Entries are filed exactly as the collector files them (a child
drops to the crashing uid and sends, then pokes the wake-up socket).
"""

from __future__ import annotations

import json
import os
import subprocess
import time

from tests.entries import live_entry
from tests.integration import desktop as dk
from tests.integration.desktop import Desktop, User, wait_for

app_desktop = dk.app_desktop


def _started(user: User, log: str = "app", catch_up: bool = True) -> subprocess.Popen[bytes]:
    proc = user.start_app(log)
    user.wait_app()
    if catch_up:  # the catch-up step (waiting for the notification server) has run
        time.sleep(0.3)
    return proc


def _install_kate(user: User) -> None:
    apps = user.home / "share" / "applications"
    apps.mkdir(parents=True)
    (apps / "org.kde.kate.desktop").write_text(
        "[Desktop Entry]\nType=Application\nName=Kate\nIcon=kate\nExec=kate -b %U\n"
    )


def test_crash_notified_details_opens_detail_view(app_desktop: Desktop) -> None:
    user = app_desktop.user()
    _install_kate(user)
    user.start_dunst()
    app = _started(user)
    try:
        user.send_entry(live_entry(user.uid, comm="kate", exe="/usr/bin/kate"))
        (note,) = user.wait_notified()
        assert user.displayed() == 1
        # The program's real name from its installed .desktop file (Exec=kate).
        assert note["summary"] == "Kate crashed"
        assert app_desktop.display is not None
        # Kept with DKL_KEEP=1 (look at it: the bubble, and the tray icon top right).
        shot = app_desktop.display.screenshot(app_desktop.workdir / "app-notification.png")
        assert shot.stat().st_size > 0
        # Details = dunst's default action: the app asks for the detail view and closes the bubble.
        user.dunstctl("action", "0")
        user.wait_window("Kate crash — Crash Reports")
        time.sleep(0.3)
        app_desktop.display.screenshot(app_desktop.workdir / "app-detail.png")
        wait_for(lambda: user.displayed() == 0, what="the bubble closed by the app")
        (seen,) = json.loads(user.cli("list", "--json").stdout)
        assert seen["seen"] is True
    finally:
        user.stop(app)


def test_mute_this_program(app_desktop: Desktop) -> None:
    user = app_desktop.user()
    user.start_dunst(dmenu_choice="Mute this program")
    app = _started(user)
    try:
        user.send_entry(live_entry(user.uid, comm="dolphin", exe="/usr/bin/dolphin"))
        user.wait_notified()
        user.dunstctl("context")  # dunst's menu: the dmenu stand-in picks "Mute this program"
        wait_for(lambda: "/usr/bin/dolphin" in user.state().get("muted", {}), what="muted, saved")
        wait_for(lambda: user.displayed() == 0, what="the bubble closed")
        history = len(user.notifications())
        user.send_entry(live_entry(user.uid, comm="dolphin", exe="/usr/bin/dolphin"))
        user.wait_detected(count=2)  # the muted crash is read (and told on the bus) ...
        user.send_entry(live_entry(user.uid, comm="kwrite", exe="/usr/bin/kwrite"))
        notes = user.wait_notified(2, timeout=10)  # ... but only kwrite's is notified
        assert [n["summary"] for n in notes] == ["dolphin crashed", "kwrite crashed"]
        titles = [n["summary"] for n in user.notifications()]
        assert len(titles) == history + 1  # kwrite only: the muted dolphin was counted, not shown
        assert titles[0] == "kwrite crashed"
        state = json.loads((user.home / ".local/state/drkonqi-lite/state.json").read_text())
        assert "/usr/bin/dolphin" in state["muted"]
    finally:
        user.stop(app)


def test_crash_loop_is_one_notification_with_a_count(app_desktop: Desktop) -> None:
    user = app_desktop.user()
    user.start_dunst()
    app = _started(user)
    try:
        for _ in range(50):
            user.send_entry(live_entry(user.uid, comm="plasmashell",
                                              exe="/usr/bin/plasmashell", signo=6))  # fmt: skip
        wait_for(lambda: len(user.detected()) == 50, 30, "50 crashes read")
        user.wait_notified(timeout=10)
        wait_for(lambda: user.notified()[-1]["summary"] == "plasmashell crashed 50 times", 10,
                 "count 50")  # fmt: skip
        assert user.displayed() == 1
        notes = user.notifications()
        assert [n["summary"] for n in notes] == ["plasmashell crashed 50 times"]
        assert notes[0]["body"] == "Aborted"
    finally:
        user.stop(app)


def test_login_catch_up_once(app_desktop: Desktop) -> None:
    user = app_desktop.user()
    user.start_dunst()
    first = _started(user, "run1")
    user.stop(first)
    # Crashes while the app is not running (no wake-up socket: the poke just fails).
    user.send_entry(live_entry(user.uid, comm="plasmashell", exe="/usr/bin/plasmashell"))
    user.send_entry(live_entry(user.uid, comm="kate", exe="/usr/bin/kate"))
    user.send_entry(live_entry(user.uid, comm="kate", exe="/usr/bin/kate"))
    user.send_entry(live_entry(user.uid, comm="konsole", exe="/usr/bin/konsole"))
    time.sleep(0.5)  # journald writes asynchronously
    second = _started(user, "run2")
    try:
        user.wait_notified()
        time.sleep(0.5)
    finally:
        user.stop(second)
    told = len(user.detected())
    assert told == 4, "run2 told the bus of each crash it caught up with"
    third = _started(user, "run3")
    try:
        time.sleep(1.0)
        assert len(user.notified()) == 1, "run3 notifies nothing"
        assert len(user.detected()) == told, "run3 finds nothing new since the last run"
    finally:
        user.stop(third)
    notes = user.notifications()
    assert len(notes) == 1, notes
    assert notes[0]["summary"] == "3 programs crashed since you last logged in"
    assert "kate (2 times)" in notes[0]["body"]
    assert "plasmashell" in notes[0]["body"]
    assert "konsole" in notes[0]["body"]


def test_second_start_shows_the_list_of_the_first(app_desktop: Desktop) -> None:
    user = app_desktop.user()
    app = _started(user, catch_up=False)
    try:
        second = user.run([dk.PYTHON, "-m", "drkonqi_lite"], timeout=20)
        assert second.returncode == 0
        user.wait_window("^Crash Reports$")
        assert len(user.calls("ShowCrashList")) == 1, "the second start asked the first"
        quiet = user.run([dk.PYTHON, "-m", "drkonqi_lite", "--autostart"], timeout=20)
        assert quiet.returncode == 0
        assert app.poll() is None
        assert len(user.calls("ShowCrashList")) == 1, "an autostart asks for no window"
    finally:
        user.stop(app)


def test_no_notification_server_uses_the_tray(app_desktop: Desktop) -> None:
    user = app_desktop.user()
    (user.home / ".config/drkonqi-lite").mkdir(parents=True)
    (user.home / ".config/drkonqi-lite/settings.ini").write_text(
        "[App]\nnotification_server_wait_ms = 200\n")  # fmt: skip
    for path in (user.home / ".config", user.home / ".config/drkonqi-lite",
                 user.home / ".config/drkonqi-lite/settings.ini"):  # fmt: skip
        os.chown(path, user.uid, user.uid)
    app = _started(user)
    try:
        user.send_entry(live_entry(user.uid, comm="okular", exe="/usr/bin/okular"))
        wait_for(lambda: user.balloons(app), what="the tray balloon")
        assert not user.notified()
        assert "tray balloon: okular crashed" in user.app_log()  # what the balloon says
    finally:
        user.stop(app)


def test_dismiss_action_marks_seen(app_desktop: Desktop) -> None:
    user = app_desktop.user()
    user.start_dunst(dmenu_choice="Dismiss")
    app = _started(user)
    try:
        user.send_entry(live_entry(user.uid, comm="ark", exe="/usr/bin/ark"))
        user.wait_notified()
        user.dunstctl("context")
        wait_for(lambda: [a["action"] for a in user.bus_events("action")] == ["dismiss"],
                 what="the Dismiss action")  # fmt: skip
        wait_for(lambda: user.displayed() == 0, what="the bubble closed")
        (crash,) = json.loads(user.cli("list", "--json").stdout)
        assert crash["seen"] is True
        assert not user.windows("Crash Reports")  # dismissed, not opened
    finally:
        user.stop(app)
