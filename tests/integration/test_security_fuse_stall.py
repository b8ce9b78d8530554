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
from tests.integration.harness import Harness
from tests.integration.journal_read import field, wait_entry_since
from tests.integration.processes import spawn_as, start_waiting, stop
from tests.integration.test_security_hostile_user import assert_victim_recorded

#: Maps a page of a file (argv[1], on the user's FUSE; at offset argv[4]) over the middle of its
#: own argv[2] (or,
#: with argv[3] "environ", of its environment's DKL_PAD), says "ready", waits to be killed.
#: /proc/PID/cmdline (environ) then reads that page from the file: a request to the daemon.
OVER_ARGV_C = r"""
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
int main(int argc, char **argv) {
    char *pad = argc > 3 && !strcmp(argv[3], "environ") ? getenv("DKL_PAD") : argv[2];
    int fd = open(argv[1], O_RDONLY);
    uintptr_t page = ((uintptr_t)(pad + strlen(pad) / 2)) & ~(uintptr_t)4095;
    if (fd < 0 || !pad) return 2;
    if (mmap((void *)page, 4096, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, atoi(argv[4]))
        == MAP_FAILED)
        return 3;
    close(fd); /* else its exit would wait for the stopped daemon (FUSE_FLUSH) */
    puts("ready");
    fflush(stdout);
    for (;;) pause();
}
"""
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


def _installed_with_dirs(harness: Harness, uid: int) -> tuple[Path, Path]:
    """The collector installed with one core_pipe_limit slot (a held slot shows at once);
    the user's FUSE source and mount point."""
    harness.install()
    Path("/proc/sys/kernel/core_pipe_limit").write_text("1\n")
    src, mnt = harness.prefix / "fuse-src", harness.prefix / "fuse-mnt"
    for d in (src, mnt):
        d.mkdir(mode=0o755)
        os.chown(d, uid, uid)
    return src, mnt


@pytest.mark.parametrize("allow_other", [True, False], ids=["allow_other", "owner_only"])
def test_stopped_fuse_daemon_of_the_crashing_user_holds_nothing(
    t0: float,
    harness: Harness,
    core_pattern: None,
    crashme: Path,
    fuse_user: int,
    allow_other: bool,
) -> None:
    src, mnt = _installed_with_dirs(harness, fuse_user)
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


@pytest.mark.parametrize(
    ("where", "offset"),
    [("cmdline", 4096), ("environ", 4096), ("cmdline", 0)],
    ids=["cmdline", "environ", "elf-header-check"],
)
def test_arguments_on_the_users_fuse_do_not_stall_the_collector(
    t0: float,
    harness: Harness,
    core_pattern: None,
    crashme: Path,
    fuse_user: int,
    where: str,
    offset: int,
) -> None:
    """The process maps a file of its own FUSE over its argument (environment) strings, so
    that reading /proc/PID/cmdline (environ) would ask the stopped daemon, whoever reads
    (CVE-2018-1120). The kernel reads those strings from anonymous memory only (FOLL_ANON in
    fs/proc/base.c, Linux >= 4.17): the read ends short at the file's page instead, and the
    crash is recorded at once. This keeps it so should the collector ever read the process's
    memory another way.

    At offset 0 the page is also read by the kernel's own dump (its ELF header check of every
    file mapping, coredump_filter bit 4), which then waits for the daemon inside the dump,
    holding the crash's core_pipe_limit slot (1 here): the collector gives up on a core that
    stopped arriving and ends that dump (SIGKILL through the pidfd), so that the slot is free
    for the next crash."""
    which("gcc")
    src, mnt = _installed_with_dirs(harness, fuse_user)
    (harness.prefix / "over.c").write_text(OVER_ARGV_C)
    program = harness.prefix / "over-argv"
    subprocess.run([which("gcc"), "-o", str(program), str(harness.prefix / "over.c")], check=True)
    (src / "page").write_bytes(b"P" * 8192)
    os.chown(src / "page", fuse_user, fuse_user)
    pad = "x" * 65536
    with _served(src, mnt, fuse_user, allow_other=False) as daemon:
        victim = spawn_as(
            [str(program), str(mnt / "page"), pad, where, str(offset)],
            fuse_user,
            fuse_user,
            env={"DKL_PAD": pad},
            stdout=subprocess.PIPE,
        )
        assert victim.stdout is not None
        assert victim.stdout.readline() == b"ready\n"
        os.kill(daemon, signal.SIGSTOP)
        os.kill(victim.pid, signal.SIGSEGV)
        try:
            status = victim.wait(timeout=60)
        except subprocess.TimeoutExpired:  # (its argv is 64 KiB: not in the message)
            pytest.fail(f"the crashed process is still held after 60 s ({where} on FUSE)")
        # At offset 0 the collector ended the dump the kernel was stuck in: SIGKILL.
        assert status == (-signal.SIGKILL if offset == 0 else -signal.SIGSEGV)
        mine = wait_entry_since(t0, COREDUMP_PID=victim.pid, timeout=30)
        if offset == 0:  # the kernel sent no byte of the core: there is none to show
            assert field(mine, "DRKONQI_LITE_CORE_MISSING") == b"stalled"
            assert field(mine, "COREDUMP_TRUNCATED") == b"1"
        else:
            assert b"Stack trace of thread" in field(mine, "MESSAGE")
            assert Path(field(mine, "COREDUMP_FILENAME").decode()).is_file(), "no core stored"
        # (cmdline ends at the file's page; environ reads as empty, so it is not recorded)
        strings = mine.get("COREDUMP_CMDLINE" if where == "cmdline" else "COREDUMP_ENVIRON", b"")
        assert isinstance(strings, bytes)
        assert b"PPPP" not in strings, "read from the user's file system"
        assert_victim_recorded(t0, crashme)
