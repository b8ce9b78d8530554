"""The one ELF reader's bounds: every size, offset and count a hostile file gives is checked
against the file before it is used, and a malformed file is a clear ElfFormatError (or, for
the module readers, "no"/None), never another exception or a read of the file's choosing."""

from __future__ import annotations

import os
import random
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from drkonqi_lite_collector.unwinder import elf, elfcore, package
from tests.unit.collector.unwinder.elfbytes import ET_CORE, ehdr, library, note, phdr, shdr

#: Writes the bytes to a file and gives a read-only fd on it (closed after the test).
Opener = Callable[[bytes], int]
PACKAGE = {"type": "deb", "name": "demo", "version": "1.0-1", "architecture": "amd64"}


@pytest.fixture
def open_elf(tmp_path: Path) -> Iterator[Opener]:
    fds: list[int] = []

    def opener(data: bytes) -> int:
        path = tmp_path / f"f{len(fds)}"
        path.write_bytes(data)
        fds.append(os.open(path, os.O_RDONLY))
        return fds[-1]

    yield opener
    for fd in fds:
        os.close(fd)


def _package_lib() -> bytes:
    meta = b'{"type":"deb","name":"demo","version":"1.0-1","architecture":"amd64"}'
    return library(note(b"GNU", 3, bytes(20)) + note(b"FDO", package.NOTE_TYPE_PACKAGE, meta))


def test_a_well_formed_library_is_read_whole(open_elf: Opener) -> None:
    fd = open_elf(_package_lib())
    assert elf.soname(fd) == "libdemo.so.1"
    assert elf.has_section(fd, b".debug_info")
    assert not elf.has_section(fd, b".debug")  # a prefix of a name is not the name
    assert package.package_note(fd) == PACKAGE


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "not an ELF file"),
        (b"\x7fELF\x02\x01\x01" + bytes(20), "not an ELF file"),  # header cut at 27 bytes
        (b"\x7fELF\x01\x01\x01" + bytes(57), "not a 64-bit little-endian ELF file"),
        (bytes(ehdr(phentsize=32, phnum=1)), "implausible program header table"),
        (bytes(ehdr(phnum=65535)) + bytes(4096), "implausible program header table"),
        (bytes(ehdr(phoff=1 << 63, phnum=1)), "implausible program header table"),
    ],
)
def test_a_malformed_header_is_a_clear_error(data: bytes, why: str) -> None:
    with pytest.raises(elf.ElfFormatError, match=why):
        elf.parse_header(data, len(data))


def test_the_program_header_count_is_capped_for_module_files(open_elf: Opener) -> None:
    many = bytes(ehdr(phnum=elf.PHNUM_MAX + 1)) + bytes(56 * (elf.PHNUM_MAX + 1))
    with pytest.raises(elf.ElfFormatError, match="implausible program header table"):
        elf.ElfFile(open_elf(many))
    assert elf.soname(open_elf(many)) is None
    assert package.package_note(open_elf(many)) is None


