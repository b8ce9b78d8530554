"""Crash records built from realistic journal field dicts, for the crash window tests.

The fields are what our collector (and systemd-coredump) write for a real crash: MESSAGE with the
head line and a multi-thread stack trace in systemd's format, the /proc snapshots, a planted
secret in the environment and the command line (SECURITY.md 9).
"""

from __future__ import annotations

import dataclasses

from drkonqi_lite.domain.crash import Crash, crash_from_entry
from drkonqi_lite_collector.journal.schema import MESSAGE_ID

BOOT = "0123456789abcdef0123456789abcdef"
STORAGE = "/var/lib/drkonqi-lite/coredump"
SECRET = "s3cr3t-T0KEN-4242"  # noqa: S105 (a planted marker, SECURITY.md 9)
ARG_SECRET = "hunter2-argv-secret"  # noqa: S105
NOW_US = 1_764_140_000_000_000
#: Hostile texts (SECURITY.md 5): markup, bidi override, newline, terminal escape.
HOSTILE_COMM = "<b>evil</b>\u202egnp.exe"
HOSTILE_EXE = "/tmp/<i>x</i>/\u202eevil\nline2\x1b[31m"

TRACE = """Stack trace of thread {pid}:
#0  0x00007f3a1c2a9e2c __pthread_kill_implementation (libc.so.6 + 0x8ae2c)
#1  0x00007f3a1c25afb2 raise (libc.so.6 + 0x3bfb2)
#2  0x00007f3a1c245472 abort (libc.so.6 + 0x26472)
#3  0x000055d5e2a1b1a9 {func} ({comm} + 0x11a9)
#4  0x00007f3a1c24624a __libc_start_call_main (libc.so.6 + 0x2724a)

Stack trace of thread {tid2}:
#0  0x00007f3a1c2a4f16 __futex_abstimed_wait_common (libc.so.6 + 0x85f16)
#1  0x00007f3a1c2a7a41 pthread_cond_wait@@GLIBC_2.3.2 (libc.so.6 + 0x88a41)"""

MAPS = """55d5e2a1a000-55d5e2a1b000 r--p 00000000 fe:01 1311 /usr/bin/kwrite
7f3a1c21f000-7f3a1c245000 r--p 00000000 fe:01 2210 /usr/lib/x86_64-linux-gnu/libc.so.6"""


def fields(
    pid: int = 4242,
    comm: str = "kwrite",
    exe: str = "/usr/bin/kwrite",
    ts: int = NOW_US - 300_000_000,
    signo: int = 6,
    func: str = "main",
    uid: int = 1000,
    **extra: str,
) -> dict[str, str | bytes]:
    """One coredump entry's fields as the journal reader returns them."""
    trace = TRACE.format(pid=pid, tid2=pid + 1, func=func, comm=comm)
    out: dict[str, str | bytes] = {
        "MESSAGE_ID": MESSAGE_ID,
        "MESSAGE": f"Process {pid} ({comm}) of user {uid} dumped core.\n\n{trace}",
        "PRIORITY": "2",
        "SYSLOG_IDENTIFIER": "drkonqi-lite-collector",
        "COREDUMP_PID": str(pid),
        "COREDUMP_UID": str(uid),
        "COREDUMP_GID": str(uid),
        "COREDUMP_SIGNAL": str(signo),
        "COREDUMP_SIGNAL_NAME": "SIGABRT" if signo == 6 else "SIGSEGV",
        "COREDUMP_TIMESTAMP": str(ts),
        "COREDUMP_RLIMIT": "18446744073709551615",
        "COREDUMP_HOSTNAME": "workstation",
        "COREDUMP_COMM": comm,
        "COREDUMP_EXE": exe,
        "COREDUMP_CMDLINE": f"{exe} --token={ARG_SECRET} notes.txt",
        "COREDUMP_CWD": "/home/alice",
        "COREDUMP_ENVIRON": f"HOME=/home/alice\nLANG=C.UTF-8\nAPI_TOKEN={SECRET}\nEDITOR=vim",
        "COREDUMP_PROC_STATUS": f"Name:\t{comm}\nState:\tR (running)\nPid:\t{pid}",
        "COREDUMP_PROC_MAPS": MAPS,
        "COREDUMP_PROC_LIMITS": "Max core file size  unlimited  unlimited  bytes",
        "COREDUMP_PROC_CGROUP": "0::/user.slice/user-1000.slice/session-2.scope",
        "COREDUMP_OPEN_FDS": "0:/dev/null\npos:\t0\nflags:\t0100000",
        "COREDUMP_PACKAGE_NAME": "kwrite",
        "COREDUMP_PACKAGE_VERSION": "4:22.12.3-1",
        "COREDUMP_FILENAME": f"{STORAGE}/core.{comm}.{uid}.{BOOT}.{pid}.{ts}.zst",
        "_UID": "0",
        "_BOOT_ID": BOOT,
        "__REALTIME_TIMESTAMP": str(ts + 60_000),
        "__CURSOR": f"s=1;i={pid:x};t={ts:x}",
    }
    out.update(extra)
    return out


def crash(core_state: str = "present", **kwargs: str | int) -> Crash:
    """A Crash record from `fields(**kwargs)` with the given core state."""
    record = crash_from_entry(fields(**kwargs))  # type: ignore[arg-type]
    return dataclasses.replace(record, core_state=type(record.core_state)(core_state))


def many(count: int, programs: int = 40, now_us: int = NOW_US) -> list[Crash]:
    """`count` crashes of `programs` programs (repeats of a few signatures), newest first."""
    out = []
    for i in range(count):
        p = i % programs
        out.append(
            crash(
                pid=10_000 + i,
                comm=f"prog{p}",
                exe=f"/usr/bin/prog{p}",
                ts=now_us - i * 1_000_000,
                func=f"crash_site_{(i // programs) % 3}",
            )
        )
    return out
