"""`drkonqi-lite demo`: the whole pipeline on this machine, as a person would see it.

Root only (it sets kernel.core_pattern). It starts what is not running (journald; a session
bus, an X server, a notification server and a tray host when there is no desktop), makes the
collector the kernel's crash handler for the duration of the demo only, runs the tray app as an
unprivileged user, crashes a sample program as that user, and saves what the user sees — the
notification and the crash detail window — with the journal entry in the output directory.
Everything it started or changed is stopped or restored on the way out, also on failure.

It never runs anything named by a crash entry; the sample program is ours.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from drkonqi_lite.session import journald, userdb
from drkonqi_lite.session.display import Display, screenshot, x_works
from drkonqi_lite.session.process import stop, wait_for
from drkonqi_lite.session.socket_unit import socket_activated
from drkonqi_lite.session.user import SessionUser
from drkonqi_lite_collector import config
from drkonqi_lite_collector.admin import hook_install, pattern
from drkonqi_lite_collector.journal.schema import MESSAGE_ID, Field

TOOLS = (
    "Xvfb",
    "dunst",
    "dunstctl",
    "dbus-daemon",
    "dbus-send",
    "trayer",
    "xdotool",
    "import",
    "setpriv",
    "coredumpctl",
    "journalctl",
)
#: The sample crash: a NULL read inside ctypes, so the backtrace has C and Python frames.
SAMPLE = ["/usr/bin/python3", "-c", "import ctypes, time; time.sleep(0.3); ctypes.string_at(0)"]


class DemoError(Exception):
    """An expected failure of the demo, with what to do about it."""


def _say(text: str) -> None:
    print(f"demo: {text}", flush=True)


@contextlib.contextmanager
def _journald() -> Iterator[None]:
    """journald for the demo's duration, when none runs."""
    if journald.running():
        yield
        return
    _say("starting systemd-journald (persistent storage: per-user journals)")
    proc = journald.start()
    try:
        yield
    finally:
        if proc is not None:
            stop(proc)


@contextlib.contextmanager
def _collector_installed() -> Iterator[None]:
    paths = config.Paths("/")
    saved = (pattern.CORE_PATTERN.read_text(), pattern.CORE_PIPE_LIMIT.read_text())
    _say(f"previous crash handler: {pattern.handler_kind(saved[0].strip())}")
    # `install` also puts the Python exception hook into the system's interpreter: the demo
    # takes it out again unless it was there before (every Python program on the machine
    # would otherwise keep loading it from this checkout).
    hook_before = (hook_install.site_dir(paths) / f"{hook_install.MODULE}.pth").exists()
    try:
        with contextlib.redirect_stdout(None):
            pattern.install(paths, force=True)
        _say(f"crash handler for the demo: {pattern.CORE_PATTERN.read_text().strip()}")
        yield
    finally:
        pattern.CORE_PATTERN.write_text(saved[0])
        pattern.CORE_PIPE_LIMIT.write_text(saved[1])
        with contextlib.suppress(OSError):
            Path(paths.saved_pattern_file).unlink()
        if not hook_before:
            hook_install.uninstall(paths)
        _say(f"crash handler restored: {saved[0].strip()}")


@contextlib.contextmanager
def _cores_service(work: Path) -> Iterator[None]:
    """drkonqi-lite-cores.socket, played by systemd-socket-activate when systemd does not run
    it (PID 1 is not systemd here): the detail window's "Delete core" then works as installed."""
    sock = Path(config.Paths("/").cores_socket)
    if sock.is_socket() or shutil.which("systemd-socket-activate") is None:
        yield
        return
    sock.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "drkonqi_lite_collector.main", "--cores-service"]
    # SocketMode= of the unit: every user may ask.
    with socket_activated(sock, argv, work / "cores.log", mode=0o666):
        _say(f"core deletion service: {sock}")
        yield


