"""The state directory on disk: vacuuming and files that appear whole or not at all."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from drkonqi_lite_collector import config, storage
from drkonqi_lite_collector.journal.schema import core_filename
from tests.unit.collector.scratch import dir_fd


def test_vacuum_deletes_oldest_of_the_heaviest_user_and_keeps_the_new_core(tmp_path: Path) -> None:
    fd = dir_fd(tmp_path / "cores")
    try:
        boot = "a" * 32
        names = []
        for uid, ts in [(1000, 1), (1000, 2), (1000, 3), (2000, 4)]:
            name = core_filename(b"x", uid, boot, ts, ts)
            (tmp_path / "cores" / name).write_bytes(os.urandom(64 * 1024))
            names.append(name)
        cfg = config.Config(max_use=200 * 1024, keep_free=0)  # 256 KiB used: one must go
        deleted = storage.vacuum(fd, cfg, keep=frozenset({names[0]}))
        assert deleted == [names[1]], "uid 1000 uses most; its oldest not-kept core goes"
        assert sorted(p.name for p in (tmp_path / "cores").iterdir()) == sorted(
            [names[0], names[2], names[3]]
        )
    finally:
        os.close(fd)


def test_tempfile_is_invisible_until_committed(tmp_path: Path) -> None:
    fd = dir_fd(tmp_path / "d")
    try:
        with storage.TempFile(fd) as tmp:
            os.write(tmp.fd, b"core")
            assert list((tmp_path / "d").iterdir()) == []
            tmp.commit("final")
        assert (tmp_path / "d" / "final").read_bytes() == b"core"
        with storage.TempFile(fd) as tmp, pytest.raises(FileExistsError):
            tmp.commit("final")  # never replaces an existing file
    finally:
        os.close(fd)
