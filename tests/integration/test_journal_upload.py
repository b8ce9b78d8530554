"""The systemd way to collect a fleet's crashes: systemd-journal-upload on each machine sends the
journal to systemd-journal-remote on a collection host, where `coredumpctl --directory=…` lists
the crashes with their stack traces. Real crash through our collector, real upload over HTTP on
loopback, real coredumpctl on the received files (README "Crashes of many machines")."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import need
from tests.integration.bugsink import free_port
from tests.integration.desktop import fresh_uid
from tests.integration.harness import Harness
from tests.integration.journal_read import wait_entry
from tests.integration.processes import crash_self

REMOTE = Path("/lib/systemd/systemd-journal-remote")
UPLOAD = Path("/lib/systemd/systemd-journal-upload")


@pytest.fixture
def collection_host() -> Iterator[tuple[str, Path]]:
    """systemd-journal-remote listening on loopback; (URL, the directory it writes)."""
    need(REMOTE.exists() and UPLOAD.exists(), "systemd-journal-remote is not installed")
    work = Path(tempfile.mkdtemp(prefix="dkl-remote-"))
    (work / "remote").mkdir()
    port = free_port()
    proc = subprocess.Popen(
        [str(REMOTE), f"--listen-http=127.0.0.1:{port}", "--split-mode=none",
         f"--output={work}/remote/remote.journal"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        time.sleep(0.5)
        assert proc.poll() is None, "systemd-journal-remote did not start"
        yield f"http://127.0.0.1:{port}", work / "remote"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)


def _user_journal(uid: int) -> list[Path]:
    machine = Path("/etc/machine-id").read_text().strip()
    return sorted(Path(f"/var/log/journal/{machine}").glob(f"user-{uid}*.journal"))


@pytest.mark.crash
def test_upload_to_a_collection_host_then_coredumpctl_lists_it(
    installed: Harness, crashme: Path, collection_host: tuple[str, Path]
) -> None:
    url, received = collection_host
    uid = fresh_uid()
    pid = crash_self([str(crashme)], uid, uid)
    wait_entry(COREDUMP_PID=pid)
    files = _user_journal(uid)
    need(bool(files), "journald keeps no persistent per-user journal here")
    # What systemd-journal-upload.service does on each machine (here: this user's journal).
    up = subprocess.run([str(UPLOAD), f"--url={url}", "--follow=no",
                         *(f"--file={f}" for f in files)],
                        capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert up.returncode == 0, up.stderr
    listed = subprocess.run(["coredumpctl", f"--directory={received}", "list", "--no-pager",
                             str(pid)], capture_output=True, text=True, check=False)  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert str(pid) in listed.stdout
    assert str(crashme) in listed.stdout
    info = subprocess.run(["coredumpctl", f"--directory={received}", "info", "--no-pager",
                           str(pid)], capture_output=True, text=True, check=False)  # fmt: skip
    assert f"Stack trace of thread {pid}:" in info.stdout
    assert " main (" in info.stdout  # crashme faults in main(): the frame is named
