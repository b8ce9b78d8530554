"""SECURITY.md 11: the crashing user against the collector itself.

Real crashes through core_pattern by a hostile user, each followed by ANOTHER user's crash that
must still be recorded. The hostile users are uids without a passwd entry (4243...), so that
their `kill(-1, ...)` reaches only their own processes, never another test's on this machine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import which
from tests.integration.harness import Harness
from tests.integration.journal_read import RawReader, field, wait_entry_since
from tests.integration.processes import crash_self, spawn_as

ATTACKER = 4243
VICTIM = 4244

#: Runs as the attacker: crash a child, and while the kernel dumps it stop every process of
#: ours, again and again (one kill(-1) is a few microseconds: a child that the collector forks
#: as this user is caught as soon as it has our uid).
STOPPER = r"""
import os, signal, sys, time
crashme, seconds = sys.argv[1], float(sys.argv[2])
pid = os.fork()
if pid == 0:
    os.execv(crashme, [crashme])
while True:  # PF_DUMPCORE (0x200) in /proc/PID/stat: the kernel is writing its core
    try:
        flags = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[6])
    except (OSError, ValueError, IndexError):
        break
    if flags & 0x200:
        break
print(pid, flush=True)
end = time.monotonic() + seconds
while time.monotonic() < end:
    try:
        os.kill(-1, signal.SIGSTOP)
    except ProcessLookupError:
        pass
"""


def kill_all_of(uid: int) -> None:
    """SIGCONT then SIGKILL every process of `uid` (a fork that becomes uid: kill(-1))."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            for sig in (signal.SIGCONT, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(-1, sig)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def assert_victim_recorded(t0: float, crashme: Path) -> None:
    """Another user's crash, after the hostile one, gets its entry and its core."""
    victim = crash_self([str(crashme)], VICTIM, VICTIM)
    theirs = wait_entry_since(t0, COREDUMP_PID=victim, timeout=20)
    assert field(theirs, "_UID") == str(VICTIM).encode()
    assert Path(field(theirs, "COREDUMP_FILENAME").decode()).is_file()


@pytest.fixture
def attacker() -> Iterator[int]:
    try:
        yield ATTACKER
    finally:
        kill_all_of(ATTACKER)


def test_sigstop_by_the_crashing_user_holds_nothing(
    t0: float, harness: Harness, core_pattern: None, crashme: Path, attacker: int
) -> None:
    """The user SIGSTOPs everything of theirs while their crash is collected. With
    core_pipe_limit=1 a collector held by a stopped process would make the kernel skip every
    later crash on the machine: the victim's crash must still be recorded."""
    harness.install()
    Path("/proc/sys/kernel/core_pipe_limit").write_text("1\n")
    script = harness.prefix / "stopper.py"
    script.write_text(STOPPER)
    script.chmod(0o644)
    stopper = spawn_as(
        [sys.executable, "-I", str(script), str(crashme), "4"],
        attacker,
        attacker,
        stdout=subprocess.PIPE,
        # A core that takes a while to stream: the stopper is at work well before the entry
        # is sent (a small crash is collected before a Python loop even starts).
        env={"DKL_TOUCH": str(64 * 1024**2)},
    )
    assert stopper.stdout is not None
    crashed = int(stopper.stdout.readline())
    assert stopper.wait(timeout=30) == 0
    mine = wait_entry_since(t0, COREDUMP_PID=crashed, timeout=20)
    assert field(mine, "_UID") == str(attacker).encode(), "filed in the attacker's journal"
    assert Path(field(mine, "COREDUMP_FILENAME").decode()).is_file()
    assert_victim_recorded(t0, crashme)


