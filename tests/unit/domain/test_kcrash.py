"""KCrash metadata: parsed as KCrash writes it (KF5 5.103 and KF6), matched to one crash, found
and read safely in the user's cache, and shown where a user looks (crash_facts, summary)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from drkonqi_lite.adapters.kcrash_file import KCrashLookup, candidate_names, lookup
from drkonqi_lite.domain import crash_facts, kcrash
from drkonqi_lite.domain.announcement import Program
from drkonqi_lite.domain.crash import Crash, crash_from_entry
from drkonqi_lite.domain.report import report_json, report_text
from drkonqi_lite.domain.summary import detail
from tests.conftest import need
from tests.entries import BOOT, entry

#: Byte for byte what KF5 5.103's KCrash wrote for a real kcrash crash here (`<pid>.ini`).
KF5_INI = (
    "[KCrash]\nexe=/usr/bin/kcalc\nplatform=offscreen\nappname=kcalc\napppath=/usr/bin\n"
    "signal=11\npid=4242\nappversion=22.12.3\nprogramname=KCalc\n"
    "bugaddress=submit@bugs.kde.org\n"
)
#: The KF6 layout (kcrash metadata.cpp): tag groups first, [KCrash], then [KCrashComplete].
KF6_INI = (
    "[KCrashTags]\nsession=wayland\n[KCrashExtra]\nnote=line one\\nline two\n"
    "[KCrash]\nexe=/usr/bin/kate\nappname=kate\npid=4242\nappversion=24.02.1\n"
    "programname=Kate\nbugaddress=https://bugs.kde.org\nproductname=kate\n"
    "[KCrashComplete]\nComplete=1\n"
)
TS_S = 1_700_000_000


def test_kf6_file_parses_into_groups_with_escaped_newlines() -> None:
    groups = kcrash.parse_groups(KF6_INI)
    assert groups["KCrashExtra"]["note"] == "line one\nline two"
    assert groups["KCrashComplete"] == {"Complete": "1"}
    info = kcrash.matching_info(KF6_INI, pid=4242, exe="/usr/bin/kate")
    assert info is not None
    assert (info.display_name, info.version, info.bug_address, info.product) == (
        "Kate", "24.02.1", "https://bugs.kde.org", "kate",
    )  # fmt: skip
    assert info.tags == {"session": "wayland"}


def test_a_file_of_another_pid_or_program_does_not_match() -> None:
    assert kcrash.matching_info(KF5_INI, pid=4243, exe="/usr/bin/kcalc") is None
    assert kcrash.matching_info(KF5_INI, pid=4242, exe="/usr/bin/kate") is None
    assert kcrash.matching_info("exe=/usr/bin/kcalc\npid=4242\n", pid=4242, exe="") is None


def test_hostile_values_are_bounded() -> None:
    text = "[KCrash]\npid=1\nprogramname=" + "A" * 100_000 + "\n" + "".join(
        f"k{i}=v\n" for i in range(1000)
    )
    info = kcrash.matching_info(text, pid=1, exe="")
    assert info is not None
    assert len(info.display_name) <= 200
    assert len(kcrash.parse_groups(text)["KCrash"]) <= kcrash.MAX_KEYS


def test_presented_name_and_facts_and_dicts() -> None:
    info = kcrash.matching_info(KF5_INI, pid=4242, exe="/usr/bin/kcalc")
    shown = kcrash.presented(Program(name="kcalc", icon="accessories-calculator"), info)
    assert shown == Program(name="KCalc", icon="accessories-calculator")
    assert kcrash.presented(Program(name="kcalc"), None).name == "kcalc"
    crash = dataclasses.replace(
        crash_from_entry(entry(exe="/usr/bin/kcalc", COREDUMP_TID="4250",
                               COREDUMP_THREAD_NAME="QThread", COREDUMP_CODE="1")),
        kcrash=info,
    )  # fmt: skip
    assert crash_facts.facts(crash) == [
        ("Thread", "TID 4250 (QThread)"),
        ("Cause", "address not mapped (SEGV_MAPERR)"),
        ("Version", "22.12.3"),
        ("Bugs to", "submit@bugs.kde.org"),
    ]
    shown_detail = detail(crash, seen=False)
    assert shown_detail["kcrash"]["display_name"] == "KCalc"
    assert (shown_detail["tid"], shown_detail["thread_name"]) == (4250, "QThread")
    assert "Version:      22.12.3" in report_text(crash, "KCalc")
    assert '"bug_address": "submit@bugs.kde.org"' in report_json(crash, "KCalc")


@pytest.mark.parametrize(
    ("code", "signo", "words"),
    [("2", "11", "SEGV_ACCERR"), ("0", "11", "SI_USER"), ("-6", "6", "SI_TKILL"),
     ("1", "8", "FPE_INTDIV"), ("99", "11", "si_code 99"), ("x", "11", "")],
)  # fmt: skip
def test_signal_cause_words(code: str, signo: str, words: str) -> None:
    crash = crash_from_entry(entry(COREDUMP_CODE=code, COREDUMP_SIGNAL=signo))
    assert words in crash_facts.signal_cause(crash)
    assert bool(crash_facts.signal_cause(crash)) == bool(words)


def test_candidate_names_for_both_layouts() -> None:
    names = [f"kate.{BOOT}.4242.ini", f"kate.{BOOT}.42421.ini", "4242.ini", "x.ini",
             f".{BOOT}.4242.ini"]  # fmt: skip
    assert candidate_names(names, BOOT, 4242) == [f"kate.{BOOT}.4242.ini", "4242.ini"]


def _write(d: Path, name: str, text: str, mtime: float = TS_S) -> Path:
    path = d / name
    path.write_text(text)
    os.utime(path, (mtime, mtime))
    return path


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    d = tmp_path / kcrash.DIRECTORY
    d.mkdir()
    return d


def _kcalc() -> Crash:
    return crash_from_entry(entry(uid=os.getuid(), exe="/usr/bin/kcalc", ts=TS_S * 1_000_000))


def test_the_file_is_found_and_checked(cache: Path) -> None:
    crash = _kcalc()
    uid = os.getuid()
    assert lookup(crash, cache, uid) is None, "no file"
    _write(cache, "4242.ini", KF5_INI, mtime=TS_S - 3600)
    assert lookup(crash, cache, uid) is None, "written an hour before the crash"
    _write(cache, "4242.ini", KF5_INI)
    info = lookup(crash, cache, uid)
    assert info is not None
    assert info.display_name == "KCalc"
    assert KCrashLookup(cache, uid)(crash) == info
    assert lookup(crash, cache, uid + 1) is None, "another user's crash is never looked up"


def test_a_planted_symlink_fifo_or_huge_file_is_not_read(cache: Path, tmp_path: Path) -> None:
    crash = _kcalc()
    target = _write(tmp_path, "elsewhere.ini", KF5_INI)
    (cache / "4242.ini").symlink_to(target)
    assert lookup(crash, cache, os.getuid()) is None
    (cache / "4242.ini").unlink()
    os.mkfifo(cache / "4242.ini")  # opened O_NONBLOCK: never blocks, and not a regular file
    assert lookup(crash, cache, os.getuid()) is None
    (cache / "4242.ini").unlink()
    _write(cache, "4242.ini", KF5_INI + "x" * kcrash.MAX_BYTES)
    assert lookup(crash, cache, os.getuid()) is None


def test_a_file_owned_by_someone_else_is_ignored(cache: Path) -> None:
    need(os.geteuid() == 0, "chown needs root")
    path = _write(cache, "4242.ini", KF5_INI)
    os.chown(path, 4242, 4242)
    assert lookup(_kcalc(), cache, os.getuid()) is None
