"""Build a journal file with N noise entries and K coredump entries of one uid (export format).

systemd-journal-remote turns the export stream into a journal file without journald (no rate
limits); app_catchup.py places it next to the live journal files so that the real app reads it.
Usage: python benchmarks/app_catchup_fixture.py OUT.journal UID [--entries 1000000] [--crashes 1000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import uuid
from pathlib import Path

MESSAGE_ID = "fc2e22bc6ee647b6b90729ab34a250b1"


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("uid", type=int)
    p.add_argument("--entries", type=int, default=1_000_000)
    p.add_argument("--crashes", type=int, default=1000)
    a = p.parse_args()
    boot = uuid.uuid4().hex
    machine = Path("/etc/machine-id").read_text().strip()
    now = int(time.time() * 1e6)
    span = 2 * 86400 * 10**6  # the last two days: inside the 3-day catch-up window
    every = a.entries // a.crashes
    proc = subprocess.Popen(["/lib/systemd/systemd-journal-remote", "-o", a.out, "-"],
                            stdin=subprocess.PIPE)  # fmt: skip
    assert proc.stdin is not None
    out = proc.stdin
    chunk: list[str] = []
    for i in range(a.entries):
        ts = now - span + span * i // a.entries
        head = (
            f"__REALTIME_TIMESTAMP={ts}\n__MONOTONIC_TIMESTAMP={i + 1}\n_BOOT_ID={boot}\n"
            f"_MACHINE_ID={machine}\n_UID={a.uid}\n_GID={a.uid}\n_PID={1000 + i % 30000}\n"
        )
        if i % every == every - 1:
            n = i // every
            pid = 100000 + n
            body = (
                f"MESSAGE_ID={MESSAGE_ID}\nPRIORITY=2\nSYSLOG_IDENTIFIER=drkonqi-lite-collector\n"
                f"MESSAGE=Process {pid} (prog{n % 7}) of user {a.uid} dumped core.\n"
                f"COREDUMP_PID={pid}\nCOREDUMP_UID={a.uid}\nCOREDUMP_GID={a.uid}\n"
                f"COREDUMP_SIGNAL=11\nCOREDUMP_SIGNAL_NAME=SIGSEGV\nCOREDUMP_TIMESTAMP={ts}\n"
                f"COREDUMP_COMM=prog{n % 7}\nCOREDUMP_EXE=/usr/bin/prog{n % 7}\n"
                "DRKONQI_LITE_CORE_MISSING=storage-none\n"
            )
        else:
            body = (
                f"MESSAGE=noise entry {i} from some chatty service\nPRIORITY=6\n"
                "SYSLOG_IDENTIFIER=chatty\n"
            )
        chunk.append(head + body + "\n")
        if len(chunk) >= 5000:
            out.write("".join(chunk).encode())
            chunk.clear()
    out.write("".join(chunk).encode())
    out.close()
    return proc.wait()


if __name__ == "__main__":
    sys.exit(main())
