"""Which Debian package owns a file, from dpkg's database read directly (we execute nothing).

dpkg keeps one `info/PACKAGE[:ARCH].list` file per package and no index of paths, so a plain
lookup reads the lists one by one (~7 MiB on a small system: ~4 ms for a hit, 15-30 ms for a
miss) while the unwinder works on the other CPU. The worker therefore keeps a sorted index of
the lists under the cache directory (root-owned, SECURITY.md 3), stamped with the database's
state: a lookup through a current index is one binary search (well under a millisecond). A
stale or missing index is rebuilt after the crash's entry was sent (`DpkgLookup.refresh`), so
no crash waits for it; that crash itself uses the plain scan.

Every read is bounded (DPKG_LISTS_MAX lists, DPKG_BYTES_MAX bytes), like the scan.
"""

from __future__ import annotations

import os

from drkonqi_lite_collector import storage
from drkonqi_lite_collector.journal.native import write_all

TYPE_CHECKING = False  # the worker imports this module: no typing at run time (handler.py)
if TYPE_CHECKING:
    from collections.abc import Iterator

DPKG_LISTS_MAX = 20000
DPKG_BYTES_MAX = 64 * 1024 * 1024
ADMINDIR = "/var/lib/dpkg"
INDEX_NAME = "dpkg-owners"
INDEX_MAGIC = b"drkonqi-lite dpkg-owners 1 "
#: usr-merge: /bin, /sbin and /lib are symlinks into /usr, dpkg may know either spelling.
_MERGED = ("/bin/", "/sbin/", "/lib/", "/lib64/", "/lib32/")
#: Where Debian packages install programs and libraries (never /usr/local, /home, /tmp) ...
_DPKG_DIRS = ("/usr/", "/bin/", "/sbin/", "/lib", "/opt/", "/libexec/")
#: ... and where they install nothing that runs: neither looked up nor indexed.
_NOT_PROGRAMS = (
    "/usr/local/",
    "/usr/include/",
    "/usr/share/doc/",
    "/usr/share/man/",
    "/usr/share/locale/",
    "/usr/share/icons/",
    "/usr/share/i18n/",
    "/usr/share/lintian/",
    "/usr/share/zoneinfo/",
)


def _spellings(path: str) -> list[bytes]:
    out = [path]
    if path.startswith("/usr/") and path[4:].startswith(_MERGED):
        out.append(path[4:])
    elif path.startswith(_MERGED):
        out.append("/usr" + path)
    return [p.encode("utf-8", "surrogateescape") for p in out]


def _looked_up(path: str) -> bool:
    return path.startswith(_DPKG_DIRS) and not path.startswith(_NOT_PROGRAMS)


def dpkg_owner(path: str, admindir: str = ADMINDIR) -> dict[str, str] | None:
    """{"type":"deb","name","version","architecture"} of the package owning `path`, or None,
    by scanning the lists: those whose package name starts like the file's name are read
    first (zstd -> zstd.list)."""
    if not _looked_up(path):
        return None
    try:
        info = _open_dir(os.path.join(admindir, "info"))
    except OSError:
        return None
    try:
        owner = _scan_lists(info, _spellings(path), path.rsplit("/", 1)[-1])
    finally:
        os.close(info)
    if owner is None:
        return None
    package, _, arch = owner.partition(":")
    return _installed(_read_status(admindir), package, arch)


def _open_dir(path: str) -> int:
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def _list_names(info: int) -> list[str]:
    names = [e.name for e in os.scandir(info) if e.name.endswith(".list")]
    return sorted(names)[:DPKG_LISTS_MAX]


def _lists(info: int, names: list[str]) -> Iterator[tuple[str, bytes]]:
    """(name without .list, bytes) of each list, within DPKG_BYTES_MAX in all."""
    spent = 0
    for name in names:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW, dir_fd=info)
        except OSError:
            continue
        try:
            data = os.read(fd, min(os.fstat(fd).st_size, DPKG_BYTES_MAX - spent) + 1)
        except OSError:
            continue
        finally:
            os.close(fd)
        spent += len(data)
        yield name[: -len(".list")], data
        if spent >= DPKG_BYTES_MAX:
            return


def _scan_lists(info: int, needles: list[bytes], base: str) -> str | None:
    try:
        names = _list_names(info)
    except OSError:
        return None
    stem = base.split(".", 1)[0].split("-", 1)[0] or base
    names.sort(key=lambda n: (not n.startswith(stem), n))
    inner = [b"\n" + n + b"\n" for n in needles]
    first = tuple(n + b"\n" for n in needles)
    for package, data in _lists(info, names):
        if any(n in data for n in inner) or data.startswith(first):
            return package
    return None


def _read_status(admindir: str) -> bytes:
    try:
        with open(os.path.join(admindir, "status"), "rb") as f:
            return f.read(DPKG_BYTES_MAX)
    except OSError:
        return b""


