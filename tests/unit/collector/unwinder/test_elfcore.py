"""The core's head: the plan of what to keep, the program header table's bound, the notes."""

from __future__ import annotations

import random
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


def test_each_thread_stack_gets_its_window_among_many_threads_and_mappings() -> None:
    """300 thread stacks above their guard pages, an SP in every other one (in no order), an SP
    in a guard page and one in no mapping: windows around the SPs, the tops of the stacks no SP
    points into, the first page of each, the main stack's top."""
    size, mib = 4 << 20, 1 << 20
    segs, wanted, sps = [], [], []
    for i in range(300):
        va, off = 0x7F00_0000_0000 + i * (size + 4096), 4096 * (1 + i * 1025)
        segs.append(elf.Segment(elf.PT_LOAD, 0, off, va, 0, 4096))  # the guard page
        segs.append(elf.Segment(elf.PT_LOAD, 6, off, va + 4096, size, size))
        wanted.append((off, off + 4096))
        if i % 2:
            wanted.append((off + size - elfcore.THREAD_STACK_TOP, off + size))
        else:
            sps.append(va + 4096 + 2 * mib)
            wanted.append((off + 2 * mib - elfcore.STACK_BELOW_SP, off + 3 * mib))
    top = segs[-1]
    wanted.append((top.end - elfcore.MAIN_STACK_TOP, top.end))
    random.Random(3).shuffle(sps)
    sps += [segs[10].vaddr + 8, 0x10]  # a guard page's, nobody's
    head = elfcore.CoreHead(elfcore.EM_X86_64, tuple(segs), 4096)
    assert elfcore.keep_plan(head, sps, [], budget=1 << 40) == elfcore.merge(wanted)
