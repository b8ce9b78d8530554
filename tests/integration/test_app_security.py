"""SECURITY.md 5, 6 and 9 for the app: forged entries, other users, hostile text, secrets.

The journal group test gives user A read access to every journal file (the supplementary group
systemd-journal, as a desktop admin may have) so that the app's own trust rule is what keeps
forged and foreign entries out, not only the file permissions.
"""

from __future__ import annotations

import grp
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.entries import live_entry
from tests.integration import desktop as dk
from tests.integration.desktop import Desktop, User, send_entry_as, wait_for

app_desktop = dk.app_desktop
SYSTEMD_STORAGE = Path("/var/lib/systemd/coredump")


def _journal_gid() -> int:
    try:
        return grp.getgrnam("systemd-journal").gr_gid
    except KeyError:
        pytest.fail("no systemd-journal group (journald is not installed properly)")


def _ids(user: User, *, groups: tuple[int, ...] = ()) -> dict[str, str]:
    out = user.cli("list", "--json", groups=groups)
    assert out.returncode == 0, out.stderr
    return {c["comm"]: c["id"] for c in json.loads(out.stdout)}


def test_forged_and_foreign_entries_are_invisible(app_desktop: Desktop) -> None:
    alice, mallory = app_desktop.user(), app_desktop.user()
    journal = (_journal_gid(),)
    app = alice.start_app(groups=journal)
    alice.wait_app()
    try:
        # Mallory forges a crash "of Alice", and crashes something of her own.
        send_entry_as(mallory.uid, live_entry(alice.uid, comm="forged-by-other"))
        send_entry_as(mallory.uid, live_entry(mallory.uid, comm="mallorys-own"))
        # Control: root (as the collector for a system crash) files one for Alice: trusted.
        send_entry_as(0, live_entry(alice.uid, comm="filed-by-root"),
                      alice.runtime / "drkonqi-lite" / "wakeup")  # fmt: skip
        wait_for(lambda: [c["comm"] for c in alice.detected()] == ["filed-by-root"],
                 what="root's entry, and only it, told on the bus")  # fmt: skip
        time.sleep(0.8)  # the journal fd path would have delivered the others by now
    finally:
        alice.stop(app)
    log = alice.app_log()
    assert "forged-by-other" not in log
    assert "mallorys-own" not in log
    assert "ignored an untrusted coredump entry" in log
    assert set(_ids(alice, groups=journal)) == {"filed-by-root"}
    assert _ids(mallory) == {"mallorys-own": _ids(mallory)["mallorys-own"]}
    assert "filed-by-root" not in _ids(mallory, groups=journal)


@pytest.fixture
def storage_plants(app_desktop: Desktop) -> Iterator[dict[str, Path]]:
    """Files planted (as root) in systemd-coredump's storage dir; removed afterwards."""
    SYSTEMD_STORAGE.mkdir(parents=True, exist_ok=True)
    tag = f"dkl-test-{os.getpid()}-{time.monotonic_ns()}"
    plants = {
        "symlink": SYSTEMD_STORAGE / f"core.{tag}.symlink.zst",
        "own": SYSTEMD_STORAGE / f"core.{tag}.own.zst",
        "root": SYSTEMD_STORAGE / f"core.{tag}.root.zst",
        "fifo": SYSTEMD_STORAGE / f"core.{tag}.fifo.zst",
    }
    yield plants
    for path in plants.values():
        path.unlink(missing_ok=True)


