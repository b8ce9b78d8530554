"""The one reader of ELF bytes: the header, the program and section headers, the notes.

Every ELF the collector reads is hostile: the core (its notes carry what the crashed program
chose: thread names, mapped file names, package notes) and the module files the crashed
program mapped, which its user may have crafted. 64-bit little-endian only (what the unwinder
supports). Every count, size and offset a file supplies is checked against the bytes there are
(the file's size, or a cap for a stream) before it is used: a malformed file raises
ElfFormatError saying what is wrong — never another exception, never a read or an allocation
of a size the file chose. Notes are the exception: the walk keeps the well-formed ones before
the first malformed one, as readelf does.

The core's reader (elfcore.py, in the worker as the core streams) and the module files' readers
(soname, sections, package notes: in the sandboxed unwinder child) both use it.
"""

from __future__ import annotations

import os
import struct

TYPE_CHECKING = False  # no typing at run time: see worker/handler.py
if TYPE_CHECKING:
    from collections.abc import Iterator

ELF_MAGIC = b"\x7fELF"
EHDR_SIZE = 64
PHDR_SIZE = 56
SHDR_SIZE = 64
NOTE_HEADER = 12
PT_LOAD = 1
PT_DYNAMIC = 2
PT_NOTE = 4
DT_NULL = 0
DT_STRTAB = 5
DT_SONAME = 14
#: A module file with more program headers than this is not a library (ld.so's own are ~12).
PHNUM_MAX = 256
SECTIONS_MAX = 4096
#: Bytes of section names, of the dynamic section and of a soname read from a module file.
SECTION_NAMES_MAX = 1 << 20
DYNAMIC_MAX = 64 * 1024
SONAME_MAX = 256
#: Notes kept from one walk (a core has a handful per thread; 64 Ki threads' worth is plenty).
NOTES_COUNT_MAX = 1 << 16

#: (owner name without its NUL, type, descriptor) of one note.
Note = tuple[bytes, int, memoryview]


class ElfFormatError(ValueError):
    """The bytes are not a 64-bit little-endian ELF file we can read (the message says why)."""


class Header:
    """The ELF header's fields the readers use (e_type, e_machine, the two tables)."""

    __slots__ = (
        "machine",
        "phentsize",
        "phnum",
        "phoff",
        "shentsize",
        "shnum",
        "shoff",
        "shstrndx",
        "type",
    )
    type: int
    machine: int
    phoff: int
    phentsize: int
    phnum: int
    shoff: int
    shentsize: int
    shnum: int
    shstrndx: int

    def __init__(self, buf: bytes | bytearray | memoryview) -> None:
        self.type, self.machine = struct.unpack_from("<HH", buf, 16)
        self.phoff, self.shoff = struct.unpack_from("<QQ", buf, 32)
        self.phentsize, self.phnum, self.shentsize, self.shnum, self.shstrndx = struct.unpack_from(
            "<HHHHH", buf, 54
        )

    @property
    def ph_end(self) -> int:
        """Where the program header table ends in the file."""
        return self.phoff + self.phnum * PHDR_SIZE


def parse_header(buf: bytes | bytearray | memoryview, size: int, phnum_max: int = 0xFFFF) -> Header:
    """The header at the start of `buf`, whose program header table must lie within the
    first `size` bytes (the file's size, or a cap) and count at most `phnum_max` entries."""
    if len(buf) < EHDR_SIZE or buf[:4] != ELF_MAGIC:
        raise ElfFormatError("not an ELF file")
    if buf[4] != 2 or buf[5] != 1:
        raise ElfFormatError("not a 64-bit little-endian ELF file")
    header = Header(buf)
    if header.phnum and header.phentsize != PHDR_SIZE:
        raise ElfFormatError("implausible program header table")
    if header.phnum > phnum_max or header.ph_end > size:
        raise ElfFormatError("implausible program header table")
    return header


class Segment:
    """One program header."""

    __slots__ = ("filesz", "flags", "memsz", "offset", "type", "vaddr")

    def __init__(
        self, type: int, flags: int, offset: int, vaddr: int, filesz: int, memsz: int
    ) -> None:
        self.type = type
        self.flags = flags
        self.offset = offset
        self.vaddr = vaddr
        self.filesz = filesz
        self.memsz = memsz

    @property
    def end(self) -> int:
        """Where the segment's bytes end in the file."""
        return self.offset + self.filesz


