"""The user's "always send" choices, as settings.ini keeps them."""

from __future__ import annotations

from drkonqi_lite.domain.report_choices import AutoReport
from tests.entries import symbolized_crash as crash


def test_auto_report_settings_round_trip() -> None:
    auto = AutoReport.from_settings(False, '["/usr/bin/kwrite", "/opt/a;b c"]')
    assert auto.programs == {"/usr/bin/kwrite", "/opt/a;b c"}
    assert AutoReport.from_settings(False, auto.programs_setting()) == auto
    assert auto.applies(crash())
    assert not auto.applies(crash(COREDUMP_EXE="/usr/bin/kate"))
    assert AutoReport.from_settings(True, "").applies(crash(COREDUMP_EXE="/usr/bin/kate"))
    assert AutoReport.from_settings(False, "not json").programs == set()
    assert AutoReport.from_settings(False, '{"a": 1}').programs == set()
