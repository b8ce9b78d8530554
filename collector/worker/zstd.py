"""zstandard's C backend, loaded without the package's __init__.

`import zstandard` runs an __init__ that imports `platform` and `typing` to choose between
its C and CFFI backends: ~10 ms, a quarter of the collector's whole budget for a small crash
(the kernel keeps the crashed process frozen meanwhile). The collector only needs the C
backend's ZstdCompressor, so it loads that extension module directly, and falls back to the
normal import wherever the extension is not where the package keeps it.
"""

from __future__ import annotations

import importlib.machinery
import os
import sys

TYPE_CHECKING = False  # see handler.py
if TYPE_CHECKING:
    from types import ModuleType


def _load_backend() -> ModuleType:
    for entry in sys.path:
        pkg = os.path.join(entry, "zstandard")
        try:
            names = os.listdir(pkg)
        except OSError:
            continue
        for name in names:
            if name.startswith("backend_c.") and name.endswith(".so"):
                fullname = "zstandard.backend_c"
                path = os.path.join(pkg, name)
                loader = importlib.machinery.ExtensionFileLoader(fullname, path)
                # importlib.util would import contextlib & co.; the machinery is enough.
                spec = importlib.machinery.ModuleSpec(fullname, loader, origin=path)
                module: ModuleType = loader.create_module(spec)
                loader.exec_module(module)
                return module
        break
    import zstandard  # noqa: PLC0415 - the slow but always-correct path

    return zstandard


_backend = _load_backend()
ZstdCompressor = _backend.ZstdCompressor
ZstdCompressionParameters = _backend.ZstdCompressionParameters
FLUSH_FRAME: int = _backend.FLUSH_FRAME
FLUSH_BLOCK: int = _backend.FLUSH_BLOCK
