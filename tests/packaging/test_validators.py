"""Every packaging file passes the validator its format has, as a distribution would run it.

desktop-file-validate, appstreamcli validate, systemd-analyze verify, man --warnings (groff),
systemd-tmpfiles and systemd-sysusers against a scratch root. A missing validator skips on a
developer's machine and fails under CI=true (tests/conftest.py `which`), so CI never passes a
file nobody checked. None of these needs root or systemd as PID 1.
"""

from __future__ import annotations

import argparse
import configparser
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from drkonqi_lite_collector import config
from drkonqi_lite_collector.admin import pattern
from drkonqi_lite_collector.stage import argv
from tests.conftest import which
from tests.packaging.units import (
    DESKTOP_FILES,
    MAN_PAGES,
    METAINFO,
    PACKAGING,
    SYSTEM_UNITS,
    USER_UNIT,
    USER_UNITS,
    exec_paths,
    value,
)


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)  # type: ignore[call-overload,no-any-return]


@pytest.mark.parametrize("desktop", DESKTOP_FILES, ids=lambda p: p.name)
def test_desktop_file_validates(desktop: Path) -> None:
    out = run([which("desktop-file-validate"), str(desktop)])
    report = out.stdout + out.stderr
    assert out.returncode == 0, report
    assert "error:" not in report, report
    assert "warning:" not in report, report


def test_crash_reports_entry_starts_the_app_without_autostart() -> None:
    """`drkonqi-lite` alone shows the crash list of a running instance; --autostart would
    do nothing when the app already runs (drkonqi_lite/cli.py)."""
    text = (PACKAGING / "drkonqi-lite-crash-reports.desktop").read_text()
    assert "\nExec=drkonqi-lite\n" in text
    assert "\nName=Crash Reports\n" in text


@pytest.mark.parametrize("metainfo", METAINFO, ids=lambda p: p.name)
def test_metainfo_validates(metainfo: Path) -> None:
    out = run([which("appstreamcli"), "validate", "--no-net", "--no-color", str(metainfo)])
    assert out.returncode == 0, out.stdout + out.stderr
    launchables = re.findall(
        r'<launchable type="desktop-id">([^<]+)</launchable>', metainfo.read_text()
    )
    assert launchables, "the application is launchable from its .desktop file"
    for name in launchables:
        assert (PACKAGING / name).is_file(), f"{name} is not in packaging/"


def _stub(root: Path, program: str) -> None:
    path = root / program.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)


def _man_path(tmp: Path) -> Path:
    """Our man pages where `man` finds them: verify checks each Documentation=man: link."""
    for page in MAN_PAGES:
        section = tmp / f"man{page.suffix[1:]}"
        section.mkdir(parents=True, exist_ok=True)
        shutil.copy(page, section / page.name)
    return tmp


def test_system_units_verify(tmp_path: Path) -> None:
    """`systemd-analyze verify` in a scratch root holding the host's units and ours, with the
    programs our units run (stubs) and our man pages: systemd need not be PID 1 for this."""
    analyze = which("systemd-analyze")
    host_units = Path("/lib/systemd/system")
    assert host_units.is_dir(), "the host's systemd units (apt-get install systemd)"
    root = tmp_path / "root"
    unit_dir = root / "usr/lib/systemd/system"
    shutil.copytree(host_units, unit_dir, symlinks=True)
    names = []
    for unit in SYSTEM_UNITS:
        shutil.copy(unit, unit_dir / unit.name)
        for program in exec_paths(unit):
            _stub(root, program)
        names.append(unit.name.replace("@.", "@1."))
    env = {**os.environ, "MANPATH": str(_man_path(tmp_path / "man"))}
    out = run([analyze, "verify", f"--root={root}", *names], env=env)
    # An unknown or misspelt directive is only a warning to systemd: fail on any output.
    assert out.returncode == 0, out.stdout + out.stderr
    assert not (out.stdout + out.stderr).strip(), out.stdout + out.stderr


