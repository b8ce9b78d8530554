"""The unwinder child's report lines: encode_json in the child, decode_json in the worker (no
json package on the small crash's critical path), agreeing with the json package itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import drkonqi_lite_collector
from drkonqi_lite_collector.unwinder.sandbox import decode_json, encode_json

VALUES = [
    {"modules": [["/usr/bin/sleep", "e3f1", 4096, None, True, False]], "n": -7},
    {"name": "evil\n\"quote\"\\\x1b[31m\u202e\U0001f600", "lone": "\udcff"},
    [],
    {},
    "plain",
    12345678901234567890,
]


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_round_trip_agrees_with_the_json_package(value: object) -> None:
    line = encode_json(value).encode("utf-8", "surrogatepass")
    assert b"\n" not in line
    assert decode_json(line) == json.loads(line) == value


@pytest.mark.parametrize(
    "line", [b"", b"{", b'{"a":1} trailing', b"\xff\xfe", b"nope", b'{"a":1}{"b":2}']
)
def test_malformed_lines_are_value_errors(line: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the reader skips exactly these
        decode_json(line)


def test_decoding_imports_neither_json_nor_re(tmp_path: Path) -> None:
    # The launcher's layout (pattern.write_launcher): the package by its import name, -IS.
    (tmp_path / "drkonqi_lite_collector").symlink_to(drkonqi_lite_collector.__path__[0])
    code = (
        f"import sys; sys.path[:0] = [{str(tmp_path)!r}]\n"
        "from drkonqi_lite_collector.unwinder.sandbox import decode_json\n"
        "decode_json(b'{\"a\": [1, \"x\"]}')\n"
        "print(sorted(m for m in ('json', 're', 'enum') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-IS", "-c", code], capture_output=True, text=True, check=True, env={}
    )
    assert out.stdout.strip() == "[]"


def test_child_report_encoding_round_trips_hostile_text() -> None:
    """The unwinder child's reports: the real json module must read back exactly what was
    meant, whatever symbol names a hostile ELF file holds."""
    nasty = 'a"b\\c\nd\x00e\u202ef\udcff</script>{"fatal":1}'
    event = {"thread": 7, "frames": [[1, nasty, None, 0], (2, "ok", "libc.so.6", 16)],
             "packages": {"/bin/x": {"name": nasty}}, "done": True, "cut": False}
    line = encode_json(event)
    assert "\n" not in line
    decoded = json.loads(line)
    assert decoded["frames"][0][1] == nasty
    assert decoded["frames"][1] == [2, "ok", "libc.so.6", 16]
    assert decoded["packages"]["/bin/x"]["name"] == nasty
    assert decoded["done"] is True
    assert decoded["cut"] is False
