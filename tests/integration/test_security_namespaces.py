"""SECURITY.md 4: namespaces and containers (CVE-2015-1318 Apport, CVE-2015-1862 ABRT).

The handler runs as root in the host's namespaces; it must never chroot, setns or exec into the
crasher's root. Real crashes inside a planted root (fake gdb, eu-stack, zstd, coredumpctl and an
executable os-release that each leave a marker if run), reached with `unshare` as a user (user,
mount and PID namespaces) or as root, and with a bare chroot: no marker may appear, the entry is
still written, COREDUMP_ROOT names the root and COREDUMP_CONTAINER_CMDLINE the tool that made the
container.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import which
from tests.integration.harness import Harness
from tests.integration.journal_read import entries, field
from tests.integration.processes import build_crashme, spawn_as

USER = 1000
MARKER_C = r"""
#include <fcntl.h>
#include <unistd.h>
int main(void) {
    int fd = open(MARK, O_WRONLY | O_CREAT | O_APPEND, 0666);
    if (fd >= 0) { write(fd, "ran\n", 4); close(fd); }
    return 0;
}
"""
#: Everything a careless collector might run or evaluate from the crasher's root.
FAKE_TOOLS = (
    "usr/bin/gdb",
    "usr/bin/eu-stack",
    "usr/bin/eu-unstrip",
    "usr/bin/zstd",
    "usr/bin/coredumpctl",
    "usr/bin/python3",
    "bin/sh",
    "usr/lib/systemd/systemd-coredump",
)


def planted_root(h: Harness) -> tuple[Path, Path]:
    """A root file system owned by the user with a static crashme and booby-trapped tools;
    returns (root, marker). A tool run on the host or inside the root writes the marker at
    the same absolute path (inside the root it lands below root/)."""
    which("gcc")
    root = h.prefix / "root"
    marker = h.prefix / "ran"
    (root / "bin").mkdir(parents=True)
    shutil.copy(build_crashme(static=True), root / "bin/crashme")
    src = h.prefix / "marker.c"
    src.write_text(MARKER_C)
    fake = h.prefix / "marker"
    subprocess.run(
        ["gcc", "-static", f'-DMARK="{marker}"', "-o", str(fake), str(src)],
        check=True,
        capture_output=True,
    )
    for tool in FAKE_TOOLS:
        dest = root / tool
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(fake, dest)
    for rel in ("etc/os-release", "usr/lib/os-release"):
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(f'#!/bin/sh\nNAME="$(/usr/bin/gdb; echo >> {marker})"\nID=evil\n')
        dest.chmod(0o755)
    (root / "tmp").mkdir(mode=0o1777)
    (root / marker.relative_to("/")).parent.mkdir(parents=True)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            os.chown(Path(dirpath) / name, USER, USER, follow_symlinks=False)
    os.chown(root, USER, USER)
    return root, marker


@pytest.mark.parametrize("how", ["userns-as-user", "pidns-as-root", "chroot-as-root"])
def test_crash_in_planted_root(harness: Harness, core_pattern: None, how: str) -> None:
    unshare, chroot = which("unshare"), which("chroot")
    root, marker = planted_root(harness)
    harness.install()
    inner = f"{chroot} {root} /bin/crashme"
    if how == "userns-as-user":
        script, uid = f"{unshare} --mount --pid --fork --map-root-user {inner}; true", USER
    elif how == "pidns-as-root":
        script, uid = f"{unshare} --mount --pid --fork {inner}; true", 0
    else:
        script, uid = f"{inner}; true", 0
    # The shell stays the container's parent: COREDUMP_CONTAINER_CMDLINE must name it.
    launcher = spawn_as(["/bin/sh", "-c", script], uid, uid, stderr=subprocess.DEVNULL)
    assert launcher.wait(timeout=60) == 0

    exe = root / "bin/crashme"
    found = []
    for _ in range(300):
        found = entries(COREDUMP_EXE=str(exe))
        if found:
            break
        subprocess.run(["sleep", "0.05"], check=True)
    assert len(found) == 1, f"expected one entry for {exe}, got {len(found)}"
    e = found[0]

    assert not marker.exists(), "the collector ran a program from the crasher's root"
    assert not (root / marker.relative_to("/")).exists(), "a tool ran inside the crasher's root"
    assert field(e, "COREDUMP_UID") == str(uid).encode()
    assert field(e, "COREDUMP_ROOT") == bytes(root)
    assert field(e, "COREDUMP_PID") != b"1", "the PID must be the host's (%P), not the ns one"
    assert field(e, "DRKONQI_LITE_IDENTITY") == b"verified"
    core = Path(field(e, "COREDUMP_FILENAME").decode())
    assert core.parent == harness.storage
    assert core.is_file()
    if how == "chroot-as-root":
        assert "COREDUMP_CONTAINER_CMDLINE" not in e
    else:
        assert field(e, "COREDUMP_CONTAINER_CMDLINE") == f"/bin/sh -c {script}".encode()
    # Nothing the collector left behind inside the root either.
    assert list((root / marker.relative_to("/")).parent.iterdir()) == []
    # Control: the traps do fire when run, so the absence of the marker above means something.
    subprocess.run([str(root / "usr/bin/gdb")], check=True)
    assert marker.exists()
