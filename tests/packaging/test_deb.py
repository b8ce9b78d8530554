"""The Debian package, installed on this machine: files, a real crash, removal and purge.

Runs only when DRKONQI_LITE_DEB names a built package (`make deb`; .ci/run sets it under CI).
It installs the package with apt-get, so it changes the machine: everything happens while this
test holds the global core_pattern lock (tests/conftest.py `core_pattern`, which restores
core_pattern and core_pipe_limit at the end whatever happens), and the package is purged on the
way out. Without systemd as PID 1 the socket unit is not running: the packaged collector handles
crashes in-process, and the socket-activated path is run twice: with systemd-socket-activate
playing the INSTALLED socket unit with the INSTALLED service's ExecStart, and under a real
systemd (PID 1 of a throw-away systemd-nspawn container on this machine's /usr) that runs the
installed units with every hardening line in force (the collector's, the replay, core deletion
and the fleet forwarder, which sends real crashes to a Bugsink on loopback: fleet_container.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shlex
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from drkonqi_lite.session.socket_unit import socket_activated
from drkonqi_lite_collector.admin.pattern import PIPE_LIMIT
from drkonqi_lite_collector.journal.schema import MESSAGE_ID
from tests.conftest import CORE_PATTERN, CORE_PIPE_LIMIT, need, which
from tests.integration.bugsink import bugsink_server
from tests.integration.journal_read import field, wait_entry_since
from tests.integration.processes import children, crash, spawn_as
from tests.packaging.container import in_container as _in_container
from tests.packaging.fleet_container import check_fleet_under_systemd
from tests.packaging.units import ROOT, directives, value
from tests.packaging.user_session import check_user_session

DEB = os.environ.get("DRKONQI_LITE_DEB", "")
PACKAGE = "drkonqi-lite"
PYTHON_HOOK = Path("/usr/lib/python3/dist-packages/drkonqi_lite_python_hook.pth")
LAUNCHER = Path("/usr/libexec/drkonqi-lite-collector")
VENV = Path("/usr/lib/drkonqi-lite/venv")
STATE = Path("/var/lib/drkonqi-lite")
SYSCTL_FILE = Path("/etc/sysctl.d/60-drkonqi-lite.conf")
UNITS = Path("/lib/systemd/system")
USER = 1000
#: A pipe handler that is not ours (the package must leave it alone).
FOREIGN = "|/bin/false %p"

#: What the installed app and collector import (PySide6-Essentials' modules that we use).
IMPORTS = (
    "import PySide6.QtCore, PySide6.QtGui, PySide6.QtWidgets, PySide6.QtDBus, PySide6.QtSvg; "
    "import dbus_next, qasync, systemd.journal, zstandard, drkonqi_lite_collector.main"
)
#: The resource files the installed app can see, where it looks for them.
RESOURCES_OF_APP = (
    "import drkonqi_lite.app as a, drkonqi_lite.qt.icons as i; "
    "assert i.ICON_DIR.parent == a.RESOURCES, (i.ICON_DIR, a.RESOURCES); "
    "print(*sorted(str(p.relative_to(a.RESOURCES)) for p in a.RESOURCES.rglob('*') "
    "if p.is_file()))"
)
#: The tray app's session integration and icons, and where the package puts them.
APP_FILES = {
    "packaging/drkonqi-lite-autostart.desktop": Path("/etc/xdg/autostart/drkonqi-lite.desktop"),
    "packaging/drkonqi-lite.service": Path("/usr/lib/systemd/user/drkonqi-lite.service"),
    "packaging/drkonqi-lite.socket": Path("/usr/lib/systemd/user/drkonqi-lite.socket"),
    "packaging/drkonqi-lite-login.service": Path(
        "/usr/lib/systemd/user/drkonqi-lite-login.service"
    ),
    "packaging/org.drkonqi_lite.CrashNotifier.service": Path(
        "/usr/share/dbus-1/services/org.drkonqi_lite.CrashNotifier.service"
    ),
    "resources/drkonqi-lite.svg": Path("/usr/share/icons/hicolor/scalable/apps/drkonqi-lite.svg"),
}


@pytest.fixture(autouse=True)
def _deb_built() -> None:
    """CI builds the package and names it (.ci/run); a run without it fails there."""
    need(bool(DEB), "DRKONQI_LITE_DEB is not set (make deb)")


def apt(*args: str) -> str:
    """apt-get, non-interactive; returns its output (stdout and stderr), fails with it."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    out = subprocess.run(
        ["apt-get", "-y", "-q", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    text = out.stdout + out.stderr
    assert out.returncode == 0, f"apt-get {' '.join(args)} failed:\n{text}"
    return text


def installed() -> str:
    out = subprocess.run(
        ["dpkg-query", "-W", "-f=${db:Status-Abbrev}", PACKAGE],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() if out.returncode == 0 else ""


def set_pattern(pattern: str, pipe_limit: str) -> None:
    CORE_PATTERN.write_text(pattern + "\n")
    CORE_PIPE_LIMIT.write_text(pipe_limit + "\n")


def current_pattern() -> str:
    return CORE_PATTERN.read_text().rstrip("\n")


def check_files() -> None:
    """What the package put where, with which modes."""
    st = LAUNCHER.stat()
    assert st.st_uid == 0
    assert stat.S_IMODE(st.st_mode) == 0o755
    head = LAUNCHER.read_text().splitlines()
    assert head[0] == "#!/usr/bin/python3 -IS", "Debian's Python, isolated, no site"
    assert any(str(VENV) in line and "sys.path" in line for line in head), "explicit sys.path"
    assert Path("/usr/bin/drkonqi-lite-collector").resolve() == LAUNCHER
    assert Path("/usr/bin/drkonqi-lite").resolve() == VENV / "bin/drkonqi-lite"
    assert Path("/usr/bin/drkonqi-lite-fleet").resolve() == VENV / "bin/drkonqi-lite-fleet"
    assert (VENV / "bin/drkonqi-lite").read_text().startswith(f"#!{VENV}/bin/python")
    for path in (
        UNITS / "drkonqi-lite-collector.socket",
        UNITS / "drkonqi-lite-collector@.service",
        UNITS / "drkonqi-lite-collector-replay.service",
        UNITS / "drkonqi-lite-cores.socket",
        UNITS / "drkonqi-lite-cores@.service",
        UNITS / "drkonqi-lite-coredump-hook@.service",
        Path("/usr/lib/tmpfiles.d/drkonqi-lite.conf"),
        Path("/etc/drkonqi-lite/collector.conf"),
        Path("/usr/lib/sysusers.d/drkonqi-lite.conf"),
        Path("/usr/share/man/man1/drkonqi-lite.1.gz"),
        Path("/usr/share/man/man8/drkonqi-lite-collector.8.gz"),
        Path("/usr/share/man/man5/drkonqi-lite-collector.conf.5.gz"),
        Path("/usr/share/man/man8/drkonqi-lite-fleet.8.gz"),
        Path("/usr/share/man/man5/drkonqi-lite-reporting.conf.5.gz"),
        UNITS / "drkonqi-lite-fleet.service",
        Path("/usr/share/applications/drkonqi-lite-crash-reports.desktop"),
        Path("/usr/share/metainfo/org.drkonqi_lite.CrashReports.metainfo.xml"),
        PYTHON_HOOK.with_suffix(".py"),
        PYTHON_HOOK,
    ):
        assert path.is_file(), f"{path} missing"
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    # Debian's python3 runs the packaged exception hook (site.py executes the .pth line), from
    # a shipped .pyc, and the hook names the package's own collector.
    hook = subprocess.run(
        ["/usr/bin/python3", "-c", "import sys; h = sys.excepthook; "
         "print(type(h).__name__, h.collector_lib, h.prefix)"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.split()  # fmt: skip
    assert hook == ["Hook", str(next((VENV / "lib").glob("python3*/site-packages"))), "/"]
    assert list(PYTHON_HOOK.parent.glob("__pycache__/drkonqi_lite_python_hook.*.pyc"))
    for source, target in APP_FILES.items():
        assert (ROOT / source).is_file(), f"{source} is missing from the tree"
        assert target.is_file(), f"{source} is in the tree but {target} was not installed"
    # The private venv has every run-time dependency, C extensions and Qt included.
    subprocess.run(
        [f"{VENV}/bin/python", "-c", IMPORTS], capture_output=True, check=True, timeout=60
    )
    # The installed app finds every resource it ships (icons, the D-Bus interface XML).
    if (ROOT / "drkonqi_lite/app.py").exists():
        found = subprocess.run(
            [f"{VENV}/bin/python", "-c", RESOURCES_OF_APP],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.split()
        shipped = sorted(
            str(p.relative_to(ROOT / "resources"))
            for p in (ROOT / "resources").rglob("*")
            if p.is_file()
        )
        assert found == shipped, f"the installed app sees {found}, the tree has {shipped}"
    # Nothing in the venv still points into the build tree, and nobody but root can change it.
    leftovers = subprocess.run(
        # The absolute staging paths a leak would contain (not words in the README, which
        # the wheel's METADATA quotes and which mention ./build/deb/ for users).
        ["grep", "-rlI", "-e", "/debian/drkonqi-lite/", "-e", f"{ROOT}/build/deb/", str(VENV)],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    assert not leftovers, f"build-tree paths in:\n{leftovers}"
    for dirpath, dirnames, filenames in os.walk(VENV):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            assert st.st_uid == 0, name
            assert stat.S_ISLNK(st.st_mode) or not st.st_mode & 0o022, f"{name} is writable"
    # The directories (tmpfiles.d) and the system user (sysusers.d), made by postinst.
    for rel, mode in (("", 0o755), ("coredump", 0o711), ("spool", 0o700)):
        st = (STATE / rel).stat()
        assert st.st_uid == 0
        assert stat.S_IMODE(st.st_mode) == mode, f"{STATE / rel}: {oct(st.st_mode)}"
    assert Path("/run/drkonqi-lite").is_dir()
    user = pwd.getpwnam("drkonqi-lite")
    assert user.pw_uid < 1000, "a system user"


def check_took_over(before: str) -> None:
    pattern = current_pattern()
    assert pattern.startswith(f"|{LAUNCHER} "), f"core_pattern is {pattern!r}, was {before!r}"
    assert CORE_PIPE_LIMIT.read_text().strip() == str(PIPE_LIMIT)
    assert f"kernel.core_pattern={pattern}\n" in SYSCTL_FILE.read_text(), "persisted for boot"
    status = subprocess.run(
        ["/usr/bin/drkonqi-lite-collector", "status"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "crash handler:   drkonqi-lite-collector" in status


def check_crash(since: float) -> None:
    """A real crash of a user's program reaches the journal through the packaged collector."""
    pid = crash(["/bin/sleep", "1000"], USER, USER, sig=signal.SIGSEGV)
    entry = wait_entry_since(since, COREDUMP_PID=pid)
    assert field(entry, "_UID") == str(USER).encode(), "sent as the crashing user"
    assert field(entry, "COREDUMP_COMM") == b"sleep"
    assert field(entry, "DRKONQI_LITE_IDENTITY") == b"verified"
    assert b"Stack trace of thread" in field(entry, "MESSAGE")
    core = Path(os.fsdecode(field(entry, "COREDUMP_FILENAME")))
    assert core.parent == STATE / "coredump"
    assert core.is_file()
    assert core.stat().st_uid == 0
    if (ROOT / "drkonqi_lite/cli.py").exists():
        # The installed app, as that user, finds the crash in the user's own journal.
        home = Path(tempfile.mkdtemp(prefix="dkl-home-"))
        os.chown(home, USER, USER)
        try:
            proc = spawn_as(
                ["/usr/bin/drkonqi-lite", "list", "--json"],
                USER,
                USER,
                env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            out, err = proc.communicate(timeout=60)
        finally:
            shutil.rmtree(home, ignore_errors=True)
        assert proc.returncode == 0, err
        assert pid in [c["pid"] for c in json.loads(out)], out


def check_socket_activated(tmp_path: Path, since: float) -> None:
    """The split, with the installed units: systemd-socket-activate listens where the socket
    unit says and runs the service's ExecStart per connection (LISTEN_FDS=1, as Accept=yes)."""
    which("systemd-socket-activate")
    sock_unit = UNITS / "drkonqi-lite-collector.socket"
    address = value(sock_unit, "Socket", "ListenSequentialPacket")
    mode = int(value(sock_unit, "Socket", "SocketMode"), 8)
    exec_start = shlex.split(
        value(UNITS / "drkonqi-lite-collector@.service", "Service", "ExecStart")
    )
    assert [d.key for d in directives(sock_unit)].count("Accept") == 1
    with socket_activated(Path(address), exec_start, tmp_path / "socket-activate.log",
                          mode) as log:
        pid = crash(["/bin/sleep", "1000"], USER, USER)
        entry = wait_entry_since(since, COREDUMP_PID=pid)
        text = log.read_text()
        assert "Accepted" in text or "Communication attempt" in text, text
        assert field(entry, "DRKONQI_LITE_IDENTITY") == b"verified", "pidfd + dirfd handed over"
        assert Path(os.fsdecode(field(entry, "COREDUMP_FILENAME"))).parent == STATE / "coredump"


def check_notification(out: Path) -> None:
    """Kernel crash → entry → notification with the INSTALLED programs: the installed
    `drkonqi-lite demo` runs the installed tray app as a user with dunst (Xvfb when there is
    no display), crashes a program, and saves the notification and the detail window; it
    leaves the package as the crash handler."""
    before = current_pattern()
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    demo = subprocess.run(["/usr/bin/drkonqi-lite", "demo", "--output", str(out)], env=env,
                          capture_output=True, text=True, timeout=240, check=False)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "/usr/libexec/drkonqi-lite-collector" in demo.stdout, "the packaged collector"
    crash = json.loads((out / "crash.json").read_text())
    assert crash["signal_name"] == "SIGSEGV"
    assert crash["core_state"] == "present"
    assert (out / "notification.png").stat().st_size > 5_000
    assert (out / "detail-window.png").stat().st_size > 5_000
    assert current_pattern() == before, "the demo gives the handler back"


def _boot_container(nspawn: str, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """systemd as PID 1 of a throw-away container on this machine's /usr (--volatile=yes: a
    tmpfs root, so nothing it does stays), sharing /run/drkonqi-lite with the host so that the
    host's kernel-facing stage reaches the container's socket unit. nspawn drops
    CAP_CHECKPOINT_RESTORE by default; the service needs it for map_files."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [nspawn, "-D", "/", "--volatile=yes", "--register=no", "--keep-unit",
             "-M", "dkl-deb-test", "--bind=/run/drkonqi-lite",
             "--capability=CAP_CHECKPOINT_RESTORE", "-b", "systemd.firstboot=off"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    leader = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if not leader:
            leader = next(iter(children(proc.pid)), 0)
        elif _in_container(leader, "systemctl", "is-system-running", check=False).strip() in {
            "running",
            "degraded",
        }:
            return proc, leader
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    raise AssertionError(f"the container did not boot:\n{log.read_text()[-3000:]}")


#: Spools one entry the way the collector does when journald is unreachable (handler.deliver).
SPOOL_ONE = (
    "import os, sys; from drkonqi_lite_collector.journal import native as journal, spool; "
    "from drkonqi_lite_collector import storage; "
    "state = storage.open_dir('/var/lib/drkonqi-lite', create=True); "
    "fd = storage.open_subdir(state, 'spool', mode=0o700); "
    "payload = journal.serialize([('MESSAGE', sys.argv[1]), ('PRIORITY', 6), "
    "('SYSLOG_IDENTIFIER', 'drkonqi-lite-test')]); "
    "print(spool.spool(fd, payload, journal.Credentials(int(sys.argv[2]), int(sys.argv[2]))))"
)


def check_replay_under_systemd(leader: int) -> None:
    """drkonqi-lite-collector-replay.service, sandboxed, sends a spooled entry as the user it
    was spooled for and empties the spool."""
    token = f"dkl-replay-probe-{os.getpid()}-{time.time_ns()}"
    _in_container(leader, f"{VENV}/bin/python", "-I", "-c", SPOOL_ONE, token, str(USER))
    _in_container(leader, "systemctl", "start", "drkonqi-lite-collector-replay.service")
    result = _in_container(
        leader, "systemctl", "show", "-P", "Result", "drkonqi-lite-collector-replay.service"
    )
    log = _in_container(
        leader, "journalctl", "--no-pager", "-u", "drkonqi-lite-collector-replay.service"
    )
    assert result.strip() == "success", log
    sent = _in_container(leader, "journalctl", "--no-pager", "-o", "json", f"MESSAGE={token}")
    assert sent.strip(), f"the spooled entry was not sent; the unit's log:\n{log}"
    assert json.loads(sent.splitlines()[-1])["_UID"] == str(USER)
    left = _in_container(leader, "ls", "/var/lib/drkonqi-lite/spool")
    assert not left.strip(), f"still spooled: {left}"
    # Nothing left (the replay's hidden lock file does not count): the next boot skips it.
    _in_container(leader, "systemctl", "start", "drkonqi-lite-collector-replay.service")
    condition = _in_container(
        leader, "systemctl", "show", "-P", "ConditionResult",
        "drkonqi-lite-collector-replay.service",
    )  # fmt: skip
    assert condition.strip() == "no", "ConditionDirectoryNotEmpty= skips an empty spool"


def check_under_systemd(tmp_path: Path, since: float) -> None:
    """The installed socket and service under a real systemd (PID 1 of a container): the
    kernel-facing stage on the host hands the crash over, and the sandboxed instance (every
    hardening line of the unit in force) stores the core, unwinds and sends the entry.

    Not checked here: identity. The service's PID namespace is the container's, where the
    crashed host process has no PID, so it records "unverified", as it must; with systemd as
    the host's PID 1 both stages share one PID namespace."""
    nspawn = which("systemd-nspawn")
    proc, leader = _boot_container(nspawn, tmp_path / "container.log")
    sock = Path("/run/drkonqi-lite/collector.socket")
    try:
        _in_container(leader, "systemctl", "start", "drkonqi-lite-collector.socket")
        assert sock.is_socket()
        check_user_session(leader)
        pid = crash(["/bin/sleep", "1000"], USER, USER)
        deadline = time.monotonic() + 30
        found = ""
        while not found and time.monotonic() < deadline:
            found = _in_container(
                leader, "journalctl", "--no-pager", "-o", "json",
                f"MESSAGE_ID={MESSAGE_ID}", f"COREDUMP_PID={pid}",
            ).strip()  # fmt: skip
            time.sleep(0.2)
        units = _in_container(leader, "journalctl", "--no-pager", "-u", "drkonqi-lite-collector@*")
        assert found, f"no entry from the sandboxed service; its log:\n{units}"
        entry = json.loads(found.splitlines()[-1])
        # Only the container's collector can write to the container's journal, and systemd
        # started it as an instance of the template (journald may miss _SYSTEMD_UNIT= of the
        # short-lived sending child, so the unit's own log is the proof).
        assert "Started drkonqi-lite-collector@" in units, units
        assert entry["_UID"] == str(USER), "sent as the crashing user from inside the sandbox"
        assert entry["DRKONQI_LITE_STACKTRACE"] == "ok", units
        assert "Stack trace of thread" in entry["MESSAGE"]
        # Symbols: the sandbox's capabilities open /proc/PID/map_files without CAP_SYS_ADMIN.
        assert "nanosleep" in entry["MESSAGE"], entry["MESSAGE"]
        core = Path(f"/proc/{leader}/root") / entry["COREDUMP_FILENAME"].lstrip("/")
        st = core.stat()
        assert stat.S_IMODE(st.st_mode) == 0o640, oct(st.st_mode)
        assert "Failed with result" not in units, units
        check_replay_under_systemd(leader)
        check_core_deletion_under_systemd(leader, core)
        with contextlib.contextmanager(bugsink_server)() as bugsink:
            check_fleet_under_systemd(leader, bugsink, _crash_sleep)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        sock.unlink(missing_ok=True)


def _crash_sleep() -> int:
    """A user's `sleep` crashes (through the container's collector)."""
    return crash(["/bin/sleep", "1000"], USER, USER)


def _ask_as(uid: int, sock: Path, request: bytes) -> bytes:
    """One datagram to `sock` from a child running as `uid`; the reply."""
    client = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); s.settimeout(20)\n"
        "s.connect(sys.argv[1]); s.send(bytes.fromhex(sys.argv[2]))\n"
        "sys.stdout.write(s.recv(4096).hex())\n"
    )
    out = subprocess.run(
        ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "/usr/bin/python3",
         "-I", "-c", client, str(sock), request.hex()],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return bytes.fromhex(out.stdout)


def check_core_deletion_under_systemd(leader: int, core: Path) -> None:
    """drkonqi-lite-cores.socket and its sandboxed service, as installed. In the container the
    crash's identity is unverified (see above), so the core has no ACL and even its user is
    refused; root's request goes through. (A user deleting their own readable core:
    tests/integration/test_core_deletion.py.)"""
    _in_container(leader, "systemctl", "start", "drkonqi-lite-cores.socket")
    sock = Path("/run/drkonqi-lite/cores.socket")  # shared with the host (--bind)
    assert stat.S_IMODE(sock.stat().st_mode) == 0o666
    request = b"delete\0" + core.name.encode()
    assert _ask_as(4242, sock, request) == b"error\0the core belongs to another user"
    assert core.is_file()
    assert _ask_as(USER, sock, request).startswith(b"error\0the core is restricted")
    assert core.is_file()
    assert _ask_as(0, sock, request) == b"ok"
    assert not core.exists()
    units = _in_container(leader, "journalctl", "--no-pager", "-u", "drkonqi-lite-cores@*")
    assert f"deleted {core.name} at the request of uid 0" in units, units


@pytest.mark.usefixtures("journald")
def test_package_lifecycle(core_pattern: None, tmp_path: Path) -> None:
    """install (takes over a non-pipe core_pattern) → files → crash → the split (emulated, then
    under a real systemd) → reinstall (still ours) → remove
    (pattern restored) → install over a foreign pipe handler (left alone) → purge (dirs gone)."""
    deb = Path(DEB).resolve()
    assert deb.is_file(), f"DRKONQI_LITE_DEB={DEB}: no such file"
    if installed():
        apt("purge", PACKAGE)
    SYSCTL_FILE.unlink(missing_ok=True)
    try:
        # The kernel writes core files itself: the package takes over, and saves that.
        set_pattern("core", "0")
        since = time.time()
        apt("install", str(deb))
        assert installed() == "ii"
        check_files()
        check_took_over("core")
        check_crash(since)
        check_notification(tmp_path / "demo")
        check_socket_activated(tmp_path, since)
        check_under_systemd(tmp_path, since)

        # An upgrade (here: a reinstall) keeps us as the handler, and keeps what we replaced.
        apt("install", "--reinstall", str(deb))
        check_took_over("core")

        apt("remove", PACKAGE)
        assert installed() == "rc", "removed, configuration kept"
        assert current_pattern() == "core", "core_pattern is what it was before install"
        assert CORE_PIPE_LIMIT.read_text().strip() == "0"
        assert not SYSCTL_FILE.exists()
        assert STATE.is_dir(), "remove keeps the data"

        # Another pipe handler is active: installing must not take over, and must say how to.
        set_pattern(FOREIGN, "0")
        output = apt("install", str(deb))
        assert current_pattern() == FOREIGN
        assert "NOT made the kernel's crash handler" in output, output
        assert "drkonqi-lite-collector install --force" in output, output
        assert not SYSCTL_FILE.exists()

        apt("purge", PACKAGE)
        assert not installed()
        assert current_pattern() == FOREIGN, "purge leaves another handler alone"
        for gone in (STATE, Path("/etc/drkonqi-lite"), Path("/run/drkonqi-lite")):
            assert not gone.exists(), f"{gone} survived the purge"
        pwd.getpwnam("drkonqi-lite")  # the system user stays (Debian policy)
    finally:
        if installed():
            subprocess.run(
                ["apt-get", "-y", "-q", "purge", PACKAGE], capture_output=True, check=False
            )
