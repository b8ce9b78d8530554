"""Installing the unhandled-exception hook (python_hook.py) into the system's Python.

`drkonqi-lite-collector install` for a pip install: the system interpreter's first site
directory (site.getsitepackages()[0]: /usr/local/lib/python3.X/dist-packages on Debian, the
admin's own; the Debian package ships the same two files in /usr/lib/python3/dist-packages) gets
`drkonqi_lite_python_hook.py`, a byte-for-byte copy of python_hook.py, and
`drkonqi_lite_python_hook.pth`, whose one line site.py runs at every interpreter start. The line
names this installation's collector package and prefix, so the hook loads exception_report from
root-owned files of this installation and nothing from sys.path. `uninstall` removes both.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from drkonqi_lite_collector import config
from drkonqi_lite_collector.pyhook import python_hook

#: The system's interpreter (Debian's; a pip install into a venv is not the system).
SYSTEM_PYTHON = Path("/usr/bin/python3")
MODULE = "drkonqi_lite_python_hook"
#: Where the Debian package puts the hook: an `install` there adds no second one.
PACKAGED_SITE = Path("/usr/lib/python3/dist-packages")


class HookError(RuntimeError):
    """The hook cannot be installed (the reason is a sentence for the admin)."""


def site_dir(paths: config.Paths, python: Path = SYSTEM_PYTHON) -> Path:
    """PREFIX + the system interpreter's first site directory."""
    try:
        out = subprocess.run(
            [str(python), "-I", "-S", "-c", "import site; print(site.getsitepackages()[0])"],
            capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as e:
        raise HookError(f"cannot ask {python} for its site directory: {e}") from e
    site = out.stdout.strip()
    if not site.startswith("/"):
        raise HookError(f"{python} names no absolute site directory ({site!r})")
    return Path(paths.prefix, site.lstrip("/"))


def pth_line(collector_lib: Path, prefix: str) -> str:
    """The .pth line (site.py runs lines that start with "import")."""
    return f"import {MODULE}; {MODULE}.install({str(collector_lib)!r}, {prefix!r})\n"


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_bytes(data)
    tmp.chmod(0o644)
    tmp.replace(path)


def install(paths: config.Paths, collector_lib: Path) -> Path | None:
    """Install the hook; the site directory, or None when the packaged hook is there."""
    if paths.prefix == "/" and (PACKAGED_SITE / f"{MODULE}.pth").exists():
        return None
    site = site_dir(paths)
    site.mkdir(mode=0o755, parents=True, exist_ok=True)
    _write(site / f"{MODULE}.py", Path(python_hook.__file__).read_bytes())
    # Compiled by the interpreter that will run it (its own .pyc tag): users cannot write
    # __pycache__ here, and compiling the hook at every start would be its largest cost.
    compile_cmd = [str(SYSTEM_PYTHON), "-I", "-S", "-m", "py_compile", str(site / f"{MODULE}.py")]
    try:
        subprocess.run(compile_cmd, capture_output=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError) as e:
        raise HookError(f"cannot compile the hook with {SYSTEM_PYTHON}: {e}") from e
    # Last: the .pth names the module, which must be complete before any interpreter reads it.
    _write(site / f"{MODULE}.pth", pth_line(collector_lib, paths.prefix).encode())
    return site


def uninstall(paths: config.Paths) -> Path | None:
    """Remove the hook that `install` wrote; the site directory it was in, or None."""
    try:
        site = site_dir(paths)
    except HookError:
        return None
    pth = site / f"{MODULE}.pth"
    if not pth.exists():
        return None
    pth.unlink()  # first: no interpreter starting now imports a half-removed hook
    (site / f"{MODULE}.py").unlink(missing_ok=True)
    for pyc in (site / "__pycache__").glob(f"{MODULE}.*.pyc"):
        pyc.unlink()
    return site
