"""Unhandled Python exceptions recorded as crashes by the hook in the system's interpreter.

Real Debian python3 (a venv of /usr/bin/python3 whose site directory is the prefix's, so site.py
runs the installed .pth exactly as on a real system), real scripts run as an unprivileged uid,
real journald; the entries are read back raw and through the app's crash record.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from drkonqi_lite.domain.crash import Crash, crash_from_entry
from drkonqi_lite.domain.trust import TrustPolicy
from drkonqi_lite_collector import config
from drkonqi_lite_collector.admin import hook_install, pattern
from drkonqi_lite_collector.journal.schema import BACKTRACE_MESSAGE_ID, Field
from drkonqi_lite_collector.pyhook import python_hook
from tests.conftest import CORE_PATTERN, need
from tests.integration import desktop as dk
from tests.integration.desktop import Desktop
from tests.integration.harness import COLLECTOR, Harness
from tests.integration.journal_read import Entry, entries, field, wait_entry

UID = 4242
app_desktop = dk.app_desktop
SYSTEM_PYTHON = Path("/usr/bin/python3")

APP = """\
import threading, time

def work():
    time.sleep(30)

threading.Thread(target=work, name="worker", daemon=True).start()

def inner(x):
    raise ValueError(f"bad value {x}")

def outer():
    inner(42)

