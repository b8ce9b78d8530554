"""Which package a crashed program came from: ELF package notes, else the dpkg database.

The ELF note is the freedesktop "package metadata for core files" format
(https://systemd.io/ELF_PACKAGE_METADATA/): a PT_NOTE note of type 0xcafe1a7e, owner "FDO",
whose descriptor is a JSON object such as {"type":"deb","name":"foo","version":"1.2-3",
"architecture":"amd64"}.  systemd-coredump reads it from every module and writes
COREDUMP_PACKAGE_JSON = {MODULE: metadata, ...}; PACKAGE_NAME/VERSION come from the module whose
file name is the executable's.  Where no module has a note, the owning Debian package is looked
up in /var/lib/dpkg directly (no dpkg-query: we execute nothing), with bounded reads.

Both readers parse hostile bytes (the ELF file is the crasher's choice): the ELF structures
through elf.py's bounded reader, the dpkg files with bounded reads; the JSON must be an object
of strings.  Call them from the sandboxed child.
"""

from __future__ import annotations

import os

NOTE_TYPE_PACKAGE = 0xCAFE1A7E
NOTE_MAX = 64 * 1024
DPKG_LISTS_MAX = 20000
DPKG_BYTES_MAX = 64 * 1024 * 1024
#: usr-merge: /bin, /sbin and /lib are symlinks into /usr, dpkg may know either spelling.
_MERGED = ("/bin/", "/sbin/", "/lib/", "/lib64/", "/lib32/")
#: Where Debian packages install programs and libraries (never /usr/local, /home, /tmp).
_DPKG_DIRS = ("/usr/", "/bin/", "/sbin/", "/lib", "/opt/", "/libexec/")


def package_note(fd: int) -> dict[str, str] | None:
    """The package metadata of the ELF file open at `fd`: its first well-formed package note."""
    # Only the unwinder child reads module files (the worker imports this module for dpkg).
    from drkonqi_lite_collector.unwinder.elf import ElfFile, ElfFormatError  # noqa: PLC0415

    try:
        for _, ntype, desc in ElfFile(fd).notes(NOTE_MAX):
            if ntype == NOTE_TYPE_PACKAGE and len(desc):
                meta = package_metadata(bytes(desc))
                if meta is not None:
                    return meta
    except (OSError, ElfFormatError):
        return None
    return None


def package_metadata(desc: bytes) -> dict[str, str] | None:
    """A package note's descriptor as metadata: a JSON object of strings, else None."""
    import json  # noqa: PLC0415 - the unwinder child reads notes; it may import freely

    try:
        value = json.loads(desc.rstrip(b"\0").decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        return value
    return None


def _spellings(path: str) -> list[bytes]:
    out = [path]
    if path.startswith("/usr/") and path[4:].startswith(_MERGED):
        out.append(path[4:])
    elif path.startswith(_MERGED):
        out.append("/usr" + path)
    return [p.encode("utf-8", "surrogateescape") for p in out]


def dpkg_owner(path: str, admindir: str = "/var/lib/dpkg") -> dict[str, str] | None:
    """{"type":"deb","name","version","architecture"} of the package owning `path`, or None.

    dpkg keeps one `info/PACKAGE[:ARCH].list` file per package, no index: a miss reads them all
    (~7 MiB, ~13 ms on a small system), so paths dpkg never owns are not looked up, and lists
    whose package name starts like the file's name are read first (zstd -> zstd.list).
    """
    if not path.startswith(_DPKG_DIRS) or path.startswith("/usr/local/"):
        return None
    needles = _spellings(path)
    try:
        info = os.open(os.path.join(admindir, "info"), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        owner = _scan_lists(info, needles, path.rsplit("/", 1)[-1])
    finally:
        os.close(info)
    if owner is None:
        return None
    package, _, arch = owner.partition(":")
    return _dpkg_status(os.path.join(admindir, "status"), package, arch)


def _scan_lists(info: int, needles: list[bytes], base: str) -> str | None:
    try:
        names = [e.name for e in os.scandir(info) if e.name.endswith(".list")][:DPKG_LISTS_MAX]
    except OSError:
        return None
    stem = base.split(".", 1)[0].split("-", 1)[0] or base
    names.sort(key=lambda n: (not n.startswith(stem), n))
    inner = [b"\n" + n + b"\n" for n in needles]
    first = [n + b"\n" for n in needles]
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
        if any(n in data for n in inner) or data.startswith(tuple(first)):
            return name[: -len(".list")]
        if spent >= DPKG_BYTES_MAX:
            return None
    return None


def _dpkg_status(status: str, package: str, arch: str) -> dict[str, str] | None:
    try:
        with open(status, "rb") as f:
            data = f.read(DPKG_BYTES_MAX)
    except OSError:
        return None
    data = b"\n" + data
    key = b"\nPackage: " + package.encode("utf-8", "surrogateescape") + b"\n"
    pos = data.find(key)
    while pos >= 0:
        end = data.find(b"\n\n", pos + 1)
        para = data[pos + 1 : end if end >= 0 else len(data)]
        fields = {}
        for line in para.split(b"\n"):
            name, sep, value = line.partition(b": ")
            if sep and not line.startswith((b" ", b"\t")):
                fields[name.decode("ascii", "replace")] = value.decode("utf-8", "replace")
        if fields.get("Architecture") in (arch or fields.get("Architecture"), "all") and (
            "installed" in fields.get("Status", "").split()
        ):
            return {
                "type": "deb",
                "name": package,
                "version": fields.get("Version", ""),
                "architecture": fields.get("Architecture", arch),
            }
        pos = data.find(key, pos + 1)
    return None
