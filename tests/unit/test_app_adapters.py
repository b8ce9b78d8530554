"""Adapters with real files and sockets in a temporary directory (no journald, no bus)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from drkonqi_lite.adapters.core_file import probe_core
from drkonqi_lite.adapters.desktop_entry import DesktopEntryIndex
from drkonqi_lite.adapters.service import SIGNATURES, CrashNotifierService, to_variants
from drkonqi_lite.adapters.state_store import StateStore
from drkonqi_lite.adapters.wakeup import WakeupSocket, poke, wakeup_path
from drkonqi_lite.domain.seen import SeenState
from drkonqi_lite.domain.trust import CoreProbe, TrustPolicy
from tests.conftest import which

REPO = Path(__file__).resolve().parents[2]


def test_core_probe_inside_storage_only(tmp_path: Path) -> None:
    storage = tmp_path / "coredump"
    storage.mkdir()
    policy = TrustPolicy(own_uid=1000, trusted_senders=frozenset({0}), storage_dirs=(str(storage),))
    (storage / "core.ok").write_bytes(b"x")
    (storage / "core.link").symlink_to(tmp_path / "secret")
    (tmp_path / "secret").write_text("secret")
    os.mkfifo(storage / "core.fifo")
    assert probe_core(policy, f"{storage}/core.ok") is CoreProbe.READABLE
    assert probe_core(policy, f"{storage}/core.link") is CoreProbe.NOT_A_FILE
    assert probe_core(policy, f"{storage}/core.fifo") is CoreProbe.NOT_A_FILE
    assert probe_core(policy, f"{storage}/core.gone") is CoreProbe.ABSENT
    assert probe_core(policy, str(tmp_path / "secret")) is CoreProbe.OUTSIDE_STORAGE
    assert probe_core(policy, f"{storage}/../secret") is CoreProbe.OUTSIDE_STORAGE


def test_wakeup_socket_permissions_and_drain(tmp_path: Path) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir()
    path = wakeup_path(str(runtime))
    path.parent.mkdir(mode=0o755)
    path.touch()  # a stale leftover where the socket goes
    wakeup = WakeupSocket(path)
    wakeup.open()
    try:
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert stat.S_ISSOCK(path.stat().st_mode)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert wakeup.drain() == 0
        for _ in range(3):
            assert poke(path)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(b"\x00" * 4096, str(path))  # content is ignored, whatever it is
        assert wakeup.drain() == 4
    finally:
        wakeup.close()
    assert not path.exists()
    assert not poke(path)


def test_wakeup_refuses_a_directory_owned_by_someone_else(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to chown")
    path = wakeup_path(str(tmp_path))
    path.parent.mkdir()
    os.chown(path.parent, 12345, 12345)
    with pytest.raises(OSError, match="not a directory owned by this user"):
        WakeupSocket(path).open()


def test_state_store_atomic_round_trip(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state", tmp_path / "config")
    assert store.load().cursor == ""
    state = SeenState()
    state.advance("s=1;i=2", 42)
    state.mute("/usr/bin/kate", "Kate")
    store.save(state)
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    again = store.load()
    assert again.cursor == "s=1;i=2"
    assert again.is_muted("/usr/bin/kate")
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["state.json"]
    store.path.write_text("{not json")
    assert store.load().cursor == ""
    (tmp_path / "config").mkdir()
    (tmp_path / "config/settings.ini").write_text("[App]\ncatchup_days = 1\n")
    assert store.settings().catchup_days == 1.0


def test_desktop_entries_name_the_program(tmp_path: Path) -> None:
    high, low = tmp_path / "high/applications", tmp_path / "low/applications"
    high.mkdir(parents=True)
    (low / "kde").mkdir(parents=True)
    (high / "org.kde.kate.desktop").write_text(
        "[Desktop Entry]\nType=Application\nName=Kate\nIcon=kate\nExec=env A=1 kate -b %U\n"
    )
    (low / "org.kde.kate.desktop").write_text(
        "[Desktop Entry]\nType=Application\nName=Overridden\nExec=kate\n"
    )
    (low / "kde" / "dolphin.desktop").write_text(
        "[Desktop Entry]\nType=Application\nName=Dolphin\nTryExec=/usr/bin/dolphin\nExec=x\n"
    )
    (low / "hidden.desktop").write_text(
        "[Desktop Entry]\nType=Application\nName=Hidden\nHidden=true\nExec=hidden\n"
    )
    index = DesktopEntryIndex([high, low])
    kate = index.lookup("/usr/bin/kate", "kate")
    assert (kate.name, kate.icon, kate.desktop_entry) == ("Kate", "kate", "org.kde.kate")
    assert index.lookup("/usr/bin/dolphin", "dolphin").desktop_entry == "kde-dolphin"
    assert index.lookup("/usr/bin/hidden", "hidden").name == "hidden"
    assert index.lookup("", "mystery").name == "mystery"


def test_shipped_introspection_xml_matches_the_service() -> None:
    class Backend:
        def unseen_count(self) -> int:
            return 0

    live = CrashNotifierService(Backend()).introspect().to_xml()  # type: ignore[arg-type]
    shipped = ET.parse(REPO / "resources/org.drkonqi_lite.CrashNotifier1.xml").getroot()  # noqa: S314
    (iface,) = shipped.findall("interface")

    def shape(element: ET.Element) -> set[tuple[str, str, tuple[str, ...]]]:
        out = set()
        for child in element:
            if child.tag in {"method", "signal", "property"}:
                args = tuple(f"{a.get('direction', 'out')}:{a.get('type')}" for a in child
                             if a.tag == "arg")  # fmt: skip
                out.add((child.tag, str(child.get("name")), args or (str(child.get("type")),)))
        return out

    assert shape(iface) == shape(live)
    assert iface.get("name") == live.get("name") == "org.drkonqi_lite.CrashNotifier1"


def test_variants_are_bus_safe() -> None:
    crash = {"id": "c1", "pid": 1 << 70, "uid": -5, "comm": "a\x00b", "seen": 1,
             "fields": {"K\x00": "v\x00"}, "unknown": "dropped"}  # fmt: skip
    out = to_variants(crash)
    assert out["pid"].value == (1 << 63) - 1
    assert out["uid"].value == 0
    assert out["comm"].value == "a\ufffdb"
    assert out["seen"].value is True
    assert out["fields"].value == {"K\ufffd": "v\ufffd"}
    assert "unknown" not in out
    assert set(SIGNATURES) >= {"id", "backtrace", "fields"}
    json.dumps({k: v.signature for k, v in out.items()})


def test_python_stack_marshals_as_list_of_dicts() -> None:
    from dbus_next.message import Message  # noqa: PLC0415

    frames = [{"function": "f\x00", "file": "/a.py", "line": 7}]
    threads = [{"tid": 3, "name": "MainThread", "crashed": True, "frames": frames}]
    out = to_variants({"python_stack": frames, "python_threads": threads})
    assert out["python_stack"].signature == "aa{sv}"
    assert out["python_stack"].value[0]["function"].value == "f\ufffd"
    assert out["python_stack"].value[0]["line"].value == 7
    assert out["python_threads"].value[0]["frames"].value[0]["file"].value == "/a.py"
    # The real marshaller takes it (a wrong nesting raises here, not on the user's bus).
    Message(path="/x", interface="a.b", member="C", signature="a{sv}", body=[out])._marshall()  # type: ignore[no-untyped-call]


def test_storage_watch_reacts_only_to_this_users_cores(tmp_path: Path) -> None:
    from drkonqi_lite.adapters.storage_watch import StorageWatch  # noqa: PLC0415

    boot = "0123456789abcdef0123456789abcdef"
    watch = StorageWatch(1000)
    watch.watch([str(tmp_path), str(tmp_path / "missing")])
    try:
        assert watch.watched == [str(tmp_path)]
        assert not watch.drain()
        (tmp_path / f"core.kate.1001.{boot}.42.1700000000000000.zst").touch()
        (tmp_path / "unrelated").touch()
        assert not watch.drain()  # another user's core, and a name that is not a core
        (tmp_path / f"core.kate.1000.{boot}.43.1700000000000000.zst").touch()
        assert watch.drain()
        assert not watch.drain()
    finally:
        watch.close()


def test_wakeup_leaves_the_socket_units_socket_alone(tmp_path: Path) -> None:
    """Started by hand while drkonqi-lite.socket listens at the path: the app must not unlink
    the unit's socket (crashes after the app ends would then start nothing)."""
    path = wakeup_path(str(tmp_path))
    path.parent.mkdir(mode=0o700)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as unit:
        unit.bind(str(path))
        with pytest.raises(OSError, match="socket unit"):
            WakeupSocket(path).open()
        assert poke(path)
        assert unit.recv(16) == b""  # the unit's socket still gets the datagram
    # Nobody listens any more: a stale socket file is replaced as before.
    wakeup = WakeupSocket(path)
    wakeup.open()
    wakeup.close()


PASSED_FD_PROBE = """
import os, socket, sys
from drkonqi_lite.adapters.wakeup import WakeupSocket, listened_socket, wakeup_path
sock = listened_socket()
assert "LISTEN_FDS" not in os.environ, "not inherited by what the app starts"
wakeup = WakeupSocket(wakeup_path(sys.argv[1]))
wakeup.adopt(sock)
print(wakeup.drain())
wakeup.close()
print(wakeup.path.exists())
"""


def test_socket_activation_passes_the_bound_socket(tmp_path: Path) -> None:
    """The real systemd-socket-activate, as drkonqi-lite.socket: it binds the path, a datagram
    starts the program, which takes fd 3 (LISTEN_FDS) and leaves the path to the unit."""
    activate = which("systemd-socket-activate")
    path = wakeup_path(str(tmp_path))
    path.parent.mkdir(mode=0o700)
    proc = subprocess.Popen(
        [activate, "--datagram", "-l", str(path), sys.executable, "-c", PASSED_FD_PROBE,
         str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ,
        "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert poke(path)
        assert poke(path)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, err
    assert out.split() == ["2", "True"], out + err


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
