"""Which Debian package owns a program: dpkg's lists scanned, or the index kept of them."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from drkonqi_lite_collector.unwinder import dpkg
from drkonqi_lite_collector.unwinder.dpkg import DpkgLookup, dpkg_owner
from tests.conftest import need

COREUTILS = {"type": "deb", "name": "coreutils", "version": "9.1-1", "architecture": "amd64"}


def _database(admin: Path) -> None:
    (admin / "info").mkdir(parents=True)
    (admin / "info" / "other.list").write_text("/.\n/usr\n/usr/bin/other\n")
    (admin / "info" / "coreutils.list").write_text("/.\n/bin\n/bin/sleep\n/bin/true\n")
    (admin / "info" / "libfoo1:i386.list").write_text("/usr/lib/i386-linux-gnu/libfoo.so.1\n")
    (admin / "info" / "gone.list").write_text("/usr/bin/gone\n")
    (admin / "status").write_text(
        "Package: other\nStatus: install ok installed\nVersion: 1\nArchitecture: amd64\n\n"
        "Package: coreutils\nStatus: install ok installed\nArchitecture: amd64\n"
        "Version: 9.1-1\nDescription: x\n multi-line\n\n"
        "Package: libfoo1\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2\n\n"
        "Package: libfoo1\nStatus: install ok installed\nArchitecture: i386\nVersion: 2\n\n"
        "Package: gone\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 3\n"
    )


def test_dpkg_owner_reads_the_database(tmp_path: Path) -> None:
    _database(tmp_path)
    # usr-merge: the process maps /usr/bin/sleep, dpkg knows /bin/sleep.
    assert dpkg_owner("/usr/bin/sleep", str(tmp_path)) == COREUTILS
    assert dpkg_owner("/usr/bin/nothing", str(tmp_path)) is None
    assert dpkg_owner("/usr/bin/gone", str(tmp_path)) is None, "removed, only its conffiles"
    assert dpkg_owner("/usr/bin/sleep", str(tmp_path / "missing")) is None


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    need(os.geteuid() == 0, "the cache directory must be root's (storage.open_dir)")
    tmp_path.chmod(0o755)
    return tmp_path / "var/cache/drkonqi-lite"


def test_the_index_answers_as_the_scan_does_once_built_after_the_crash(
    tmp_path: Path, cache: Path
) -> None:
    admin = tmp_path / "dpkg"
    _database(admin)
    lookup = DpkgLookup(str(cache), str(admin))
    assert lookup.owner("/usr/bin/sleep") == COREUTILS, "no index yet: the scan"
    assert not cache.exists(), "nothing is built while the crash waits"
    lookup.refresh()
    index = cache / dpkg.INDEX_NAME
    assert index.stat().st_uid == 0
    assert index.stat().st_mode & 0o777 == 0o644
    later = DpkgLookup(str(cache), str(admin))
    paths = [
        "/usr/bin/sleep",
        "/bin/true",
        "/usr/bin/other",
        "/usr/bin/nothing",
        "/usr/bin/gone",
        "/usr/lib/i386-linux-gnu/libfoo.so.1",
        "/usr/local/bin/sleep",
    ]
    for path in paths:
        assert later.owner(path) == dpkg_owner(path, str(admin)), path
    assert later.owner("/usr/lib/i386-linux-gnu/libfoo.so.1") == {
        "type": "deb", "name": "libfoo1", "version": "2", "architecture": "i386"
    }  # fmt: skip
    # The index answers alone: with the lists gone (and the directory's stamp kept), it knows.
    info = (admin / "info").stat()
    for listed in (admin / "info").iterdir():
        listed.unlink()
    os.utime(admin / "info", ns=(info.st_atime_ns, info.st_mtime_ns))
    assert DpkgLookup(str(cache), str(admin)).owner("/usr/bin/sleep") == COREUTILS
    assert dpkg_owner("/usr/bin/sleep", str(admin)) is None


def _indexed(tmp_path: Path, cache: Path) -> Path:
    """A database (returned) whose index was built the way a crash builds it."""
    admin = tmp_path / "dpkg"
    _database(admin)
    lookup = DpkgLookup(str(cache), str(admin))
    lookup.owner("/usr/bin/sleep")
    lookup.refresh()
    return admin


def test_a_change_of_the_database_makes_the_index_stale(tmp_path: Path, cache: Path) -> None:
    admin = _indexed(tmp_path, cache)
    (admin / "info" / "newpkg.list").write_text("/usr/bin/newprog\n")
    with (admin / "status").open("a") as f:
        f.write("\nPackage: newpkg\nStatus: install ok installed\nArchitecture: all\nVersion: 4\n")
    time.sleep(0.01)
    os.utime(admin / "info")  # dpkg renames the list into place: the directory changes
    second = DpkgLookup(str(cache), str(admin))
    assert second.owner("/usr/bin/newprog") == {
        "type": "deb", "name": "newpkg", "version": "4", "architecture": "all"
    }, "a stale index is not believed"  # fmt: skip
    second.refresh()
    assert b"/usr/bin/newprog\tnewpkg\t4\tall\n" in (cache / dpkg.INDEX_NAME).read_bytes()


def test_an_index_not_roots_alone_is_not_believed(tmp_path: Path, cache: Path) -> None:
    admin = _indexed(tmp_path, cache)
    index = cache / dpkg.INDEX_NAME
    forged = index.read_bytes().replace(b"coreutils\t9.1-1", b"evil\t6.6.6")
    index.write_bytes(forged)
    index.chmod(0o666)
    assert DpkgLookup(str(cache), str(admin)).owner("/usr/bin/sleep") == COREUTILS
