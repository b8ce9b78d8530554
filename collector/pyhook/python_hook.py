"""The unhandled-exception hook for the system's Python interpreters (installed as a .pth).

`drkonqi-lite-collector install` (and the Debian package) copy this file into the system
interpreters' site directory as `drkonqi_lite_python_hook.py`, next to a .pth file whose one
line, run by site.py at every interpreter start, calls `install(COLLECTOR_LIB, PREFIX)`.

It runs in every Python program on the machine, so at start it imports nothing and does one
thing: put `Hook` in sys.excepthook. Only when a program dies of an exception does the hook load
the collector's `exception_report` module (from COLLECTOR_LIB, without touching sys.path) to
record the crash. Whatever happens then, the program's own traceback has already been printed by
the previous hook: recording can fail, never turn the exception into a different failure.
"""

import sys

TYPE_CHECKING = False  # nothing imported at start: this runs in every Python program
if TYPE_CHECKING:
    from types import ModuleType, TracebackType

#: Python package name of the collector: a program that already imported it keeps its copy.
_PACKAGE = "drkonqi_lite_collector"


class Hook:
    """sys.excepthook: print the traceback as before, then record the crash if it is one."""

    __slots__ = ("collector_lib", "prefix", "previous")

    def __init__(self, collector_lib: str, prefix: str, previous: object) -> None:
        self.collector_lib = collector_lib
        self.prefix = prefix
        self.previous = previous

    def __call__(
        self, etype: type[BaseException], value: BaseException, tb: "TracebackType | None"
    ) -> None:
        previous = self.previous if callable(self.previous) else sys.__excepthook__
        try:
            previous(etype, value, tb)
        finally:
            try:
                if wanted(etype, value):
                    self._record(etype, value, tb)
            except BaseException:  # noqa: BLE001, S110 - a report must never add a failure
                pass

    def _record(
        self, etype: type[BaseException], value: BaseException, tb: "TracebackType | None"
    ) -> None:
        module = _load(self.collector_lib)
        module.record(etype, value, tb, prefix=self.prefix)


def wanted(etype: type[BaseException], value: BaseException) -> bool:
    """Is this a crash of a program run from a file? Not Ctrl+C, not an interactive session or
    `-c`, not a reader that closed our stdout (`prog | head`)."""
    if issubclass(etype, (KeyboardInterrupt, SystemExit, GeneratorExit)):
        return False
    if sys.flags.interactive or hasattr(sys, "ps1") or not sys.argv:
        return False
    if sys.argv[0] in ("-c", "-", ""):
        return False
    file = getattr(sys.modules.get("__main__"), "__file__", None)
    if not isinstance(file, str) or file.startswith("<"):
        return False  # stdin ("<stdin>"), -c, an embedding application
    if issubclass(etype, BrokenPipeError):
        import os  # noqa: PLC0415 - already imported by site; only a name lookup
        import stat  # noqa: PLC0415

        try:
            return not stat.S_ISFIFO(os.fstat(1).st_mode)
        except OSError:
            return False
    return True


def _load(collector_lib: str) -> "ModuleType":
    """pyhook/exception_report of the collector package in `collector_lib`."""
    name = _PACKAGE + ".pyhook.exception_report"
    if name in sys.modules:
        return sys.modules[name]
    import importlib  # noqa: PLC0415 - only on a crash
    import importlib.util  # noqa: PLC0415

    if _PACKAGE not in sys.modules:
        init = collector_lib + "/" + _PACKAGE + "/__init__.py"
        spec = importlib.util.spec_from_file_location(
            _PACKAGE, init, submodule_search_locations=[collector_lib + "/" + _PACKAGE]
        )
        if spec is None or spec.loader is None:
            raise ImportError(init)
        package = importlib.util.module_from_spec(spec)
        sys.modules[_PACKAGE] = package
        spec.loader.exec_module(package)
    return importlib.import_module(name)


def install(collector_lib: str, prefix: str = "/") -> None:
    """Called by the .pth line at interpreter start. Leaves a hook someone already set alone."""
    if sys.excepthook is sys.__excepthook__:
        sys.excepthook = Hook(collector_lib, prefix, sys.excepthook)
