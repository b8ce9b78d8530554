"""SECURITY.md 11: a user's stopped FUSE daemon does not hold the collector.

The crashing user serves the program's own file system with FUSE (bindfs through the set-uid
fusermount3, as any user of a Debian desktop can) and stops that daemon (SIGSTOP) before the
program crashes. Every stat() or open() the root collector made of that program's file would
wait for the stopped daemon while holding the kernel's core pipe and its core_pipe_limit slot
(1 here, so a held slot would make the kernel skip every later crash). With allow_other
(user_allow_other in /etc/fuse.conf, which an admin may set) root's requests reach the daemon;
without it the kernel refuses them. Either way the crash is recorded at once with its core and
its stack trace, and another user's crash right after is too.

This container has no udev, so /dev/fuse is 0600; the test gives it Debian's mode (0666, udev's
rule) for its duration. fusermount3 needs the user in passwd: a throw-away one is added.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import which
from tests.integration.harness import (
    Harness,
    field,
    spawn_as,
    start_waiting,
    stop,
    wait_entry_since,
)
from tests.integration.test_security_hostile_user import assert_victim_recorded

FUSE_USER = "dkl-fuse-attacker"
FUSE_UID = 4246
FUSE_CONF = Path("/etc/fuse.conf")


@contextlib.contextmanager
def _replaced(path: Path, content: str | None = None, mode: int | None = None) -> Iterator[None]:
    """`path` with other content or mode for the duration, restored after."""
    saved_mode = path.stat().st_mode & 0o7777
    saved = path.read_bytes() if content is not None else None
    try:
        if content is not None:
            path.write_text(content)
        if mode is not None:
            path.chmod(mode)
        yield
    finally:
        if saved is not None:
            path.write_bytes(saved)
        path.chmod(saved_mode)


@pytest.fixture
def fuse_user() -> Iterator[int]:
    which("bindfs")
    which("fusermount3")
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
         "--uid", str(FUSE_UID), "--user-group", FUSE_USER],
        check=True,
    )  # fmt: skip
    try:
        with _replaced(Path("/dev/fuse"), mode=0o666):
            yield FUSE_UID
    finally:
        subprocess.run(["pkill", "-KILL", "-u", str(FUSE_UID)], check=False)
        subprocess.run(["userdel", FUSE_USER], check=False)


@contextlib.contextmanager
def _served(src: Path, mnt: Path, uid: int, allow_other: bool) -> Iterator[int]:
    """bindfs of `src` on `mnt`, run by `uid` in the foreground; yields the daemon's PID."""
    option = ["-o", "allow_other"] if allow_other else ["--no-allow-other"]
    daemon = spawn_as([which("bindfs"), "-f", *option, str(src), str(mnt)], uid, uid)
    try:
        for _ in range(200):
            if f" {mnt} " in Path("/proc/self/mountinfo").read_text():
                break
            if daemon.poll() is not None:
                pytest.fail(f"bindfs ended with {daemon.returncode}")
            time.sleep(0.05)
        else:
            pytest.fail("bindfs did not mount")
        yield daemon.pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(daemon.pid, signal.SIGCONT)
        subprocess.run(["umount", "-l", str(mnt)], check=False)
        stop(daemon)


@pytest.mark.parametrize("allow_other", [True, False], ids=["allow_other", "owner_only"])
def test_stopped_fuse_daemon_of_the_crashing_user_holds_nothing(
    t0: float,
    harness: Harness,
    core_pattern: None,
    crashme: Path,
    fuse_user: int,
    allow_other: bool,
) -> None:
    harness.install()
    Path("/proc/sys/kernel/core_pipe_limit").write_text("1\n")
    src, mnt = harness.prefix / "fuse-src", harness.prefix / "fuse-mnt"
    for d in (src, mnt):
        d.mkdir(mode=0o755)
        os.chown(d, fuse_user, fuse_user)
    shutil.copy(crashme, src / "crashme")
    os.chown(src / "crashme", fuse_user, fuse_user)
    conf = FUSE_CONF.read_text() + "\nuser_allow_other\n" if allow_other else None
    with (
        _replaced(FUSE_CONF, conf),
        _served(src, mnt, fuse_user, allow_other) as daemon,
    ):
        victim = start_waiting([str(mnt / "crashme")], fuse_user, fuse_user)
        os.kill(daemon, signal.SIGSTOP)  # the user's own daemon: they may stop it
        os.kill(victim.pid, signal.SIGSEGV)
        assert victim.wait(timeout=60) == -signal.SIGSEGV
        mine = wait_entry_since(t0, COREDUMP_PID=victim.pid, timeout=30)
        assert field(mine, "_UID") == str(fuse_user).encode()
        assert Path(field(mine, "COREDUMP_FILENAME").decode()).is_file(), "no core stored"
        assert b"Stack trace of thread" in field(mine, "MESSAGE")
        # The slot is free: another user's crash, with the daemon still stopped, is recorded.
        assert_victim_recorded(t0, crashme)
