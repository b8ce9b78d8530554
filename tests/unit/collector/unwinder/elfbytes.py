"""Small ELF files and notes built byte by byte, for the readers' tests (no compiler)."""

from __future__ import annotations

import struct

ET_DYN = 3
ET_CORE = 4
EM_X86_64 = 62


def pad(b: bytes) -> bytes:
    return b + bytes(-len(b) % 4)


def note(name: bytes, ntype: int, desc: bytes) -> bytes:
    return struct.pack("<III", len(name) + 1, len(desc), ntype) + pad(name + b"\0") + pad(desc)


def ehdr(
    e_type: int = ET_DYN,
    *,
    phoff: int = 64,
    phnum: int = 0,
    phentsize: int = 56,
    shoff: int = 0,
    shnum: int = 0,
    shstrndx: int = 0,
) -> bytearray:
    head = bytearray(64)
    head[:7] = b"\x7fELF\x02\x01\x01"
    struct.pack_into("<HHI", head, 16, e_type, EM_X86_64, 1)
    struct.pack_into("<QQ", head, 32, phoff, shoff)
    struct.pack_into("<HHHHHH", head, 52, 64, phentsize, phnum, 64, shnum, shstrndx)
    return head


def phdr(p_type: int, offset: int, filesz: int, vaddr: int = 0, flags: int = 4) -> bytes:
    return struct.pack("<IIQQQQQQ", p_type, flags, offset, vaddr, vaddr, filesz, filesz, 4)


def shdr(name: int, offset: int = 0, size: int = 0) -> bytes:
    return struct.pack("<IIQQQQIIQQ", name, 3, 0, 0, offset, size, 0, 0, 1, 0)


def library(notes: bytes = b"", soname: bytes = b"libdemo.so.1") -> bytes:
    """A shared object: PT_LOAD over the file, PT_DYNAMIC (DT_STRTAB, DT_SONAME), PT_NOTE with
    `notes`, and sections named "", ".dynstr", ".debug_info"."""
    strtab = b"\0" + soname + b"\0"
    shstr = b"\0.dynstr\0.debug_info\0"
    phnum = 3
    at = 64 + phnum * 56
    dyn_off = at
    # DT_STRTAB (the address 0x1000, where the PT_LOAD maps the string table), DT_SONAME
    # (offset 1 in it), DT_NULL.
    dynamic = struct.pack("<qQqQqQ", 5, 0x1000, 14, 1, 0, 0)
    str_off = dyn_off + len(dynamic)
    note_off = str_off + len(strtab)
    shstr_off = note_off + len(notes)
    sh_off = shstr_off + len(shstr)
    body = ehdr(ET_DYN, phnum=phnum, shoff=sh_off, shnum=3, shstrndx=1)
    body += phdr(1, str_off, len(strtab), vaddr=0x1000)
    body += phdr(2, dyn_off, len(dynamic))
    body += phdr(4, note_off, len(notes))
    body += dynamic + strtab + notes + shstr
    body += shdr(0) + shdr(1, shstr_off, len(shstr)) + shdr(9)
    return bytes(body)