def test_own_forged_entry_opens_nothing_outside_storage(
    app_desktop: Desktop, storage_plants: dict[str, Path]
) -> None:
    user = app_desktop.user()
    pwned = Path(f"/tmp/dkl-pwned-{user.uid}")
    storage_plants["symlink"].symlink_to("/etc/shadow")
    os.mkfifo(storage_plants["fifo"])
    storage_plants["own"].write_bytes(b"core")
    os.chown(storage_plants["own"], user.uid, user.uid)
    storage_plants["own"].chmod(0o600)
    storage_plants["root"].write_bytes(b"core")
    storage_plants["root"].chmod(0o600)
    hostile = f"$(touch {pwned}); touch {pwned}"
    cases = {
        "shadow": "/etc/shadow",
        "traversal": "/var/lib/systemd/coredump/../../../../etc/shadow",
        "symlink": str(storage_plants["symlink"]),
        "fifo": str(storage_plants["fifo"]),
        "own": str(storage_plants["own"]),
        "root": str(storage_plants["root"]),
    }
    for comm, filename in cases.items():
        fields = live_entry(
            user.uid,
            comm=comm,
            exe=hostile,
            COREDUMP_CMDLINE=hostile,
            COREDUMP_FILENAME=filename,
            DRKONQI_LITE_CORE_MISSING="",
        )
        user.send_entry(fields, wake=False)
    time.sleep(0.5)
    audit = app_desktop.workdir / f"audit-{user.uid}.jsonl"
    audit.touch()
    os.chown(audit, user.uid, user.uid)
    out = user.run([dk.PYTHON, str(dk.REPO / "tests/integration/audit_run.py"), str(audit),
                    "list", "--json"])  # fmt: skip
    assert out.returncode == 0, out.stderr
    states = {c["comm"]: c["core_state"] for c in json.loads(out.stdout)}
    assert states == {"shadow": "none", "traversal": "none", "symlink": "missing",
                      "fifo": "missing", "own": "present", "root": "inaccessible"}  # fmt: skip
    events = [json.loads(line) for line in audit.read_text().splitlines()]
    assert not [e for e in events if e["event"] != "open"], "a process was launched"
    opened = [e["args"][0] for e in events]
    assert not [p for p in opened if "shadow" in p or "symlink" in p or "fifo" in p], opened
    assert not pwned.exists()


def test_hostile_text_is_inert_and_secrets_stay_hidden(app_desktop: Desktop) -> None:
    user = app_desktop.user()
    user.start_dunst()
    app = user.start_app()
    user.wait_app()
    comm = "<b>x</b>&\x1b[31m"
    try:
        user.send_entry(live_entry(user.uid, comm=comm, exe="/usr/bin/<i>odd</i>"))
        user.wait_notified()
        notes = user.notifications()
    finally:
        user.stop(app)
    # shown literally, not as markup, and the terminal escape as a visible escape
    assert notes[0]["summary"] == "<b>x</b>&\\x1b[31m crashed"
    assert "\x1b" not in json.dumps(notes, ensure_ascii=False)
    listing = user.cli("list")
    assert "\x1b" not in listing.stdout
    assert "\\x1b" in listing.stdout
    show = user.cli("show", json.loads(user.cli("list", "--json").stdout)[0]["id"])
    assert show.returncode == 0
    everything = (json.dumps(notes) + listing.stdout + show.stdout
                  + user.cli("list", "--json").stdout + user.app_log())  # fmt: skip
    assert "ENVSECRET" not in everything
    assert "CMDSECRET" not in everything
    revealed = user.cli("show", "--reveal", json.loads(user.cli("list", "--json").stdout)[0]["id"])
    assert "ENVSECRET-4711" in revealed.stdout
    assert "CMDSECRET" in revealed.stdout


def test_markup_in_names_is_shown_literally(app_desktop: Desktop) -> None:
    """dunst (markup = full) advertises body-markup: names in the body are escaped exactly once
    (dunst renders them literally), and the summary is sent as the plain text it is."""
    user = app_desktop.user()
    user.start_dunst()
    user.send_entry(live_entry(user.uid, comm="<b>bold</b>", exe="/usr/bin/a"), wake=False)
    user.send_entry(live_entry(user.uid, comm="x&y<i>", exe="/usr/bin/b"), wake=False)
    time.sleep(0.5)
    app = user.start_app()
    try:
        user.wait_notified()  # the catch-up: names in the body
        user.send_entry(live_entry(user.uid, comm="<i>it</i>", exe="/usr/bin/c"))
        user.wait_notified(2)  # the live notification
        notes = user.notifications()
    finally:
        user.stop(app)
    live, catch_up = notes
    # dunst's "message" is the Pango markup it renders: our text must arrive as inert entities.
    assert "&lt;b&gt;bold&lt;/b&gt;" in catch_up["message"]
    assert "x&amp;y&lt;i&gt;" in catch_up["message"]
    assert "&amp;lt;" not in catch_up["message"]  # not escaped twice
    assert live["summary"] == "<i>it</i> crashed"
    assert "&lt;i&gt;it&lt;/i&gt; crashed" in live["message"]
