"""A pip install, as a user of another distribution would make it: the wheel built from this
tree, installed (not editable) into a fresh venv of Debian's Python with its dependencies.

The installed app must see every resource the tree has (icons, the D-Bus interface XML) where
the wheel put them, desktops must find the launcher and the AppStream metadata under the
prefix, both programs answer --version, and `drkonqi-lite-collector install` says what a pip
install cannot do. Everything runs from a directory outside the tree, so that nothing is
imported from the source checkout by accident.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from drkonqi_lite_collector import __version__
from drkonqi_lite_collector.admin import pattern as pattern_mod
from tests.conftest import CORE_PATTERN
from tests.packaging.units import PACKAGING, ROOT

#: Debian's interpreter, as in the Makefile.
SYSTEM_PYTHON = "/usr/bin/python3.11"
RESOURCES = ROOT / "resources"
#: What the wheel must carry beyond resources/, by where a prefix install puts it.
DESKTOP_DATA = {
    "share/applications/drkonqi-lite-crash-reports.desktop": "drkonqi-lite-crash-reports.desktop",
    "share/metainfo/org.drkonqi_lite.CrashReports.metainfo.xml": (
        "org.drkonqi_lite.CrashReports.metainfo.xml"
    ),
    "etc/xdg/autostart/drkonqi-lite-autostart.desktop": "drkonqi-lite-autostart.desktop",
}

#: Run by the installed interpreter: what the app uses, as the app looks it up.
PROBE = """
import json, os, sys
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from PySide6.QtWidgets import QApplication
qt = QApplication([])
import drkonqi_lite.app as app, drkonqi_lite.qt.icons as icons, drkonqi_lite.qt.shell as shell
from drkonqi_lite.adapters import desktop_launch
env = {"XDG_DATA_DIRS": os.path.join(sys.prefix, "share")}
names = sorted(p.stem for p in icons.ICON_DIR.glob("*.svg"))
iconset = icons.IconSet(qt.palette())
print(json.dumps({
    "resources": str(app.RESOURCES),
    "icon_dir": str(icons.ICON_DIR),
    "files": sorted(str(p.relative_to(app.RESOURCES)) for p in app.RESOURCES.rglob("*")
                    if p.is_file()),
    "icons_drawn": [n for n in names if not iconset.get(n).isNull()],
    "app_icons": [n for n in ("drkonqi-lite", "drkonqi-lite-tray")
                  if not shell.icon(n, "no-such-theme-icon").isNull()],
    "launcher": str(desktop_launch.desktop_file("drkonqi-lite-crash-reports", env)),
    "metainfo": [str(d) for d in desktop_launch.metainfo_dirs(env)],
}))
"""


def tree_resources() -> list[str]:
    return sorted(str(p.relative_to(RESOURCES)) for p in RESOURCES.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (found,) = out.glob("drkonqi_lite-*.whl")
    return found


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel and its dependencies (from the package index or pip's cache)."""
    if not Path(SYSTEM_PYTHON).exists():
        pytest.fail(f"{SYSTEM_PYTHON} missing (apt-get install python3)")
    path = tmp_path_factory.mktemp("venv") / "venv"
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(path)], check=True, timeout=120)
    subprocess.run(
        [str(path / "bin/pip"), "install", "-q", str(wheel)],
        check=True,
        capture_output=True,
        timeout=900,
    )
    return path


def run(venv: Path, *argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / argv[0]), *argv[1:]],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def test_wheel_carries_every_resource(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        data = {
            name.split(".data/data/", 1)[1]: zf.read(name)
            for name in zf.namelist()
            if ".data/data/" in name
        }
    for rel in tree_resources():
        assert data.get(f"share/drkonqi-lite/{rel}") == (RESOURCES / rel).read_bytes(), rel
    for installed, source in DESKTOP_DATA.items():
        assert data.get(installed) == (PACKAGING / source).read_bytes(), installed
    assert (
        data.get("share/icons/hicolor/scalable/apps/drkonqi-lite.svg")
        == (RESOURCES / "drkonqi-lite.svg").read_bytes()
    )


def test_installed_app_sees_every_resource(venv: Path, tmp_path: Path) -> None:
    probe = run(venv, "python", "-c", PROBE, cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr
    seen = json.loads(probe.stdout)
    share = venv / "share"
    assert seen["resources"] == str(share / "drkonqi-lite"), "not the venv's own copy"
    assert seen["icon_dir"] == str(share / "drkonqi-lite/icons")
    assert seen["files"] == tree_resources()
    # Every icon of the crash window is drawn, and the app's own and tray icons load.
    assert seen["icons_drawn"] == sorted(p.stem for p in (RESOURCES / "icons").glob("*.svg"))
    assert seen["app_icons"] == ["drkonqi-lite", "drkonqi-lite-tray"]
    # With the prefix in XDG_DATA_DIRS (as /usr/local/share is), the launcher and metadata.
    assert seen["launcher"] == str(share / "applications/drkonqi-lite-crash-reports.desktop")
    assert str(share / "metainfo") in seen["metainfo"]
    assert (share / "metainfo/org.drkonqi_lite.CrashReports.metainfo.xml").is_file()


def test_both_programs_answer_version(venv: Path, tmp_path: Path) -> None:
    for program in ("drkonqi-lite", "drkonqi-lite-collector"):
        out = run(venv, program, "--version", cwd=tmp_path)
        assert (out.returncode, out.stdout, out.stderr) == (0, f"{program} {__version__}\n", "")
    metadata = run(
        venv,
        "python",
        "-c",
        "import importlib.metadata as m; print(m.version('drkonqi-lite'))",
        cwd=tmp_path,
    )
    assert metadata.stdout.strip() == __version__, "pyproject.toml and the code disagree"


def test_install_without_the_package_says_what_it_cannot_do(
    venv: Path, tmp_path: Path, core_pattern: None
) -> None:
    if pattern_mod.PACKAGED.exists():
        pytest.fail(f"{pattern_mod.PACKAGED} exists: the Debian package is installed here")
    # Short: core_pattern holds at most 127 bytes, and names the prefix twice.
    prefix = Path(tempfile.mkdtemp(prefix="dkl-pip-", dir="/tmp"))
    collector = ("drkonqi-lite-collector", f"--prefix={prefix}")
    out = run(venv, *collector, "install", "--force", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    try:
        assert CORE_PATTERN.read_text().startswith(f"|{prefix}/collector "), "installed"
        text = out.stdout
        assert "without the Debian package" in text
        assert "reboot" in text
        assert "drkonqi-lite-collector.socket" in text, "no split service"
        assert "drkonqi-lite-cores.socket" in text, "no core deletion service"
        assert "apt install ./build/deb/drkonqi-lite_" in text, "how to get them"
    finally:
        undone = run(venv, *collector, "uninstall", cwd=tmp_path)
        shutil.rmtree(prefix)
    assert undone.returncode == 0, undone.stderr
