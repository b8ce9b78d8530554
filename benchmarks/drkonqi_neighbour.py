#!/usr/bin/env python3
"""What KDE's DrKonqi sees of a crash under each crash handler arrangement.

For each arrangement a real process (`sleep`, uid 1000) is crashed through the real kernel
core_pattern, its journal entry is taken from the real journald, and Debian's real
drkonqi-coredump-processor (package `drkonqi`) is run on it exactly as systemd runs it next to
systemd-coredump@<instance>.service: `drkonqi-coredump-processor BOOT_ID INSTANCE`. What the
processor hands to the user's drkonqi-coredump-launcher socket is what DrKonqi shows; a
listener stands in for that socket and records it.

systemd (PID 1) stamps `_SYSTEMD_UNIT=systemd-coredump@INSTANCE.service` on the service's
entries; PID 1 is not systemd here, so that one trusted field is added to the systemd-coredump
entry as systemd would, and the entries are given to the processor in a journal file of their
own (systemd-journal-remote, in a private mount namespace) so that nothing is forged in the
shared journal. Our entries get nothing added: no systemd-coredump@ instance runs for them,
so systemd would not even start the processor.

    sudo .venv/bin/python benchmarks/drkonqi_neighbour.py

Needs root, journald, the drkonqi and systemd-journal-remote packages and
../shared/tools/systemd-coredump-anchor. Holds the core_pattern lock and restores it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from tests.integration.harness import make_prefix  # noqa: E402
from tests.integration.journal_read import wait_entry  # noqa: E402
from tests.integration.processes import crash  # noqa: E402

PROCESSOR = "/usr/lib/x86_64-linux-gnu/libexec/drkonqi-coredump-processor"
ANCHOR = Path("/work/shared/tools/systemd-coredump-anchor")
SYSTEMD = "|/lib/systemd/systemd-coredump %P %u %g %s %t 9223372036854775808 %h %d"
LOCK = Path("/run/lock/drkonqi-lite-core_pattern.lock")
USER = 1000
COLLECTOR = Path(sys.executable).with_name("drkonqi-lite-collector")


@contextlib.contextmanager
def held_pattern() -> Iterator[None]:
    with LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        saved = [
            Path(f"/proc/sys/kernel/{k}").read_text() for k in ("core_pattern", "core_pipe_limit")
        ]
        try:
            yield
        finally:
            Path("/proc/sys/kernel/core_pattern").write_text(saved[0])
            Path("/proc/sys/kernel/core_pipe_limit").write_text(saved[1])


def export(entry: dict[str, bytes], extra: dict[str, str]) -> bytes:
    """The journal export format of `entry` (binary-safe), plus `extra` fields."""
    out = bytearray()
    fields = {k: v for k, v in entry.items() if not k.startswith("__")}
    fields.update({k: v.encode() for k, v in extra.items()})
    out += f"__REALTIME_TIMESTAMP={int(time.time() * 1e6)}\n".encode()
    for key, value in fields.items():
        out += key.encode() + b"\n" + len(value).to_bytes(8, "little") + value + b"\n"
    return bytes(out) + b"\n"


def processor_sees(entry: dict[str, bytes], instance: str, extra: dict[str, str]) -> bool:
    """Run the real processor on a journal holding only `entry`; True if it forwarded it."""
    boot = entry["_BOOT_ID"].decode()
    with tempfile.TemporaryDirectory(prefix="dkl-drkonqi-") as d:
        jdir = Path(d) / "journal"
        jdir.mkdir()
        (Path(d) / "entry.export").write_bytes(export(entry, extra))
        subprocess.run(
            [
                "/lib/systemd/systemd-journal-remote",
                f"--output={jdir}/remote.journal",
                str(Path(d) / "entry.export"),
            ],
            check=True,
            capture_output=True,
        )
        # The processor sends to the user's runtime dir; make one only for this run (a
        # root-owned /run/user/UID left behind breaks that user's later sessions).
        rundir = Path(f"/run/user/{USER}")
        made = not rundir.exists()
        rundir.mkdir(parents=True, exist_ok=True)
        sock_path = rundir / "drkonqi-coredump-launcher"
        sock_path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        listener.bind(str(sock_path))
        listener.listen(1)
        listener.settimeout(6)
        script = (
            f"mount --bind {jdir} /var/log/journal && mount -t tmpfs none /run/log && "
            f"exec timeout 5 {PROCESSOR} {boot} {instance}"
        )
        proc = subprocess.Popen(
            ["unshare", "-m", "sh", "-c", script],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            conn, _ = listener.accept()
            data = b"".join(iter(lambda: conn.recv(65536), b""))
            got = bool(json.loads(data).get("COREDUMP_PID") == entry["COREDUMP_PID"].decode())
        except TimeoutError:
            got = False
        finally:
            proc.wait()
            listener.close()
            sock_path.unlink(missing_ok=True)
            if made:
                rundir.rmdir()
        return got


def arrangement(name: str, pat: str, ident: str) -> tuple[str, bool]:
    Path("/proc/sys/kernel/core_pattern").write_text(pat + "\n")
    t = time.time()
    pid = crash(["/bin/sleep", "1000"], USER, USER)
    entry = dict(wait_entry(since=t - 1, COREDUMP_PID=pid, SYSLOG_IDENTIFIER=ident))
    instance = f"0-{pid}-{USER}"
    extra = (
        {"_SYSTEMD_UNIT": f"systemd-coredump@{instance}.service"}
        if ident == "systemd-coredump"
        else {}
    )
    return name, processor_sees(entry, instance, extra)


def main() -> int:
    subprocess.run([str(ANCHOR), "start"], check=True, capture_output=True)
    rows = []
    with held_pattern(), contextlib.ExitStack() as stack:
        h = stack.enter_context(contextlib.contextmanager(make_prefix)())
        rows.append(
            arrangement("systemd-coredump is the handler (default)", SYSTEMD, "systemd-coredump")
        )
        ours = h.install()
        rows.append(
            arrangement("drkonqi-lite-collector is the handler", ours, "drkonqi-lite-collector")
        )
        Path("/proc/sys/kernel/core_pattern").write_text(SYSTEMD + "\n")
        forced = (
            subprocess.run(
                [str(COLLECTOR), f"--prefix={h.prefix}", "install", "--force"],
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.split("core_pattern = ", 1)[1]
            .splitlines()[0]
        )
        rows.append(
            arrangement("install --force over systemd-coredump", forced, "drkonqi-lite-collector")
        )
    print("| arrangement | DrKonqi's processor forwards the crash to DrKonqi |")
    print("|---|---|")
    for name, seen in rows:
        print(f"| {name} | {'yes' if seen else 'no'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
