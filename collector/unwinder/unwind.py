"""The unwinder: elfutils' libdwfl through ctypes, the engine systemd-coredump uses.

Runs only inside the sandboxed child that stacktrace.analyze() forks (dropped privileges,
resource limits, a wall-clock timeout): libdw parses the hostile core and hostile ELF files, and
a bug in it may crash or hang, which costs that child only.  No exec and no interpreter start:
libdw.so.1 is loaded into the already running collector image.

Like systemd's src/shared/elf-util.c (parse_core/thread_callback/frame_callback): the core is
reported with dwfl_core_file_report, threads are walked in note order (the kernel writes the
dumping thread first), at most 64 threads of 64 frames; a frame's function is the innermost
DWARF subprogram/inlined scope when debug info exists, else the ELF symbol.  Unlike systemd,
the ELF files come from descriptors the collector opened through /proc/PID/map_files (the exact
mapped inodes), never from paths resolved in the crashed process's root.
"""

from __future__ import annotations

import ctypes
import os

from drkonqi_lite_collector.unwinder.elf import has_section, soname
from drkonqi_lite_collector.unwinder.package import package_note

FRAMES_MAX = 64
THREADS_MAX = 64
ELF_C_READ_MMAP = 8
EV_CURRENT = 1
DW_TAG_ENTRY_POINT = 0x03
DW_TAG_INLINED_SUBROUTINE = 0x1D
DW_TAG_SUBPROGRAM = 0x2E
DW_AT_LINKAGE_NAME = 0x6E
DW_AT_MIPS_LINKAGE_NAME = 0x2007

# The child loads this module on the critical path of a small crash: no typing, collections
# or json at run time (see handler.py); these names are for the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    #: (pc, function, module, offset) as systemd prints them.
    Frame = tuple[int, str | None, str | None, int]
    Emit = Callable[[dict[str, Any]], None]

_vp = ctypes.c_void_p
_u64 = ctypes.c_uint64
FIND_ELF = ctypes.CFUNCTYPE(ctypes.c_int, _vp, _vp, ctypes.c_char_p, _u64, _vp, _vp)
MODULE_CB = ctypes.CFUNCTYPE(ctypes.c_int, _vp, _vp, ctypes.c_char_p, _u64, _vp)
THREAD_CB = ctypes.CFUNCTYPE(ctypes.c_int, _vp, _vp)
FRAME_CB = ctypes.CFUNCTYPE(ctypes.c_int, _vp, _vp)


class DwarfDie(ctypes.Structure):
    """libdw.h Dwarf_Die: only its size matters here (four pointer-sized words)."""

    _fields_ = [("addr", _vp), ("cu", _vp), ("abbrev", _vp), ("padding", ctypes.c_long)]


class DwarfAttribute(ctypes.Structure):
    """libdw.h Dwarf_Attribute."""

    _fields_ = [("code", ctypes.c_uint), ("form", ctypes.c_uint), ("valp", _vp), ("cu", _vp)]


class DwflCallbacks(ctypes.Structure):
    """libdwfl.h Dwfl_Callbacks."""

    _fields_ = [
        ("find_elf", _vp),
        ("find_debuginfo", _vp),
        ("section_address", _vp),
        ("debuginfo_path", _vp),
    ]


