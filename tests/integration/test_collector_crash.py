"""Real kernel crashes through core_pattern into the real collector and the real journald.

What an administrator and a user see: one entry per crash in systemd-coredump's schema, whose
fields match what /proc said about the process, a zstd core that decompresses to the process's
ELF core, the real `coredumpctl` working on it, and per-user visibility and access.
"""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard

from drkonqi_lite_collector.admin import pattern
from tests.conftest import need, which
from tests.integration.harness import Harness
from tests.integration.journal_read import Entry, field, wait_entry
from tests.integration.processes import crash, spawn_as, wait_running

#: Debian's interpreter: the test's own venv lives under root-only directories.
SYSTEM_PYTHON = "/usr/bin/python3"
USER = 1000  # "cloudsdk" on this machine kind; any regular uid works
OTHER = 4242  # a uid without a passwd entry

THREADS_C = r"""
#include <pthread.h>
#include <unistd.h>
static void *worker(void *arg) { (void)arg; for (;;) pause(); return 0; }
int main(void) {
    pthread_t t[8];
    for (int i = 0; i < 8; i++) pthread_create(&t[i], 0, worker, 0);
    for (;;) pause();
}
"""


@pytest.fixture(scope="module")
def threads_bin() -> Iterator[Path]:
    gcc = which("gcc")
    # Not under pytest's tmp: its root-only (0700) parent would stop the user from exec'ing it.
    d = Path(tempfile.mkdtemp(prefix="dkl-bin-", dir="/tmp"))
    d.chmod(0o755)
    src = d / "threads.c"
    src.write_text(THREADS_C)
    out = d / "threads8"
    subprocess.run([gcc, "-O2", "-pthread", "-o", str(out), str(src)], check=True)
    yield out
    shutil.rmtree(d)


def elf_core_pids(core: bytes) -> set[int]:
    """PIDs (thread ids) in the NT_PRSTATUS notes of an ELF64 core."""
    assert core[:4] == b"\x7fELF", "not an ELF file"
    assert struct.unpack_from("<H", core, 16)[0] == 4, "not ET_CORE"
    (phoff,) = struct.unpack_from("<Q", core, 32)
    phentsize, phnum = struct.unpack_from("<HH", core, 54)
    tids = set()
    for i in range(phnum):
        p_type, _flags, p_offset, _vaddr, _paddr, p_filesz = struct.unpack_from(
            "<IIQQQQ", core, phoff + i * phentsize
        )
        if p_type != 4:  # PT_NOTE
            continue
        off, end = p_offset, p_offset + p_filesz
        while off + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", core, off)
            desc = off + 12 + ((namesz + 3) & ~3)
            if ntype == 1:  # NT_PRSTATUS: pr_pid at offset 32 on x86_64
                tids.add(struct.unpack_from("<i", core, desc + 32)[0])
            off = desc + ((descsz + 3) & ~3)
    return tids


def read_core(entry: dict[str, bytes] | object) -> bytes:
    path = Path(os.fsdecode(field(entry, "COREDUMP_FILENAME")))  # type: ignore[arg-type]
    with path.open("rb") as f:
        return zstandard.ZstdDecompressor().stream_reader(f).read()


