"""What the sandboxed unwinder child reports, as the parent reads it back."""

from __future__ import annotations

import json

from drkonqi_lite_collector.unwinder.sandbox import encode_json


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
