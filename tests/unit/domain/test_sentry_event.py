"""The Sentry event built from a crash record: what a developer sees on the server."""

from __future__ import annotations

import json

from drkonqi_lite.domain.crash import Crash, crash_from_entry
from drkonqi_lite.domain.python_stack import dumps
from drkonqi_lite.domain.sentry_event import (
    MAX_EVENT_BYTES,
    EventOptions,
    HostFacts,
    build_event,
    debug_id,
    serialize,
)
from drkonqi_lite.domain.trace import MAX_FRAMES, MAX_THREADS, parse_threads
from tests.entries import ARG_SECRET, EXE_ID, MAIN, SECRET, exception_entry
from tests.entries import SYMBOLIZED_TRACE as TRACE
from tests.entries import symbolized_crash as crash

FACTS = HostFacts(
    os_release={"NAME": "Debian GNU/Linux", "VERSION_ID": "12", "ID": "debian"},
    kernel="6.18.0",
    arch="x86_64",
    desktop="KDE",
)


def event(c: Crash | None = None, **options: object) -> dict:  # type: ignore[type-arg]
    return build_event(c or crash(), FACTS, EventOptions(**options))  # type: ignore[arg-type]


def test_debug_id_is_the_build_id_as_a_little_endian_guid() -> None:
    # The example of Sentry's documentation (debug identifiers of ELF files).
    assert debug_id(EXE_ID) == "c0bcc3f1-9827-fe65-3058-404b2831d9e6"
    # A short build-id is zero-padded to 16 bytes.
    assert debug_id("0102030405060708") == "04030201-0605-0807-0000-000000000000"


def test_the_signal_is_an_unhandled_signalhandler_exception() -> None:
    exc = event()["exception"]["values"][0]
    assert exc["type"] == "SIGABRT"
    assert exc["value"] == "Aborted in main"  # past abort() and raise()
    assert exc["mechanism"]["handled"] is False
    assert exc["mechanism"]["type"] == "signalhandler"
    assert exc["mechanism"]["meta"]["signal"] == {"number": 6, "name": "SIGABRT"}
    assert exc["thread_id"] == 4242


def test_frames_are_outermost_first_with_addresses_functions_and_packages() -> None:
    frames = event()["exception"]["values"][0]["stacktrace"]["frames"]
    assert [f.get("function") for f in frames] == [
        "main", None, "abort", "raise", "__pthread_kill_implementation"
    ]
    assert frames[0]["instruction_addr"] == "0x55d5e2a1b2b0"
    assert frames[0]["package"] == "/usr/bin/kwrite"
    assert frames[0]["in_app"] is True
    assert frames[-1]["package"] == "/usr/lib/x86_64-linux-gnu/libc.so.6"
    assert frames[-1]["in_app"] is False


def test_every_thread_is_there_and_the_crashing_one_is_marked() -> None:
    threads = event()["threads"]["values"]
    assert [(t["id"], t["crashed"]) for t in threads] == [(4242, True), (4243, False)]
    # The crashing thread's frames are on the exception (Sentry's threads interface rule).
    assert "stacktrace" not in threads[0]
    other = [f["function"] for f in threads[1]["stacktrace"]["frames"]]
    assert other == ["pthread_cond_wait@@GLIBC_2.3.2", "__futex_abstimed_wait_common"]


def test_images_carry_build_id_debug_id_and_load_range() -> None:
    images = event()["debug_meta"]["images"]
    assert [i["code_file"] for i in images] == [
        "/usr/bin/kwrite", "/usr/lib/x86_64-linux-gnu/libc.so.6"
    ]
    exe = images[0]
    assert exe["type"] == "elf"
    assert exe["code_id"] == EXE_ID
    assert exe["debug_id"] == "c0bcc3f1-9827-fe65-3058-404b2831d9e6"
    assert exe["image_addr"] == "0x55d5e2a1a000"
    assert exe["image_size"] == 0x3000


def test_systemd_coredump_entries_give_build_ids_through_package_json() -> None:
    package_json = json.dumps({"/usr/bin/kwrite": {"buildId": EXE_ID, "name": "kwrite"}})
    c = crash(DRKONQI_LITE_MODULES="", COREDUMP_PACKAGE_JSON=package_json)
    images = {i["code_file"]: i for i in event(c)["debug_meta"]["images"]}
    assert images["/usr/bin/kwrite"]["code_id"] == EXE_ID
    assert "code_id" not in images["/usr/lib/x86_64-linux-gnu/libc.so.6"]


def test_without_build_ids_the_executable_mappings_are_images_and_locales_are_not() -> None:
    images = event(crash(DRKONQI_LITE_MODULES=""))["debug_meta"]["images"]
    assert [i["code_file"] for i in images] == [
        "/usr/bin/kwrite", "/usr/lib/x86_64-linux-gnu/libc.so.6"
    ]
    assert all("code_id" not in i for i in images)


