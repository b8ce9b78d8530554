"""CoreTap on small cores built byte by byte (milliseconds, no tools).

The synthetic core has the kernel's layout: ELF header, program headers, a PT_NOTE with one
NT_PRSTATUS (whose SP points into a big stack segment) and an NT_FILE, then the segments.
"""

from __future__ import annotations

import os
import struct

import pytest

from drkonqi_lite_collector.unwinder import elf, elfcore
from drkonqi_lite_collector.unwinder.coretap import CoreTap
from tests.unit.collector.unwinder.elfbytes import note

STACK_VA = 0x7FFF_0000_0000
STACK_SIZE = 8 * 1024 * 1024
TEXT_VA = 0x5555_0000_0000


def build_core(sp: int) -> tuple[bytes, int]:
    """A core with a text segment (64 KiB, file-backed) and an 8 MiB stack; returns (core, off)."""
    prstatus = bytearray(112 + 27 * 8 + 8)
    struct.pack_into("<Q", prstatus, 112 + 19 * 8, sp)
    nt_file = struct.pack("<QQ", 1, 4096) + struct.pack("<QQQ", TEXT_VA, TEXT_VA + 65536, 0)
    notes = note(b"CORE", 1, bytes(prstatus)) + note(b"CORE", elfcore.NT_FILE, nt_file + b"/x\0")
    phnum = 3
    notes_off = 64 + phnum * 56
    text_off = (notes_off + len(notes) + 4095) & ~4095
    stack_off = text_off + 65536
    ehdr = bytearray(64)
    ehdr[:7] = b"\x7fELF\x02\x01\x01"
    struct.pack_into("<HHI", ehdr, 16, elfcore.ET_CORE, elfcore.EM_X86_64, 1)
    struct.pack_into("<Q", ehdr, 32, 64)
    struct.pack_into("<HHHH", ehdr, 52, 64, 56, phnum, 64)
    phdrs = struct.pack("<IIQQQQQQ", elf.PT_NOTE, 4, notes_off, 0, 0, len(notes), 0, 1)
    phdrs += struct.pack("<IIQQQQQQ", elf.PT_LOAD, 5, text_off, TEXT_VA, 0, 65536, 65536, 4096)
    phdrs += struct.pack(
        "<IIQQQQQQ", elf.PT_LOAD, 6, stack_off, STACK_VA, 0, STACK_SIZE, STACK_SIZE, 4096
    )
    body = bytearray(stack_off + STACK_SIZE)
    body[: 64 + len(phdrs)] = ehdr + phdrs
    body[notes_off : notes_off + len(notes)] = notes
    # Recognisable content: every 8-byte word holds its own file offset.
    for off in range(text_off, len(body), 4096):
        body[off : off + 8] = struct.pack("<Q", off)
    return bytes(body), stack_off


def image(tap: CoreTap) -> bytes:
    tap.finish()
    return os.pread(tap.fd, tap.size, 0)


@pytest.mark.parametrize("chunk", [1, 7, 4096, 65536, 1 << 20, 1 << 30])
def test_tap_keeps_the_stack_window_whatever_the_chunking(chunk: int) -> None:
    sp = STACK_VA + STACK_SIZE - 200 * 1024
    core, stack_off = build_core(sp)
    data = core
    with CoreTap() as tap:
        step = chunk if chunk > 64 else 1 << 16  # tiny chunks only through the head
        pos = 0
        while pos < len(data):
            n = chunk if pos < 8192 else step
            tap.feed(memoryview(data)[pos : pos + n])
            pos += n
        img = image(tap)
        assert len(img) == len(core)
        assert tap.error is None
        assert not tap.truncated
        sp_off = stack_off + (sp - STACK_VA)
        # The stack near SP and everything above it (the callers' frames) is there...
        window = slice(sp_off - 4096, stack_off + STACK_SIZE)
        assert img[window] == core[window]
        # ... the far bottom of the 8 MiB stack is not: bounded memory whatever the core.
        assert img[stack_off + 4096 : stack_off + 8192] == bytes(4096)
        assert tap.kept < 2 * 1024 * 1024


def test_text_segment_keeps_only_its_first_page() -> None:
    core, stack_off = build_core(STACK_VA + STACK_SIZE - 4096)
    text_off = stack_off - 65536
    with CoreTap() as tap:
        tap.feed(core)
        img = image(tap)
    assert img[text_off : text_off + 4096] == core[text_off : text_off + 4096]
    assert img[text_off + 4096 : stack_off] == bytes(65536 - 4096)


def test_truncated_core_is_marked() -> None:
    core, stack_off = build_core(STACK_VA + STACK_SIZE - 4096)
    with CoreTap() as tap:
        tap.feed(core[: stack_off + 100])
        tap.finish()
        assert tap.truncated
    with CoreTap() as tap:
        tap.feed(core[:100])  # cut inside the program headers
        tap.finish()
        assert tap.truncated


@pytest.mark.parametrize("garbage", [b"", b"\x7fELF", b"MZ" + bytes(100), os.urandom(4096)])
def test_not_a_core(garbage: bytes) -> None:
    with CoreTap() as tap:
        tap.feed(garbage)
        tap.finish()
        assert tap.error is not None or tap.truncated
