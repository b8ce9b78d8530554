"""The user's settings file, with bad values."""

from __future__ import annotations

from drkonqi_lite.domain.settings import Settings, parse_settings


def test_settings_parse_with_bad_values() -> None:
    warnings: list[str] = []
    s = parse_settings("[App]\ncatchup_days = 7\ntray_always = maybe\nfoo = 1\n", warnings.append)
    assert s.catchup_days == 7.0
    assert s.tray_always is False
    assert len(warnings) == 2
    assert parse_settings("garbage", warnings.append) == Settings()