def _paragraph(para: bytes) -> dict[str, str]:
    fields = {}
    for line in para.split(b"\n"):
        name, sep, value = line.partition(b": ")
        if sep and not line.startswith((b" ", b"\t")):
            fields[name.decode("ascii", "replace")] = value.decode("utf-8", "replace")
    return fields


def _pick(fields: dict[str, str], package: str, arch: str) -> dict[str, str] | None:
    """The package's metadata if this status paragraph is it, installed, for `arch`."""
    if fields.get("Architecture") in (arch or fields.get("Architecture"), "all") and (
        "installed" in fields.get("Status", "").split()
    ):
        return {
            "type": "deb",
            "name": package,
            "version": fields.get("Version", ""),
            "architecture": fields.get("Architecture", arch),
        }
    return None


def _installed(status: bytes, package: str, arch: str) -> dict[str, str] | None:
    data = b"\n" + status
    key = b"\nPackage: " + package.encode("utf-8", "surrogateescape") + b"\n"
    pos = data.find(key)
    while pos >= 0:
        end = data.find(b"\n\n", pos + 1)
        found = _pick(_paragraph(data[pos + 1 : end if end >= 0 else len(data)]), package, arch)
        if found is not None:
            return found
        pos = data.find(key, pos + 1)
    return None


class DpkgLookup:
    """dpkg_owner through the index in `cache_dir` while it is current, else by the scan;
    `refresh()` (after the entry was sent) rebuilds an index the lookup found stale."""

    def __init__(self, cache_dir: str | None, admindir: str = ADMINDIR) -> None:
        self._cache_dir = cache_dir
        self._admindir = admindir
        self._stale = False

    def owner(self, path: str) -> dict[str, str] | None:
        if not _looked_up(path):
            return None
        stamp = _stamp(self._admindir)
        if stamp is None:
            return None  # no dpkg database
        if self._cache_dir is not None:
            try:
                return _from_index(self._cache_dir, stamp, _spellings(path))
            except _StaleIndexError:
                self._stale = True
        return dpkg_owner(path, self._admindir)

    def refresh(self) -> None:
        """Rebuild the index if owner() found it stale or missing. One collector at a time
        (the others' crashes keep the scan meanwhile); bounded like the scan."""
        if not self._stale or self._cache_dir is None:
            return
        self._stale = False
        import fcntl  # noqa: PLC0415 - a C module, only after a dpkg change

        try:
            cache = storage.open_dir(self._cache_dir, create=True)
        except OSError:
            return
        try:
            fcntl.flock(cache, fcntl.LOCK_EX | fcntl.LOCK_NB)
            stamp = _stamp(self._admindir)
            if stamp is not None and not _current(cache, stamp):
                _rebuild(cache, self._admindir, stamp)
        except OSError:
            pass
        finally:
            os.close(cache)  # and the lock with it


class _StaleIndexError(Exception):
    """No index, or one made for another state of dpkg's database."""


def _stamp(admindir: str) -> bytes | None:
    """What changes whenever dpkg installs or removes anything: the info directory (its
    entries are renamed into place) and the status file (replaced whole)."""
    try:
        info = os.stat(os.path.join(admindir, "info"))
        status = os.stat(os.path.join(admindir, "status"))
    except OSError:
        return None
    return (
        f"{info.st_mtime_ns}:{info.st_ino}:{status.st_mtime_ns}:{status.st_size}:{status.st_ino}"
    ).encode()


def _open_index(cache: int) -> int:
    fd = os.open(INDEX_NAME, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW, dir_fd=cache)
    st = os.fstat(fd)
    # Root's own file, or it is not ours to trust (SECURITY.md 3).
    if st.st_uid != 0 or st.st_mode & 0o022 or not st.st_size:
        os.close(fd)
        raise _StaleIndexError
    return fd


def _current(cache: int, stamp: bytes) -> bool:
    try:
        fd = _open_index(cache)
    except (OSError, _StaleIndexError):
        return False
    try:
        header = INDEX_MAGIC + stamp + b"\n"
        return os.pread(fd, len(header), 0) == header
    finally:
        os.close(fd)


def _from_index(cache_dir: str, stamp: bytes, needles: list[bytes]) -> dict[str, str] | None:
    """The owner from a current index; _StaleIndexError when there is none."""
    try:
        cache = storage.open_dir(cache_dir)
    except OSError:
        raise _StaleIndexError from None
    try:
        fd = _open_index(cache)
    except OSError:
        raise _StaleIndexError from None
    finally:
        os.close(cache)
    try:
        header = INDEX_MAGIC + stamp + b"\n"
        if os.pread(fd, len(header), 0) != header:
            raise _StaleIndexError
        size = os.fstat(fd).st_size
        for needle in needles:
            line = _search(fd, len(header), size, needle)
            if line is not None:
                return _meta(line)
        return None
    finally:
        os.close(fd)


