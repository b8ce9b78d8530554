"""The collector's execution zones and the import rule between them, checked in fresh interpreters.

collector/ is split by the process that runs the code (README, Layout): stage/ (the kernel's
lean helper), worker/ (root, one crash), unwinder/ (the stack-trace engine and its sandboxed
child), journal/ (the entry: the schema both processes share, fields, delivery, spool),
pyhook/ (inside a crashing Python program) and admin/ (install, status, the core deletion
service); config.py, log.py and storage.py (the state directory on disk) serve every zone and
main.py dispatches to them. A module that reaches into a zone it must not know fails here with
both names: at import time (what a fresh interpreter loads, under the launcher's -IS) and in
any import statement, inside a function (the lazy imports the start-up diet relies on) or
under TYPE_CHECKING.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import zstandard

import drkonqi_lite_collector

PACKAGE = Path(drkonqi_lite_collector.__path__[0])
ZONES = ("stage", "worker", "unwinder", "journal", "pyhook", "admin")
SHARED = ("config", "log", "storage")
#: zone -> the zones it must never import. main.py may use them all (it dispatches).
FORBIDDEN = {
    "shared": set(ZONES),
    "stage": {"worker", "unwinder", "journal", "admin"},
    "journal": {"worker", "unwinder", "admin"},
    "unwinder": {"worker", "admin"},
    "worker": {"admin", "pyhook"},
    "pyhook": {"unwinder", "admin"},
    "admin": set(),
}
#: The contract (journal/schema.py) is below every zone: any module may import it.
CONTRACT = {"journal", "journal.schema"}
#: The contract with the app, the native protocol, and the hook every Python program loads at
#: start: the standard library alone.
STDLIB_ONLY = {"journal.schema", "journal.native", "pyhook.python_hook"}


def _modules() -> list[str]:
    """Every module of the collector as a dotted name below the package ("worker.handler")."""
    return sorted(
        ".".join(p.relative_to(PACKAGE).with_suffix("").parts)
        for p in PACKAGE.rglob("*.py")
        if p.name != "__init__.py"
    )


def _zone(module: str) -> str:
    head = module.split(".")[0]  # noqa: PLC0207
    return head if head in ZONES else "shared" if head in SHARED else head


def test_every_module_lives_in_a_zone() -> None:
    loose = [m for m in _modules() if _zone(m) not in (*ZONES, "shared", "main")]
    assert not loose, f"collector modules outside every zone: {loose}"
    for zone in ZONES:
        assert (PACKAGE / zone / "__init__.py").read_text().startswith('"""'), zone


def _loaded_by(modules: list[str], tmp_path: Path) -> dict[str, list[str]]:
    """What importing each module alone loads, in a fresh -IS interpreter each (the launcher's
    layout: the package by its import name, then the site-packages that hold zstandard)."""
    (tmp_path / "drkonqi_lite_collector").symlink_to(PACKAGE)
    site = str(Path(zstandard.__file__).parent.parent)
    loaded = {}
    for module in modules:
        code = (
            f"import sys; sys.path[:0] = [{str(tmp_path)!r}, {site!r}]\n"
            f"import drkonqi_lite_collector.{module}\n"
            "sys.stdout.write(repr(sorted(sys.modules)))\n"
        )
        out = subprocess.run(
            [sys.executable, "-IS", "-c", code], capture_output=True, text=True, check=True, env={}
        )
        loaded[module] = json.loads(out.stdout.replace("'", '"'))
    return loaded


def _violations(module: str, imported: list[str]) -> list[str]:
    zone = _zone(module)
    bad = []
    for name in imported:
        parts = name.split(".")
        if parts[0] != "drkonqi_lite_collector" or len(parts) < 2:
            continue
        target = ".".join(parts[1:])
        contract = target in CONTRACT or target.startswith("journal.schema.")  # a name of it
        if _zone(target) in FORBIDDEN.get(zone, set()) and not contract:
            bad.append(f"{module} ({zone}) imports {target}")
        if module in STDLIB_ONLY and target not in (module, module.split(".")[0]):  # noqa: PLC0207
            bad.append(f"{module} must be stdlib only, imports {target}")
    return bad


def test_no_zone_loads_a_zone_it_must_not_know(tmp_path: Path) -> None:
    modules = [m for m in _modules() if m != "main"]
    loaded = _loaded_by(modules, tmp_path)
    bad = [v for m in modules for v in _violations(m, loaded[m])]
    assert not bad, "\n".join(bad)


