"""The .desktop index: which installed entry names a crashed program."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from drkonqi_lite.adapters.desktop_entry import DesktopEntryIndex, desktop_entry_values


def test_desktop_entries_name_the_program(tmp_path: Path) -> None:
    high, low = tmp_path / "high/applications", tmp_path / "low/applications"
    high.mkdir(parents=True)
    (low / "kde").mkdir(parents=True)
    (high / "org.kde.kate.desktop").write_text(
        "[Desktop Entry]\nType=Application\nName=Kate\nIcon=kate\nExec=env A=1 kate -b %U\n"
    )
    (low / "org.kde.kate.desktop").write_text(
        "[Desktop Entry]\nType=Application\nName=Overridden\nExec=kate\n"
    )
    (low / "kde" / "dolphin.desktop").write_text(
        "[Desktop Entry]\nType=Application\nName=Dolphin\nTryExec=/usr/bin/dolphin\nExec=x\n"
    )
    (low / "hidden.desktop").write_text(
        "[Desktop Entry]\nType=Application\nName=Hidden\nHidden=true\nExec=hidden\n"
    )
    index = DesktopEntryIndex([high, low])
    kate = index.lookup("/usr/bin/kate", "kate")
    assert (kate.name, kate.icon, kate.desktop_entry) == ("Kate", "kate", "org.kde.kate")
    assert index.lookup("/usr/bin/dolphin", "dolphin").desktop_entry == "kde-dolphin"
    assert index.lookup("/usr/bin/hidden", "hidden").name == "hidden"
    assert index.lookup("", "mystery").name == "mystery"


def test_entry_values_are_read_as_the_spec_writes_them() -> None:
    text = (
        "# [Desktop Entry]\n[Desktop Entry]\r\nName[de]=Kate (de)\nName = Kate \r\n"
        "Icon\t=kate\n#Exec=no\nExec=old\nExec=kate -b %U\nNameX=not a name\n"
        "[Desktop Action new]\nName=New window\nExec=kate -n\n"
    )
    assert desktop_entry_values(text) == {"Name": "Kate", "Icon": "kate", "Exec": "kate -b %U"}
    assert desktop_entry_values("[Desktop Entry]\nName=A") == {"Name": "A"}
    assert desktop_entry_values("[Desktop Action x]\nName=A\n") is None
    assert desktop_entry_values("Name=A\n") is None


def _app(directory: Path, name: str, text: str, age_s: float = 60.0) -> Path:
    path = directory / name
    path.write_text(text)
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


def test_a_new_start_reads_only_the_entries_changed_since(tmp_path: Path) -> None:
    apps, cache = tmp_path / "applications", tmp_path / "cache/applications.json"
    apps.mkdir()
    kate = _app(apps, "kate.desktop", "[Desktop Entry]\nName=Kate\nExec=kate\n")
    assert DesktopEntryIndex([apps], cache).lookup("/usr/bin/kate", "kate").name == "Kate"
    # The same mtime and size: the cache's word is taken, the file is not read again.
    stat = kate.stat()
    kate.write_text("[Desktop Entry]\nName=Kat2\nExec=kate\n")
    os.utime(kate, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert DesktopEntryIndex([apps], cache).lookup("/usr/bin/kate", "kate").name == "Kate"
    # Changed (its mtime): read again.
    _app(apps, "kate.desktop", "[Desktop Entry]\nName=Kate 2\nExec=kate\n", age_s=30)
    assert DesktopEntryIndex([apps], cache).lookup("/usr/bin/kate", "kate").name == "Kate 2"


def test_an_entry_written_just_now_is_not_cached(tmp_path: Path) -> None:
    apps, cache = tmp_path / "applications", tmp_path / "applications.json"
    apps.mkdir()
    kate = _app(apps, "kate.desktop", "[Desktop Entry]\nName=Kate\nExec=kate\n", age_s=0)
    DesktopEntryIndex([apps], cache).refresh()
    # Its next write may keep the same mtime (a coarse clock tick): so the next start reads it.
    stat = kate.stat()
    kate.write_text("[Desktop Entry]\nName=Kat2\nExec=kate\n")
    os.utime(kate, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert DesktopEntryIndex([apps], cache).lookup("/usr/bin/kate", "kate").name == "Kat2"


@pytest.mark.parametrize("junk", [b"\xff\xfe", b"[]", b'{"version": 1, "files": []}',
                                  b'{"version": 1, "files": {"/x": [[1, 2], ["A", 3], []]}}',
                                  b'{"version": 99, "files": {}}', b" " * (9 << 20)])  # fmt: skip
def test_a_broken_cache_is_rebuilt(tmp_path: Path, junk: bytes) -> None:
    apps, cache = tmp_path / "applications", tmp_path / "applications.json"
    apps.mkdir()
    _app(apps, "kate.desktop", "[Desktop Entry]\nName=Kate\nExec=kate\n")
    cache.write_bytes(junk)
    assert DesktopEntryIndex([apps], cache).lookup("/usr/bin/kate", "kate").name == "Kate"
    assert b"Kate" in cache.read_bytes()


def test_an_unwritable_cache_costs_nothing_but_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    apps = tmp_path / "applications"
    apps.mkdir()
    _app(apps, "kate.desktop", "[Desktop Entry]\nName=Kate\nExec=kate\n")
    (tmp_path / "file").write_text("")
    index = DesktopEntryIndex([apps], tmp_path / "file/applications.json")
    assert index.lookup("/usr/bin/kate", "kate").name == "Kate"
    assert "cannot save" in caplog.text
