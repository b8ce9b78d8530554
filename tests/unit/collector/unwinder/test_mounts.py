"""collector/unwinder/mounts.py: which mapped files a user could stall (FUSE) are left alone."""

from __future__ import annotations

import os
from pathlib import Path

from drkonqi_lite_collector.unwinder import mounts

MOUNTINFO = (
    b"22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n"
    b"30 22 0:40 / /home/u/mnt rw,nosuid,nodev shared:5 - fuse.bindfs /src rw,user_id=1000\n"
    b"31 22 0:41 / /media/stick rw shared:6 - fuseblk /dev/sdb1 rw\n"
    b"32 22 0:42 / /tmp rw shared:7 - tmpfs tmpfs rw\n"
    b"garbage line without a separator\n"
    b"33 22 x:y / /bad rw - ext4 /dev/x rw\n"
)
MAPS = (
    b"55d0c0000000-55d0c0001000 r--p 00000000 fe:01 131 /usr/bin/prog\n"
    b"7f0000000000-7f0000001000 r-xp 00000000 00:28 77 /home/u/mnt/libevil.so\n"
    b"7f0000100000-7f0000101000 rw-p 00000000 00:00 0 \n"
    b"7f0000200000-7f0000201000 r--p 00000000 00:2a 9 /tmp/lib.so\n"
)


def test_fuse_mounts_of_every_name_are_the_stallable_ones() -> None:
    safe, stallable = mounts.safe_devices(MOUNTINFO)
    assert safe == {os.makedev(254, 1), os.makedev(0, 42)}
    assert stallable == {os.makedev(0, 40), os.makedev(0, 41)}


def test_maps_give_each_file_mapping_its_device_and_skip_anonymous_memory() -> None:
    assert mounts.file_mappings(MAPS) == [
        (0x55D0C0000000, 0x55D0C0001000, os.makedev(0xFE, 1)),
        (0x7F0000000000, 0x7F0000001000, os.makedev(0, 0x28)),
        (0x7F0000200000, 0x7F0000201000, os.makedev(0, 0x2A)),
    ]


def test_a_cut_maps_table_loses_its_cut_line_only() -> None:
    line = b"%012x-%012x r--p 00000000 fe:01 131 /usr/lib/x.so\n"
    maps = b"".join(line % (0x1000 * i, 0x1000 * i + 0x800) for i in range(1, 20000))
    assert len(maps) > mounts.TABLE_MAX
    survey = mounts.Survey(maps[: mounts.TABLE_MAX], MOUNTINFO, b"")
    whole = mounts.TABLE_MAX // len(line % (0, 0))
    assert len(survey.touchable_starts()) == whole, "the cut line was parsed"


def test_root_device_is_the_last_mount_on_slash() -> None:
    stacked = MOUNTINFO + b"40 22 0:40 / / rw - fuse.bindfs /src rw\n"
    assert mounts._root_device(MOUNTINFO) == os.makedev(254, 1)
    assert mounts._root_device(stacked) == os.makedev(0, 40)
    assert mounts._root_device(b"") is None


def test_survey_touches_local_files_only_and_knows_devices_from_either_table(
    tmp_path: Path,
) -> None:
    """A chrooted process's table lacks the mount its root is on (ext4 254:1 here): ours has
    it. FUSE in either table, or a device in neither, is never touched."""
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "maps").write_bytes(MAPS + b"7f0000300000-7f0000301000 r--p 0 0:63 5 /x/unknown.so\n")
    theirs = b"\n".join(line for line in MOUNTINFO.splitlines() if b" - ext4 " not in line)
    (proc / "mountinfo").write_bytes(theirs + b"\n")
    (tmp_path / "own").write_bytes(MOUNTINFO)
    fd = os.open(proc, os.O_RDONLY | os.O_DIRECTORY)
    try:
        survey = mounts.Survey.of(fd, own=str(tmp_path / "own"))
        assert survey.touchable_starts() == {0x55D0C0000000, 0x7F0000200000}
        assert not survey.root_ok, "their root mount is not in their table: not looked at"
        (proc / "mountinfo").write_bytes(MOUNTINFO + b"40 22 0:40 / / rw - fuse.x /s rw\n")
        assert not mounts.Survey.of(fd, own=str(tmp_path / "own")).root_ok, "a FUSE root"
        (proc / "mountinfo").write_bytes(MOUNTINFO)
        assert mounts.Survey.of(fd, own=str(tmp_path / "own")).root_ok
    finally:
        os.close(fd)