def _load() -> tuple[ctypes.CDLL, ctypes.CDLL, ctypes.CDLL]:
    elf = ctypes.CDLL("libelf.so.1")
    dw = ctypes.CDLL("libdw.so.1")
    libc = ctypes.CDLL(None)
    sig: dict[str, tuple[Any, list[Any]]] = {
        "dwfl_begin": (_vp, [_vp]),
        "dwfl_end": (None, [_vp]),
        "dwfl_errno": (ctypes.c_int, []),
        "dwfl_errmsg": (ctypes.c_char_p, [ctypes.c_int]),
        "dwfl_core_file_report": (ctypes.c_int, [_vp, _vp, ctypes.c_char_p]),
        "dwfl_report_end": (ctypes.c_int, [_vp, _vp, _vp]),
        "dwfl_core_file_attach": (ctypes.c_int, [_vp, _vp]),
        "dwfl_getmodules": (ctypes.c_ssize_t, [_vp, MODULE_CB, _vp, ctypes.c_ssize_t]),
        "dwfl_module_build_id": (ctypes.c_int, [_vp, ctypes.POINTER(_vp), ctypes.POINTER(_u64)]),
        "dwfl_module_getelf": (_vp, [_vp, ctypes.POINTER(_u64)]),
        "dwfl_getthreads": (ctypes.c_int, [_vp, THREAD_CB, _vp]),
        "dwfl_thread_tid": (ctypes.c_int, [_vp]),
        "dwfl_thread_getframes": (ctypes.c_int, [_vp, FRAME_CB, _vp]),
        "dwfl_frame_pc": (
            ctypes.c_bool,
            [_vp, ctypes.POINTER(_u64), ctypes.POINTER(ctypes.c_bool)],
        ),
        "dwfl_addrmodule": (_vp, [_vp, _u64]),
        "dwfl_module_addrdie": (ctypes.POINTER(DwarfDie), [_vp, _u64, ctypes.POINTER(_u64)]),
        "dwfl_module_addrname": (ctypes.c_char_p, [_vp, _u64]),
        "dwfl_module_info": (
            ctypes.c_char_p,
            [_vp, _vp, ctypes.POINTER(_u64), _vp, _vp, _vp, _vp, _vp],
        ),
        "dwarf_getscopes": (
            ctypes.c_int,
            [ctypes.POINTER(DwarfDie), _u64, ctypes.POINTER(ctypes.POINTER(DwarfDie))],
        ),
        "dwarf_tag": (ctypes.c_int, [ctypes.POINTER(DwarfDie)]),
        "dwarf_attr_integrate": (
            ctypes.POINTER(DwarfAttribute),
            [ctypes.POINTER(DwarfDie), ctypes.c_uint, ctypes.POINTER(DwarfAttribute)],
        ),
        "dwarf_formstring": (ctypes.c_char_p, [ctypes.POINTER(DwarfAttribute)]),
        "dwarf_diename": (ctypes.c_char_p, [ctypes.POINTER(DwarfDie)]),
    }
    for name, (res, args) in sig.items():
        fn = getattr(dw, name)
        fn.restype, fn.argtypes = res, args
    elf.elf_version.restype, elf.elf_version.argtypes = ctypes.c_uint, [ctypes.c_uint]
    elf.elf_begin.restype, elf.elf_begin.argtypes = _vp, [ctypes.c_int, ctypes.c_int, _vp]
    elf.elf_end.restype, elf.elf_end.argtypes = ctypes.c_int, [_vp]
    libc.free.restype, libc.free.argtypes = None, [_vp]
    return elf, dw, libc


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", "backslashreplace")


def _dwfl_error(dw: ctypes.CDLL) -> str:
    msg = dw.dwfl_errmsg(-1)
    return _text(msg) or "unknown libdwfl error"


