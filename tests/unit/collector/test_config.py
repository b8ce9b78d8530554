"""config.load(): systemd's coredump.conf syntax, read without configparser on the crash path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import zstandard

import drkonqi_lite_collector
from drkonqi_lite_collector import config


def test_unit_file_syntax_like_systemds_conf_parser() -> None:
    warnings: list[str] = []
    text = (
        "# comment\n; comment too\nEarly=1\n[Coredump]\n  Storage = journal  \n"
        "no equals sign\nMaxUse=1\\\n  G\n[Other]\nStorage=none\n[broken\nKeepFree=1\n"
    )
    assert config.parse_ini(text, "f.conf", warnings) == [
        ("Coredump", "Storage", "journal"),
        ("Coredump", "MaxUse", "1   G"),
        ("Other", "Storage", "none"),
    ]
    assert warnings == [
        "f.conf:3: Early= outside a section",
        "f.conf:6: not a key=value line: 'no equals sign'",
        "f.conf:11: invalid section header '[broken'",
        "f.conf:12: KeepFree= outside a section",
    ]


def test_a_bad_line_costs_that_line_not_the_file(tmp_path: Path) -> None:
    paths = config.Paths(str(tmp_path))
    Path(paths.config_dir).mkdir(parents=True)
    Path(paths.config_file).write_text(
        "[Coredump]\nStorage=journal\ngarbage\nCompressLevel=9\nMaxUse=1\\\n G\n"
        "[Other]\nStorage=none\n"
    )
    Path(paths.config_dir, "50-bad.conf").write_bytes(b"[Coredump]\nStorage=\xff\n")
    cfg = config.load(paths)
    assert (cfg.storage, cfg.compress_level, cfg.max_use) == ("journal", 9, 1024**3)
    assert any("garbage" in w for w in cfg.warnings)
    assert any("50-bad.conf" in w and "utf-8" in w for w in cfg.warnings), cfg.warnings


def test_reading_the_shipped_configuration_imports_nothing_slow(tmp_path: Path) -> None:
    """The Debian package ships collector.conf, so the handler reads a file on every crash:
    configparser (re, enum, collections: ~14 ms) must not come with it."""
    conf = tmp_path / "etc/drkonqi-lite/collector.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text((Path(__file__).parents[3] / "packaging/collector.conf").read_text())
    (conf.parent / "collector.conf.d").mkdir()
    (conf.parent / "collector.conf.d/99-local.conf").write_text("[Coredump]\nRateLimitBurst=3\n")
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "drkonqi_lite_collector").symlink_to(drkonqi_lite_collector.__path__[0])
    site = str(Path(zstandard.__file__).parent.parent)
    code = (
        f"import sys; sys.path[:0] = [{str(lib)!r}, {site!r}]\n"
        "from drkonqi_lite_collector import config\n"
        f"cfg = config.load(config.Paths({str(tmp_path)!r}))\n"
        "print(cfg.rate_limit_burst, cfg.warnings, sorted(m for m in sys.modules"
        " if m in ('configparser', 're', 'enum', 'collections')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-IS", "-c", code], capture_output=True, text=True, check=True, env={}
    )
    assert out.stdout.strip() == "3 () []"


def test_config_files_and_drop_ins(tmp_path: Path) -> None:
    paths = config.Paths(str(tmp_path))
    Path(paths.config_dir).mkdir(parents=True)
    Path(paths.config_file).write_text(
        "[Coredump]\nStorage=journal\nCompress=no\nProcessSizeMax=1G\nMaxUse=100M\n"
    )
    Path(paths.config_dir, "10-a.conf").write_text(
        "[Coredump]\nCompressLevel=7\nMaxUse=5M\nCompressThreads=0\n"
    )
    Path(paths.config_dir, "20-b.conf").write_text("[Coredump]\nKeepFree=bogus\nWhat=1\n")
    Path(paths.config_dir, "ignored.txt").write_text("[Coredump]\nStorage=none\n")
    cfg = config.load(paths)
    assert cfg.storage == config.Storage.JOURNAL
    assert cfg.compress is False
    assert cfg.compress_level == 7
    assert cfg.compress_threads == 0
    assert cfg.process_size_max == 1024**3
    assert cfg.max_use == 5 * 1024**2, "later drop-ins win"
    assert cfg.keep_free is None
    assert any("KeepFree=bogus" in w for w in cfg.warnings)
    assert any("unknown key What=" in w for w in cfg.warnings)


def test_config_defaults_without_files(tmp_path: Path) -> None:
    cfg = config.load(config.Paths(str(tmp_path)))
    assert (cfg.storage, cfg.compress, cfg.compress_level) == ("external", True, 3)
    assert cfg.warnings == ()
