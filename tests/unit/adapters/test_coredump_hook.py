"""The systemd-coredump hook: it pokes as the crashing user only, and refuses bad instances."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from drkonqi_lite.adapters.wakeup import wakeup_path
from tests.conftest import REPO


@pytest.mark.usefixtures("root")
def test_coredump_hook_sends_as_the_crashing_user_only() -> None:
    """The hook runs as root but pokes as the crash's uid:gid: the user's own socket is
    reached, a root-only socket (where a planted symlink could point) is not."""
    from drkonqi_lite.adapters.coredump_hook import poke_as  # noqa: PLC0415

    uid = 4242
    tmp_path = Path(tempfile.mkdtemp(prefix="dkl-hook-"))  # pytest's is 0700: not for 4242
    tmp_path.chmod(0o755)
    mine = wakeup_path(str(tmp_path / "user"))
    mine.parent.mkdir(parents=True, mode=0o700)
    os.chown(mine.parent.parent, uid, uid)
    os.chown(mine.parent, uid, uid)
    roots = tmp_path / "root.sock"
    with (
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s_user,
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s_root,
    ):
        s_user.bind(str(mine))
        os.chown(mine, uid, uid)
        mine.chmod(0o600)
        s_root.bind(str(roots))
        roots.chmod(0o600)
        try:
            assert poke_as(uid, uid, mine)
            assert s_user.recv(16) == b""
            assert not poke_as(uid, uid, roots)
        finally:
            shutil.rmtree(tmp_path)


def test_coredump_hook_refuses_a_bad_instance() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "drkonqi_lite", "coredump-hook", "../../etc"],
        capture_output=True, text=True, check=False, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1, out.stderr
    assert "is not a systemd-coredump@.service instance" in out.stderr
