"""The kernel-facing collector's import boundary, checked in a fresh interpreter.

The kernel keeps a crashed process frozen while the collector runs (core_pipe_limit > 0), so
the handler path imports only what it needs: no Qt, no D-Bus, nothing of the app (DESIGN.md
§3), and none of the pure-Python stdlib modules that cost milliseconds at start-up (enum,
typing, re, pathlib, dataclasses, contextlib, socket, signal, argparse, configparser). A new
import of one of them on the handler path fails here, with the module named.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import zstandard

import drkonqi_lite_collector

FORBIDDEN = {
    # the process boundary
    "PySide6",
    "shiboken6",
    "dbus_next",
    "qasync",
    "drkonqi_lite",
    "systemd",
    # slow to import, not needed to handle a crash
    "enum",
    "typing",
    "re",
    "pathlib",
    "dataclasses",
    "contextlib",
    "socket",
    "signal",
    "argparse",
    "configparser",
    "json",
    "hashlib",
    "inspect",
    "importlib.util",
    "zstandard",
}


def test_handler_path_imports_nothing_slow_or_foreign(tmp_path: Path) -> None:
    # The launcher's layout (pattern.write_launcher): the package by its import name, then the
    # site-packages that hold zstandard, and no site.py (-IS).
    (tmp_path / "drkonqi_lite_collector").symlink_to(drkonqi_lite_collector.__path__[0])
    site = str(Path(zstandard.__file__).parent.parent)
    code = (
        f"import sys; sys.path[:0] = [{str(tmp_path)!r}, {site!r}]\n"
        "import drkonqi_lite_collector.main\n"
        "stage = sorted(sys.modules)\n"
        "import drkonqi_lite_collector.worker.supervisor\n"  # the in-process path
        "sys.stdout.write(repr([stage, sorted(sys.modules)]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-IS", "-c", code], capture_output=True, text=True, check=True, env={}
    )
    stage, everything = (set(m) for m in json.loads(out.stdout.replace("'", '"')))
    assert not {m for m in stage if m.startswith("zstandard")}, (
        "the kernel-facing stage only forwards: no zstd, no handler"
    )
    assert "drkonqi_lite_collector.worker.handler" not in stage
    assert "zstandard.backend_c" in everything, "zstd's C backend is loaded directly"
    loaded = stage | everything
    allowed = {"zstandard.backend_c"}  # the C extension alone, without its package __init__
    bad = sorted(
        m
        for m in loaded - allowed
        if m in FORBIDDEN or m.split(".")[0] in FORBIDDEN - {"importlib"}
    )
    assert not bad, f"the crash handler path imports {bad}"


def test_commands_still_work_with_their_imports() -> None:
    """The slow modules are imported lazily by the commands that need them."""
    out = subprocess.run(
        [sys.executable, "-m", "drkonqi_lite_collector.main", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "install" in out.stdout
    assert "replay" in out.stdout
