"""Collector configuration: coredump.conf's keys and meanings, under our own paths.

Read from `PREFIX/etc/drkonqi-lite/collector.conf` then `collector.conf.d/*.conf` in lexical
order (later wins), section `[Coredump]`, with the keys of systemd's coredump.conf(5). The
prefix is "/" on a real system and a scratch directory in tests. Unknown keys and bad values are
reported and ignored, never fatal: a collector that refuses to run loses crashes.
"""

from __future__ import annotations

import os

GiB = 1024**3
#: Defaults of systemd's coredump.conf on 64-bit systems (coredump.conf(5)).
PROCESS_SIZE_MAX = 32 * GiB
EXTERNAL_SIZE_MAX = 32 * GiB
#: journald's DATA_SIZE_MAX bounds a single field; systemd keeps cores below it.
JOURNAL_SIZE_MAX = 767 * 1024**2
#: MaxUse= and KeepFree= default to 10% and 15% of the file system, both capped at 4G.
MAX_USE_FRACTION = 0.10
KEEP_FREE_FRACTION = 0.15
VACUUM_CAP = 4 * GiB


class Storage:
    """Storage= values (string constants, see schema.Field for why not an enum)."""

    NONE = "none"
    EXTERNAL = "external"
    JOURNAL = "journal"


#: Subdirectories of the state directory (var/lib/drkonqi-lite), named once: the collector opens
#: them by name through the state directory's fd, and Paths gives their full paths.
#: (journal/schema.py names the storage subdirectory: the app reads cores from there too.)
#: The core directory is searchable but not listable by others (SECURITY.md 9): core names carry
#: program, uid, pid and time. A user opens their own core by the name in COREDUMP_FILENAME, which
#: only needs search (x) permission, and reads it through the ACL the collector grants.
STORAGE_MODE = 0o711
SPOOL_SUBDIR = "spool"
RATELIMIT_SUBDIR = "ratelimit"


class Paths:
    """Where the collector reads and writes; everything hangs off one prefix."""

    __slots__ = ("prefix",)

    def __init__(self, prefix: str = "/") -> None:
        self.prefix = os.fspath(prefix)

    def _at(self, rel: str) -> str:
        return os.path.join(self.prefix, rel)

    @property
    def config_file(self) -> str:
        return self._at("etc/drkonqi-lite/collector.conf")

    @property
    def config_dir(self) -> str:
        return self._at("etc/drkonqi-lite/collector.conf.d")

    @property
    def state_dir(self) -> str:
        from drkonqi_lite_collector.journal import schema  # noqa: PLC0415 - not the stage's

        return self._at(schema.STATE_DIR)

    @property
    def storage_dir(self) -> str:
        from drkonqi_lite_collector.journal import schema  # noqa: PLC0415 - not the stage's

        return os.path.join(self.state_dir, schema.STORAGE_SUBDIR)

    @property
    def cache_dir(self) -> str:
        """What the collector can always rebuild (the dpkg index, unwinder/dpkg.py)."""
        return self._at("var/cache/drkonqi-lite")

    @property
    def spool_dir(self) -> str:
        return os.path.join(self.state_dir, SPOOL_SUBDIR)

    @property
    def socket(self) -> str:
        """Where the socket-activated service listens (drkonqi-lite-collector.socket)."""
        return self._at("run/drkonqi-lite/collector.socket")

    @property
    def cores_socket(self) -> str:
        """Where users ask to delete their cores (drkonqi-lite-cores.socket, cores.py)."""
        from drkonqi_lite_collector.journal import schema  # noqa: PLC0415 - not the stage's

        return self._at(schema.CORES_SOCKET.lstrip("/"))

    @property
    def saved_pattern_file(self) -> str:
        return os.path.join(self.state_dir, "saved-core_pattern.json")