outer()
"""


class Python:
    """The system interpreter with the hook installed under a test prefix."""

    def __init__(self, h: Harness) -> None:
        self.prefix = h.prefix
        self.root = h.prefix / "py"
        self.root.mkdir(mode=0o755)
        subprocess.run([str(SYSTEM_PYTHON), "-m", "venv", "--without-pip", str(self.venv)],
                       check=True)  # fmt: skip
        site = hook_install.site_dir(config.Paths(str(h.prefix)))
        site.mkdir(parents=True, exist_ok=True)
        venv_site = next((self.venv / "lib").glob("python3*/site-packages"))
        shutil.rmtree(venv_site)
        venv_site.symlink_to(site)
        self.site = site

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def script(self, name: str | bytes, text: str) -> Path:
        path = Path(os.fsdecode(os.path.join(os.fsencode(self.root), os.fsencode(name))))
        path.write_text(text)
        path.chmod(0o644)
        return path

    def run(self, *args: str | Path, env: dict[str, str] | None = None,
            stdin: str = "", uid: int = UID) -> subprocess.CompletedProcess[str]:  # fmt: skip
        cmd = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
               str(self.python), *map(str, args)]  # fmt: skip
        return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60,
                              cwd="/", env=env or {"PATH": "/usr/bin:/bin"}, errors="replace",
                              check=False)  # fmt: skip


@pytest.fixture
def py(harness: Harness) -> Python:
    need(SYSTEM_PYTHON.exists(), "no system python3")
    p = Python(harness)
    hook_install.install(config.Paths(str(harness.prefix)), pattern.collector_lib(
        config.Paths(str(harness.prefix))))  # fmt: skip
    return p


def as_crash(e: Entry) -> Crash:
    """The app's crash record of a raw entry (the reader's synthesised fields as text)."""
    return crash_from_entry({k: v if isinstance(v, bytes) else str(v) for k, v in e.items()})


def exception_entries(script: Path) -> list[Entry]:
    return [e for e in entries(message_id=BACKTRACE_MESSAGE_ID, COREDUMP_UID=UID)
            if str(script).encode() in field(e, "COREDUMP_CMDLINE")]  # fmt: skip


def test_unhandled_exception_is_one_entry_in_the_users_journal(py: Python) -> None:
    app = py.script("app.py", APP)
    out = py.run(app)
    assert out.returncode == 1
    assert out.stderr.endswith("ValueError: bad value 42\n")
    assert "Traceback (most recent call last):" in out.stderr
    assert "excepthook" not in out.stderr  # nothing of ours on the user's terminal
    e = wait_entry(message_id=BACKTRACE_MESSAGE_ID, COREDUMP_UID=UID, COREDUMP_EXE=os.path.realpath(
        SYSTEM_PYTHON))  # fmt: skip
    assert field(e, "_UID") == str(UID).encode()  # the kernel's credentials: the user's journal
    assert field(e, "PRIORITY") == b"2"
    assert field(e, "COREDUMP_SIGNAL") == b"0"
    assert field(e, Field.EXCEPTION_TYPE) == b"ValueError"
    assert field(e, Field.EXCEPTION_VALUE) == b"bad value 42"
    assert "COREDUMP_ENVIRON" not in e
    message = field(e, "MESSAGE").decode()
    assert message.startswith(f"Process {field(e, 'COREDUMP_PID').decode()} (python) of user "
                              f"{UID} failed with ValueError\n\nTraceback")  # fmt: skip
    assert message.endswith("ValueError: bad value 42\n")
    crash = as_crash(e)
    assert TrustPolicy.for_user(UID, frozenset()).accepts(crash)
    assert [(f.function, f.line) for f in crash.python_stack] == [
        ("<module>", 14), ("outer", 12), ("inner", 9)]  # fmt: skip
    assert {f.file for f in crash.python_stack} == {str(app)}
    worker = next(t for t in crash.python_threads if t.name == "worker")
    assert not worker.crashed
    assert worker.frames[-1].function == "work"
    assert worker.frames[-1].line == 4
    assert crash.program_key == str(app)
    assert crash.reason == "Unhandled exception ValueError"


@pytest.mark.parametrize(
    ("what", "script", "args", "stdin"),
    [
        ("ctrl-c", "raise KeyboardInterrupt\n", (), ""),
        ("sys.exit", "import sys; sys.exit(3)\n", (), ""),
        ("own hook", "import sys\nsys.excepthook = lambda *a: print('mine')\nraise ValueError\n",
         (), ""),
        ("broken pipe on stdout", "import sys\nwhile True: print('x' * 1000)\n", (), ""),
        ("-c", "", ("-c", "raise ValueError('MARK-c')"), ""),
        ("stdin", "", ("-",), "raise ValueError('MARK-stdin')\n"),
        ("interactive", "raise ValueError\n", ("-i",), "raise ValueError('MARK-i')\n"),
    ],
)  # fmt: skip
def test_not_a_crash(py: Python, what: str, script: str, args: tuple[str, ...],
                     stdin: str) -> None:  # fmt: skip
    if what == "broken pipe on stdout":
        path = py.script("pipe.py", script)
        cmd = f"setpriv --reuid={UID} --regid={UID} --clear-groups {py.python} {path} | head -c1"
        subprocess.run(["sh", "-c", cmd], capture_output=True, timeout=60, check=True)
        marker = str(path)
    elif script:
        path = py.script(what.replace(" ", "_") + ".py", script)
        out = py.run(*args, path, stdin=stdin)
        assert out.returncode != 0 or what in {"own hook", "interactive"}
        marker = str(path)
    else:
        py.run(*args, stdin=stdin)
        marker = "MARK"
    wait_entry(message_id=BACKTRACE_MESSAGE_ID, COREDUMP_UID=UID, COREDUMP_PID=_control(py))
    found = [e for e in entries(message_id=BACKTRACE_MESSAGE_ID, COREDUMP_UID=UID)
             if marker.encode() in field(e, "COREDUMP_CMDLINE") + field(e, "MESSAGE")]  # fmt: skip
    assert found == [], what


def _control(py: Python) -> int:
    """Crash a control script and return its PID: once its entry is in, an entry the run
    before it had sent would be in too (journald reads its socket in order)."""
    path = py.script("control.py", "import os\nprint(os.getpid(), flush=True)\nraise OSError\n")
    return int(py.run(path).stdout)


def test_broken_journal_and_read_only_disk_keep_the_traceback(py: Python) -> None:
    app = py.script("app.py", APP)
    ro = py.root / "ro"
    ro.mkdir()
    os.chown(ro, UID, UID)
    blocker = py.root / "not-a-socket"
    blocker.write_text("")
    inner = (f"mount --bind {blocker} /run/systemd/journal/socket && "
             f"mount -t tmpfs -o ro tmpfs {ro} && "
             f"XDG_RUNTIME_DIR={ro} HOME={ro} exec setpriv --reuid={UID} --regid={UID} "
             f"--clear-groups {py.python} {app}")  # fmt: skip
    out = subprocess.run(["unshare", "-m", "sh", "-c", inner], capture_output=True, text=True,
                         timeout=60, check=False)  # fmt: skip
    plain = subprocess.run([str(SYSTEM_PYTHON), "-I", str(app)], capture_output=True, text=True,
                           timeout=60, check=False)  # fmt: skip
    assert out.returncode == plain.returncode == 1
    assert out.stderr == plain.stderr  # the same traceback, and nothing added


def test_switched_off_in_collector_conf(py: Python) -> None:
    conf = py.prefix / "etc/drkonqi-lite/collector.conf.d"
    conf.mkdir(parents=True)
    (conf / "python.conf").write_text("[Coredump]\nPythonExceptions=no\n")
    app = py.script("off.py", APP)
    assert py.run(app).returncode == 1
    (conf / "python.conf").unlink()  # the control crash after it is recorded again
    wait_entry(message_id=BACKTRACE_MESSAGE_ID, COREDUMP_UID=UID, COREDUMP_PID=_control(py))
    assert exception_entries(app) == []


def test_crash_loop_is_rate_limited(py: Python) -> None:
    conf = py.prefix / "etc/drkonqi-lite/collector.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("[Coredump]\nRateLimitBurst=2\nRateLimitIntervalSec=600\n")
    home = py.root / "home"
    home.mkdir()
    os.chown(home, UID, UID)
    app = py.script("loop.py", APP)
    for _ in range(4):
        assert py.run(app, env={"HOME": str(home)}).returncode == 1
    wait_entry(message_id=BACKTRACE_MESSAGE_ID, COREDUMP_UID=UID, COREDUMP_PID=_control(py))
    found = exception_entries(app)
    assert [field(e, Field.CRASH_COUNT) for e in found] == [b"1", b"2", b"3", b"4"]
    assert [Field.PYTHON_STACK in e for e in found] == [True, True, False, False]
    assert b"Traceback" not in field(found[3], "MESSAGE")
    assert field(found[3], Field.EXCEPTION_TYPE) == b"ValueError"  # still a crash, counted


def test_hostile_names_are_inert(py: Python) -> None:
    evil = b"\x1b[31mevil\xff\xfe.py"
    text = (
        "def f():\n    raise RuntimeError('\\x1b]0;pwned\\x07')\n"
        "f.__code__ = f.__code__.replace(co_name='\\x1b[2J', co_qualname='\\x1b[2Jq\\u202e')\n"
        "f()\n"
    )
    path = py.script(evil, text)
    assert py.run(path).returncode == 1
    e = wait_entry(message_id=BACKTRACE_MESSAGE_ID, COREDUMP_UID=UID,
                   DRKONQI_LITE_EXCEPTION_TYPE="RuntimeError")  # fmt: skip
    crash = as_crash(e)
    frames = crash.python_stack
    assert frames[-1].function == "\x1b[2Jq\u202e"  # kept as text, exactly
    assert frames[0].file.endswith("\x1b[31mevil\ufffd\ufffd.py")
    json.dumps([f.file for f in frames]).encode()
    pid = field(e, "COREDUMP_PID").decode()
    listed = subprocess.run(["coredumpctl", "list", "--no-pager", pid], capture_output=True,
                            timeout=30, check=False)  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert b"\x1b" not in listed.stdout
    info = subprocess.run(["coredumpctl", "info", "--no-pager", pid], capture_output=True,
                          timeout=30, check=False)  # fmt: skip
    assert info.returncode == 0, info.stderr
    # The traceback in MESSAGE is escaped (Command Line is COREDUMP_CMDLINE's raw bytes, which
    # coredumpctl prints as it is for systemd-coredump's own entries too).
    message = info.stdout.partition(b"Message:")[2]
    assert b"RuntimeError: \\x1b]0;pwned\\x07" in message
    assert b"\x1b" not in message


def test_install_and_uninstall_command(harness: Harness, core_pattern: None) -> None:
    paths = config.Paths(str(harness.prefix))
    site = hook_install.site_dir(paths)
    before = CORE_PATTERN.read_text()
    out = subprocess.run([str(COLLECTOR), f"--prefix={harness.prefix}", "install", "--force"],
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr
    pth = site / "drkonqi_lite_python_hook.pth"
    assert f"python hook: {pth}" in out.stdout
    hook = site / "drkonqi_lite_python_hook.py"
    assert hook.read_bytes() == Path(python_hook.__file__).read_bytes()
    assert str(pattern.collector_lib(paths)) in pth.read_text()
    out = subprocess.run([str(COLLECTOR), f"--prefix={harness.prefix}", "uninstall"],
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert not pth.exists()
    assert not (site / "drkonqi_lite_python_hook.py").exists()
    assert CORE_PATTERN.read_text() == before


def test_the_app_notifies_lists_and_shows_it(py: Python, app_desktop: Desktop) -> None:
    """The user's tray app (real journald, dunst, Xvfb) tells of a real script's exception."""
    user = app_desktop.user()
    user.start_dunst()
    user.start_app("app")
    user.wait_app()
    time.sleep(0.3)  # past the catch-up
    app = py.script("sync.py", APP)
    assert py.run(app, uid=user.uid).returncode == 1
    user.wait_notified()
    (note,) = user.notifications()
    assert note["summary"] == "sync.py crashed"
    assert note["body"] == "Unhandled exception ValueError in inner (sync.py, line 9)"
    (listed,) = json.loads(user.cli("list", "--json").stdout)
    shown = json.loads(user.cli("show", listed["id"], "--json").stdout)
    assert [(f["function"], f["line"]) for f in shown["python_stack"]] == [
        ("<module>", 14), ("outer", 12), ("inner", 9)]  # fmt: skip
    assert shown["exception_type"] == "ValueError"
    assert "COREDUMP_ENVIRON" not in shown["fields"]
