"""collector/admin/cores.py on real files: which deletion requests are granted, and the ACL reader.

The end-to-end path (socket activation, a real crash's core, the app's client) is in
tests/integration/test_core_deletion.py; these pin the rules one by one.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from drkonqi_lite_collector import storage
from drkonqi_lite_collector.admin import cores
from tests.conftest import need

BOOT = "0123456789abcdef0123456789abcdef"
USER = 1000


def name(uid: int = USER, pid: int = 42) -> str:
    return f"core.sleep.{uid}.{BOOT}.{pid}.1700000000000000.zst"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    need(os.geteuid() == 0, "root-owned cores need root")
    d = tmp_path / "coredump"
    d.mkdir(mode=0o755)
    fd = storage.open_dir(str(d))
    try:
        yield d, fd
    finally:
        os.close(fd)


def stored(d: Path, core: str, *, acl_for: int | None) -> Path:
    path = d / core
    path.write_bytes(b"core")
    path.chmod(0o640)
    if acl_for is not None:
        fd = os.open(path, os.O_RDONLY)
        try:
            storage.grant_read_acl(fd, acl_for)
        finally:
            os.close(fd)
    return path


@pytest.mark.parametrize(
    "data",
    [b"", b"remove\0" + name().encode(), b"delete\0../" + name().encode(),
     b"delete\0" + name().encode() + b"/x", b"delete\0core.\xc3\xa9.1000.x.1.1.zst",
     b"delete\0." + name().encode(), b"delete\0core.sleep.1000.nothex.1.1.zst",
     b"delete\0" + name().encode() + b"\0"],
)  # fmt: skip
def test_requests_that_name_no_core_are_refused(data: bytes) -> None:
    with pytest.raises(cores.RefusedError):
        cores.parse_request(data)


def test_a_request_names_one_core() -> None:
    assert cores.parse_request(b"delete\0" + name().encode()) == name()


def test_owner_with_read_acl_may_delete(store: tuple[Path, int]) -> None:
    d, fd = store
    path = stored(d, name(), acl_for=USER)
    cores.delete(fd, name(), USER)
    assert not path.exists()


def test_other_users_and_restricted_cores_stay(store: tuple[Path, int]) -> None:
    d, fd = store
    theirs = stored(d, name(uid=2000), acl_for=2000)
    with pytest.raises(cores.RefusedError, match="another user"):
        cores.delete(fd, theirs.name, USER)
    # The ACL names someone else: the name's uid alone proves nothing.
    odd = stored(d, name(pid=43), acl_for=2000)
    with pytest.raises(cores.RefusedError, match="restricted"):
        cores.delete(fd, odd.name, USER)
    restricted = stored(d, name(pid=44), acl_for=None)
    with pytest.raises(cores.RefusedError, match="restricted"):
        cores.delete(fd, restricted.name, USER)
    assert theirs.exists()
    assert odd.exists()
    assert restricted.exists()
    cores.delete(fd, restricted.name, 0)  # root may
    assert not restricted.exists()


def test_only_root_owned_single_link_regular_files(store: tuple[Path, int]) -> None:
    d, fd = store
    user_file = stored(d, name(pid=50), acl_for=USER)
    os.chown(user_file, USER, USER)
    with pytest.raises(cores.RefusedError, match="not a file the collector stored"):
        cores.delete(fd, user_file.name, USER)
    linked = stored(d, name(pid=51), acl_for=USER)
    os.link(linked, d / name(pid=52))
    with pytest.raises(cores.RefusedError, match="not a file the collector stored"):
        cores.delete(fd, name(pid=52), USER)
    (d / name(pid=53)).symlink_to(linked)
    with pytest.raises(cores.RefusedError, match="not a regular file"):
        cores.delete(fd, name(pid=53), USER)
    os.mkfifo(d / name(pid=54))
    with pytest.raises(cores.RefusedError, match="not a file the collector stored"):
        cores.delete(fd, name(pid=54), USER)  # O_NONBLOCK: no hang on the FIFO
    with pytest.raises(cores.RefusedError, match="already been removed"):
        cores.delete(fd, name(pid=55), USER)
    assert linked.exists()
    assert user_file.exists()


def _acl(*entries: tuple[int, int, int]) -> bytes:
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


def test_acl_reader_honours_the_mask(store: tuple[Path, int]) -> None:
    d, _ = store
    path = stored(d, name(), acl_for=None)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert not storage.acl_grants_read(fd, USER), "no ACL at all"
        storage.grant_read_acl(fd, USER)
        assert storage.acl_grants_read(fd, USER)
        assert not storage.acl_grants_read(fd, USER + 1)
        masked = _acl((0x01, 6, 0xFFFFFFFF), (0x02, 4, USER), (0x04, 4, 0xFFFFFFFF),
                      (0x10, 0, 0xFFFFFFFF), (0x20, 0, 0xFFFFFFFF))  # fmt: skip
        os.setxattr(fd, "system.posix_acl_access", masked)
        assert not storage.acl_grants_read(fd, USER), "the mask takes the read bit away"
    finally:
        os.close(fd)