def _import_statements(path: Path) -> list[str]:
    """Collector modules named by any import statement of the file: inside functions (the lazy
    imports the start-up diet relies on) and under TYPE_CHECKING (a type is a dependency too)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
            names += [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names += [a.name for a in node.names]
    return names


def test_no_import_statement_crosses_a_forbidden_zone() -> None:
    bad = []
    for module in _modules():
        if module == "main":
            continue
        path = PACKAGE.joinpath(*module.split(".")).with_suffix(".py")
        bad += _violations(module, _import_statements(path))
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize(
    ("module", "imported", "complaint"),
    [
        ("stage.forward", ["drkonqi_lite_collector.worker.handler"], "imports worker.handler"),
        ("unwinder.unwind", ["drkonqi_lite_collector.admin.pattern"], "imports admin.pattern"),
        ("config", ["drkonqi_lite_collector.stage.argv"], "imports stage.argv"),
        ("journal.schema", ["drkonqi_lite_collector.config"], "must be stdlib only"),
        ("journal.entry", ["drkonqi_lite_collector.worker.procinfo"], "imports worker.procinfo"),
    ],
)
def test_the_rule_names_what_it_forbids(module: str, imported: list[str], complaint: str) -> None:
    """The checker itself: each kind of crossing is reported, with both modules named."""
    (found,) = _violations(module, imported)
    assert complaint in found
    assert module in found


def test_a_module_may_import_its_own_zone_and_those_allowed() -> None:
    assert not _violations("worker.handler", ["drkonqi_lite_collector.journal.entry"])
    assert not _violations("worker.supervisor", ["drkonqi_lite_collector.unwinder.stacktrace"])
    assert not _violations("unwinder.stacktrace", ["drkonqi_lite_collector.stage.argv"])
    assert not _violations("config", ["drkonqi_lite_collector.journal.schema"]), "the contract"


#: STYLE.md's sizes, held mechanically for the collector (ruff holds complexity <= 12).
MODULE_LINES, FUNCTION_LINES, FOLDER_MODULES = 400, 60, 12


def test_modules_functions_and_folders_stay_small_enough_to_read() -> None:
    too_big = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        name = path.relative_to(PACKAGE)
        if text.count("\n") > MODULE_LINES:
            too_big.append(f"{name}: {text.count(chr(10))} lines > {MODULE_LINES}")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno:
                lines = node.end_lineno - node.lineno + 1
                if lines > FUNCTION_LINES:
                    too_big.append(f"{name}:{node.lineno} {node.name}() {lines} lines")
    for folder in [PACKAGE, *(p for p in PACKAGE.iterdir() if p.is_dir() and p.name in ZONES)]:
        modules = [p for p in folder.glob("*.py") if p.name != "__init__.py"]
        if len(modules) > FOLDER_MODULES:
            too_big.append(f"{folder.name}/: {len(modules)} modules > {FOLDER_MODULES}")
    assert not too_big, "\n".join(too_big)


#: What both processes agree on, as it would be spelled if someone wrote it again.
CONTRACT_LITERALS = (
    '"/var/lib/drkonqi-lite',
    '"var/lib/drkonqi-lite',
    '"/run/drkonqi-lite/cores.socket"',
    '"run/drkonqi-lite/cores.socket"',
    'b"delete\\0"',
    '"drkonqi-lite/wakeup"',
    '"wakeup"',
)


#: A journal field name as a string literal (not a docstring's first word, not the env variable).
FIELD_LITERAL = re.compile(r'(?<!")"((?:COREDUMP|DRKONQI_LITE)_[A-Z0-9_]+)["=]')


def test_the_contract_between_the_processes_is_spelled_only_in_schema() -> None:
    """The storage directory, the cores socket and its protocol, the wake-up socket and the
    journal field names: journal/schema.py defines them, the collector and the app import them."""
    schema = PACKAGE / "journal" / "schema.py"
    app = Path(__file__).resolve().parents[3] / "drkonqi_lite"
    again = []
    for path in sorted([*PACKAGE.rglob("*.py"), *app.rglob("*.py")]):
        if path == schema:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            hits = [lit for lit in CONTRACT_LITERALS if lit in code]
            field = FIELD_LITERAL.search(code)
            if path.is_relative_to(app) and field and field[1] != "DRKONQI_LITE_PREFIX":
                hits.append("a journal field name")
            again += [f"{path.name}:{number}: {hit}" for hit in hits]
    assert not again, "\n".join(again)


#: Tests of the collector as a whole, not of one module.
WHOLE_COLLECTOR_TESTS = {"test_zones.py", "test_startup_imports.py"}


def test_the_collector_tests_mirror_its_folders() -> None:
    """tests/unit/collector/<zone>/test_<module>.py tests collector/<zone>/<module>.py, so a
    newcomer finds a module's tests where the module is (and a test outside it fails here)."""
    tests = Path(__file__).resolve().parent
    strays = [
        str(path.relative_to(tests))
        for path in sorted(tests.rglob("test_*.py"))
        if path.name not in WHOLE_COLLECTOR_TESTS or path.parent != tests
        if not PACKAGE.joinpath(
            path.parent.relative_to(tests), path.name.removeprefix("test_")
        ).is_file()
    ]
    assert not strays, f"collector tests without a module of that name and place: {strays}"
    loose = sorted(p.name for p in tests.parent.glob("test_collector*.py"))
    assert not loose, f"collector tests outside tests/unit/collector/: {loose}"