def test_a_core_that_stops_arriving_is_cut_and_recorded(t0: float, harness: Harness) -> None:
    """The kernel writes the core from the crashed process's context, which the user can make
    hang (a mapping of their own FUSE file). Run as the kernel runs it, with a core that stops
    after its first bytes: the collector records what came, marked truncated, and exits."""
    target = spawn_as([sys.executable, "-c", "import time; time.sleep(120)"], 1000, 1000)
    try:
        time.sleep(0.3)
        argv = harness.argv(target.pid, 1000, 1000)
        collector = subprocess.Popen(argv, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        assert collector.stdin is not None
        collector.stdin.write(b"\x7fELF" + os.urandom(64 * 1024))
        collector.stdin.flush()
        try:
            code = collector.wait(timeout=60)  # the pipe stays open, silent, all along
        finally:
            collector.kill()
            collector.stdin.close()
            collector.wait()
        assert code == 0
        e = wait_entry_since(t0, COREDUMP_PID=target.pid)
        assert field(e, "COREDUMP_TRUNCATED") == b"1"
        assert field(e, "DRKONQI_LITE_CORE_SIZE") == str(4 + 64 * 1024).encode()
    finally:
        target.kill()
        target.wait()


#: Becomes the crash target after setting a hostile hostname in its own UTS namespace.
SET_HOSTNAME = (
    "import os, socket, sys; socket.sethostname(b'evil\\nhost\\x1b[2J\\xff');"
    " os.execv(sys.argv[1], sys.argv[1:])"
)


def test_newline_in_hostname_is_recorded_escaped(
    t0: float, harness: Harness, core_pattern: None, crashme: Path, attacker: int
) -> None:
    which("unshare")
    harness.install()
    cmd = ["unshare", "-Ur", "--uts", sys.executable, "-I", "-c", SET_HOSTNAME, str(crashme)]
    proc = spawn_as(cmd, attacker, attacker)
    assert proc.wait(timeout=60) == -signal.SIGSEGV
    e = wait_entry_since(t0, COREDUMP_PID=proc.pid, timeout=20)
    assert field(e, "COREDUMP_HOSTNAME") == rb"evil\nhost\x1b[2J\xff"
    assert field(e, "COREDUMP_UID") == str(attacker).encode()
    assert Path(field(e, "COREDUMP_FILENAME").decode()).is_file()
    assert_victim_recorded(t0, crashme)


def _kernel_log_since(t0: float, needle: bytes) -> list[bytes]:
    """Kernel-transport lines (the collector's /dev/kmsg log) containing `needle`."""
    reader = RawReader()
    try:
        reader.add_match(_TRANSPORT="kernel")
        reader.seek_realtime(t0)
        return [e["MESSAGE"] for e in reader if needle in e.get("MESSAGE", b"")]
    finally:
        reader.close()


def test_closed_stdin_is_a_logged_loss_not_a_traceback(
    t0: float, harness: Harness, waiting: subprocess.Popen[bytes]
) -> None:
    """Run as the kernel runs it, but with fd 0 closed: no core, yet one entry and one clear
    line; never a traceback, never another file read as the core."""
    proc = subprocess.run(
        harness.argv(waiting.pid, 1000, 1000),
        stdin=subprocess.DEVNULL,
        preexec_fn=lambda: os.close(0),  # the state the kernel never gives
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert b"Traceback" not in proc.stderr, proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, proc.stderr
    assert b"stdin (fd 0) was closed" in proc.stderr
    e = wait_entry_since(t0, COREDUMP_PID=waiting.pid)
    assert field(e, "DRKONQI_LITE_CORE_MISSING") == b"empty"
    assert "COREDUMP_FILENAME" not in e
    deadline = time.monotonic() + 10
    while not _kernel_log_since(t0, b"stdin (fd 0) was closed"):
        assert time.monotonic() < deadline, "the loss is not in the kernel log"
        time.sleep(0.2)


#: Holds FDS descriptors of one file that carries LOCKS POSIX locks: every fd's fdinfo lists
#: every lock (~80 bytes a line), so /proc/PID/fdinfo together is FDS x LOCKS lines.
LOCKER = r"""
import fcntl, os, resource, sys, time
fds, locks = int(sys.argv[1]), int(sys.argv[2])
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (fds + 64, hard))
fd = os.open(sys.argv[3], os.O_RDWR | os.O_CREAT, 0o600)
for i in range(locks):  # gaps between the ranges: the kernel cannot merge them
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 2 * i)
for _ in range(fds):
    os.dup(fd)
print("ready", flush=True)
time.sleep(600)
"""


def test_thousands_of_fds_with_big_fdinfo_cost_bounded_memory(
    t0: float, harness: Harness, core_pattern: None, crashme: Path, attacker: int
) -> None:
    """2000 fds x 2000 locks: 300 MB of fdinfo. The entry stays below journald's limits (the
    field cut and named), the collector's memory bounded, and the victim still recorded."""
    from tests.integration.test_security_exhaustion import PeakRss  # noqa: PLC0415

    harness.install()
    script = harness.prefix / "locker.py"
    script.write_text(LOCKER)
    script.chmod(0o644)
    lockfile = harness.prefix / "locked"
    lockfile.touch()
    os.chown(lockfile, attacker, attacker)
    cmd = [sys.executable, "-I", str(script), "2000", "2000", str(lockfile)]
    proc = spawn_as(cmd, attacker, attacker, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n"
    with PeakRss(harness.prefix) as rss:
        os.kill(proc.pid, signal.SIGSEGV)
        assert proc.wait(timeout=120) == -signal.SIGSEGV
        e = wait_entry_since(t0, COREDUMP_PID=proc.pid, timeout=60)
    fds = field(e, "COREDUMP_OPEN_FDS")
    assert len(fds) <= 1024 * 1024
    assert b"lock:" in fds, "the fdinfo is there, only cut"
    assert b"COREDUMP_OPEN_FDS" in field(e, "DRKONQI_LITE_TRUNCATED_FIELDS").split()
    assert Path(field(e, "COREDUMP_FILENAME").decode()).is_file()
    assert rss.seen, "never saw the collector running"
    assert rss.peak_kib < 64 * 1024, f"collector peak RSS {rss.peak_kib} KiB"
    assert_victim_recorded(t0, crashme)


def test_renamed_copies_do_not_dodge_the_crash_loop_limit(
    t0: float, harness: Harness, core_pattern: None, crashme: Path, attacker: int
) -> None:
    """30 copies of one binary under 30 names, each crashing once: every crash gets its entry,
    but only RateLimitUserBurst cores are stored for the user; the others are released unread
    (no core size: the kernel's pipe was let go). The victim's crash is not limited."""
    harness.configure("RateLimitBurst=5\nRateLimitUserBurst=10\nRateLimitIntervalSec=120\n")
    harness.install()
    copies = harness.prefix / "copies"
    copies.mkdir(mode=0o755)
    pids = []
    for i in range(30):
        copy = copies / f"renamed{i}"
        shutil.copy(crashme, copy)
        pids.append(crash_self([str(copy)], attacker, attacker))
    found = [wait_entry_since(t0, COREDUMP_PID=pid) for pid in pids]
    stored = [e for e in found if "COREDUMP_FILENAME" in e]
    assert len(stored) == 10, f"{len(stored)} cores stored for one user's 30 copies"
    for e in found[10:]:
        assert field(e, "DRKONQI_LITE_CORE_MISSING") == b"rate-limited"
        assert "DRKONQI_LITE_CORE_SIZE" not in e, "a limited crash's core is not read"
        assert "COREDUMP_OPEN_FDS" not in e, "nor its big /proc files"
    assert len(harness.cores()) == 10
    assert_victim_recorded(t0, crashme)


#: Runs as the attacker: stop every process of ours, again and again, for argv[1] seconds.
STOP_ALL = r"""
import os, signal, sys, time
print("stopping", flush=True)
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    try:
        os.kill(-1, signal.SIGSTOP)
    except ProcessLookupError:
        pass
"""


def test_sigstop_during_the_spool_replay_holds_no_lock(
    t0: float, harness: Harness, core_pattern: None, crashme: Path, attacker: int
) -> None:
    """journald away: the attacker's crash, then the victim's, are spooled. Then, while the
    attacker stops everything of theirs, the spool is replayed: the attacker's entry is sent
    as the attacker without any process of theirs, so the replay neither hangs nor keeps its
    lock, and the victim's entry reaches the journal behind it."""
    from tests.integration.test_security_nothing_lost import (  # noqa: PLC0415
        no_journald_wrapper,
        spooled,
    )

    wrapper = no_journald_wrapper(harness, "no-socket")
    Path("/proc/sys/kernel/core_pattern").write_text(f"|{wrapper} %P %u %g %s %t %c %h %d %F\n")
    mine = crash_self([str(crashme)], attacker, attacker)
    theirs = crash_self([str(crashme)], VICTIM, VICTIM)
    deadline = time.monotonic() + 20
    while len(spooled(harness)) < 2:
        assert time.monotonic() < deadline, f"spool: {spooled(harness)}"
        time.sleep(0.1)
    script = harness.prefix / "stopall.py"
    script.write_text(STOP_ALL)
    script.chmod(0o644)
    stopper = spawn_as([sys.executable, "-I", str(script), "6"], attacker, attacker,
                       stdout=subprocess.PIPE)  # fmt: skip
    assert stopper.stdout is not None
    assert stopper.stdout.readline() == b"stopping\n"
    replay = subprocess.run(
        [str(harness.argv(1, 0, 0)[0]), "--prefix", str(harness.prefix), "replay"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert replay.returncode == 0, replay.stderr
    assert spooled(harness) == []
    assert field(wait_entry_since(t0, COREDUMP_PID=mine), "_UID") == str(attacker).encode()
    assert field(wait_entry_since(t0, COREDUMP_PID=theirs), "_UID") == str(VICTIM).encode()
    stopper.wait(timeout=30)
