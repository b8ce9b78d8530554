from __future__ import annotations

from drkonqi_lite.domain.announcement import Act, Announcer, Kind, Program, Reaction, catch_up
from drkonqi_lite.domain.crash import crash_from_entry
from tests.entries import entry

KATE = Program("Kate", "kate", "org.kde.kate")


def test_crash_loop_is_one_growing_notification() -> None:
    announcer = Announcer(group_window_us=600_000_000)
    first = announcer.live(crash_from_entry(entry(pid=1)), KATE, muted=False)
    assert first is not None
    assert first.title == "Kate crashed"
    assert first.replaces_id == 0
    assert first.body == "Segmentation fault"
    assert first.desktop_entry == "org.kde.kate"
    announcer.shown(first, 77)
    last = None
    for pid in range(2, 51):
        last = announcer.live(
            crash_from_entry(entry(pid=pid, ts=1_700_000_000_000_000 + pid)), KATE, muted=False
        )
    assert last is not None
    assert last.title == "Kate crashed 50 times"
    assert last.replaces_id == 77


def test_closed_notification_starts_a_new_group() -> None:
    announcer = Announcer(group_window_us=600_000_000)
    a = announcer.live(crash_from_entry(entry(pid=1)), KATE, muted=False)
    assert a is not None
    announcer.shown(a, 5)
    assert announcer.closed(5) == a.group_key
    b = announcer.live(crash_from_entry(entry(pid=2)), KATE, muted=False)
    assert b is not None
    assert b.replaces_id == 0
    assert b.title == "Kate crashed"


def test_actions_mean_what_the_notification_shows() -> None:
    """One crash: Details opens it, Mute mutes its program; a crash loop's or the login's
    notification: Details opens the list of all of them; Dismiss dismisses all it counts."""
    announcer = Announcer(group_window_us=600_000_000)
    one = announcer.live(crash_from_entry(entry(pid=1)), KATE, muted=False)
    assert one is not None
    announcer.shown(one, 7)
    assert announcer.reaction(7, "default") == Reaction(Act.SHOW_CRASH, one.crash_ids)
    assert announcer.reaction(7, "mute") == Reaction(Act.MUTE, one.crash_ids, one.group_key)
    loop = announcer.live(crash_from_entry(entry(pid=2, ts=1_700_000_000_000_002)), KATE,
                          muted=False)  # fmt: skip
    assert loop is not None
    announcer.shown(loop, 7)  # the server replaced it in place
    assert announcer.reaction(7, "details") == Reaction(Act.SHOW_LIST, loop.crash_ids)
    assert announcer.reaction(7, "dismiss") == Reaction(Act.DISMISS, loop.crash_ids)
    assert announcer.reaction(7, "no-such-action") == Reaction(Act.CLOSE, ())
    login = catch_up([(crash_from_entry(entry(pid=3)), KATE)])
    assert login is not None
    announcer.shown(login, 8)
    assert announcer.reaction(8, "default") == Reaction(Act.SHOW_LIST, login.crash_ids)
    assert announcer.reaction(8, "mute") == Reaction(Act.CLOSE, ()), "no program to mute"
    assert announcer.reaction(99, "default") is None, "not ours"
    announcer.closed(7)
    assert announcer.reaction(7, "default") is None, "closed: forgotten"


def test_muted_is_counted_not_announced() -> None:
    announcer = Announcer(group_window_us=600_000_000)
    crash = crash_from_entry(entry())
    assert announcer.live(crash, KATE, muted=True) is None
    assert announcer.muted_counts == {crash.program_key: 1}


def test_catch_up_is_one_grouped_notification() -> None:
    crashes = [
        (crash_from_entry(entry(pid=1, exe="/usr/bin/kate")), KATE),
        (crash_from_entry(entry(pid=2, exe="/usr/bin/kate")), KATE),
        (crash_from_entry(entry(pid=3, exe="/usr/bin/plasmashell")), Program("Plasma")),
        (crash_from_entry(entry(pid=4, exe="/usr/bin/dolphin")), Program("Dolphin")),
    ]
    a = catch_up(crashes)
    assert a is not None
    assert a.kind is Kind.CATCHUP
    assert a.title == "3 programs crashed since you last logged in"
    assert "Kate (2 times)" in a.body
    assert "Plasma" in a.body
    assert len(a.crash_ids) == 4
    assert catch_up([]) is None
