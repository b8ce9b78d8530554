"""`drkonqi-lite demo` (README's first command): the product's main job, end to end.

A real crash goes through the real kernel → collector → journald → tray app, and the user sees
the notification and the detail window; everything the demo changed is restored.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from drkonqi_lite_collector import config
from drkonqi_lite_collector.admin import hook_install
from tests.conftest import CORE_PATTERN, CORE_PIPE_LIMIT


def test_demo_shows_a_real_crash_and_restores_everything(
    core_pattern: None, journald: None, tmp_path: Path
) -> None:
    before = (CORE_PATTERN.read_text(), CORE_PIPE_LIMIT.read_text())
    hook = hook_install.site_dir(config.Paths("/")) / f"{hook_install.MODULE}.pth"
    hook_before = hook.exists()
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}  # no desktop: Xvfb + dunst
    cli = Path(sys.executable).with_name("drkonqi-lite")
    out = subprocess.run([str(cli), "demo", "--output", str(tmp_path)], env=env,
                         capture_output=True, text=True, timeout=240, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert (CORE_PATTERN.read_text(), CORE_PIPE_LIMIT.read_text()) == before
    # The system's Python does not keep loading a hook from this checkout after the demo.
    assert hook.exists() == hook_before, f"the demo left {hook} behind"

    crash = json.loads((tmp_path / "crash.json").read_text())
    assert crash["signal_name"] == "SIGSEGV"
    assert crash["comm"].startswith("python3")
    assert crash["core_state"] == "present"
    for shot in ("notification.png", "detail-window.png", "desktop.png"):
        data = (tmp_path / shot).read_bytes()
        assert data.startswith(b"\x89PNG"), shot
        assert len(data) > 5_000, f"{shot} looks empty"
    entry = (tmp_path / "journal-entry.export").read_bytes()
    assert b"MESSAGE_ID=fc2e22bc6ee647b6b90729ab34a250b1" in entry
    assert b"Stack trace of thread" in entry
    assert f"PID: {crash['pid']}" in (tmp_path / "coredumpctl-info.txt").read_text()
