"""The .desktop index: which installed entry names a crashed program."""

from __future__ import annotations

from pathlib import Path

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
