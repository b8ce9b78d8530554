"""Good neighbours on Plasma: where KDE's DrKonqi is installed, systemd-coredump stays the handler.

DrKonqi shows crash dialogs only for systemd-coredump's entries (benchmarks/README.md measures
it with the real drkonqi-coredump-processor). These tests run the real `install`, `status` and
`uninstall` on the real core_pattern, with DrKonqi's files under the test's prefix laid out as
Debian's drkonqi package and its postinst lay them out — copied from the real package, which
CI installs (packaging/debian-build-deps.txt).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from drkonqi_lite_collector.admin import drkonqi, pattern
from tests.conftest import need
from tests.integration.harness import Harness

CLI = str(Path(sys.executable).with_name("drkonqi-lite-collector"))
SYSTEMD = "|/lib/systemd/systemd-coredump %P %u %g %s %t 9223372036854775808 %h %d"
CORE_PATTERN = Path("/proc/sys/kernel/core_pattern")


def _package_files() -> list[str]:
    out = subprocess.run(["dpkg", "-L", "drkonqi"], capture_output=True, text=True, check=False)
    need(out.returncode == 0, "Debian's drkonqi package is not installed")
    return out.stdout.split()


@pytest.fixture
def with_drkonqi(harness: Harness) -> Harness:
    """The real package's processor unit and the link its postinst makes, under the prefix."""
    shipped = [p for p in _package_files() if p.endswith("drkonqi-coredump-processor@.service")]
    assert shipped, "the drkonqi package no longer ships drkonqi-coredump-processor@.service"
    for unit in shipped:
        dest = harness.prefix / unit.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(unit, dest)
    link = Path("/") / drkonqi.PROCESSOR_ENABLED
    need(link.is_symlink(), f"drkonqi's postinst did not create {link}")
    mine = harness.prefix / drkonqi.PROCESSOR_ENABLED
    mine.parent.mkdir(parents=True)
    # The same absolute target as deb-systemd-helper's: it dangles under the prefix.
    mine.symlink_to(link.readlink())
    return harness


def _cli(h: Harness, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, f"--prefix={h.prefix}", *args], capture_output=True, text=True, check=False
    )


def test_the_real_package_is_recognised(with_drkonqi: Harness) -> None:
    found = drkonqi.DrKonqi(str(with_drkonqi.prefix))
    assert found.installed
    assert found.enabled
    assert found.sees("systemd-coredump")
    assert not found.sees("drkonqi-lite-collector")


def test_install_leaves_systemd_coredump_to_drkonqi_and_says_why(
    with_drkonqi: Harness, core_pattern: None
) -> None:
    CORE_PATTERN.write_text(SYSTEMD + "\n")
    refused = _cli(with_drkonqi, "install")
    assert refused.returncode == 1
    assert CORE_PATTERN.read_text().strip() == SYSTEMD, "systemd-coredump stays the handler"
    line = refused.stderr.strip()
    assert "\n" not in line, "one line on stderr"
    assert "DrKonqi" in line
    assert "--force" in line
    assert "turns DrKonqi's crash dialogs off" in line

    status = _cli(with_drkonqi, "status")
    assert status.returncode == 0
    assert "crash handler:   systemd-coredump" in status.stdout
    assert "KDE DrKonqi:     shows these crashes" in status.stdout


def test_install_force_states_the_consequence_and_uninstall_gives_drkonqi_back(
    with_drkonqi: Harness, core_pattern: None
) -> None:
    CORE_PATTERN.write_text(SYSTEMD + "\n")
    forced = _cli(with_drkonqi, "install", "--force")
    assert forced.returncode == 0, forced.stderr
    assert pattern.handler_kind(CORE_PATTERN.read_text().strip()) == "drkonqi-lite-collector"
    assert "DrKonqi will show no crash dialogs" in forced.stderr
    assert "uninstall" in forced.stderr

    status = _cli(with_drkonqi, "status")
    assert "KDE DrKonqi:     installed but shows NO crash dialogs" in status.stdout

    assert _cli(with_drkonqi, "uninstall").returncode == 0
    assert CORE_PATTERN.read_text().strip() == SYSTEMD
    assert "KDE DrKonqi:     shows these crashes" in _cli(with_drkonqi, "status").stdout


def test_without_drkonqi_status_says_so(harness: Harness, core_pattern: None) -> None:
    CORE_PATTERN.write_text("core\n")
    status = _cli(harness, "status")
    assert "KDE DrKonqi:     not installed" in status.stdout
    installed = _cli(harness, "install")
    assert installed.returncode == 0
    assert "DrKonqi" not in installed.stderr


def test_plain_core_files_with_drkonqi_installs_and_notes_drkonqi(
    with_drkonqi: Harness, core_pattern: None
) -> None:
    CORE_PATTERN.write_text("core\n")
    idle = _cli(with_drkonqi, "status").stdout
    assert "KDE DrKonqi:     installed but shows NO crash dialogs" in idle
    assert "systemd-coredump, which is not the handler" in idle
    installed = _cli(with_drkonqi, "install")
    assert installed.returncode == 0
    assert pattern.handler_kind(CORE_PATTERN.read_text().strip()) == "drkonqi-lite-collector"
    assert "gets crashes only through systemd-coredump" in installed.stderr
