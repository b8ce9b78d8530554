"""The built Debian package passes lintian, Debian's package checker, without errors.

Runs on the .deb that DRKONQI_LITE_DEB names (`make deb`; .ci/run sets it, so under CI=true a
missing package fails). The one tag the bundled venv makes unavoidable is overridden, with the
reason, in packaging/debian/drkonqi-lite.lintian-overrides; an override that no longer matches
fails too, so none outlives its reason.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.conftest import need, which

DEB = os.environ.get("DRKONQI_LITE_DEB", "")


def test_lintian_reports_no_errors() -> None:
    need(bool(DEB), "DRKONQI_LITE_DEB is not set (make deb)")
    assert Path(DEB).is_file(), f"DRKONQI_LITE_DEB={DEB} does not exist"
    out = subprocess.run(
        # -I: also the informational tags, among them unused-override.
        [which("lintian"), "-I", "--tag-display-limit", "0", "--fail-on", "error", DEB],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    lines = out.stdout.splitlines()
    errors = [line for line in lines if line.startswith("E: ")]
    assert not errors, "lintian errors:\n" + "\n".join(errors)
    stale = [line for line in lines if "unused-override" in line or "mismatched-override" in line]
    assert not stale, "overrides without a tag to override:\n" + "\n".join(stale)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