def test_verify_catches_a_misspelt_directive(tmp_path: Path) -> None:
    """The check above would see a typo in a hardening line (systemd merely ignores it)."""
    analyze = which("systemd-analyze")
    unit = tmp_path / "probe.service"
    unit.write_text("[Service]\nExecStart=/bin/true\nProtectSytem=strict\n")
    out = run([analyze, "verify", "--man=no", str(unit)])
    assert "Unknown key" in out.stdout + out.stderr


@pytest.mark.parametrize("user_unit", USER_UNITS, ids=lambda p: p.name)
def test_user_unit_verifies(tmp_path: Path, user_unit: Path) -> None:
    """The tray app's systemd user units. systemd 252 cannot verify a user unit under --root,
    so their programs are pointed at a stub, and only their paths change; the units they name
    are verified beside them."""
    analyze = which("systemd-analyze")
    stub = tmp_path / "bin/stub"
    _stub(tmp_path, "bin/stub")
    for other in USER_UNITS:
        text = other.read_text()
        for program in exec_paths(other):
            text = text.replace(f"={program}", f"={stub}")
        (tmp_path / other.name).write_text(text)
    unit = tmp_path / user_unit.name
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    env = {
        **os.environ,
        "XDG_RUNTIME_DIR": str(runtime),
        "MANPATH": str(_man_path(tmp_path / "man")),
    }
    out = run([analyze, "--user", "verify", str(unit)], env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert not (out.stdout + out.stderr).strip(), out.stdout + out.stderr


@pytest.mark.parametrize("page", MAN_PAGES, ids=lambda p: p.name)
def test_man_page_has_no_warnings(page: Path) -> None:
    """As lintian checks man pages: groff with all warnings on, through man."""
    env = {**os.environ, "LC_ALL": "C.UTF-8", "MANROFFSEQ": "", "MANWIDTH": "80"}
    out = run([which("man"), "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", str(page)], env=env)
    assert out.returncode == 0, out.stderr
    assert not out.stderr.strip(), out.stderr
    assert len(out.stdout) > 1000, "the page rendered to something"


def _undocumented(parser: argparse.ArgumentParser, page: str) -> list[str]:
    """Subcommands and long options of `parser` that the roff `page` never names."""
    missing = []
    actions = list(parser._actions)
    subs = [a for a in actions if isinstance(a, argparse._SubParsersAction)]
    for sub in subs:
        for name, subparser in sub.choices.items():
            if f".B {name}" not in page:
                missing.append(name)
            actions += subparser._actions
    for action in actions:
        for option in action.option_strings:
            skip = not option.startswith("--") or option in {"--help", "--version"}
            if not skip and option.replace("-", "\\-") not in page:
                missing.append(option)
    return missing


def test_collector_man_page_documents_every_command() -> None:
    page = (PACKAGING / "man/drkonqi-lite-collector.8").read_text()
    from drkonqi_lite_collector import main  # noqa: PLC0415

    missing = _undocumented(main._parser(), page)
    assert not missing, f"drkonqi-lite-collector(8) lacks {missing}"
    assert ".SH COEXISTENCE" in page


def test_fleet_man_page_documents_every_option() -> None:
    from drkonqi_lite import fleet_cli  # noqa: PLC0415 (as above)

    page = (PACKAGING / "man/drkonqi-lite-fleet.8").read_text()
    missing = _undocumented(fleet_cli._parser(), page)
    assert not missing, f"drkonqi-lite-fleet(8) lacks {missing}"
    assert f"{fleet_cli.EX_CONFIG} (EX_CONFIG)" in page


def test_fleet_unit_matches_the_forwarder() -> None:
    """The unit runs the packaged entry point, keeps its state where the forwarder and
    `drkonqi-lite-collector status` look, and does not restart it for a broken [Fleet]."""
    from drkonqi_lite import fleet_cli  # noqa: PLC0415 (as above)
    from drkonqi_lite.adapters import fleet  # noqa: PLC0415
    from drkonqi_lite_collector.journal import schema  # noqa: PLC0415

    unit = PACKAGING / "systemd" / schema.FLEET_UNIT
    program = value(unit, "Service", "ExecStart")
    assert program == "/usr/bin/drkonqi-lite-fleet"
    links = (PACKAGING / "debian/drkonqi-lite.links").read_text()
    assert f"usr/lib/drkonqi-lite/venv/bin/drkonqi-lite-fleet {program[1:]}\n" in links
    state = Path("/var/lib", value(unit, "Service", "StateDirectory"))
    assert state == fleet.SYSTEM_STATE
    assert value(unit, "Service", "RestartPreventExitStatus") == str(fleet_cli.EX_CONFIG)
    assert value(unit, "Unit", "ConditionPathExists") == fleet_cli.CONF
    # Off by default: the package installs it but neither enables nor starts it.
    rules = (PACKAGING / "debian/rules").read_text()
    assert f"dh_installsystemd --no-enable --no-start {schema.FLEET_UNIT}\n" in rules




def test_app_man_page_documents_every_command() -> None:
    from drkonqi_lite import cli  # noqa: PLC0415 (Qt-free, but only this test needs it)

    page = (PACKAGING / "man/drkonqi-lite.1").read_text()
    missing = _undocumented(cli.parser(), page)
    assert not missing, f"drkonqi-lite(1) lacks {missing}"


def test_tmpfiles_creates_the_storage_tree(tmp_path: Path) -> None:
    """Applied to a scratch root: the modes the collector insists on (root's, not writable by
    others; the core directory searchable, not listable: users open their ACL'd cores by name)."""
    tmpfiles = which("systemd-tmpfiles")
    conf = PACKAGING / "tmpfiles.d/drkonqi-lite.conf"
    out = run([tmpfiles, "--create", f"--root={tmp_path}", str(conf)])
    assert out.returncode == 0, out.stderr
    expected = {
        "var/lib/drkonqi-lite": 0o755,
        "var/lib/drkonqi-lite/coredump": 0o711,
        "var/lib/drkonqi-lite/spool": 0o700,
        "var/lib/drkonqi-lite/ratelimit": 0o700,
        "run/drkonqi-lite": 0o755,
        "etc/drkonqi-lite/collector.conf.d": 0o755,
    }
    for rel, mode in expected.items():
        st = (tmp_path / rel).lstat()
        assert stat.S_ISDIR(st.st_mode), rel
        assert stat.S_IMODE(st.st_mode) == mode, f"{rel}: {oct(st.st_mode)}"
    # The paths are the collector's own.
    paths = config.Paths("/")
    assert f"d {paths.storage_dir} " in conf.read_text()
    assert f"d {paths.spool_dir} " in conf.read_text()
    assert f"d {Path(paths.socket).parent} " in conf.read_text()


def test_sysusers_creates_a_locked_system_user(tmp_path: Path) -> None:
    sysusers = which("systemd-sysusers")
    (tmp_path / "etc").mkdir()
    conf = PACKAGING / "sysusers.d/drkonqi-lite.conf"
    out = run([sysusers, f"--root={tmp_path}", str(conf)])
    assert out.returncode == 0, out.stderr
    from drkonqi_lite_collector.journal import schema  # noqa: PLC0415

    entry = next(
        line.split(":")
        for line in (tmp_path / "etc/passwd").read_text().splitlines()
        if line.startswith(f"{schema.COLLECTOR_USER}:")
    )
    assert int(entry[2]) <= schema.SYSTEM_UID_MAX, "a system uid"
    assert entry[6].endswith("nologin"), "no login shell"


def test_sysctl_snippet_names_the_packaged_collector() -> None:
    """The boot-time template is the pattern `install` makes for the packaged launcher on a
    kernel without %F (the package rewrites it with what `install` really set)."""
    lines = {}
    for raw in (PACKAGING / "sysctl.d/60-drkonqi-lite.conf").read_text().splitlines():
        if raw.strip() and not raw.startswith(("#", ";")):
            key, _, val = raw.partition("=")
            lines[key.strip()] = val.strip()
    assert lines["kernel.core_pattern"] == f"|{pattern.PACKAGED} {argv.SPECIFIERS} {argv.TID_WORD}"
    assert lines["kernel.core_pipe_limit"] == str(pattern.PIPE_LIMIT)
    for key in lines:
        assert Path("/proc/sys", *key.split(".")).exists(), key


def test_socket_and_service_match_the_collector() -> None:
    sock = PACKAGING / "systemd/drkonqi-lite-collector.socket"
    service = PACKAGING / "systemd/drkonqi-lite-collector@.service"
    assert value(sock, "Socket", "ListenSequentialPacket") == config.Paths("/").socket
    assert value(sock, "Socket", "Accept") == "yes"
    assert value(sock, "Socket", "SocketMode") == "0600"
    assert value(sock, "Socket", "MaxConnections") == str(pattern.PIPE_LIMIT)
    assert value(service, "Service", "ExecStart") == f"{pattern.PACKAGED} --service"
    replay = PACKAGING / "systemd/drkonqi-lite-collector-replay.service"
    assert value(replay, "Service", "ExecStart") == f"{pattern.PACKAGED} replay"
    cores = PACKAGING / "systemd/drkonqi-lite-cores.socket"
    assert value(cores, "Socket", "ListenSequentialPacket") == config.Paths("/").cores_socket
    assert value(cores, "Socket", "Accept") == "yes"
    assert value(cores, "Socket", "SocketMode") == "0666", "every user may ask"
    cores_service = PACKAGING / "systemd/drkonqi-lite-cores@.service"
    assert value(cores_service, "Service", "ExecStart") == f"{pattern.PACKAGED} --cores-service"


@pytest.mark.parametrize(
    "script", sorted((PACKAGING / "debian").glob("drkonqi-lite.p*")), ids=lambda p: p.name
)
def test_maintainer_scripts_parse(script: Path) -> None:
    text = script.read_text()
    assert text.startswith("#!/bin/bash\n")
    assert "set -euo pipefail" in text
    assert "#DEBHELPER#" in text
    out = run(["bash", "-n", str(script)])
    assert out.returncode == 0, out.stderr


def test_shipped_configuration_states_the_defaults(tmp_path: Path) -> None:
    """/etc/drkonqi-lite/collector.conf lists every key with its default, commented out:
    uncommented, it must configure exactly the defaults and be read without a warning."""
    text = (PACKAGING / "collector.conf").read_text()
    conf = tmp_path / "etc/drkonqi-lite/collector.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text(re.sub(r"^#(\w+=\S+)$", r"\1", text, flags=re.MULTILINE))
    loaded = config.load(config.Paths(str(tmp_path)))
    assert loaded.warnings == ()
    defaults = config.Config()
    for attr in config.Config.__slots__:
        assert getattr(loaded, attr) == getattr(defaults, attr), attr
    documented = {m.lower() for m in re.findall(r"^#(\w+)=", text, flags=re.MULTILINE)}
    assert documented == set(config._KEYS), "every key the collector reads, and no other"


def test_dbus_activation_file_matches_the_app() -> None:
    """The session bus starts the app for a client (DESIGN.md §2.3): the file's name is the bus
    name, Exec= is what the package installs, and systemd sessions go through the user unit."""
    service = PACKAGING / "org.drkonqi_lite.CrashNotifier.service"
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(service.read_text())
    section = parser["D-BUS Service"]
    assert section["Name"] == service.stem
    assert section["Exec"].split()[0] == "/usr/bin/drkonqi-lite", "the package's link"
    assert section["SystemdService"] == USER_UNIT.name
    assert USER_UNIT.exists()
    assert value(USER_UNIT, "Service", "BusName") == service.stem