class Config:
    """The [Coredump] settings, with systemd's defaults.

    Crash-loop limit: at most `rate_limit_burst` stored cores per program and user, and at
    most `rate_limit_user_burst` per user whatever the program (renamed or copied binaries),
    within `rate_limit_interval` seconds; further crashes are counted in their entries, not
    stored. `rate_limit_user_burst` None means twice `rate_limit_burst`.
    `max_use`/`keep_free` None mean the file-system dependent default (see storage.vacuum).
    `compress_level` is zstd's; systemd uses the library default (3), and levels >= 10 are far
    too slow for cores. `compress_threads`: zstd worker threads (0: compress in the reading
    thread); one worker overlaps compression with reading the pipe and writing the file.
    `python_exceptions` (ours, PythonExceptions=): whether the system interpreters' hook
    (python_hook.py) records unhandled exceptions as crashes.
    """

    __slots__ = (
        "compress",
        "compress_level",
        "compress_threads",
        "external_size_max",
        "journal_size_max",
        "keep_free",
        "max_use",
        "process_size_max",
        "python_exceptions",
        "rate_limit_burst",
        "rate_limit_interval",
        "rate_limit_user_burst",
        "stacktrace_timeout",
        "storage",
        "warnings",
    )

    def __init__(
        self,
        *,
        storage: str = Storage.EXTERNAL,
        compress: bool = True,
        compress_level: int = 3,
        compress_threads: int = 1,
        process_size_max: int = PROCESS_SIZE_MAX,
        external_size_max: int = EXTERNAL_SIZE_MAX,
        journal_size_max: int = JOURNAL_SIZE_MAX,
        max_use: int | None = None,
        keep_free: int | None = None,
        rate_limit_interval: float = 60.0,
        rate_limit_burst: int = 10,
        rate_limit_user_burst: int | None = None,
        stacktrace_timeout: float = 5.0,
        python_exceptions: bool = True,
        warnings: tuple[str, ...] = (),
    ) -> None:
        self.storage = storage
        self.compress = compress
        self.compress_level = compress_level
        self.compress_threads = compress_threads
        self.process_size_max = process_size_max
        self.external_size_max = external_size_max
        self.journal_size_max = journal_size_max
        self.max_use = max_use
        self.keep_free = keep_free
        self.rate_limit_interval = rate_limit_interval
        self.rate_limit_burst = rate_limit_burst
        self.rate_limit_user_burst = (
            2 * rate_limit_burst if rate_limit_user_burst is None else rate_limit_user_burst
        )
        self.stacktrace_timeout = stacktrace_timeout
        self.python_exceptions = python_exceptions
        self.warnings = warnings


_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5, "E": 1024**6}


def parse_size(text: str) -> int:
    """A size as systemd writes it: `2G`, `512M`, `1.5K`, `1024`, `infinity` (base 1024)."""
    value = text.strip().upper()
    if value == "INFINITY":
        return 2**63 - 1
    value = value.removesuffix("B").removesuffix("I")
    unit = value[-1:] if value[-1:] in _UNITS else ""
    number = value[: len(value) - len(unit)].strip()
    try:
        size = float(number)
    except ValueError:
        raise ValueError(f"not a size: {text!r}") from None
    if not 0 <= size < float("inf"):  # also rejects nan
        raise ValueError(f"not a size: {text!r}")
    return int(size * _UNITS[unit])


def _choice(text: str, allowed: tuple[str, ...]) -> str:
    value = text.strip().lower()
    if value not in allowed:
        raise ValueError(f"not one of {', '.join(allowed)}: {text!r}")
    return value


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in {"1", "yes", "y", "true", "t", "on"}:
        return True
    if value in {"0", "no", "n", "false", "f", "off"}:
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _parse_seconds(text: str) -> float:
    value = text.strip().lower().removesuffix("s").removesuffix("sec")
    return float(value)


