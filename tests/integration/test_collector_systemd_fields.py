"""systemd 258+ fields in our entries, from real kernel crashes through core_pattern.

COREDUMP_TID / COREDUMP_THREAD_NAME (the crashing thread, %I and task/TID/comm),
COREDUMP_BY_PIDFD / COREDUMP_PIDFDID (read through the kernel's pidfd, and its pidfs inode),
COREDUMP_CODE (si_code, from the core's NT_SIGINFO) and COREDUMP_DUMPABLE (%d), with
systemd's meanings; and a kernel that lacks a specifier still gets its crash recorded.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from drkonqi_lite.domain.crash import crash_from_entry
from drkonqi_lite.domain.summary import detail
from drkonqi_lite_collector.admin import pattern
from drkonqi_lite_collector.stage import argv
from tests.conftest import which
from tests.integration.harness import COLLECTOR, Harness
from tests.integration.journal_read import field, wait_entry
from tests.integration.processes import build_c, crash, spawn_as

USER = 1000
SEGV_MAPERR = 1  # address not mapped (asm-generic/siginfo.h)
SI_USER = 0  # sent by kill(2)

#: A worker thread named "render-worker" crashes on a NULL write once told to; main waits.
NAMED_THREAD_C = r"""
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>
static void *worker(void *arg) {
    (void)arg;
    pthread_setname_np(pthread_self(), "render-worker");
    printf("%ld\n", (long)syscall(SYS_gettid));
    fflush(stdout);
    char go;
    if (read(0, &go, 1) == 1) *(volatile int *)0 = 1;
    return 0;
}
int main(void) {
    pthread_t t;
    pthread_create(&t, 0, worker, 0);
    for (;;) pause();
}
"""


@pytest.fixture(scope="module")
def named_thread_bin() -> Path:
    which("gcc")
    return build_c(NAMED_THREAD_C, "namedthread", ("-pthread",))


def test_crash_in_a_named_worker_thread(installed: Harness, named_thread_bin: Path) -> None:
    assert pattern.supports_pidfd(), "this kernel (6.18) gives %F"
    proc = spawn_as(
        [str(named_thread_bin)], USER, USER, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    assert proc.stdin is not None
    tid = int(proc.stdout.readline())
    pidfd = os.pidfd_open(proc.pid)
    try:
        pidfs_id = os.fstat(pidfd).st_ino
        proc.stdin.write(b"x")
        proc.stdin.flush()
        assert proc.wait(timeout=60) == -signal.SIGSEGV
    finally:
        os.close(pidfd)
    e = wait_entry(COREDUMP_PID=proc.pid)
    assert tid != proc.pid, "the crash is in the worker, not the main thread"
    assert int(field(e, "COREDUMP_TID")) == tid
    assert field(e, "COREDUMP_THREAD_NAME") == b"render-worker"
    assert field(e, "COREDUMP_COMM") == b"namedthread"
    assert int(field(e, "COREDUMP_CODE")) == SEGV_MAPERR
    assert field(e, "COREDUMP_BY_PIDFD") == b"1"
    assert int(field(e, "COREDUMP_PIDFDID")) == pidfs_id, "the same process's pidfs inode"
    assert field(e, "COREDUMP_DUMPABLE") == b"1"
    assert f"Stack trace of thread {tid}:".encode() in field(e, "MESSAGE")
    # What the app makes of the real entry (crash window, show --json, D-Bus GetCrash).
    raw = {k: v if isinstance(v, str | bytes) else str(v) for k, v in e.items()}
    shown = detail(crash_from_entry(raw), seen=False)
    assert (shown["tid"], shown["thread_name"]) == (tid, "render-worker")
    assert shown["signal_cause"] == "address not mapped (SEGV_MAPERR)"


def test_kill_is_si_user_in_the_main_thread(installed: Harness) -> None:
    pid = crash(["/bin/sleep", "1000"], USER, USER)
    e = wait_entry(COREDUMP_PID=pid)
    assert int(field(e, "COREDUMP_TID")) == pid
    assert field(e, "COREDUMP_THREAD_NAME") == b"sleep"
    assert int(field(e, "COREDUMP_CODE")) == SI_USER
    assert field(e, "COREDUMP_SIGNAL") == b"11"


def test_a_kernel_without_the_specifiers_still_records_the_crash(
    harness: Harness, core_pattern: None
) -> None:
    # No %F (a kernel before 6.16) and a specifier the kernel does not know where %I goes:
    # the kernel drops it, exactly as a kernel without %I would drop that one.
    missing = argv.TID_WORD.replace("%I", "%Q")
    pat = f"|{COLLECTOR} --prefix={harness.prefix} {argv.SPECIFIERS} {missing}"
    Path("/proc/sys/kernel/core_pattern").write_text(pat + "\n")
    pid = crash(["/bin/sleep", "1000"], USER, USER)
    e = wait_entry(COREDUMP_PID=pid)
    for absent in ("COREDUMP_TID", "COREDUMP_THREAD_NAME", "COREDUMP_BY_PIDFD", "COREDUMP_PIDFDID"):
        assert absent not in e, f"{absent} without its source"
    assert field(e, "DRKONQI_LITE_IDENTITY") == b"verified", "pidfd_open + PF_DUMPCORE"
    assert int(field(e, "COREDUMP_CODE")) == SI_USER, "the core still says why"
