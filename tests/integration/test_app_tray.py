"""The tray icon under Xvfb + trayer (XEmbed): shown while there are unseen crashes, a click
opens the crash list, the menu lists recent crashes; hidden again once everything is seen."""

from __future__ import annotations

import subprocess
import time

from tests.entries import live_entry
from tests.integration import desktop as dk
from tests.integration.desktop import Desktop, User, wait_for

app_desktop = dk.app_desktop


def _xdo(user: User, *args: str) -> str:
    return subprocess.run(["xdotool", *args], env={"DISPLAY": user.env["DISPLAY"]},
                          capture_output=True, text=True, check=False).stdout  # fmt: skip


def _tray_icon(user: User) -> tuple[int, int] | None:
    """Centre of our visible tray icon (a small drkonqi-lite window inside trayer's strip)."""
    for window in _xdo(user, "search", "--onlyvisible", "--class", "drkonqi-lite").split():
        geometry = _xdo(user, "getwindowgeometry", "--shell", window)
        values = dict(line.split("=", 1) for line in geometry.split())
        width, height = int(values["WIDTH"]), int(values["HEIGHT"])
        if width <= 48 and height <= 48:
            return int(values["X"]) + width // 2, int(values["Y"]) + height // 2
    return None


def test_tray_icon_while_unseen_click_opens_the_list(app_desktop: Desktop) -> None:
    user = app_desktop.user()
    app = user.start_app()
    user.wait_app()
    try:
        assert _tray_icon(user) is None  # nothing unseen: no icon
        user.send_entry(live_entry(user.uid, comm="konsole", exe="/usr/bin/konsole"))
        user.wait_detected()
        wait_for(lambda: _tray_icon(user), what="the tray icon")
        icon = _tray_icon(user)
        assert icon is not None
        x, y = icon
        _xdo(user, "mousemove", str(x), str(y), "click", "3")  # the menu
        time.sleep(0.5)
        assert app_desktop.display is not None
        app_desktop.display.screenshot(app_desktop.workdir / "app-tray-menu.png")
        _xdo(user, "key", "Escape")
        time.sleep(0.2)
        _xdo(user, "mousemove", str(x), str(y), "click", "1")
        user.wait_window("^Crash Reports$")
        wait_for(lambda: _xdo(user, "search", "--name", "Crash Reports").strip(),
                 what="the crash list window")  # fmt: skip
        assert user.dbus_call("DismissAll").returncode == 0
        wait_for(lambda: _tray_icon(user) is None, what="the icon to hide")
    finally:
        user.stop(app)
