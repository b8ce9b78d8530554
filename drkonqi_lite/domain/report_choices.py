"""What the app's first stage needs of reporting: the user's "always send" choices and the
error a report's D-Bus caller sees. Apart from reporting_policy.py (the admin's rules, DSNs,
configparser) so that a cold start's notification does not wait for those imports. Pure.
"""

from __future__ import annotations

import dataclasses
import json

from drkonqi_lite.domain.crash import Crash


class ReportFailedError(Exception):
    """A report that was neither sent nor queued; `kind` names the D-Bus error (here, not
    with the sending code, so that the D-Bus service needs none of it to start)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclasses.dataclass(slots=True)
class AutoReport:
    """The user's "always send reports" choices, for one program (its program_key) or for
    every program; kept in settings.ini as `report_always` and `report_programs` (a JSON list:
    program keys are paths, which may hold any character)."""

    every_program: bool = False
    programs: set[str] = dataclasses.field(default_factory=set)

    @classmethod
    def from_settings(cls, always: bool, programs: str) -> AutoReport:
        try:
            keys = json.loads(programs) if programs else []
        except ValueError:
            keys = []
        return cls(always, {k for k in keys if isinstance(k, str)} if isinstance(keys, list)
                   else set())  # fmt: skip

    def programs_setting(self) -> str:
        return json.dumps(sorted(self.programs), ensure_ascii=True)

    def applies(self, crash: Crash) -> bool:
        return self.every_program or crash.program_key in self.programs