#: The longest line the index holds: a path of PATH_MAX and the package's fields.
LINE_MAX = 8192


def _search(fd: int, lo: int, hi: int, needle: bytes) -> bytes | None:
    """The line of the file's [lo, hi) (lines sorted by their first tab-separated field) whose
    first field is `needle`: a binary search between line starts. pread, not mmap: a mapping
    would fault in (and count as ours) 64 KiB of the file around every probe."""
    while lo < hi:
        start, end, line = _line_around(fd, lo, (lo + hi) // 2, hi)
        key = line.partition(b"\t")[0]
        if key == needle:
            return line
        if key < needle:
            lo = end + 1
        else:
            hi = start
    return None


def _line_around(fd: int, lo: int, mid: int, hi: int) -> tuple[int, int, bytes]:
    """(start, end, text) of the line that holds byte `mid`; `lo` and `hi` are line starts."""
    back = min(LINE_MAX, mid - lo)
    newline = os.pread(fd, back, mid - back).rfind(b"\n")
    if newline < 0 and back == LINE_MAX:
        raise _StaleIndexError  # not a file we wrote
    start = lo if newline < 0 else mid - back + newline + 1
    after = os.pread(fd, min(LINE_MAX, hi - start), start)
    length = after.find(b"\n")
    if length < 0:
        raise _StaleIndexError
    return start, start + length, after[:length]


def _meta(line: bytes) -> dict[str, str] | None:
    fields = line.decode("utf-8", "replace").split("\t")
    if len(fields) != 4:
        return None
    _, name, version, arch = fields
    return {"type": "deb", "name": name, "version": version, "architecture": arch}


#: At most this many paths are indexed (a Debian desktop has ~80,000): the build holds them all
#: in memory to sort them (~130 bytes each). Beyond it there is no index and crashes scan.
INDEX_PATHS_MAX = 400_000


def _rebuild(cache: int, admindir: str, stamp: bytes) -> None:
    """Write the index of every list's program paths, sorted, under the database's `stamp`
    (taken before reading: a change meanwhile leaves it stale, not wrong)."""
    lines = _index_lines(admindir)
    if lines is None:
        return
    lines.sort()
    # Linked under a name of its own, then renamed over the old index: a reader sees one whole
    # index or the other (TempFile never replaces a name).
    name = f".{INDEX_NAME}.new"
    with storage.TempFile(cache, 0o644) as tmp:
        write_all(tmp.fd, INDEX_MAGIC + stamp + b"\n")
        previous = b""
        batch = []
        for line in lines:
            path = line.partition(b"\t")[0]
            if path != previous:  # a path in two lists (a directory): the first package's
                batch.append(line)
                previous = path
            if len(batch) >= 4096:
                write_all(tmp.fd, b"".join(batch))
                batch.clear()
        write_all(tmp.fd, b"".join(batch))
        try:
            os.unlink(name, dir_fd=cache)  # left by a collector that died here (we hold the lock)
        except FileNotFoundError:
            pass
        tmp.commit(name)
    os.rename(name, INDEX_NAME, src_dir_fd=cache, dst_dir_fd=cache)


def _index_lines(admindir: str) -> list[bytes] | None:
    """b"PATH\tNAME\tVERSION\tARCH\n" for each program path of each installed package's
    list; None beyond INDEX_PATHS_MAX."""
    status = _status_by_package(_read_status(admindir))
    info = _open_dir(os.path.join(admindir, "info"))
    lines: list[bytes] = []
    wanted = tuple(d.encode() for d in _DPKG_DIRS)
    unwanted = tuple(d.encode() for d in _NOT_PROGRAMS)
    try:
        for package, data in _lists(info, _list_names(info)):
            name, _, arch = package.partition(":")
            meta = next(
                (m for m in (_pick(f, name, arch) for f in status.get(name, ())) if m), None
            )
            if meta is None:
                continue
            tail = f"\t{name}\t{meta['version']}\t{meta['architecture']}\n".encode()
            if tail.count(b"\n") != 1 or tail.count(b"\t") != 3:
                continue
            lines += (
                path + tail
                for path in data.split(b"\n")
                if path.startswith(wanted) and not path.startswith(unwanted) and b"\t" not in path
            )
            if len(lines) > INDEX_PATHS_MAX:
                return None
    finally:
        os.close(info)
    return lines


def _status_by_package(status: bytes) -> dict[str, list[dict[str, str]]]:
    """The status paragraphs by package name, with only the fields _pick reads."""
    out: dict[str, list[dict[str, str]]] = {}
    keep = ("Package", "Status", "Architecture", "Version")
    for para in status.split(b"\n\n"):
        fields = _paragraph(para.strip(b"\n"))
        if "Package" in fields:
            kept = {k: fields[k] for k in keep if k in fields}
            out.setdefault(fields["Package"], []).append(kept)
    return out
