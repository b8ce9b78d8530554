"""The KCrash metadata file of a crash, found and read safely in the user's cache: its names in
both layouts, its age, its owner, and never through a link, a FIFO or a huge file.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from drkonqi_lite.adapters.kcrash_file import KCrashLookup, candidate_names, lookup
from drkonqi_lite.domain import kcrash
from drkonqi_lite.domain.crash import Crash, crash_from_entry
from tests.conftest import need
from tests.entries import BOOT, KF5_INI, TS_S, entry


def test_candidate_names_for_both_layouts() -> None:
    names = [f"kate.{BOOT}.4242.ini", f"kate.{BOOT}.42421.ini", "4242.ini", "x.ini",
             f".{BOOT}.4242.ini"]  # fmt: skip
    assert candidate_names(names, BOOT, 4242) == [f"kate.{BOOT}.4242.ini", "4242.ini"]


def _write(d: Path, name: str, text: str, mtime: float = TS_S) -> Path:
    path = d / name
    path.write_text(text)
    os.utime(path, (mtime, mtime))
    return path


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    d = tmp_path / kcrash.DIRECTORY
    d.mkdir()
    return d


def _kcalc() -> Crash:
    return crash_from_entry(entry(uid=os.getuid(), exe="/usr/bin/kcalc", ts=TS_S * 1_000_000))


def test_the_file_is_found_and_checked(cache: Path) -> None:
    crash = _kcalc()
    uid = os.getuid()
    assert lookup(crash, cache, uid) is None, "no file"
    _write(cache, "4242.ini", KF5_INI, mtime=TS_S - 3600)
    assert lookup(crash, cache, uid) is None, "written an hour before the crash"
    _write(cache, "4242.ini", KF5_INI)
    info = lookup(crash, cache, uid)
    assert info is not None
    assert info.display_name == "KCalc"
    assert KCrashLookup(cache, uid)(crash) == info
    assert lookup(crash, cache, uid + 1) is None, "another user's crash is never looked up"


def test_a_planted_symlink_fifo_or_huge_file_is_not_read(cache: Path, tmp_path: Path) -> None:
    crash = _kcalc()
    target = _write(tmp_path, "elsewhere.ini", KF5_INI)
    (cache / "4242.ini").symlink_to(target)
    assert lookup(crash, cache, os.getuid()) is None
    (cache / "4242.ini").unlink()
    os.mkfifo(cache / "4242.ini")  # opened O_NONBLOCK: never blocks, and not a regular file
    assert lookup(crash, cache, os.getuid()) is None
    (cache / "4242.ini").unlink()
    _write(cache, "4242.ini", KF5_INI + "x" * kcrash.MAX_BYTES)
    assert lookup(crash, cache, os.getuid()) is None


def test_a_file_owned_by_someone_else_is_ignored(cache: Path) -> None:
    need(os.geteuid() == 0, "chown needs root")
    path = _write(cache, "4242.ini", KF5_INI)
    os.chown(path, 4242, 4242)
    assert lookup(_kcalc(), cache, os.getuid()) is None

