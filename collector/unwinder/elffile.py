"""Facts read from an ELF file descriptor: whether it has a section, its DT_SONAME.

64-bit little-endian ELF only (what the unwinder supports).  The files are the crashed
program's choice: every read is bounded and a malformed file gives "no"/None, never an error.
Called in the sandboxed unwinder child.
"""

from __future__ import annotations

import os
import struct

SECTIONS_MAX = 4096
PHNUM_MAX = 256
DYNAMIC_MAX = 64 * 1024
PT_LOAD = 1
PT_DYNAMIC = 2
DT_NULL = 0
DT_STRTAB = 5
DT_SONAME = 14


def _ehdr(fd: int) -> bytes | None:
    ehdr = os.pread(fd, 64, 0)
    if len(ehdr) < 64 or ehdr[:4] != b"\x7fELF" or ehdr[4] != 2 or ehdr[5] != 1:
        return None
    return ehdr


def has_section(fd: int, wanted: bytes) -> bool:
    """Whether the 64-bit LE ELF file at `fd` has a section called `wanted` (bounded reads)."""
    try:
        ehdr = _ehdr(fd)
        if ehdr is None:
            return False
        (shoff,) = struct.unpack_from("<Q", ehdr, 40)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", ehdr, 58)
        if shentsize != 64 or not 0 < shnum <= SECTIONS_MAX or shstrndx >= shnum:
            return False
        table = os.pread(fd, shnum * 64, shoff)
        if len(table) < shnum * 64:
            return False
        _, _, _, _, str_off, str_size, *_ = struct.unpack_from("<IIQQQQIIQQ", table, shstrndx * 64)
        names = os.pread(fd, min(str_size, 1 << 20), str_off)
        for i in range(shnum):
            (name_off,) = struct.unpack_from("<I", table, i * 64)
            if names[name_off : name_off + len(wanted) + 1] == wanted + b"\0":
                return True
    except (OSError, struct.error, OverflowError):
        return False
    return False


def soname(fd: int) -> str | None:
    """The DT_SONAME of the shared object at `fd`, or None (executables have none)."""
    try:
        ehdr = _ehdr(fd)
        if ehdr is None:
            return None
        (phoff,) = struct.unpack_from("<Q", ehdr, 32)
        phentsize, phnum = struct.unpack_from("<HH", ehdr, 54)
        if phentsize != 56 or phnum > PHNUM_MAX:
            return None
        table = os.pread(fd, phnum * 56, phoff)
        phdrs = list(struct.iter_unpack("<IIQQQQQQ", table[: len(table) // 56 * 56]))
        dyn = next((p for p in phdrs if p[0] == PT_DYNAMIC), None)
        if dyn is None:
            return None
        data = os.pread(fd, min(dyn[5], DYNAMIC_MAX), dyn[2])
        tags: dict[int, int] = {}
        for tag, value in struct.iter_unpack("<qQ", data[: len(data) // 16 * 16]):
            if tag == DT_NULL:
                break
            tags.setdefault(tag, value)
        if DT_SONAME not in tags or DT_STRTAB not in tags:
            return None
        # DT_STRTAB is an address: find the file offset through the PT_LOAD that maps it.
        strtab = tags[DT_STRTAB]
        for p_type, _, p_offset, p_vaddr, _, p_filesz, _, _ in phdrs:
            if p_type == PT_LOAD and p_vaddr <= strtab < p_vaddr + p_filesz:
                raw = os.pread(fd, 256, p_offset + strtab - p_vaddr + tags[DT_SONAME])
                name = raw.split(b"\0", 1)[0]
                return name.decode("utf-8", "backslashreplace") if name else None
    except (OSError, struct.error, OverflowError):
        return None
    return None
