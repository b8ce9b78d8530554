"""The session D-Bus API (DESIGN.md §2.3) as another program sees it, and its activation file."""

from __future__ import annotations

import json
import subprocess
import time

from tests.entries import live_entry
from tests.integration import desktop as dk
from tests.integration.desktop import Desktop, User, wait_for

app_desktop = dk.app_desktop
SUMMARY_KEYS = {
    "id": "s", "pid": "x", "uid": "u", "signal": "i", "signal_name": "s", "comm": "s",
    "exe": "s", "timestamp": "t", "hostname": "s", "unit": "s", "package": "s",
    "core_state": "s", "seen": "b", "reported": "s",
}  # fmt: skip


def test_subscriber_sees_crash_detected_and_calls_every_method(app_desktop: Desktop) -> None:
    user = app_desktop.user()
    app = user.start_app()
    user.wait_app()
    client = subprocess.Popen(
        user.argv([dk.PYTHON, str(dk.REPO / "tests/integration/dbus_client.py")]),
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert client.stdout is not None
        assert client.stdout.readline().strip() == "ready"
        user.send_entry(live_entry(user.uid, comm="gwenview", exe="/usr/bin/gwenview"))
        out = json.loads(client.stdout.readline())
        client.wait(10)
        # What the user sees of ShowCrash and ShowCrashList: the windows.
        user.wait_window("gwenview crash — Crash Reports")
        user.wait_window("^Crash Reports$")
    finally:
        if client.poll() is None:
            client.kill()
        user.stop(app)
    raw = json.dumps(out)
    assert "ENVSECRET" not in raw
    assert "CMDSECRET" not in raw
    detected = out["signals"][0]
    assert detected["member"] == "CrashDetected"
    crash = detected["body"][0]
    assert {k: v["sig"] for k, v in crash.items()} == SUMMARY_KEYS
    assert crash["comm"]["value"] == "gwenview"
    assert crash["uid"]["value"] == user.uid
    assert crash["core_state"]["value"] == "none"
    assert crash["seen"]["value"] is False
    assert out["unseen_before"]["body"][0]["value"] == 1
    assert out["version"]["body"][0]["value"] == "1.0"
    (listed,) = out["list"]["body"][0]
    assert listed["id"]["value"] == out["id"]
    detail = out["get"]["body"][0]
    assert "crash_here" in detail["backtrace"]["value"]
    fields = detail["fields"]["value"]
    assert fields["COREDUMP_COMM"] == "gwenview"
    assert "COREDUMP_ENVIRON" not in fields
    assert "COREDUMP_CMDLINE" not in fields
    assert out["get_unknown"]["error"] == "org.drkonqi_lite.CrashNotifier1.Error.UnknownCrash"
    for call in ("show", "show_list", "dismiss", "dismiss_all"):
        assert "error" not in out[call], call
    members = [s["member"] for s in out["signals"]]
    assert "CrashDismissed" in members
    changed = [s["body"][1] for s in out["signals"] if s["member"] == "PropertiesChanged"]
    assert {"UnseenCount": {"sig": "u", "value": 0}} in changed
    assert out["unseen_after"]["body"][0]["value"] == 0
    assert "org.drkonqi_lite.CrashNotifier1" in out["introspect"]["body"][0]


def test_activation_file_starts_the_app(app_desktop: Desktop) -> None:
    user = app_desktop.user()
    user.install_activation_file()
    reply = user.dbus_call("ListCrashes")
    try:
        assert reply.returncode == 0, reply.stderr
        assert "array [" in reply.stdout
    finally:
        owner = user.run(["dbus-send", "--session", "--print-reply=literal",
                          "--dest=org.freedesktop.DBus", "/",
                          "org.freedesktop.DBus.GetConnectionUnixProcessID",
                          "string:org.drkonqi_lite.CrashNotifier"])  # fmt: skip
        pid = int(owner.stdout.split()[-1])
        subprocess.run(["kill", str(pid)], check=True)
        wait_for(lambda: user.run(["dbus-send", "--session", "--print-reply",
                                   "--dest=org.freedesktop.DBus", "/",
                                   "org.freedesktop.DBus.NameHasOwner",
                                   "string:org.drkonqi_lite.CrashNotifier"]).stdout.count("false"),
                 what="the activated app to exit")  # fmt: skip
    time.sleep(0.1)


def test_without_display_or_tray_the_app_still_serves_dbus(app_desktop: Desktop) -> None:
    user = app_desktop.user(with_display=False)  # QT_QPA_PLATFORM=offscreen: no tray host
    app = user.start_app()
    try:
        user.wait_app()
        user.send_entry(live_entry(user.uid, comm="headless", exe="/usr/bin/headless"))
        user.wait_detected()
        reply = user.dbus_call("ListCrashes")
        assert reply.returncode == 0, reply.stderr
        assert '"headless"' in reply.stdout
        assert app.poll() is None
    finally:
        user.stop(app)


def _unseen(user: User) -> int:
    out = user.run(["dbus-send", "--session", "--print-reply=literal",
                    "--dest=org.drkonqi_lite.CrashNotifier", "/org/drkonqi_lite/CrashNotifier",
                    "org.freedesktop.DBus.Properties.Get",
                    "string:org.drkonqi_lite.CrashNotifier1", "string:UnseenCount"])  # fmt: skip
    assert out.returncode == 0, out.stderr
    return int(out.stdout.split()[-1])


def test_dismiss_all_dismisses_every_unseen_crash_and_remembers(app_desktop: Desktop) -> None:
    user = app_desktop.user()
    app = user.start_app()
    monitor = None
    try:
        user.wait_app()
        for comm in ("okular", "dolphin", "kate"):
            user.send_entry(live_entry(user.uid, comm=comm, exe=f"/usr/bin/{comm}"))
        wait_for(lambda: len(user.detected()) == 3, what="three crashes")
        ids = [c["id"] for c in json.loads(user.cli("list", "--json").stdout)]
        assert len(ids) == 3
        monitor = user.spawn(["dbus-monitor", "--session",
                              "type='signal',interface='org.drkonqi_lite.CrashNotifier1'"],
                             "monitor")  # fmt: skip
        time.sleep(0.5)  # the match rule is in place
        reply = user.dbus_call("DismissAll")
        assert reply.returncode == 0, reply.stderr
        signals = user.logs / "monitor.out"
        wait_for(lambda: signals.read_text().count("member=CrashDismissed") == 3,
                 what="three CrashDismissed signals")  # fmt: skip
        for crash_id in ids:
            assert f'string "{crash_id}"' in signals.read_text()
        assert _unseen(user) == 0
    finally:
        if monitor is not None:
            user.stop(monitor)
        user.stop(app)
    # Seen is remembered: the next start announces nothing and counts nothing unseen.
    app = user.start_app("app2")
    try:
        user.wait_app()
        assert _unseen(user) == 0
        assert len(user.detected()) == 3, "the next start announces nothing"
        assert not user.notified()
    finally:
        user.stop(app)
