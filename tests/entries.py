"""Fake crash entries and crash records for every test tier, built in this one place.

Field names come from the collector's schema (drkonqi_lite_collector.journal.schema.Field) and
journald's own fields from domain/crash.py, the names the app reads: a renamed field breaks the
tests here, not silently in twenty of them. Four shapes, each built on `entry()`:
- `entry`: the facts every crash has, as the journal reader hands them to the domain;
- `full_entry` (and `crash`, `many`): what our collector (and systemd-coredump) write for a real
  crash: a multi-thread stack trace in systemd's format, the /proc snapshots, and a secret
  planted in the environment and the command line (SECURITY.md 9);
- `symbolized_crash`: a crash whose modules carry build ids (the Sentry event's images);
- `exception_entry`: an unhandled Python exception (no core, BACKTRACE_MESSAGE_ID);
- `KF5_INI`, `KF6_INI`: the KCrash metadata file of a crash, as KCrash writes it;
- `live_entry`: the fields a test sends to the real journal as the crashing user (journald adds
  MESSAGE_ID's neighbours: the trusted `_` fields, the cursor and the timestamps).
"""

from __future__ import annotations

import dataclasses
import itertools
import signal
import time

from drkonqi_lite.domain.crash import (
    BOOT_ID,
    CURSOR,
    REALTIME,
    TRUSTED_UID,
    Crash,
    crash_from_entry,
)
from drkonqi_lite.domain.python_stack import PythonFrame, PythonThread, dumps
from drkonqi_lite_collector.journal.schema import (
    BACKTRACE_MESSAGE_ID,
    MESSAGE_ID,
    SYSLOG_IDENTIFIER,
    CoreMissing,
    Field,
)

Fields = dict[str, str | bytes]

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


def entry(
    pid: int = 4242,
    uid: int = 1000,
    sender: int = 1000,
    ts: int = 1_700_000_000_000_000,
    comm: str = "kate",
    exe: str = "/usr/bin/kate",
    signo: int = 11,
    **extra: str | bytes,
) -> Fields:
    """A crash entry with the facts every crash has; `extra` adds or replaces fields."""
    fields: Fields = {
        Field.MESSAGE_ID: MESSAGE_ID,
        Field.MESSAGE: f"Process {pid} ({comm}) of user {uid} dumped core.\n\n"
        "Stack trace of thread 1:\n#0  0x0000000000401000 main (kate + 0x1000)",
        Field.PID: str(pid),
        Field.UID: str(uid),
        Field.GID: str(uid),
        Field.SIGNAL: str(signo),
        Field.TIMESTAMP: str(ts),
        Field.COMM: comm,
        Field.EXE: exe,
        Field.ENVIRON: "HOME=/home/u\nSECRET_TOKEN=hunter2",
        Field.SYSLOG_IDENTIFIER: SYSLOG_IDENTIFIER,
        TRUSTED_UID: str(sender),
        BOOT_ID: BOOT,
        REALTIME: str(ts + 5000),
        CURSOR: f"s=1;i={pid:x};t={ts + 5000:x}",
    }
    fields.update(extra)
    return fields


def full_entry(
    pid: int = 4242,
    comm: str = "kwrite",
    exe: str = "/usr/bin/kwrite",
    ts: int = NOW_US - 300_000_000,
    signo: int = 6,
    func: str = "main",
    uid: int = 1000,
    **extra: str,
) -> Fields:
    """One coredump entry's fields as the journal reader returns them for a real crash."""
    trace = TRACE.format(pid=pid, tid2=pid + 1, func=func, comm=comm)
    return entry(pid, uid, 0, ts, comm, exe, signo, **{
        Field.MESSAGE: f"Process {pid} ({comm}) of user {uid} dumped core.\n\n{trace}",
        Field.PRIORITY: "2",
        Field.SIGNAL_NAME: "SIGABRT" if signo == 6 else "SIGSEGV",
        Field.RLIMIT: "18446744073709551615",
        Field.HOSTNAME: "workstation",
        Field.CMDLINE: f"{exe} --token={ARG_SECRET} notes.txt",
        Field.CWD: "/home/alice",
        Field.ENVIRON: f"HOME=/home/alice\nLANG=C.UTF-8\nAPI_TOKEN={SECRET}\nEDITOR=vim",
        Field.PROC_STATUS: f"Name:\t{comm}\nState:\tR (running)\nPid:\t{pid}",
        Field.PROC_MAPS: MAPS,
        Field.PROC_LIMITS: "Max core file size  unlimited  unlimited  bytes",
        Field.PROC_CGROUP: "0::/user.slice/user-1000.slice/session-2.scope",
        Field.OPEN_FDS: "0:/dev/null\npos:\t0\nflags:\t0100000",
        Field.PACKAGE_NAME: "kwrite",
        Field.PACKAGE_VERSION: "4:22.12.3-1",
        Field.FILENAME: f"{STORAGE}/core.{comm}.{uid}.{BOOT}.{pid}.{ts}.zst",
        REALTIME: str(ts + 60_000),
        CURSOR: f"s=1;i={pid:x};t={ts:x}",
        **extra,
    })  # fmt: skip