def test_contexts_tags_and_release() -> None:
    ev = event()
    assert ev["contexts"]["os"]["name"] == "Debian GNU/Linux"
    assert ev["contexts"]["os"]["version"] == "12"
    assert ev["contexts"]["os"]["kernel_version"] == "6.18.0"
    assert ev["contexts"]["device"]["arch"] == "x86_64"
    assert ev["contexts"]["app"]["app_version"] == "4:22.12.3-1"
    assert ev["contexts"]["desktop"]["name"] == "KDE"
    assert ev["release"] == "kwrite@4:22.12.3-1"
    assert ev["tags"]["signal"] == "SIGABRT"
    assert ev["tags"]["os.id"] == "debian"
    assert ev["platform"] == "native"
    assert ev["level"] == "fatal"


def test_fingerprint_is_one_for_repeats_and_differs_for_another_crash() -> None:
    first = event(crash())["fingerprint"]
    again = event(crash(COREDUMP_PID="5555"))["fingerprint"]
    other = event(crash(trace=TRACE.replace("main (kwrite", "save_file (kwrite")))["fingerprint"]
    assert first == again
    assert first != other
    assert first[1] == "/usr/bin/kwrite"


def test_environment_never_and_cmdline_only_when_asked() -> None:
    quiet = serialize(event()).decode()
    assert SECRET not in quiet
    assert ARG_SECRET not in quiet
    assert "API_TOKEN" not in quiet
    assert "alices-laptop" not in quiet
    loud = event(include_cmdline=True, include_hostname=True)
    assert ARG_SECRET in loud["extra"]["cmdline"]
    assert loud["server_name"] == "alices-laptop"
    assert SECRET not in serialize(loud).decode()


def test_an_environment_value_in_a_function_name_is_masked() -> None:
    c = crash(trace=TRACE.replace("main (kwrite", f"{SECRET} (kwrite"))
    assert SECRET not in serialize(event(c)).decode()


def test_comment_and_event_id_are_carried() -> None:
    ev = event(comment="It crashed when I saved.", event_id="a" * 32)
    assert ev["extra"]["user_comment"] == "It crashed when I saved."
    assert ev["event_id"] == "a" * 32
    assert len(event()["event_id"]) == 32


def test_a_huge_trace_is_bounded() -> None:
    frames = "\n".join(
        f"#{i}  0x{0x55d5e2a1b000 + i:016x} {'f' * 400}{i} (kwrite + 0x{i:x})" for i in range(500)
    )
    trace = "\n\n".join(f"Stack trace of thread {t}:\n{frames}" for t in range(1, 200))
    parsed = parse_threads(trace)
    assert len(parsed) == MAX_THREADS
    assert all(len(t.frames) == MAX_FRAMES for t in parsed)
    ev = event(crash(trace=trace), comment="x" * 100_000)
    assert len(serialize(ev)) <= MAX_EVENT_BYTES
    assert len(ev["extra"]["user_comment"]) <= 8192
    assert ev["exception"]["values"][0]["stacktrace"]["frames"]


def test_a_crash_without_a_trace_is_still_an_event() -> None:
    ev = event(crash(trace=""))
    exc = ev["exception"]["values"][0]
    assert exc["type"] == "SIGABRT"
    assert "stacktrace" not in exc
    assert ev["threads"]["values"] == []


def test_signal_code_and_thread_name_when_the_collector_has_them() -> None:
    ev = event(crash(COREDUMP_CODE="1", COREDUMP_THREAD_NAME="kwrite:gui"))
    assert ev["exception"]["values"][0]["mechanism"]["meta"]["signal"]["code"] == 1
    assert ev["threads"]["values"][0]["name"] == "kwrite:gui"


def test_a_python_programs_native_crash_carries_its_python_stack() -> None:
    c = crash(DRKONQI_LITE_PYTHON_STACK=dumps([MAIN]))
    values = event(c)["exception"]["values"]
    assert [v["type"] for v in values] == ["PythonStack", "SIGABRT"]  # the main one last
    frames = values[0]["stacktrace"]["frames"]
    assert [(f["function"], f["filename"], f["lineno"]) for f in frames] == [
        ("<module>", "/home/u/app.py", 15), ("outer", "/home/u/app.py", 10),
        ("do_crash", "/home/u/app.py", 7),
    ]  # fmt: skip
    assert all(f["platform"] == "python" for f in frames)


def test_an_unhandled_python_exception_is_a_python_event() -> None:
    ev = event(crash_from_entry(exception_entry()))
    assert ev["platform"] == "python"
    [value] = ev["exception"]["values"]
    assert (value["type"], value["value"]) == ("ValueError", "bad")
    assert value["mechanism"] == {"type": "excepthook", "handled": False}
    assert value["stacktrace"]["frames"][-1]["function"] == "do_crash"
    assert ev["fingerprint"][1] == "/home/u/app.py"  # the script, not the interpreter