def test_a_file_cut_short_is_read_no_further_than_its_end(open_elf: Opener) -> None:
    whole = _package_lib()
    for size in (10, 64, 64 + 56, len(whole) // 2, len(whole) - 1):
        fd = open_elf(whole[:size])
        assert package.package_note(fd) in (None, PACKAGE)
        assert elf.soname(fd) in (None, "libdemo.so.1")
        assert elf.has_section(fd, b".debug_info") is False


def test_a_core_head_claiming_more_than_the_cap_is_refused() -> None:
    head = ehdr(ET_CORE, phnum=65535)  # 3.5 MiB of program headers: within HEAD_MAX
    assert elfcore.core_header(head).ph_end == 64 + 65535 * 56
    far = ehdr(ET_CORE, phoff=elfcore.HEAD_MAX, phnum=1)
    with pytest.raises(elf.ElfFormatError, match="implausible program header table"):
        elfcore.core_header(far)
    with pytest.raises(elfcore.CoreFormatError, match="not a core file"):
        elfcore.core_header(ehdr(phnum=1))
    with pytest.raises(elf.ElfFormatError, match="program headers truncated"):
        elfcore.parse_head(bytes(ehdr(ET_CORE, phnum=2)) + phdr(4, 0, 0))


@pytest.mark.parametrize("field", [0, 1], ids=["namesz", "descsz"])
def test_a_note_whose_size_reaches_past_the_segment_ends_the_walk(field: int) -> None:
    good = note(b"CORE", 1, b"x" * 8)
    sizes = [5, 8]
    sizes[field] = 0xFFFFFFFF
    bad = struct.pack("<III", *sizes, 1) + bytes(64)
    notes = elf.iter_notes(good + bad + good)
    assert [(name, ntype, bytes(desc)) for name, ntype, desc in notes] == [(b"CORE", 1, b"x" * 8)]


def test_the_note_walk_keeps_at_most_its_limit() -> None:
    empty = struct.pack("<III", 0, 0, 7)
    data = empty * (elf.NOTES_COUNT_MAX + 10)
    assert len(elf.iter_notes(data)) == elf.NOTES_COUNT_MAX
    assert len(elf.iter_notes(data, 3)) == 3


def test_bad_package_notes_give_no_package(open_elf: Opener) -> None:
    for desc in (b"[1, 2]", b"\xff{", b'{"name": 1}', b"{"):
        assert package.package_note(open_elf(library(note(b"FDO", 0xCAFE1A7E, desc)))) is None
    # A note segment larger than a module's notes ever are is not read at all.
    big = note(b"FDO", 0xCAFE1A7E, b'{"name":"x"}' + b" " * package.NOTE_MAX)
    assert package.package_note(open_elf(library(big))) is None


def test_section_tables_the_file_does_not_hold_are_refused(open_elf: Opener) -> None:
    lib = bytearray(_package_lib())
    shoff, shnum = struct.unpack_from("<Q", lib, 40)[0], 3
    cases: dict[str, Callable[[bytearray], None]] = {
        "shnum huge": lambda b: struct.pack_into("<H", b, 60, 4097),
        "shoff past the end": lambda b: struct.pack_into("<Q", b, 40, 1 << 62),
        "shstrndx past the table": lambda b: struct.pack_into("<H", b, 62, shnum),
        "string table past the end": lambda b: b.__setitem__(
            slice(shoff + 64, shoff + 128), shdr(1, 1 << 62, 1 << 62)
        ),
    }
    for why, spoil in cases.items():
        data = bytearray(lib)
        spoil(data)
        assert not elf.has_section(open_elf(bytes(data)), b".debug_info"), why
        assert elf.soname(open_elf(bytes(data))) == "libdemo.so.1", f"{why}: phdrs still good"


def test_hostile_files_never_escape_the_readers_or_read_what_they_choose(
    open_elf: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random corruptions of a good library: every reader answers, and no read is larger
    than the file or a cap, wherever the corrupted sizes point."""
    reads: list[int] = []
    real_pread = os.pread

    def pread(fd: int, length: int, offset: int) -> bytes:
        reads.append(length)
        return real_pread(fd, length, offset)

    monkeypatch.setattr(os, "pread", pread)  # the readers' one way into a file
    lib = _package_lib()
    rng = random.Random(13)
    values = (0, 1 << 63, 0xFFFFFFFF)
    for _ in range(1500):
        data = bytearray(lib)
        for _ in range(rng.randint(1, 6)):
            at = rng.randrange(len(data) - 8)
            struct.pack_into("<Q", data, at, rng.choice((*values, rng.getrandbits(64))))
        fd = open_elf(bytes(data))
        assert elf.soname(fd) is None or isinstance(elf.soname(fd), str)
        assert isinstance(elf.has_section(fd, b".debug_info"), bool)
        meta = package.package_note(fd)
        assert meta is None or all(isinstance(v, str) for v in meta.values())
    assert max(reads) <= len(lib)