def crash(core_state: str = "present", **kwargs: str | int) -> Crash:
    """A Crash record from `full_entry(**kwargs)` with the given core state."""
    record = crash_from_entry(full_entry(**kwargs))  # type: ignore[arg-type]
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


#: Build ids of the modules of `symbolized_crash`.
EXE_ID = "f1c3bcc0279865fe3058404b2831d9e64135386c"
LIBC_ID = "0b4f5d9c6ad3e2a1cd8b7e1f2a3b4c5d6e7f8091"
SYMBOLIZED_TRACE = """Stack trace of thread 4242:
#0  0x00007f3a1c2a9e2c __pthread_kill_implementation (libc.so.6 + 0x8ae2c)
#1  0x00007f3a1c25afb2 raise (libc.so.6 + 0x3bfb2)
#2  0x00007f3a1c245472 abort (libc.so.6 + 0x26472)
#3  0x000055d5e2a1b1a9 n/a (kwrite + 0x11a9)
#4  0x000055d5e2a1b2b0 main (kwrite + 0x12b0)

Stack trace of thread 4243:
#0  0x00007f3a1c2a4f16 __futex_abstimed_wait_common (libc.so.6 + 0x85f16)
#1  0x00007f3a1c2a7a41 pthread_cond_wait@@GLIBC_2.3.2 (libc.so.6 + 0x88a41)"""
SYMBOLIZED_MAPS = """55d5e2a1a000-55d5e2a1b000 r--p 00000000 fe:01 1311 /usr/bin/kwrite
55d5e2a1b000-55d5e2a1d000 r-xp 00001000 fe:01 1311 /usr/bin/kwrite
7f3a1c21f000-7f3a1c245000 r--p 00000000 fe:01 2210 /usr/lib/x86_64-linux-gnu/libc.so.6
7f3a1c245000-7f3a1c39a000 r-xp 00026000 fe:01 2210 /usr/lib/x86_64-linux-gnu/libc.so.6
7f3a1c400000-7f3a1c500000 r--p 00000000 fe:01 99 /usr/lib/locale/locale-archive
7ffd1c400000-7ffd1c500000 rw-p 00000000 00:00 0 [stack]"""


def symbolized_crash(trace: str = SYMBOLIZED_TRACE, **extra: str) -> Crash:
    """kwrite's abort with the build ids of its modules (what a report sends)."""
    fields: Fields = {
        Field.MESSAGE: f"Process 4242 (kwrite) of user 1000 dumped core.\n\n{trace}",
        Field.SIGNAL: "6",
        Field.COMM: "kwrite",
        Field.EXE: "/usr/bin/kwrite",
        Field.CMDLINE: f"/usr/bin/kwrite --token={ARG_SECRET} notes.txt",
        Field.ENVIRON: f"HOME=/home/alice\nAPI_TOKEN={SECRET}",
        Field.PROC_MAPS: SYMBOLIZED_MAPS,
        Field.PACKAGE_NAME: "kwrite",
        Field.PACKAGE_VERSION: "4:22.12.3-1",
        Field.HOSTNAME: "alices-laptop",
        Field.MODULES: f"/usr/bin/kwrite {EXE_ID}\n"
        f"/usr/lib/x86_64-linux-gnu/libc.so.6 {LIBC_ID}\n/usr/lib/no-id.so -",
    }
    fields.update(extra)
    raw = entry(comm="kwrite", exe="/usr/bin/kwrite", signo=6)
    raw.update(fields)
    return crash_from_entry(raw)