def test_sleep_segv_entry_matches_proc(installed: Harness) -> None:
    proc = spawn_as(["/bin/sleep", "1000"], USER, USER)
    wait_running(proc, "sleep")
    facts = {
        "cmdline": Path(f"/proc/{proc.pid}/cmdline").read_bytes(),
        "exe": os.readlink(f"/proc/{proc.pid}/exe").encode(),
        "environ": Path(f"/proc/{proc.pid}/environ").read_bytes(),
        "maps": Path(f"/proc/{proc.pid}/maps").read_bytes(),
    }
    os.kill(proc.pid, signal.SIGSEGV)
    proc.wait()
    e = wait_entry(COREDUMP_PID=proc.pid)

    assert field(e, "_UID") == str(USER).encode(), "sent with the crashing user's credentials"
    assert field(e, "COREDUMP_UID") == b"1000"
    assert field(e, "COREDUMP_SIGNAL") == b"11"
    assert field(e, "COREDUMP_SIGNAL_NAME") == b"SIGSEGV"
    assert field(e, "COREDUMP_COMM") == b"sleep"
    assert field(e, "COREDUMP_EXE") == facts["exe"]
    assert field(e, "COREDUMP_CMDLINE") == b"/bin/sleep 1000"
    assert field(e, "COREDUMP_ENVIRON") == facts["environ"].rstrip(b"\0").replace(b"\0", b"\n")
    assert field(e, "COREDUMP_PROC_MAPS") == facts["maps"]
    assert field(e, "COREDUMP_CWD") == b"/"
    assert field(e, "COREDUMP_ROOT") == b"/"
    assert field(e, "COREDUMP_DUMPABLE") == b"1"
    assert field(e, "PRIORITY") == b"2"
    assert field(e, "DRKONQI_LITE_IDENTITY") == b"verified"
    assert b"0:" in field(e, "COREDUMP_OPEN_FDS")
    assert field(e, "MESSAGE").startswith(
        f"Process {proc.pid} (sleep) of user 1000 dumped core.".encode()
    )
    ts = int(field(e, "COREDUMP_TIMESTAMP"))
    assert abs(ts / 1e6 - int(field(e, "__REALTIME_TIMESTAMP")) / 1e6) < 5

    core_path = Path(os.fsdecode(field(e, "COREDUMP_FILENAME")))
    assert core_path.parent == installed.storage
    assert core_path.name.startswith("core.sleep.1000.")
    assert core_path.suffix == ".zst"
    st = core_path.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, 0, 0o640)
    assert proc.pid in elf_core_pids(read_core(e))


def test_multithreaded_core_has_every_thread(installed: Harness, threads_bin: Path) -> None:
    pid = crash([str(threads_bin)], USER, USER, signal.SIGABRT, exe="threads8")
    e = wait_entry(COREDUMP_PID=pid)
    assert field(e, "COREDUMP_SIGNAL_NAME") == b"SIGABRT"
    tids = elf_core_pids(read_core(e))
    assert pid in tids
    assert len(tids) == 9, f"main thread + 8 workers, got {sorted(tids)}"


def test_python_process_crash(installed: Harness) -> None:
    code = "import os, signal, time; time.sleep(0.2); os.kill(os.getpid(), signal.SIGSEGV)"
    need(Path(SYSTEM_PYTHON).exists(), f"{SYSTEM_PYTHON} missing (apt-get install python3)")
    proc = spawn_as([SYSTEM_PYTHON, "-c", code], USER, USER)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGSEGV
    e = wait_entry(COREDUMP_PID=proc.pid)
    assert field(e, "COREDUMP_EXE").startswith(b"/")
    assert b"python" in field(e, "COREDUMP_COMM")
    assert b"os.kill" in field(e, "COREDUMP_CMDLINE")
    assert proc.pid in elf_core_pids(read_core(e))


def test_real_coredumpctl_reads_our_entries(installed: Harness, tmp_path: Path) -> None:
    coredumpctl = which("coredumpctl")
    pid = crash(["/bin/sleep", "1000"], USER, USER)
    wait_entry(COREDUMP_PID=pid)
    listing = subprocess.run(
        [coredumpctl, "list", "--no-pager", str(pid)], capture_output=True, text=True, check=True
    ).stdout
    assert str(pid) in listing
    assert "present" in listing
    info = subprocess.run(
        [coredumpctl, "info", "--no-pager", str(pid)], capture_output=True, text=True, check=True
    ).stdout
    assert f"PID: {pid} (sleep)" in info
    assert "Signal: 11 (SEGV)" in info
    assert str(installed.storage) in info
    out = tmp_path / "dumped.core"
    subprocess.run(
        [coredumpctl, "dump", "--no-pager", str(pid), "-o", str(out)],
        capture_output=True,
        check=True,
    )
    assert pid in elf_core_pids(out.read_bytes())


def _as_user(uid: int, *cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *cmd],
        capture_output=True,
        text=True,
        errors="replace",
        check=False,
        timeout=60,
    )