def _demo_user(stack: contextlib.ExitStack, work: Path) -> tuple[int, int]:
    """A regular user of this machine (uid 1000 if it exists), else a temporary one."""
    for entry in pwd.getpwall():
        if 1000 <= entry.pw_uid < 60000 and entry.pw_uid != 65534:
            return entry.pw_uid, entry.pw_gid
    uid = 4242
    try:
        records = userdb.register(uid, "drkonqi-demo", work)
    except LookupError as exc:
        raise DemoError(str(exc)) from None
    stack.callback(userdb.remove, records)
    return uid, uid


def _display(stack: contextlib.ExitStack, work: Path) -> str:
    if os.environ.get("DISPLAY") and x_works(os.environ["DISPLAY"]):
        return os.environ["DISPLAY"]
    _say("no desktop: starting Xvfb (1280x800) with trayer as the tray host")
    display = Display(work)
    stack.callback(display.close)
    return display.display


def _keep_logs(work: Path, target: Path) -> None:
    """The session's logs (app, dunst, bus, X) next to the screenshots, for whoever looks."""
    target.mkdir(exist_ok=True)
    for log in [*work.glob("*.log"), *work.glob("*.out")]:
        shutil.copyfile(log, target / log.name)


def _runtime_dir(stack: contextlib.ExitStack, work: Path, uid: int, gid: int) -> Path:
    """/run/user/UID, where the collector's wake-up datagram goes; made for the demo when
    missing. One the user does not own (left by some other root program) cannot hold the
    user's sockets: then a private one, and the app falls back to the journal's own wake-up."""
    runtime = Path(f"/run/user/{uid}")
    if not runtime.exists():
        runtime.mkdir(mode=0o700, parents=True)
        os.chown(runtime, uid, gid)
        stack.callback(shutil.rmtree, runtime, ignore_errors=True)
    elif runtime.stat().st_uid != uid:
        _say(f"{runtime} is not owned by uid {uid}: using a private runtime directory")
        runtime = work / "runtime"
        runtime.mkdir(mode=0o700)
        os.chown(runtime, uid, gid)
    return runtime


def _owned_dir(path: Path, uid: int, gid: int) -> Path:
    path.mkdir(mode=0o700, parents=True)
    os.chown(path, uid, gid)
    return path


def _session(stack: contextlib.ExitStack, work: Path) -> tuple[SessionUser, str]:
    """The demo user's session: a display, their own session bus and dunst on it."""
    uid, gid = _demo_user(stack, work)
    home = _owned_dir(work / "home", uid, gid)
    runtime = _runtime_dir(stack, work, uid, gid)
    display = _display(stack, work)
    # Our own bus socket: /run/user/UID/bus may be a logged-in user's real session bus.
    bus = runtime / f"drkonqi-demo-{os.getpid()}.bus"
    stack.callback(bus.unlink, missing_ok=True)
    env = {
        "HOME": str(home),
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "XDG_RUNTIME_DIR": str(runtime),
        "DBUS_SESSION_BUS_ADDRESS": f"unix:path={bus}",
        "DISPLAY": display,
        "LANG": "C.UTF-8",
        "QT_QPA_PLATFORM": "xcb",
    }
    user = SessionUser(uid, gid, env, work)
    stack.callback(user.close)
    # Announce only what happens during the demo, not the user's crashes of the last days
    # (the login catch-up would otherwise show them first).
    settings = _owned_dir(home / ".config/drkonqi-lite", uid, gid) / "settings.ini"
    settings.write_text("[App]\ncatchup_days = 0.0005\n")
    os.chown(home / ".config", uid, gid)
    os.chown(settings, uid, gid)
    user.start_bus(bus, _owned_dir(work / "dbus-services", uid, gid), work / "session.conf")
    user.start_notification_server(work / "dunstrc", width=420, font="DejaVu Sans 10")
    return user, display


def _start_app(user: SessionUser, work: Path) -> None:
    _say(f"starting the tray app as uid {user.uid}")
    app = user.spawn([sys.executable, "-m", "drkonqi_lite"], "app")
    wait_for(
        lambda: user.on_bus("org.drkonqi_lite.CrashNotifier") or app.poll() is not None,
        timeout=15,
        what="the app on the session bus",
    )
    if app.poll() is not None:
        raise DemoError(f"the app exited: {(work / 'app.log').read_text()[-500:]}")


def _crash_and_notify(user: SessionUser, display: str, output: Path) -> dict[str, Any]:
    """Crash the sample as the user; screenshot the notification; the app's record of it."""
    _say(f"crashing a sample program as uid {user.uid}: {' '.join(SAMPLE)}")
    sample = subprocess.Popen(
        user.argv(SAMPLE), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )  # setpriv and env exec: same PID
    _say(f"PID {sample.pid} died with signal {-sample.wait(timeout=60)}")
    wait_for(
        lambda: user.dunstctl("count", "displayed").strip() not in ("", "0"),
        timeout=15,
        what="the notification",
    )
    time.sleep(0.5)  # let dunst draw
    screenshot(display, output / "notification.png")
    _say(f"notification: {output / 'notification.png'}")
    shown = user.run([sys.executable, "-m", "drkonqi_lite", "show", str(sample.pid), "--json"])
    if shown.returncode != 0:
        raise DemoError(f"the app does not know the crash: {shown.stderr.strip()}")
    crash: dict[str, Any] = json.loads(shown.stdout)
    return crash


def _show_detail(user: SessionUser, display: str, output: Path, crash_id: str) -> None:
    """Open the crash's detail window over D-Bus, as the notification's action does."""
    user.run(
        [
            "dbus-send",
            "--session",
            "--print-reply",
            "--dest=org.drkonqi_lite.CrashNotifier",
            "/org/drkonqi_lite/CrashNotifier",
            "org.drkonqi_lite.CrashNotifier1.ShowCrash",
            f"string:{crash_id}",
        ]
    )
    env = {**os.environ, "DISPLAY": display}

    def windows() -> list[str]:
        out = subprocess.run(
            ["xdotool", "search", "--onlyvisible", "--name", "Crash Reports"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        return out.stdout.split()

    shown = wait_for(windows, timeout=15, what="the crash detail window")
    time.sleep(1.0)  # let it paint
    screenshot(display, output / "desktop.png")
    screenshot(display, output / "detail-window.png", str(shown[-1]))  # type: ignore[index]
    _say(f"detail window: {output / 'detail-window.png'} (whole screen: desktop.png)")


def _save_entry(output: Path, crash: dict[str, Any]) -> None:
    """What coredumpctl and the journal say about the crash, next to the screenshots."""
    pid = str(crash["pid"])
    info = subprocess.run(
        ["coredumpctl", "info", "--no-pager", pid], capture_output=True, text=True, check=False
    )
    (output / "coredumpctl-info.txt").write_text(info.stdout)
    export = subprocess.run(
        [
            "journalctl",
            "--no-pager",
            "-o",
            "export",
            f"MESSAGE_ID={MESSAGE_ID}",
            f"{Field.PID}={pid}",
        ],
        capture_output=True,
        check=False,
    )
    (output / "journal-entry.export").write_bytes(export.stdout)
    (output / "crash.json").write_text(json.dumps(crash, indent=2) + "\n")
    print(info.stdout)
    _say(
        f"saved in {output}/: notification.png, detail-window.png, desktop.png, "
        "coredumpctl-info.txt, journal-entry.export, crash.json"
    )


def run(output: Path) -> int:
    """The demo; returns the exit status. The session's logs are kept in OUTPUT/logs."""
    if os.geteuid() != 0:
        raise DemoError("run as root (it sets kernel.core_pattern); try: sudo make demo")
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        raise DemoError(f"missing {', '.join(missing)}: run `make deps` first")
    output.mkdir(parents=True, exist_ok=True)
    try:
        with contextlib.ExitStack() as stack:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="drkonqi-demo-")))
            work.chmod(0o755)
            stack.callback(_keep_logs, work, output / "logs")
            stack.enter_context(_journald())
            user, display = _session(stack, work)
            stack.enter_context(_collector_installed())
            stack.enter_context(_cores_service(work))
            _start_app(user, work)
            crash = _crash_and_notify(user, display, output)
            _show_detail(user, display, output, str(crash["id"]))
            _save_entry(output, crash)
    except TimeoutError as exc:
        raise DemoError(str(exc)) from None
    return 0
