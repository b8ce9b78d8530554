"""The tray icon as a StatusNotifierItem (KDE Plasma, LXQt, GNOME's AppIndicator extension).

When a StatusNotifierWatcher owns its name on the user's bus, Qt exports the tray icon over
D-Bus instead of embedding an X window. The watcher and host here are real: lxqt-panel with
only its statusnotifier plugin, on the user's own session bus and the shared Xvfb display.
The test asks the bus what such a panel sees: the item registered only while there are unseen
crashes, its tooltip with the count, its menu with the crash and the fixed entries, and a click
(Activate) opening the crash list.
"""

from __future__ import annotations

import json
import os
import time

from tests.conftest import which
from tests.entries import live_entry
from tests.integration import desktop as dk
from tests.integration.desktop import Desktop, User, wait_for

app_desktop = dk.app_desktop

PANEL_CONF = """panels=panel1

[panel1]
plugins=statusnotifier
position=Bottom
desktop=0
panelSize=32
iconSize=22

[statusnotifier]
type=statusnotifier
"""


def _sni(user: User, *args: str) -> object:
    out = user.run([dk.PYTHON, str(dk.REPO / "tests/integration/sni_client.py"), *args])
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout) if args[0] != "activate" else out.stdout


def _ours(user: User) -> list[str]:
    """Registered items (the panel's own applets register none here)."""
    items = _sni(user, "items")
    assert isinstance(items, list)
    return [str(i) for i in items]


def test_status_notifier_item_while_unseen_menu_and_activate(app_desktop: Desktop) -> None:
    panel = which("lxqt-panel")
    user = app_desktop.user()
    conf = user.home / "panel.conf"
    conf.write_text(PANEL_CONF)
    os.chown(conf, user.uid, user.uid)
    user.spawn([panel, "--config", str(conf)], "panel")
    wait_for(lambda: user.run(["dbus-send", "--session", "--print-reply",
                               "--dest=org.kde.StatusNotifierWatcher", "/StatusNotifierWatcher",
                               "org.freedesktop.DBus.Peer.Ping"]).returncode == 0,
             timeout=30, what="lxqt-panel's StatusNotifierWatcher")  # fmt: skip
    user.start_dunst()  # such desktops have a notification server: no tray balloon needed
    app = user.start_app()
    try:
        user.wait_app()
        time.sleep(0.5)
        assert _ours(user) == [], "nothing unseen: no item"
        user.send_entry(live_entry(user.uid, comm="konsole", exe="/usr/bin/konsole"))
        user.wait_detected()
        wait_for(lambda: _ours(user), what="the item to register with the watcher")
        (item,) = _ours(user)
        shown = _sni(user, "show", item)
        assert isinstance(shown, dict)
        assert shown["Id"] == "drkonqi-lite"
        assert shown["Status"] == "Active"
        assert shown["Icon"], "an icon (name or pixmap)"
        assert "1 unseen crash" in " ".join(shown["ToolTip"]), shown["ToolTip"]
        menu = shown["menu"]
        assert any("konsole" in label for label in menu), menu
        assert "Show all crashes" in " ".join(menu).replace("&", ""), menu
        assert "Quit" in " ".join(menu).replace("&", ""), menu
        assert app_desktop.display is not None
        time.sleep(0.5)  # let the panel paint the icon
        app_desktop.display.screenshot(app_desktop.workdir / "app-tray-sni.png")
        _sni(user, "activate", item)
        user.wait_window("^Crash Reports$")
        assert user.dbus_call("DismissAll").returncode == 0
        wait_for(lambda: not _ours(user), what="the item to unregister once all is seen")
    finally:
        user.stop(app)
