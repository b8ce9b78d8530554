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
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

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
JOURNALD = "/lib/systemd/systemd-journald"
#: The sample crash: a NULL read inside ctypes, so the backtrace has C and Python frames.
SAMPLE = ["/usr/bin/python3", "-c", "import ctypes, time; time.sleep(0.3); ctypes.string_at(0)"]
SESSION_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={bus}</listen>
  <auth>EXTERNAL</auth>
  <!-- Debian's session.conf policy: the rule with only eavesdrop= is what allows receiving -->
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""
DUNSTRC = """[global]
    width = 420
    origin = top-left
    offset = 10x50
    font = DejaVu Sans 10
    mouse_left_click = do_action, close_current
[urgency_low]
    timeout = 0
[urgency_normal]
    timeout = 0
[urgency_critical]
    timeout = 0
"""


class DemoError(Exception):
    """An expected failure of the demo, with what to do about it."""


def _wait(cond: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise DemoError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _say(text: str) -> None:
    print(f"demo: {text}", flush=True)


class Session:
    """The demo user's processes (bus, notification server, app), started as that user."""

    def __init__(
        self, uid: int, gid: int, home: Path, runtime: Path, bus: Path, display: str
    ) -> None:
        self.uid, self.gid = uid, gid
        self.env = {
            "HOME": str(home),
            "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
            "XDG_RUNTIME_DIR": str(runtime),
            "DBUS_SESSION_BUS_ADDRESS": f"unix:path={bus}",
            "DISPLAY": display,
            "LANG": "C.UTF-8",
            "QT_QPA_PLATFORM": "xcb",
        }

    def argv(self, argv: list[str]) -> list[str]:
        return [
            "setpriv",
            f"--reuid={self.uid}",
            f"--regid={self.gid}",
            "--clear-groups",
            "--",
            "env",
            "-i",
            *(f"{k}={v}" for k, v in self.env.items()),
            *argv,
        ]

    def run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(argv), capture_output=True, text=True, timeout=60, check=False
        )

    def spawn(
        self, stack: contextlib.ExitStack, argv: list[str], log: Path
    ) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            proc = subprocess.Popen(
                self.argv(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        stack.callback(_stop, proc)
        return proc

    def on_bus(self, name: str) -> bool:
        out = self.run(
            [
                "dbus-send",
                "--session",
                "--print-reply",
                "--dest=org.freedesktop.DBus",
                "/",
                "org.freedesktop.DBus.NameHasOwner",
                f"string:{name}",
            ]
        )
        return "boolean true" in out.stdout


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextlib.contextmanager
def _journald() -> Iterator[None]:
    if (
        subprocess.run(
            ["pgrep", "-x", "systemd-journal"], capture_output=True, check=False
        ).returncode
        == 0
    ):
        yield
        return
    _say("starting systemd-journald (persistent storage: per-user journals)")
    Path("/var/log/journal").mkdir(parents=True, exist_ok=True)
    Path("/run/systemd/journal").mkdir(parents=True, exist_ok=True)
    # Without systemd as PID 1 nothing flushes /run to /var; the flag makes journald write
    # /var/log/journal (and user-UID.journal files) from the start (TESTING.md).
    Path("/run/systemd/journal/flushed").touch()
    proc = subprocess.Popen(
        [JOURNALD],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait(Path("/run/systemd/journal/socket").is_socket, "journald's socket")
        yield
    finally:
        _stop(proc)


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
    activate = shutil.which("systemd-socket-activate")
    if sock.is_socket() or activate is None:
        yield
        return
    sock.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "drkonqi_lite_collector.main", "--cores-service"]
    with (work / "cores.log").open("wb") as log:
        proc = subprocess.Popen(
            [activate, "--seqpacket", "--accept", "-l", str(sock), *argv],
            stdout=log,
            stderr=log,
            start_new_session=True,  # _stop ends its process group
        )
    try:
        _wait(sock.is_socket, "the core deletion socket", timeout=5)
        sock.chmod(0o666)  # SocketMode= of the unit: every user may ask
        _say(f"core deletion service: {sock}")
        yield
    finally:
        _stop(proc)
        sock.unlink(missing_ok=True)


def _demo_user(stack: contextlib.ExitStack, work: Path) -> tuple[int, int]:
    """A regular user of this machine (uid 1000 if it exists), else a temporary one."""
    for entry in pwd.getpwall():
        if 1000 <= entry.pw_uid < 60000 and entry.pw_uid != 65534:
            return entry.pw_uid, entry.pw_gid
    uid = 4242
    userdb = Path("/run/userdb")
    userdb.mkdir(exist_ok=True)
    record = {
        "userName": "drkonqi-demo",
        "uid": uid,
        "gid": uid,
        "disposition": "regular",
        "homeDirectory": str(work),
        "shell": "/bin/sh",
    }
    path = userdb / "drkonqi-demo.user"
    path.write_text(json.dumps(record))
    link = userdb / f"{uid}.user"
    link.unlink(missing_ok=True)
    link.symlink_to(path.name)
    stack.callback(path.unlink, missing_ok=True)
    stack.callback(link.unlink, missing_ok=True)
    return uid, uid


def _display(stack: contextlib.ExitStack, work: Path) -> str:
    if (
        os.environ.get("DISPLAY")
        and subprocess.run(
            ["xdotool", "getdisplaygeometry"], capture_output=True, check=False
        ).returncode
        == 0
    ):
        return os.environ["DISPLAY"]
    _say("no desktop: starting Xvfb (1280x800) with trayer as the tray host")
    rfd, wfd = os.pipe()
    with (work / "xvfb.log").open("ab") as log:
        xvfb = subprocess.Popen(
            ["Xvfb", "-displayfd", str(wfd), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
            pass_fds=(wfd,),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    stack.callback(_stop, xvfb)
    os.close(wfd)
    with os.fdopen(rfd) as f:
        display = ":" + f.readline().strip()
    env = {**os.environ, "DISPLAY": display}
    _wait(
        lambda: (
            subprocess.run(
                ["xdotool", "getdisplaygeometry"], env=env, capture_output=True, check=False
            ).returncode
            == 0
        ),
        "Xvfb",
    )
    tray = subprocess.Popen(
        [
            "trayer",
            "--edge",
            "top",
            "--align",
            "right",
            "--widthtype",
            "pixel",
            "--width",
            "200",
            "--height",
            "32",
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    stack.callback(_stop, tray)
    return display


def _keep_logs(work: Path, target: Path) -> None:
    """The session's logs (app, dunst, bus, X) next to the screenshots, for whoever looks."""
    target.mkdir(exist_ok=True)
    for log in work.glob("*.log"):
        shutil.copyfile(log, target / log.name)


def _screenshot(display: str, path: Path, window: str = "root") -> None:
    subprocess.run(
        ["import", "-display", display, "-window", window, str(path)],
        check=True,
        capture_output=True,
    )


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


def run(output: Path) -> int:
    """The demo; returns the exit status. The session's logs are kept in OUTPUT/logs."""
    if os.geteuid() != 0:
        raise DemoError("run as root (it sets kernel.core_pattern); try: sudo make demo")
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        raise DemoError(f"missing {', '.join(missing)}: run `make deps` first")
    output.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="drkonqi-demo-")))
        work.chmod(0o755)
        stack.callback(_keep_logs, work, output / "logs")
        stack.enter_context(_journald())
        uid, gid = _demo_user(stack, work)
        home = work / "home"
        home.mkdir(mode=0o700)
        os.chown(home, uid, gid)
        runtime = _runtime_dir(stack, work, uid, gid)
        display = _display(stack, work)
        # Our own bus socket: /run/user/UID/bus may be a logged-in user's real session bus.
        bus = runtime / f"drkonqi-demo-{os.getpid()}.bus"
        stack.callback(bus.unlink, missing_ok=True)
        user = Session(uid, gid, home, runtime, bus, display)
        # Announce only what happens during the demo, not the user's crashes of the last days
        # (the login catch-up would otherwise show them first).
        settings = home / ".config/drkonqi-lite/settings.ini"
        settings.parent.mkdir(parents=True)
        settings.write_text("[App]\ncatchup_days = 0.0005\n")
        for path in (home / ".config", settings.parent, settings):
            os.chown(path, uid, gid)
        (work / "session.conf").write_text(SESSION_CONF.format(bus=bus))
        user.spawn(
            stack,
            ["dbus-daemon", f"--config-file={work / 'session.conf'}", "--nofork", "--nopidfile"],
            work / "dbus.log",
        )
        _wait(lambda: user.on_bus("org.freedesktop.DBus"), "the session bus")
        (work / "dunstrc").write_text(DUNSTRC)
        user.spawn(stack, ["dunst", "-config", str(work / "dunstrc")], work / "dunst.log")
        _wait(lambda: user.on_bus("org.freedesktop.Notifications"), "dunst")
        stack.enter_context(_collector_installed())
        stack.enter_context(_cores_service(work))

        _say(f"starting the tray app as uid {uid}")
        app = user.spawn(stack, [sys.executable, "-m", "drkonqi_lite"], work / "app.log")
        _wait(
            lambda: user.on_bus("org.drkonqi_lite.CrashNotifier") or app.poll() is not None,
            "the app on the session bus",
        )
        if app.poll() is not None:
            raise DemoError(f"the app exited: {(work / 'app.log').read_text()[-500:]}")

        _say(f"crashing a sample program as uid {uid}: {' '.join(SAMPLE)}")
        sample = subprocess.Popen(
            user.argv(SAMPLE), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )  # setpriv and env exec: same PID
        _say(f"PID {sample.pid} died with signal {-sample.wait(timeout=60)}")
        _wait(
            lambda: user.run(["dunstctl", "count", "displayed"]).stdout.strip() not in ("", "0"),
            "the notification",
        )
        time.sleep(0.5)  # let dunst draw
        _screenshot(display, output / "notification.png")
        _say(f"notification: {output / 'notification.png'}")

        shown = user.run([sys.executable, "-m", "drkonqi_lite", "show", str(sample.pid), "--json"])
        if shown.returncode != 0:
            raise DemoError(f"the app does not know the crash: {shown.stderr.strip()}")
        crash = json.loads(shown.stdout)
        user.run(
            [
                "dbus-send",
                "--session",
                "--print-reply",
                "--dest=org.drkonqi_lite.CrashNotifier",
                "/org/drkonqi_lite/CrashNotifier",
                "org.drkonqi_lite.CrashNotifier1.ShowCrash",
                f"string:{crash['id']}",
            ]
        )
        env = {**os.environ, "DISPLAY": display}
        windows: list[str] = []

        def window_shown() -> bool:
            out = subprocess.run(
                ["xdotool", "search", "--onlyvisible", "--name", "Crash Reports"],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            windows[:] = out.stdout.split()
            return bool(windows)

        _wait(window_shown, "the crash detail window")
        time.sleep(1.0)  # let it paint
        _screenshot(display, output / "desktop.png")
        _screenshot(display, output / "detail-window.png", windows[-1])
        _say(f"detail window: {output / 'detail-window.png'} (whole screen: desktop.png)")

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
    return 0
