"""The kernel's argv: every specifier, the tagged %I word, and what is refused and why."""

from __future__ import annotations

import pytest

from drkonqi_lite_collector.stage import argv

KERNEL = ["1234", "1000", "1000", "11", "1795675000", "18446744073709551615", "host", "1"]


def test_argv_parses_the_kernel_specifiers() -> None:
    args = argv.parse([*KERNEL, "3"])
    assert (args.pid, args.uid, args.gid, args.signal) == (1234, 1000, 1000, 11)
    assert args.timestamp_us == 1795675000 * 1_000_000
    assert args.rlimit == 2**64 - 1
    assert (args.hostname, args.dumpable, args.pidfd, args.prefix) == ("host", 1, 3, "/")
    assert args.signal_name == "SIGSEGV"
    assert argv.parse(["--prefix=/tmp/x", *KERNEL]).prefix == "/tmp/x"


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        (KERNEL[:7], "expected 8 or 9"),
        (["x1", *KERNEL[1:]], "PID is not a number"),
        (["0", *KERNEL[1:]], "PID out of range"),
        ([*KERNEL[:3], "99", *KERNEL[4:]], "signal out of range"),
        ([*KERNEL[:7], "3"], "dump mode out of range"),
        ([*KERNEL, "0"], "pidfd out of range"),
        (["--prefix=relative", *KERNEL], "must be absolute"),
        (["١٢٣", *KERNEL[1:]], "not a number"),  # Arabic-Indic digits pass str.isdigit()
    ],
)
def test_argv_rejects_malformed_input_with_a_clear_reason(bad: list[str], words: str) -> None:
    with pytest.raises(argv.ArgvError, match=words):
        argv.parse(bad)


@pytest.mark.parametrize(
    ("hostname", "recorded"),
    [
        ("a/b", "a/b"),
        ("evil\nhost", "evil\\nhost"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("back\\slash", "back\\\\slash"),
        ("bad\udcffutf8", "bad\\xffutf8"),
        ("", ""),
    ],
)
def test_any_hostname_is_kept_escaped(hostname: str, recorded: str) -> None:
    """Any user sets any hostname in their own UTS namespace: never a reason to drop a crash."""
    assert argv.parse([*KERNEL[:6], hostname, *KERNEL[7:]]).hostname == recorded


def test_signal_names_like_systemd() -> None:
    assert argv.signal_name(6) == "SIGABRT"
    assert argv.signal_name(29) == "SIGIO"
    assert argv.signal_name(35) == "SIGRTMIN+1"


def test_the_tid_word_is_parsed_with_and_without_a_pidfd() -> None:
    assert argv.parse([*KERNEL, "3", "--tid=1240"]).tid == 1240
    with_prefix = argv.parse(["--prefix=/tmp/x", *KERNEL, "--tid=1234"])
    assert (with_prefix.tid, with_prefix.pidfd, with_prefix.prefix) == (1234, None, "/tmp/x")


def test_a_kernel_without_the_specifier_or_an_old_pattern_gives_no_tid() -> None:
    # The kernel drops an unknown %X: the word arrives as `--tid=`; patterns installed before
    # the word existed have none. Neither loses the crash or shifts %F.
    empty = argv.parse([*KERNEL, "3", "--tid="])
    assert (empty.tid, empty.pidfd) == (None, 3)
    assert argv.parse([*KERNEL, "3"]).tid is None
    assert "%I" in argv.TID_WORD


@pytest.mark.parametrize("bad", ["--tid=x", "--tid=0", "--tid=99999999", "--tid=\u0661"])
def test_a_malformed_tid_is_rejected_with_a_reason(bad: str) -> None:
    with pytest.raises(argv.ArgvError, match="TID"):
        argv.parse([*KERNEL, bad])
