"""The `drkonqi-lite` command line (DESIGN.md §2.4).

`drkonqi-lite` alone starts the tray app; `list`, `show`, `backtrace` and `watch` read the
journal directly (the app need not run) with the same trust rules, and print the D-Bus crash
dict keys with `--json`. Hostile text is printed inert (control characters escaped, so a comm
cannot send terminal escape sequences). The command line and environment are printed only with
`--reveal`.
Errors: one line on stderr and a non-zero status, never a traceback for an expected failure.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import re
import select
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from drkonqi_lite.adapters.journal import JournalSource, trust_policy_for
from drkonqi_lite.adapters.state_store import StateStore
from drkonqi_lite.domain import crash_facts
from drkonqi_lite.domain.crash import Crash
from drkonqi_lite.domain.plain_text import multi_line, one_line
from drkonqi_lite.domain.python_stack import format_text
from drkonqi_lite.domain.redaction import SECRET_FIELDS
from drkonqi_lite.domain.report import mask_secrets
from drkonqi_lite.domain.seen import SeenState
from drkonqi_lite.domain.summary import detail, summary
from drkonqi_lite.launch import APP_OPTIONS, tray_app
from drkonqi_lite_collector import __version__
from drkonqi_lite_collector.admin.closed_pipe import quiet_on_closed_pipe
from drkonqi_lite_collector.journal.schema import Field

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
_RELATIVE = re.compile(r"^-?(\d+)\s*(s|sec|m|min|h|hour|hours|d|day|days|w|week|weeks)(\s+ago)?$")
_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600, "hours": 3600,
          "d": 86400, "day": 86400, "days": 86400,
          "w": 604800, "week": 604800, "weeks": 604800}  # fmt: skip


class UsageError(Exception):
    """A bad argument value (exit status 2)."""


class NotFoundError(Exception):
    """No such crash (exit status 1)."""


def parse_when(text: str, now: float | None = None) -> int:
    """--since: "today", "yesterday", "2h", "3 days ago", "@EPOCH", "YYYY-MM-DD[ HH:MM[:SS]]"."""
    now = time.time() if now is None else now
    value = text.strip().lower()
    local_midnight = datetime.datetime.fromtimestamp(now).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    if value == "now":
        return int(now * 1e6)
    if value in {"today", "yesterday"}:
        day = local_midnight - datetime.timedelta(days=1 if value == "yesterday" else 0)
        return int(day.timestamp() * 1e6)
    if value.startswith("@"):
        try:
            return int(float(value[1:]) * 1e6)
        except ValueError:
            raise UsageError(f"--since: {text!r} is not a time") from None
    match = _RELATIVE.match(value)
    if match:
        return int((now - int(match[1]) * _UNITS[match[2]]) * 1e6)
    try:
        moment = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"--since: {text!r} is not a time (try 'yesterday', '2h', '2026-11-26 10:00')"
        ) from None
    return int(moment.timestamp() * 1e6)


def _source() -> JournalSource:
    return JournalSource(trust_policy_for(os.getuid()))


def _state() -> SeenState:
    try:
        return StateStore.from_environment().load()
    except OSError:
        return SeenState()


def _all_crashes(since_us: int | None) -> list[Crash]:
    source = _source()
    try:
        if since_us is not None:
            source.seek_realtime(since_us)
        crashes = source.read()
        if since_us is not None:  # the seek may land a little early (sd_journal "next closest")
            crashes = [c for c in crashes if c.timestamp_us >= since_us]
    finally:
        source.close()
    return sorted(crashes, key=lambda c: -c.timestamp_us)


def _when(timestamp_us: int) -> str:
    return datetime.datetime.fromtimestamp(timestamp_us / 1e6).strftime("%Y-%m-%d %H:%M:%S")


def _line(crash: Crash) -> str:
    name = one_line(crash.comm or crash.exe, None)
    return f"{_when(crash.timestamp_us)}  {crash.id}  {crash.pid:>7}  {name:<16}  " \
           f"{crash.reason:<20}  {crash.core_state}"  # fmt: skip


def _dump(obj: object) -> None:
    print(json.dumps(obj, ensure_ascii=True, sort_keys=True))


def cmd_list(args: argparse.Namespace) -> int:
    from drkonqi_lite import cli_report  # noqa: PLC0415 (not in the tray app's start)

    since = parse_when(args.since) if args.since else None
    crashes = _all_crashes(since)
    state = _state()
    if args.json:
        reported = cli_report.reported_ids()
        _dump([summary(c, seen=state.is_seen(c.id), reported=reported.get(c.id, ""))
               for c in crashes])  # fmt: skip
    else:
        for crash in crashes:
            print(_line(crash))
    return EXIT_OK


def _find(key: str) -> Crash:
    crashes = _all_crashes(None)
    for crash in crashes:
        if crash.id == key:
            return crash
    if key.isdigit():
        for crash in crashes:  # newest first: the latest crash of that PID
            if crash.pid == int(key):
                return crash
    raise NotFoundError(
        f"no crash {one_line(key, None)!s} among your crashes (see 'drkonqi-lite list')"
    )


def cmd_show(args: argparse.Namespace) -> int:
    from drkonqi_lite import cli_report  # noqa: PLC0415 (not in the tray app's start)

    crash = _find(args.crash)
    seen = _state().is_seen(crash.id)
    info = detail(crash, seen=seen, reported=cli_report.reported_ids().get(crash.id, ""))
    if args.reveal:
        for key in SECRET_FIELDS:
            if key in crash.fields:
                info["fields"][key] = crash.fields[key]
    if args.json:
        _dump(info)
        return EXIT_OK
    for key in (
        "id",
        "pid",
        "uid",
        "signal_name",
        "comm",
        "exe",
        "timestamp",
        "hostname",
        "unit",
        "package",
        "core_state",
        "seen",
    ):
        value = info[key]  # type: ignore[literal-required]
        if key == "timestamp":
            value = f"{_when(crash.timestamp_us)} ({value})"
        print(f"{key:>12}: {one_line(str(value), None)}")
    print(f"{'reason':>12}: {crash.reason}")
    if crash.kcrash is not None and crash.kcrash.display_name:
        print(f"{'program':>12}: {one_line(crash.kcrash.display_name, None)} (KCrash)")
    for label, value in crash_facts.facts(crash):
        print(f"{label.lower():>12}: {one_line(value, None)}")
    if args.reveal:
        print(f"{'command line':>12}: {one_line(crash.cmdline, None)}")
        print(f"{'environment':>12}:")
        print(multi_line(crash.fields.get(Field.ENVIRON, "")))
    print()
    if crash.python_threads:  # a Python program: its own frames first
        print(multi_line(format_text(crash.python_threads)))
        print()
    print(multi_line(crash.backtrace) or "(no stack trace in the entry)")
    return EXIT_OK


def cmd_backtrace(args: argparse.Namespace) -> int:
    crash = _find(args.crash)
    if args.full:  # gdb on the stored core, as in the detail window (secrets masked)
        # Here, not at the top: the tray app's cold start goes through this module (~50 ms).
        from drkonqi_lite.adapters.gdb import FullBacktraceJob, GdbOptions, Outcome  # noqa: PLC0415

        options = GdbOptions(
            debuginfod=args.debuginfod or StateStore.from_environment().settings().debuginfod
        )
        result = FullBacktraceJob(crash, trust_policy_for(os.getuid()), options).run()
        if result.outcome is not Outcome.DONE:
            raise NotFoundError(f"no full backtrace for crash {crash.id}: {result.message}")
        print(multi_line(mask_secrets(result.text, crash)))
        return EXIT_OK
    if not crash.backtrace:
        raise NotFoundError(f"crash {crash.id} has no stack trace in its journal entry")
    print(multi_line(crash.backtrace))
    return EXIT_OK


def cmd_watch(args: argparse.Namespace) -> int:
    source = _source()
    source.seek_now()
    state = SeenState()
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        while True:
            select.select([source.fileno()], [], [])
            source.process()
            for crash in source.read():
                if args.json:
                    _dump(summary(crash, seen=state.is_seen(crash.id)))
                else:
                    print(_line(crash))
                sys.stdout.flush()
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        source.close()


def cmd_unseen(_args: argparse.Namespace) -> int:
    """How many of your crashes (within the app's catch-up window) are unseen; exit status 1
    when none is (drkonqi-lite-login.service starts the app only otherwise)."""
    store = StateStore.from_environment()
    since = int((time.time() - store.settings().catchup_days * 86400) * 1e6)
    state = _state()
    count = sum(1 for crash in _all_crashes(since) if not state.is_seen(crash.id))
    print(count)
    return EXIT_OK if count else EXIT_FAIL


def cmd_coredump_hook(args: argparse.Namespace) -> int:
    from drkonqi_lite.adapters import coredump_hook  # noqa: PLC0415 (root's unit only)

    # Its log is the unit's journal (who was woken, or why nobody).
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return coredump_hook.run(args.instance)
    except coredump_hook.HookError as exc:
        raise UsageError(str(exc)) from exc


def parser() -> argparse.ArgumentParser:
    from drkonqi_lite import cli_report  # noqa: PLC0415 (not in the tray app's start)

    p = argparse.ArgumentParser(prog="drkonqi-lite", description="Crash notifier for the desktop.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    for option, text in APP_OPTIONS.items():
        p.add_argument(option, action="store_true", help=text)
    sub = p.add_subparsers(dest="command")
    lst = sub.add_parser("list", help="list your crashes, newest first")
    lst.add_argument("--json", action="store_true")
    lst.add_argument("--since", metavar="WHEN")
    show = sub.add_parser("show", help="show one crash (by id or PID)")
    show.add_argument("crash", metavar="ID|PID")
    show.add_argument("--json", action="store_true")
    show.add_argument(
        "--reveal",
        action="store_true",
        help="also print the command line and environment (they may hold secrets)",
    )
    bt = sub.add_parser("backtrace", help="print a crash's stack trace")
    bt.add_argument("crash", metavar="ID")
    bt.add_argument("--full", action="store_true", help="run gdb on the stored core")
    bt.add_argument("--debuginfod", action="store_true", help="let gdb download debug symbols")
    watch = sub.add_parser("watch", help="print one line per new crash")
    watch.add_argument("--json", action="store_true")
    cli_report.add_parser(sub)
    sub.add_parser(
        "unseen", help="print how many of your crashes are unseen (exit status 1: none is)"
    )
    hook = sub.add_parser(
        "coredump-hook",
        help="(root, from drkonqi-lite-coredump-hook@.service) wake the app of the user whose "
        "crash systemd-coredump@INSTANCE.service handles",
    )
    hook.add_argument("instance", metavar="INSTANCE")
    demo = sub.add_parser(
        "demo",
        help="(root) the whole pipeline on this machine: a real crash, its notification and "
        "detail window, saved as screenshots",
    )
    demo.add_argument(
        "--output",
        type=Path,
        default=Path("demo-output"),
        metavar="DIR",
        help="where to save the screenshots and the journal entry (demo-output)",
    )
    return p


def cmd_report(args: argparse.Namespace) -> int:
    from drkonqi_lite import cli_report  # noqa: PLC0415 (not in the tray app's start)

    return cli_report.cmd_report(args, _find)


def cmd_demo(args: argparse.Namespace) -> int:
    from drkonqi_lite import demo  # noqa: PLC0415 (root-only orchestration)

    try:
        return demo.run(args.output)
    except demo.DemoError as exc:
        raise NotFoundError(f"demo: {exc}") from exc


def main(argv: Sequence[str] | None = None) -> int:
    return quiet_on_closed_pipe(lambda: _run(argv))


def _run(argv: Sequence[str] | None) -> int:
    """Parse the command line and run its command (main() handles a closed stdout)."""
    args = parser().parse_args(argv)
    commands = {"list": cmd_list, "show": cmd_show, "backtrace": cmd_backtrace,
                "watch": cmd_watch, "unseen": cmd_unseen, "coredump-hook": cmd_coredump_hook,
                "demo": cmd_demo, "report": cmd_report}  # fmt: skip
    try:
        if args.command is None:
            return tray_app(args.autostart, args.exit_when_idle)
        return commands[args.command](args)
    except UsageError as exc:
        print(f"drkonqi-lite: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except NotFoundError as exc:
        print(f"drkonqi-lite: {exc}", file=sys.stderr)
        return EXIT_FAIL
    except BrokenPipeError:
        raise  # not an error: main() ends quietly when the reader of stdout has gone
    except OSError as exc:
        print(f"drkonqi-lite: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAIL
