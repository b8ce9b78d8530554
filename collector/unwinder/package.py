"""Which package a crashed program came from: ELF package notes, else the dpkg database.

The ELF note is the freedesktop "package metadata for core files" format
(https://systemd.io/ELF_PACKAGE_METADATA/): a PT_NOTE note of type 0xcafe1a7e, owner "FDO",
whose descriptor is a JSON object such as {"type":"deb","name":"foo","version":"1.2-3",
"architecture":"amd64"}.  systemd-coredump reads it from every module and writes
COREDUMP_PACKAGE_JSON = {MODULE: metadata, ...}; PACKAGE_NAME/VERSION come from the module whose
file name is the executable's.  Where no module has a note, the owning Debian package is looked
up in dpkg's database (dpkg.py).

The notes are hostile bytes (the ELF file is the crasher's choice): the ELF structures are read
through elf.py's bounded reader, and the JSON must be an object of strings.  Call them from the
sandboxed child.
"""

from __future__ import annotations

NOTE_TYPE_PACKAGE = 0xCAFE1A7E
NOTE_MAX = 64 * 1024


def package_note(fd: int) -> dict[str, str] | None:
    """The package metadata of the ELF file open at `fd`: its first well-formed package note."""
    # Only the unwinder child reads module files: elf.py loads after its fork.
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