def test_user_sees_own_crash_and_reads_own_core_only(installed: Harness) -> None:
    mine = crash(["/bin/sleep", "1000"], USER, USER)
    theirs = crash(["/bin/sleep", "1000"], OTHER, OTHER)
    mine_entry = wait_entry(COREDUMP_PID=mine)
    theirs_entry = wait_entry(COREDUMP_PID=theirs)
    assert field(mine_entry, "_UID") == b"1000"
    assert field(theirs_entry, "_UID") == b"4242"

    def visible(entry: Entry, uid: int = USER) -> str:
        # PID and timestamp together: the journal is persistent and PIDs recycle, so an earlier
        # test's crash of user 1000 may carry the PID that user 4242's crash has now.
        out = _as_user(
            uid,
            "journalctl",
            "--no-pager",
            "-o",
            "cat",
            "MESSAGE_ID=fc2e22bc6ee647b6b90729ab34a250b1",
            f"COREDUMP_PID={os.fsdecode(field(entry, 'COREDUMP_PID'))}",
            f"COREDUMP_TIMESTAMP={os.fsdecode(field(entry, 'COREDUMP_TIMESTAMP'))}",
        )
        return out.stdout

    assert f"Process {mine} (sleep) of user 1000 dumped core." in visible(mine_entry)
    assert f"Process {theirs} (sleep) of user 4242 dumped core." in visible(theirs_entry, 0)
    assert "dumped core" not in visible(theirs_entry), "another user's crash stays invisible"

    mine_core = os.fsdecode(field(mine_entry, "COREDUMP_FILENAME"))
    theirs_core = os.fsdecode(field(theirs_entry, "COREDUMP_FILENAME"))
    assert _as_user(USER, "head", "-c", "4", mine_core).returncode == 0
    denied = _as_user(USER, "head", "-c", "4", theirs_core)
    assert denied.returncode != 0
    assert "Permission denied" in denied.stderr


def test_status_names_the_active_handler(installed: Harness) -> None:
    out = subprocess.run(
        [
            str(Path(sys.executable).with_name("drkonqi-lite-collector")),
            f"--prefix={installed.prefix}",
            "status",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "crash handler:   drkonqi-lite-collector" in out
    assert "tray app:        sees these crashes" in out


@pytest.fixture
def saved_pattern(core_pattern: None) -> Path:
    return Path("/proc/sys/kernel/core_pattern")


def test_install_refuses_to_take_over_and_uninstall_restores(
    harness: Harness, saved_pattern: Path
) -> None:
    cli = str(Path(sys.executable).with_name("drkonqi-lite-collector"))
    other = "|/lib/systemd/systemd-coredump %P %u %g %s %t 9223372036854775808 %h %d"
    saved_pattern.write_text(other + "\n")
    refused = subprocess.run(
        [cli, f"--prefix={harness.prefix}", "install"], capture_output=True, text=True, check=False
    )
    assert refused.returncode == 1
    assert "systemd-coredump" in refused.stderr
    assert "--force" in refused.stderr
    assert saved_pattern.read_text().strip() == other, "never silently takes over"

    subprocess.run(
        [cli, f"--prefix={harness.prefix}", "install", "--force"], check=True, capture_output=True
    )
    assert pattern.handler_kind(saved_pattern.read_text().strip()) == "drkonqi-lite-collector"
    assert Path("/proc/sys/kernel/core_pipe_limit").read_text().strip() == str(pattern.PIPE_LIMIT)
    subprocess.run(
        [cli, f"--prefix={harness.prefix}", "uninstall"], check=True, capture_output=True
    )
    assert saved_pattern.read_text().strip() == other, "uninstall restores the previous handler"


def test_storage_journal_puts_the_core_in_the_entry(installed: Harness, tmp_path: Path) -> None:
    installed.configure("Storage=journal\n")
    pid = crash(["/bin/sleep", "1000"], USER, USER)
    e = wait_entry(COREDUMP_PID=pid)
    assert "COREDUMP_FILENAME" not in e
    assert pid in elf_core_pids(field(e, "COREDUMP"))
    assert installed.cores() == []
    out = tmp_path / "from-journal.core"
    subprocess.run(
        [which("coredumpctl"), "dump", "--no-pager", str(pid), "-o", str(out)],
        capture_output=True,
        check=True,
    )
    assert out.read_bytes() == field(e, "COREDUMP")


def test_uncompressed_and_storage_none(installed: Harness) -> None:
    installed.configure("Compress=no\n")
    pid = crash(["/bin/sleep", "1000"], USER, USER)
    e = wait_entry(COREDUMP_PID=pid)
    path = Path(os.fsdecode(field(e, "COREDUMP_FILENAME")))
    assert path.suffix != ".zst"
    assert pid in elf_core_pids(path.read_bytes())

    installed.configure("Storage=none\n")
    pid = crash(["/bin/sleep", "1000"], USER, USER)
    e = wait_entry(COREDUMP_PID=pid)
    assert "COREDUMP_FILENAME" not in e
    assert field(e, "DRKONQI_LITE_CORE_MISSING") == b"storage-none"
    assert int(field(e, "DRKONQI_LITE_CORE_SIZE")) > 0
