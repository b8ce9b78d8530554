"""The core's head: the plan of what to keep, the program header table's bound, the notes."""

from __future__ import annotations

import struct

import pytest

from drkonqi_lite_collector.unwinder import elf, elfcore
from tests.unit.collector.unwinder.elfbytes import note


def test_plan_budget_is_bounded_for_many_threads() -> None:
    segs = tuple(
        elf.Segment(
            elf.PT_LOAD, 6, 4096 * (1 + i * 2048), 0x1000_0000 * i, 8 << 20, 8 << 20
        )
        for i in range(1, 200)
    )
    head = elfcore.CoreHead(elfcore.EM_X86_64, segs, 4096)
    sps = [s.vaddr + (4 << 20) for s in segs]
    plan = elfcore.keep_plan(head, sps)
    assert sum(e - s for s, e in plan) <= elfcore.KEEP_BUDGET


def test_hostile_program_header_count_is_rejected() -> None:
    hdr = bytearray(64)
    hdr[:7] = b"\x7fELF\x02\x01\x01"
    struct.pack_into("<HH", hdr, 16, elfcore.ET_CORE, elfcore.EM_X86_64)
    struct.pack_into("<Q", hdr, 32, 1 << 40)
    struct.pack_into("<HH", hdr, 54, 56, 65535)
    with pytest.raises(elf.ElfFormatError, match="implausible program header table"):
        elfcore.core_header(hdr)


def test_siginfo_note_gives_signo_and_code() -> None:
    sig = struct.pack("<iii", 11, 0, 2) + b"\0" * 116  # SIGSEGV, SEGV_ACCERR
    notes = elf.iter_notes(
        note(b"CORE", elfcore.NT_PRSTATUS, b"\0" * 336) + note(b"CORE", elfcore.NT_SIGINFO, sig)
    )
    assert elfcore.siginfo(notes) == (11, 2)
    short = elf.iter_notes(note(b"CORE", elfcore.NT_SIGINFO, b"\1\0"))
    assert elfcore.siginfo(short) is None, "too short"
    assert elfcore.siginfo([]) is None
