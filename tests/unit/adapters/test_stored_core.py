"""Stored cores, opened only as regular files inside the storage (SECURITY.md 3, 6) and
decompressed into a private 0700 directory; only the user's own cores are deleted.
"""

from __future__ import annotations

import lzma
import os
import stat
from pathlib import Path

import pytest
import zstandard

from drkonqi_lite.adapters import stored_core
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