def parse_segments(table: bytes | bytearray | memoryview) -> tuple[Segment, ...]:
    """The program headers in the bytes of the table (whole entries only)."""
    whole = bytes(table[: len(table) // PHDR_SIZE * PHDR_SIZE])
    return tuple(
        Segment(p_type, p_flags, p_offset, p_vaddr, p_filesz, p_memsz)
        for p_type, p_flags, p_offset, p_vaddr, _, p_filesz, p_memsz, _ in struct.iter_unpack(
            "<IIQQQQQQ", whole
        )
    )


def segments(buf: bytes | bytearray | memoryview, header: Header) -> tuple[Segment, ...]:
    """The program headers, from `buf` holding the file from offset 0 past the table."""
    if len(buf) < header.ph_end:
        raise ElfFormatError("program headers truncated")
    return parse_segments(buf[header.phoff : header.ph_end])


def iter_notes(data: bytes | bytearray | memoryview, limit: int = NOTES_COUNT_MAX) -> list[Note]:
    """(name, type, desc) of the well-formed notes of a PT_NOTE segment's bytes, up to the
    first one whose sizes reach past the data, at most `limit` of them."""
    out: list[Note] = []
    mv = memoryview(data).cast("B")
    pos, end = 0, len(mv)
    while pos + NOTE_HEADER <= end and len(out) < limit:
        namesz, descsz, ntype = struct.unpack_from("<III", mv, pos)
        name_at = pos + NOTE_HEADER
        desc_at = name_at + ((namesz + 3) & ~3)
        if desc_at + descsz > end:
            break
        name = bytes(mv[name_at : name_at + namesz]).rstrip(b"\0")
        out.append((name, ntype, mv[desc_at : desc_at + descsz]))
        pos = desc_at + ((descsz + 3) & ~3)
    return out


class ElfFile:
    """An ELF file open at `fd`, read with pread: every read lies within the file's size."""

    def __init__(self, fd: int, phnum_max: int = PHNUM_MAX) -> None:
        self.fd = fd
        self.size = os.fstat(fd).st_size
        self.header = parse_header(self.read(0, EHDR_SIZE), self.size, phnum_max)

    def read(self, offset: int, length: int) -> bytes:
        """Exactly `length` bytes at `offset`, which the file must hold."""
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ElfFormatError(f"{length} bytes at {offset} lie beyond the end of the file")
        data = os.pread(self.fd, length, offset)
        if len(data) != length:
            raise ElfFormatError("the file shrank while it was read")
        return data

    def read_upto(self, offset: int, length: int) -> bytes:
        """At most `length` bytes at `offset`, fewer where the file ends."""
        return self.read(offset, max(0, min(length, self.size - offset)))

    def segments(self) -> tuple[Segment, ...]:
        h = self.header
        return parse_segments(self.read(h.phoff, h.phnum * PHDR_SIZE))

    def notes(self, segment_max: int) -> Iterator[Note]:
        """The notes of every PT_NOTE segment that lies in the file and is at most
        `segment_max` bytes (a larger one is skipped: a module's notes are small)."""
        for seg in self.segments():
            if seg.type == PT_NOTE and seg.filesz <= segment_max and seg.end <= self.size:
                yield from iter_notes(self.read(seg.offset, seg.filesz))

    def section_names(self) -> list[bytes]:
        """The names of the sections, from the section header string table."""
        h = self.header
        if h.shentsize != SHDR_SIZE or not 0 < h.shnum <= SECTIONS_MAX or h.shstrndx >= h.shnum:
            raise ElfFormatError("implausible section header table")
        table = self.read(h.shoff, h.shnum * SHDR_SIZE)
        str_off, str_size = struct.unpack_from("<QQ", table, h.shstrndx * SHDR_SIZE + 24)
        names = self.read_upto(str_off, min(str_size, SECTION_NAMES_MAX))
        out = []
        for i in range(h.shnum):
            (name_off,) = struct.unpack_from("<I", table, i * SHDR_SIZE)
            end = names.find(b"\0", name_off)
            # A name the string table does not hold (or not terminate) is no name.
            out.append(names[name_off:end] if end >= 0 else b"")
        return out

    def soname(self) -> str | None:
        """DT_SONAME, found through PT_DYNAMIC and the PT_LOAD that maps DT_STRTAB."""
        phdrs = self.segments()
        dyn = next((p for p in phdrs if p.type == PT_DYNAMIC), None)
        if dyn is None:
            return None
        data = self.read_upto(dyn.offset, min(dyn.filesz, DYNAMIC_MAX))
        tags: dict[int, int] = {}
        for tag, value in struct.iter_unpack("<qQ", data[: len(data) // 16 * 16]):
            if tag == DT_NULL:
                break
            tags.setdefault(tag, value)
        if DT_SONAME not in tags or DT_STRTAB not in tags:
            return None
        # DT_STRTAB is an address: find the file offset through the PT_LOAD that maps it.
        strtab = tags[DT_STRTAB]
        for p in phdrs:
            if p.type == PT_LOAD and p.vaddr <= strtab < p.vaddr + p.filesz:
                at = p.offset + strtab - p.vaddr + tags[DT_SONAME]
                name = self.read_upto(at, SONAME_MAX).split(b"\0", 1)[0]
                return name.decode("utf-8", "backslashreplace") if name else None
        return None


def has_section(fd: int, wanted: bytes) -> bool:
    """Whether the ELF file at `fd` has a section called `wanted`; False for a malformed one."""
    try:
        # Sections only: a program header table of any length is no concern here.
        return wanted in ElfFile(fd, phnum_max=0xFFFF).section_names()
    except (OSError, ElfFormatError):
        return False


def soname(fd: int) -> str | None:
    """The DT_SONAME of the shared object at `fd`, or None (executables have none; so has a
    malformed file)."""
    try:
        return ElfFile(fd).soname()
    except (OSError, ElfFormatError):
        return None
