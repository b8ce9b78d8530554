"""The folder is the boundary (STYLE.md): domain/ and session/ import no Qt, D-Bus or journald,
adapters/ no Qt.

Each module is imported in a fresh interpreter and its sys.modules inspected.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "drkonqi_lite"
FORBIDDEN = {
    "domain": ("PySide6", "dbus_next", "qasync", "systemd"),
    "adapters": ("PySide6", "qasync"),
    "qt": ("dbus_next", "qasync", "systemd"),
    # The demo's and the tests' desktop session: stdlib only, it starts the real things.
    "session": ("PySide6", "dbus_next", "qasync", "systemd"),
}


def _modules(folder: str) -> list[str]:
    return [f"drkonqi_lite.{folder}.{p.stem}" for p in sorted((PKG / folder).glob("*.py"))
            if p.stem != "__init__"]  # fmt: skip


@pytest.mark.parametrize(
    ("module", "banned"),
    [(m, banned) for folder, banned in FORBIDDEN.items() for m in _modules(folder)],
)
def test_import_boundary(module: str, banned: tuple[str, ...]) -> None:
    code = (f"import sys, {module}\n"
            f"bad = [m for m in sys.modules if m.split('.')[0] in {banned!r}]\n"
            "print(','.join(sorted(set(m.split('.')[0] for m in bad))))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)  # fmt: skip
    assert out.stdout.strip() == "", f"{module} imports {out.stdout.strip()}"


#: What the tray app's start loads before it has notified: the `drkonqi-lite` entry point, then
#: app.py (the first stage).
FIRST_STAGE = "drkonqi_lite.launch, drkonqi_lite.app"


@pytest.mark.parametrize("module", [FIRST_STAGE, "drkonqi_lite.notifier"])
def test_first_stage_starts_without_qt(module: str) -> None:
    """The tray app's first stage sends a cold start's notification before Qt is loaded
    (benchmarks/APP.md: Qt's import alone is most of the 200 ms), and needs none of the
    reporting (Sentry) code for it either."""
    banned = ("PySide6", "shiboken6", "qasync", "drkonqi_lite.adapters.reporter",
              "drkonqi_lite.adapters.crash_reporting")  # fmt: skip
    assert _loaded(module, banned) == "", f"{module} imports {_loaded(module, banned)}"


def test_first_stage_imports_only_what_the_notification_needs() -> None:
    """Each of these cost a cold start 1-10 ms of its 200 (benchmarks/APP.md) and is not needed
    before the notification: the command line's modules, the admin's reporting rules,
    systemd.journal's Python layer, tempfile (with shutil, bz2, lzma), html, OpenSSL's hashlib."""
    banned = ("drkonqi_lite.cli", "argparse", "drkonqi_lite.domain.reporting_policy",
              "drkonqi_lite.domain.dsn", "systemd.journal", "tempfile", "shutil", "html",
              "hashlib", "uuid")  # fmt: skip
    assert _loaded(FIRST_STAGE, banned) == ""


def _loaded(module: str, banned: tuple[str, ...]) -> str:
    """Which modules starting with one of `banned` importing `module` loads (comma-separated)."""
    names = tuple(b + "." for b in banned)
    loaded = f"sorted(m for m in sys.modules if m in {banned!r} or m.startswith({names!r}))"
    code = f"import sys, {module}\nprint(','.join({loaded}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)  # fmt: skip
    return out.stdout.strip()
