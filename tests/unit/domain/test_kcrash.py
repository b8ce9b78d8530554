"""KCrash metadata: parsed as KCrash writes it (KF5 5.103 and KF6), matched to one crash, and
shown where a user looks (crash_facts, summary); the file is found in adapters/test_kcrash_file."""

from __future__ import annotations

import dataclasses

import pytest

from drkonqi_lite.domain import crash_facts, kcrash
from drkonqi_lite.domain.announcement import Program
from drkonqi_lite.domain.crash import crash_from_entry
from drkonqi_lite.domain.report import report_json, report_text
from drkonqi_lite.domain.summary import detail
from tests.entries import KF5_INI, KF6_INI, entry


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