#: The crashing thread of `exception_entry`'s Python stack.
MAIN = PythonThread(7, "MainThread", True, (
    PythonFrame("<module>", "/home/u/app.py", 15),
    PythonFrame("outer", "/home/u/app.py", 10),
    PythonFrame("do_crash", "/home/u/app.py", 7),
))  # fmt: skip


def exception_entry(**extra: str | bytes) -> Fields:
    """An unhandled ValueError of a Python script, as our exception hook writes it."""
    e = entry(exe="/usr/bin/python3.11", comm="python3")
    del e[Field.SIGNAL]
    e.update({
        Field.MESSAGE_ID: BACKTRACE_MESSAGE_ID,
        Field.MESSAGE: "Process 4242 (python3) of user 1000 failed with ValueError: bad\n\n"
                   "Traceback (most recent call last):\n  File \"/home/u/app.py\", line 15",
        Field.EXCEPTION_TYPE: "ValueError",
        Field.EXCEPTION_VALUE: "bad",
        Field.PYTHON_STACK: dumps([MAIN]),
        Field.FILENAME: "/var/lib/drkonqi-lite/coredump/core.x.zst",
    })  # fmt: skip
    e.update(extra)
    return e


#: journald sets these itself (a sender cannot), and the sender adds MESSAGE_ID.
_JOURNALD_OWN = frozenset({Field.MESSAGE_ID, TRUSTED_UID, BOOT_ID, REALTIME, CURSOR})
_live_pids = itertools.count(30001)


def live_entry(
    uid: int,
    comm: str = "kate",
    exe: str = "/usr/bin/kate",
    signo: int = 11,
    pid: int | None = None,
    **extra: str,
) -> dict[str, str]:
    """An entry as our collector writes it (no core stored), to send to the real journal."""
    pid = pid if pid is not None else next(_live_pids)
    fields = entry(pid, uid, uid, int(time.time() * 1e6), comm, exe, signo, **{
        Field.MESSAGE: f"Process {pid} ({comm}) of user {uid} dumped core.\n\n"
                       f"Stack trace of thread {pid}:\n"
                       f"#0  0x00007f0000001000 crash_here ({comm} + 0x1000)",
        Field.SIGNAL_NAME: signal.Signals(signo).name,
        Field.CMDLINE: f"{exe} --token=CMDSECRET", Field.HOSTNAME: "vm",
        Field.ENVIRON: "HOME=/home/u\nAPI_TOKEN=ENVSECRET-4711",
        Field.CORE_MISSING: CoreMissing.STORAGE_NONE,
        **extra,
    })  # fmt: skip
    return {k: str(v) for k, v in fields.items() if k not in _JOURNALD_OWN}


#: Byte for byte what KF5 5.103's KCrash wrote for a real kcrash crash here (`<pid>.ini`).
KF5_INI = (
    "[KCrash]\nexe=/usr/bin/kcalc\nplatform=offscreen\nappname=kcalc\napppath=/usr/bin\n"
    "signal=11\npid=4242\nappversion=22.12.3\nprogramname=KCalc\n"
    "bugaddress=submit@bugs.kde.org\n"
)
#: The KF6 layout (kcrash metadata.cpp): tag groups first, [KCrash], then [KCrashComplete].
KF6_INI = (
    "[KCrashTags]\nsession=wayland\n[KCrashExtra]\nnote=line one\\nline two\n"
    "[KCrash]\nexe=/usr/bin/kate\nappname=kate\npid=4242\nappversion=24.02.1\n"
    "programname=Kate\nbugaddress=https://bugs.kde.org\nproductname=kate\n"
    "[KCrashComplete]\nComplete=1\n"
)
#: When the KCrash files' crash happened (seconds since the epoch).
TS_S = 1_700_000_000