_KEYS = {
    "storage": ("storage", lambda v: _choice(v, (Storage.NONE, Storage.EXTERNAL, Storage.JOURNAL))),
    "compress": ("compress", parse_bool),
    "compresslevel": ("compress_level", int),
    "compressthreads": ("compress_threads", int),
    "processsizemax": ("process_size_max", parse_size),
    "externalsizemax": ("external_size_max", parse_size),
    "journalsizemax": ("journal_size_max", parse_size),
    "maxuse": ("max_use", parse_size),
    "keepfree": ("keep_free", parse_size),
    "ratelimitintervalsec": ("rate_limit_interval", _parse_seconds),
    "ratelimitburst": ("rate_limit_burst", int),
    "ratelimituserburst": ("rate_limit_user_burst", int),
    "stacktracetimeoutsec": ("stacktrace_timeout", _parse_seconds),
    "pythonexceptions": ("python_exceptions", parse_bool),
}


#: One file's bytes read at most: a configuration is a few hundred bytes.
CONFIG_MAX = 64 * 1024


def parse_ini(text: str, name: str, warnings: list[str]) -> list[tuple[str, str, str]]:
    """(section, key, value) of each assignment, in order, as systemd's conf-parser reads a
    unit-style file: `#` and `;` start comment lines, a trailing backslash continues a line,
    `[Section]` opens a section, `key=value` (whitespace around both stripped). A line that is
    none of these becomes a warning and is skipped, never the rest of the file.

    Not configparser: it imports re, enum and collections, ~14 ms of the crashed process's
    wait on every crash, since the package ships collector.conf."""
    out: list[tuple[str, str, str]] = []
    section = None
    pending = ""
    for number, raw in enumerate(text.splitlines(), 1):
        line = (pending + raw).strip() if pending else raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line[0] == "[":
            if not line.endswith("]") or len(line) < 3:
                warnings.append(f"{name}:{number}: invalid section header {line!r}")
                section = None
                continue
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            warnings.append(f"{name}:{number}: not a key=value line: {line!r}")
        elif section is None:
            warnings.append(f"{name}:{number}: {key.strip()}= outside a section")
        else:
            out.append((section, key.strip(), value.strip()))
    return out


def _read_text(file: str) -> str | None:
    """The file's text (None when it is gone); OSError and UnicodeDecodeError propagate."""
    try:
        fd = os.open(file, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        data = os.read(fd, CONFIG_MAX + 1)
    finally:
        os.close(fd)
    if len(data) > CONFIG_MAX:
        raise OSError(0, f"larger than {CONFIG_MAX} bytes, not read")
    return data.decode("utf-8")


def load(paths: Paths) -> Config:
    """Read the configuration files; problems become `warnings`, never exceptions."""
    files = [paths.config_file]
    try:
        files += sorted(
            os.path.join(paths.config_dir, n)
            for n in os.listdir(paths.config_dir)
            if n.endswith(".conf")
        )
    except OSError:
        pass
    values: dict[str, object] = {}
    warnings: list[str] = []
    for file in files:
        try:
            text = _read_text(file)
        except (OSError, UnicodeDecodeError) as e:
            warnings.append(f"{file}: {e}")
            continue
        if text is None:
            continue
        for section, key, raw in parse_ini(text, file, warnings):
            if section != "Coredump":
                continue
            spec = _KEYS.get(key.lower())
            if spec is None:
                warnings.append(f"{file}: unknown key {key}=")
                continue
            attr, convert = spec
            try:
                values[attr] = convert(raw)  # type: ignore[operator]
            except ValueError as e:
                warnings.append(f"{file}: {key}={raw}: {e}")
    return _checked(values, warnings)


def _checked(values: dict[str, object], warnings: list[str]) -> Config:
    level = values.get("compress_level")
    if isinstance(level, int) and not 1 <= level <= 22:
        warnings.append(f"CompressLevel={level} out of range 1..22, using 3")
        values.pop("compress_level")
    threads = values.get("compress_threads")
    if isinstance(threads, int) and not 0 <= threads <= 4:
        warnings.append(f"CompressThreads={threads} out of range 0..4, using 1")
        values.pop("compress_threads")
    return Config(**values, warnings=tuple(warnings))  # type: ignore[arg-type]  # typed by _KEYS


def prefix_from_environment() -> str:
    """The prefix for command-line use (DRKONQI_LITE_PREFIX), "/" by default."""
    return os.environ.get("DRKONQI_LITE_PREFIX", "/")
