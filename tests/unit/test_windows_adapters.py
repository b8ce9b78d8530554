"""The crash windows' adapters: stored cores opened only as regular files inside the storage
(SECURITY.md 3, 6), decompressed into a private 0700 directory; restart only from an installed
.desktop file and never while running (SECURITY.md 6); bug tracker from AppStream, http(s) only.
"""

from __future__ import annotations

import lzma
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zstandard

from drkonqi_lite.adapters import desktop_launch, stored_core
from drkonqi_lite.adapters.stored_core import CoreUnavailableError
from drkonqi_lite.domain.trust import TrustPolicy

CORE = b"\x7fELF" + bytes(range(256)) * 64


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    d = tmp_path / "coredump"
    d.mkdir()
    return d


def policy(storage: Path) -> TrustPolicy:
    return TrustPolicy(os.getuid(), frozenset({0}), (str(storage),))


@pytest.mark.parametrize(
    ("name", "data"),
    [("core.a.zst", zstandard.ZstdCompressor().compress(CORE)), ("core.b.xz", lzma.compress(CORE)),
     ("core.c", CORE)],
)  # fmt: skip
def test_decompress_into_a_private_dir(storage: Path, name: str, data: bytes) -> None:
    (storage / name).write_bytes(data)
    private = stored_core.private_dir()
    try:
        assert stat.S_IMODE(private.stat().st_mode) == 0o700
        core = stored_core.decompress_core(policy(storage), str(storage / name), private)
        assert core.read_bytes() == CORE
        assert stat.S_IMODE(core.stat().st_mode) == 0o600
    finally:
        stored_core.remove_private_dir(private)
    assert not private.exists()


def test_symlink_fifo_and_outside_paths_are_refused(storage: Path, tmp_path: Path) -> None:
    secret = tmp_path / "shadow"
    secret.write_bytes(b"root:x")
    (storage / "core.link.zst").symlink_to(secret)
    os.mkfifo(storage / "core.fifo.zst")
    p = policy(storage)
    for name, why in (("core.link.zst", "not a regular file"), ("core.fifo.zst", "regular file"),
                      ("core.gone.zst", "removed")):  # fmt: skip
        with (
            pytest.raises(CoreUnavailableError, match=why),
            stored_core.open_core(p, str(storage / name)),
        ):
            pass
    for outside in ("/etc/shadow", f"{storage}/../shadow", f"{storage}/sub/core", "core.zst"):
        with (
            pytest.raises(CoreUnavailableError, match="outside"),
            stored_core.open_core(p, outside),
        ):
            pass


def test_damaged_core_is_reported(storage: Path, tmp_path: Path) -> None:
    (storage / "core.bad.zst").write_bytes(b"not zstd at all")
    with pytest.raises(CoreUnavailableError, match="damaged"):
        stored_core.decompress_core(policy(storage), str(storage / "core.bad.zst"), tmp_path)


def test_delete_only_own_cores(storage: Path) -> None:
    core = storage / "core.own.zst"
    core.write_bytes(b"x")
    p = policy(storage)
    assert stored_core.deletable(p, str(core)) == ""
    stored_core.delete_core(p, str(core))
    assert not core.exists()
    assert "already gone" in stored_core.deletable(p, str(core))
    assert "No stored core" in stored_core.deletable(p, "/etc/passwd")
    if os.geteuid() == 0:
        other = storage / "core.other.zst"
        other.write_bytes(b"x")
        os.chown(other, 4242, 4242)
        assert stored_core.deletable(p, str(other)) == "The core belongs to another user."
        with pytest.raises(CoreUnavailableError):
            stored_core.delete_core(p, str(other))
        assert other.exists()


@pytest.fixture
def xdg(tmp_path: Path) -> dict[str, str]:
    share = tmp_path / "share"
    (share / "applications").mkdir(parents=True)
    (share / "metainfo").mkdir()
    marker = tmp_path / "started"
    script = tmp_path / "fake-editor"
    script.write_text(f'#!/bin/sh\necho "$@" > {marker}\n')
    script.chmod(0o755)
    (share / "applications" / "org.example.Editor.desktop").write_text(
        f"[Desktop Entry]\nType=Application\nName=Editor\nExec={script} --new-window %U\n"
        "X-KDE-BugReport=javascript:alert(1)\n"
    )
    (share / "metainfo" / "org.example.Editor.metainfo.xml").write_text(
        '<component><url type="homepage">https://example.org</url>'
        '<url type="bugtracker">https://bugs.example.org/new</url></component>'
    )
    return {"XDG_DATA_DIRS": str(share), "XDG_DATA_HOME": str(tmp_path / "nohome")}


def test_restart_runs_the_desktop_files_exec_without_field_codes(
    xdg: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in xdg.items():
        monkeypatch.setenv(key, value)
    assert desktop_launch.restart_blocker("org.example.Editor", "/nonexistent/editor") == ""
    assert desktop_launch.restart("org.example.Editor", "/nonexistent/editor") > 0
    # What the user notices: the program started (not our child to wait for: it is detached,
    # and subprocess may reap it on its own when another Popen is made).
    started = tmp_path / "started"
    deadline = time.monotonic() + 10
    while not (started.exists() and started.read_text().strip()):
        assert time.monotonic() < deadline, "the program was not started"
        time.sleep(0.02)
    assert started.read_text().strip() == "--new-window"
    assert "never restarted" in desktop_launch.restart_blocker("org.unknown", "/usr/bin/x")
    assert desktop_launch.desktop_file("../../etc/passwd") is None


def test_no_restart_while_the_program_runs() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        exe = str(Path(f"/proc/{proc.pid}/exe").readlink())
        assert proc.pid in desktop_launch.running_pids(exe)
    finally:
        proc.kill()
        proc.wait()


def test_bug_tracker_from_appstream_and_only_web_urls(xdg: dict[str, str]) -> None:
    assert desktop_launch.bug_tracker("org.example.Editor", xdg) == "https://bugs.example.org/new"
    (Path(xdg["XDG_DATA_DIRS"]) / "metainfo" / "org.example.Editor.metainfo.xml").unlink()
    assert desktop_launch.bug_tracker("org.example.Editor", xdg) == ""  # javascript: refused
    assert desktop_launch.bug_tracker("", xdg) == ""
