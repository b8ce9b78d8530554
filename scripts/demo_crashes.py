"""Demo crash records for the screenshots and the benchmark (journal schema, realistic fields).

Not test fixtures: a small, varied set (repeats, a restricted set-uid core, a truncated core, a
missing core, hostile names) and, when gdb, gcore and python3-dbg are installed, one real core of
a live Python process so the full backtrace in the screenshot is real gdb output.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import zstandard

from drkonqi_lite.domain.crash import Crash, crash_from_entry
from drkonqi_lite_collector.journal.schema import MESSAGE_ID, core_filename

BOOT = "4f1c2a9e8b7d4c3aa1e2f3b4c5d6e7f8"
STORAGE = "/var/lib/drkonqi-lite/coredump"


def _trace(pid: int, frames: list[tuple[str, str, int]], threads: int = 2) -> str:
    lines = [f"Stack trace of thread {pid}:"]
    for i, (func, module, off) in enumerate(frames):
        lines.append(f"#{i:<2} 0x{0x7F3A1C200000 + off:016x} {func} ({module} + 0x{off:x})")
    for t in range(1, threads):
        lines += [
            "",
            f"Stack trace of thread {pid + t}:",
            "#0  0x00007f3a1c2a4f16 __futex_abstimed_wait_common (libc.so.6 + 0x85f16)",
            "#1  0x00007f3a1c2a7a41 pthread_cond_wait@@GLIBC_2.3.2 (libc.so.6 + 0x88a41)",
            "#2  0x00007f3a1b8c1a12 QWaitCondition::wait (libQt6Core.so.6 + 0x2c1a12)",
        ]
    return "\n".join(lines)


ABORT = [
    ("__pthread_kill_implementation", "libc.so.6", 0x8AE2C),
    ("raise", "libc.so.6", 0x3BFB2),
    ("abort", "libc.so.6", 0x26472),
]


def fields(
    *,
    pid: int,
    comm: str,
    exe: str,
    ts: int,
    signo: int,
    frames: list[tuple[str, str, int]],
    **extra: str,
) -> dict[str, str | bytes]:
    uid = os.getuid()
    name = signal.Signals(signo).name
    out: dict[str, str | bytes] = {
        "MESSAGE_ID": MESSAGE_ID,
        "MESSAGE": f"Process {pid} ({comm}) of user {uid} dumped core.\n\n" + _trace(pid, frames),
        "SYSLOG_IDENTIFIER": "drkonqi-lite-collector",
        "COREDUMP_PID": str(pid),
        "COREDUMP_UID": str(uid),
        "COREDUMP_GID": str(os.getgid()),
        "COREDUMP_SIGNAL": str(signo),
        "COREDUMP_SIGNAL_NAME": name,
        "COREDUMP_TIMESTAMP": str(ts),
        "COREDUMP_HOSTNAME": "workstation",
        "COREDUMP_COMM": comm,
        "COREDUMP_EXE": exe,
        "COREDUMP_CMDLINE": f"{exe} --session=token-0123456789abcdef",
        "COREDUMP_CWD": "/home/alice",
        "COREDUMP_ENVIRON": "HOME=/home/alice\nLANG=en_US.UTF-8\n"
        "GITHUB_TOKEN=ghp_demoSecretToken42",
        "COREDUMP_RLIMIT": "18446744073709551615",
        "COREDUMP_PROC_STATUS": f"Name:\t{comm}\nUmask:\t0022\nState:\tR (running)\nPid:\t{pid}",
        "COREDUMP_PROC_MAPS": f"55d5e2a1a000-55d5e2a1b000 r--p 00000000 fe:01 1311 {exe}",
        "COREDUMP_PROC_LIMITS": "Limit                     Soft Limit   Hard Limit   Units\n"
        "Max core file size        unlimited    unlimited    bytes",
        "COREDUMP_PROC_CGROUP": f"0::/user.slice/user-{uid}.slice/session-2.scope",
        "COREDUMP_OPEN_FDS": "0:/dev/null\npos:\t0\nflags:\t0100000\nmnt_id:\t24",
        "COREDUMP_USER_UNIT": f"app-{comm}@1a2b.service",
        "COREDUMP_FILENAME": f"{STORAGE}/" + core_filename(comm.encode(), uid, BOOT, pid, ts),
        "_UID": "0",
        "_BOOT_ID": BOOT,
        "__REALTIME_TIMESTAMP": str(ts + 80_000),
        "__CURSOR": f"s=1;i={pid:x}",
    }
    out.update(extra)
    return out


def record(state: str = "present", **kw: object) -> Crash:
    """A crash with `state` as its core_state (the D-Bus strings; CoreState is a StrEnum that
    is moving from the collector's schema into domain/crash.py, so it is not imported here)."""
    crash = crash_from_entry(fields(**kw))  # type: ignore[arg-type]
    return dataclasses.replace(crash, core_state=type(crash.core_state)(state))


def demo_crashes(now_us: int | None = None) -> list[Crash]:
    """A varied crash list, newest first."""
    now = now_us or time.time_ns() // 1000
    minute = 60_000_000
    out = [
        record(
            pid=31337,
            comm="kwrite",
            exe="/usr/bin/kwrite",
            ts=now - 4 * minute,
            signo=6,
            frames=[
                *ABORT,
                ("KTextEditor::DocumentPrivate::saveFile", "libKF6TextEditor.so.6", 0x1A2B3C),
                ("main", "kwrite", 0x11A9),
            ],
            COREDUMP_PACKAGE_NAME="kwrite",
            COREDUMP_PACKAGE_VERSION="4:24.02.1-1",
        ),
    ]
    for i in range(5):
        out.append(
            record(
                pid=28000 + i,
                comm="dolphin",
                exe="/usr/bin/dolphin",
                ts=now - (20 + 9 * i) * minute,
                signo=11,
                frames=[
                    ("KFileItemModel::index", "libdolphinprivate.so.6", 0x9C1F0),
                    ("DolphinView::slotItemHovered", "libdolphinprivate.so.6", 0xA4410),
                    ("QObject::event", "libQt6Core.so.6", 0x1A2F00),
                ],
                COREDUMP_PACKAGE_NAME="dolphin",
                COREDUMP_PACKAGE_VERSION="4:24.02.1-1",
            )
        )
    out += [
        record(
            "inaccessible",
            pid=2211,
            comm="pkexec-helper",
            exe="/usr/lib/helper/pkexec-helper",
            ts=now - 95 * minute,
            signo=11,
            frames=[("n/a", "pkexec-helper", 0x2F10)],
            DRKONQI_LITE_RESTRICTED="1",
            DRKONQI_LITE_RESTRICTED_REASON="set-uid program",
        ),
        record(
            "truncated",
            pid=1984,
            comm="blender",
            exe="/usr/bin/blender",
            ts=now - 3 * 60 * minute,
            signo=11,
            frames=[("BKE_mesh_normals", "blender", 0x4F1A00)],
            COREDUMP_TRUNCATED="1",
            COREDUMP_PACKAGE_NAME="blender",
            COREDUMP_PACKAGE_VERSION="4.0.2+dfsg-1",
        ),
        record(
            "missing",
            pid=1200,
            comm="plasmashell",
            exe="/usr/bin/plasmashell",
            ts=now - 26 * 60 * minute,
            signo=6,
            frames=[*ABORT, ("qt_assert", "libQt6Core.so.6", 0x9F020)],
        ),
        record(
            pid=777,
            comm="<b>evil</b>\u202egnp.exe",
            exe="/tmp/<i>x</i>/\u202eevil\nname",  # noqa: S108 (hostile demo name)
            ts=now - 2 * 24 * 60 * minute,
            signo=11,
            frames=[("n/a", "evil", 0x1000)],
        ),
    ]
    return sorted(out, key=lambda c: -c.timestamp_us)


#: What the collector read from a real core of this script (py-spy on Debian's python3.11).
_PY_FILE = "/usr/share/hotspot-sync/sync.py"
_PY_THREADS = [
    {"tid": 4711, "name": "MainThread", "crashed": True, "frames": [
        {"function": "<module>", "file": _PY_FILE, "line": 88},
        {"function": "main", "file": _PY_FILE, "line": 81},
        {"function": "Syncer.run", "file": _PY_FILE, "line": 54},
        {"function": "Syncer.apply_delta", "file": _PY_FILE, "line": 37},
        {"function": "string_at", "file": "/usr/lib/python3.11/ctypes/__init__.py", "line": 519},
    ]},
    {"tid": 4713, "name": "uploader", "crashed": False, "frames": [
        {"function": "Thread._bootstrap", "file": "/usr/lib/python3.11/threading.py", "line": 995},
        {"function": "Thread.run", "file": "/usr/lib/python3.11/threading.py", "line": 975},
        {"function": "upload_loop", "file": _PY_FILE, "line": 22},
        {"function": "Queue.get", "file": "/usr/lib/python3.11/queue.py", "line": 171},
    ]},
]  # fmt: skip


def python_record(now_us: int) -> Crash:
    """A native crash of a Python program, with the Python stack the collector recorded."""
    import json  # noqa: PLC0415

    return record(
        pid=4711,
        comm="python3",
        exe="/usr/bin/python3.11",
        ts=now_us - 2 * 60_000_000,
        signo=11,
        frames=[
            ("__strlen_evex", "libc.so.6", 0x19FB7D),
            ("string_at.lto_priv.0", "_ctypes.cpython-311-x86_64-linux-gnu.so", 0x11A22),
            ("ffi_call", "libffi.so.8", 0x6F7A),
            ("_PyEval_EvalFrameDefault", "python3.11", 0x15C5A3),
        ],
        COREDUMP_CMDLINE=f"/usr/bin/python3 {_PY_FILE}",
        COREDUMP_PACKAGE_NAME="python3.11-minimal",
        DRKONQI_LITE_PYTHON_STACK=json.dumps(_PY_THREADS),
    )


def python_crash(storage: Path, script: str) -> Crash | None:
    """A real core of a live python3-dbg process (gcore), stored like the collector stores one."""
    python, gcore = shutil.which("python3.11-dbg"), shutil.which("gcore")
    if python is None or gcore is None or shutil.which("gdb") is None:
        return None
    proc = subprocess.Popen([python, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        if proc.stdout is not None:
            proc.stdout.readline()  # "ready"
        subprocess.run(
            [gcore, "-o", str(storage / "raw"), str(proc.pid)], check=True, capture_output=True
        )
    finally:
        proc.kill()
        proc.wait()
    raw = storage / f"raw.{proc.pid}"
    ts = time.time_ns() // 1000 - 90_000_000
    comm = "python3.11-dbg"
    stored = storage / core_filename(comm.encode(), os.getuid(), BOOT, proc.pid, ts)
    with raw.open("rb") as src, stored.open("wb") as dst:
        zstandard.ZstdCompressor(level=3).copy_stream(src, dst)
    raw.unlink()
    frames = [
        ("__GI_kill", "libc.so.6", 0x3C267),
        ("os_kill_impl", "python3.11d", 0x25FA0D),
        ("_PyEval_EvalFrameDefault", "python3.11d", 0x1D2A10),
    ]
    return record(
        pid=proc.pid,
        comm=comm,
        exe=str(Path(python).resolve()),
        ts=ts,
        signo=11,
        frames=frames,
        COREDUMP_FILENAME=str(stored),
        COREDUMP_PACKAGE_NAME="python3.11-dbg",
        COREDUMP_PACKAGE_VERSION="3.11.2-6",
    )
