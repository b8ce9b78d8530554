"""Which package a program came from: the package note's JSON, the dpkg database."""

from __future__ import annotations

import json
from pathlib import Path

from drkonqi_lite_collector.unwinder.package import dpkg_owner, package_metadata


def test_package_note_metadata() -> None:
    meta = {"type": "deb", "name": "demo", "version": "1.0-1"}
    assert package_metadata(json.dumps(meta).encode() + b"\0") == meta
    assert package_metadata(b"[1, 2]") is None
    assert package_metadata(b"\xff{") is None
    assert package_metadata(json.dumps(meta).encode()[:-8]) is None


def test_dpkg_owner_reads_the_database(tmp_path: Path) -> None:
    (tmp_path / "info").mkdir()
    (tmp_path / "info" / "other.list").write_text("/.\n/usr\n/usr/bin/other\n")
    (tmp_path / "info" / "coreutils.list").write_text("/.\n/bin\n/bin/sleep\n/bin/true\n")
    (tmp_path / "status").write_text(
        "Package: other\nStatus: install ok installed\nVersion: 1\nArchitecture: amd64\n\n"
        "Package: coreutils\nStatus: install ok installed\nArchitecture: amd64\n"
        "Version: 9.1-1\nDescription: x\n multi-line\n"
    )
    # usr-merge: the process maps /usr/bin/sleep, dpkg knows /bin/sleep.
    assert dpkg_owner("/usr/bin/sleep", str(tmp_path)) == {
        "type": "deb",
        "name": "coreutils",
        "version": "9.1-1",
        "architecture": "amd64",
    }
    assert dpkg_owner("/usr/bin/nothing", str(tmp_path)) is None
    assert dpkg_owner("/usr/bin/sleep", str(tmp_path / "missing")) is None