class Unwinder:
    """One core, unwound once. Results go to `emit` as they are found (thread by thread)."""

    def __init__(
        self,
        core_fd: int,
        files: Mapping[int, int],
        *,
        emit: Emit,
        debuginfo_path: bytes | None = None,
    ) -> None:
        self._core_fd = core_fd
        self._files = files
        self._emit = emit
        self._libelf, self._dw, self._libc = _load()
        # The C callbacks and the path string must outlive every libdw call that may use them.
        self._find_elf_cb = FIND_ELF(self._find_elf)
        self._module_cb = MODULE_CB(self._on_module)
        self._thread_cb = THREAD_CB(self._on_thread)
        self._frame_cb = FRAME_CB(self._on_frame)
        self._debuginfo_path = ctypes.c_char_p(debuginfo_path)
        self._frames: list[Frame] = []
        self._threads = 0
        self._modules: list[tuple[str, str, int]] = []
        self._packages: dict[str, dict[str, str]] = {}
        self._dwarf_ok: dict[int, bool] = {}
        self._labels: dict[int, str | None] = {}
        self._dwfl: int | None = None

    def _find_elf(
        self,
        _mod: int | None,
        _userdata: int | None,
        _modname: bytes | None,
        base: int,
        _file_name: int | None,
        _elfp: int | None,
    ) -> int:
        """libdwfl find_elf: a dup of the file mapped at the module's lowest address, or -1.

        libdwfl checks that file's build-id against the one in the core's memory and closes
        the descriptor it is given.  No path is ever opened here.
        """
        fd = self._files.get(base)
        return os.dup(fd) if fd is not None else -1

    def _on_module(
        self, mod: int | None, _ud: int | None, name: bytes | None, start: int, _arg: int | None
    ) -> int:
        dw = self._dw
        bias = _u64()
        dw.dwfl_module_getelf(mod, ctypes.byref(bias))
        bits, vaddr = _vp(), _u64()
        n = dw.dwfl_module_build_id(mod, ctypes.byref(bits), ctypes.byref(vaddr))
        build_id = ctypes.string_at(bits, n).hex() if n > 0 and bits.value else ""
        modname = _text(name) or "(unnamed)"
        self._modules.append((modname, build_id, start))
        fd = self._files.get(start)
        meta = package_note(fd) if fd is not None else None
        if meta is not None:
            # systemd merges the build-id into each module's package metadata.
            self._packages[modname] = {**meta, "buildId": build_id} if build_id else meta
        return 0

    def _on_thread(self, thread: int | None, _arg: int | None) -> int:
        if self._threads >= THREADS_MAX:
            self._emit({"cut": f"more than {THREADS_MAX} threads"})
            return 1
        self._threads += 1
        self._frames = []
        tid = self._dw.dwfl_thread_tid(thread)
        rc = self._dw.dwfl_thread_getframes(thread, self._frame_cb, None)
        error = _dwfl_error(self._dw) if rc < 0 and not self._frames else None
        self._emit({"thread": tid, "frames": self._frames, "error": error})
        return 0

    def _on_frame(self, frame: int | None, _arg: int | None) -> int:
        if len(self._frames) >= FRAMES_MAX:
            return 1
        pc, activation = _u64(), ctypes.c_bool()
        if not self._dw.dwfl_frame_pc(frame, ctypes.byref(pc), ctypes.byref(activation)):
            return 1
        self._frames.append(self._symbolize(pc.value, activation.value))
        return 0

    def _symbolize(self, pc: int, activation: bool) -> Frame:
        dw = self._dw
        # A return address points after the call: look up the call itself (pc - 1).
        adjusted = pc if activation else pc - 1
        mod = dw.dwfl_addrmodule(self._dwfl, adjusted)
        if not mod:
            return (pc, None, None, 0)
        symbol: str | None = None
        bias = _u64()
        start = _u64()
        path = _text(
            dw.dwfl_module_info(mod, None, ctypes.byref(start), None, None, None, None, None)
        )
        modname = self._label(start.value) or path
        cudie = (
            dw.dwfl_module_addrdie(mod, adjusted, ctypes.byref(bias))
            if self._use_dwarf(start.value)
            else None
        )
        if cudie:
            symbol = self._dwarf_name(cudie, adjusted - bias.value)
        if symbol is None:
            symbol = _text(dw.dwfl_module_addrname(mod, adjusted))
        return (pc, symbol, modname, pc - start.value)

    def _label(self, start: int) -> str | None:
        """How systemd names a module in a frame: a library by its DT_SONAME, else by path.

        (systemd-coredump gets this from libdwfl, which reads the soname from the file it
        opened itself; ours opens nothing by path, so we read it from the mapped file.)
        """
        if start not in self._labels:
            fd = self._files.get(start)
            self._labels[start] = soname(fd) if fd is not None else None
        return self._labels[start]

    def _use_dwarf(self, start: int) -> bool:
        """Whether to look up DWARF scopes (inlined function names) in this module.

        Only for files that carry their own .debug_info (locally built programs).  A distro
        library's separate debug file under /usr/lib/debug still names every frame through its
        full .symtab, but opening its DWARF means inflating megabytes of compressed sections:
        ~35 ms for glibc's alone, most of systemd-coredump's time on this machine.
        """
        cached = self._dwarf_ok.get(start)
        if cached is None:
            fd = self._files.get(start)
            cached = fd is not None and has_section(fd, b".debug_info")
            self._dwarf_ok[start] = cached
        return cached

    def _dwarf_name(self, cudie: Any, addr: int) -> str | None:
        dw = self._dw
        scopes = ctypes.POINTER(DwarfDie)()
        n = dw.dwarf_getscopes(cudie, addr, ctypes.byref(scopes))
        try:
            for i in range(max(n, 0)):
                die = ctypes.pointer(scopes[i])
                if dw.dwarf_tag(die) not in (
                    DW_TAG_SUBPROGRAM,
                    DW_TAG_INLINED_SUBROUTINE,
                    DW_TAG_ENTRY_POINT,
                ):
                    continue
                space = DwarfAttribute()
                attr = dw.dwarf_attr_integrate(die, DW_AT_MIPS_LINKAGE_NAME, ctypes.byref(space))
                if not attr:
                    attr = dw.dwarf_attr_integrate(die, DW_AT_LINKAGE_NAME, ctypes.byref(space))
                name = dw.dwarf_formstring(attr) if attr else None
                if name is None:
                    name = dw.dwarf_diename(die)
                if name is not None:
                    return _text(name)
        finally:
            if n > 0:
                self._libc.free(scopes)
        return None

    def run(self) -> None:
        """Report the core's modules, emit them, then emit each thread's frames."""
        dw, libelf = self._dw, self._libelf
        libelf.elf_version(EV_CURRENT)
        elf = libelf.elf_begin(self._core_fd, ELF_C_READ_MMAP, None)
        if not elf:
            self._emit({"fatal": "elf_begin failed on the core"})
            return
        callbacks = DwflCallbacks(
            find_elf=ctypes.cast(self._find_elf_cb, _vp),
            find_debuginfo=ctypes.cast(dw.dwfl_standard_find_debuginfo, _vp),
            section_address=ctypes.cast(dw.dwfl_offline_section_address, _vp),
            debuginfo_path=ctypes.cast(ctypes.pointer(self._debuginfo_path), _vp)
            if self._debuginfo_path.value is not None
            else None,
        )
        self._dwfl = dw.dwfl_begin(ctypes.byref(callbacks))
        try:
            if dw.dwfl_core_file_report(self._dwfl, elf, None) < 0:
                self._emit({"fatal": "dwfl_core_file_report: " + _dwfl_error(dw)})
                return
            dw.dwfl_report_end(self._dwfl, None, None)
            dw.dwfl_getmodules(self._dwfl, self._module_cb, None, 0)
            self._emit({"modules": self._modules, "packages": self._packages})
            if dw.dwfl_core_file_attach(self._dwfl, elf) < 0:
                self._emit({"fatal": "dwfl_core_file_attach: " + _dwfl_error(dw)})
                return
            if dw.dwfl_getthreads(self._dwfl, self._thread_cb, None) < 0 and not self._threads:
                self._emit({"fatal": "dwfl_getthreads: " + _dwfl_error(dw)})
        finally:
            dw.dwfl_end(self._dwfl)
            libelf.elf_end(elf)
