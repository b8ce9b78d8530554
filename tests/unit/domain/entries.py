"""Journal entries as the reader hands them to the domain (test data)."""

from __future__ import annotations

from drkonqi_lite_collector.journal.schema import MESSAGE_ID

BOOT = "0123456789abcdef0123456789abcdef"


def entry(
    pid: int = 4242,
    uid: int = 1000,
    sender: int = 1000,
    ts: int = 1_700_000_000_000_000,
    comm: str = "kate",
    exe: str = "/usr/bin/kate",
    signo: int = 11,
    **extra: str | bytes,
) -> dict[str, str | bytes]:
    fields: dict[str, str | bytes] = {
        "MESSAGE_ID": MESSAGE_ID,
        "MESSAGE": f"Process {pid} ({comm}) of user {uid} dumped core.\n\n"
        "Stack trace of thread 1:\n#0  0x0000000000401000 main (kate + 0x1000)",
        "COREDUMP_PID": str(pid),
        "COREDUMP_UID": str(uid),
        "COREDUMP_GID": str(uid),
        "COREDUMP_SIGNAL": str(signo),
        "COREDUMP_TIMESTAMP": str(ts),
        "COREDUMP_COMM": comm,
        "COREDUMP_EXE": exe,
        "COREDUMP_ENVIRON": "HOME=/home/u\nSECRET_TOKEN=hunter2",
        "SYSLOG_IDENTIFIER": "drkonqi-lite-collector",
        "_UID": str(sender),
        "_BOOT_ID": BOOT,
        "__REALTIME_TIMESTAMP": str(ts + 5000),
        "__CURSOR": f"s=1;i={pid:x};t={ts + 5000:x}",
    }
    fields.update(extra)
    return fields
