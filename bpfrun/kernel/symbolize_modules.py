"""From a mapping of a process to the file a symbolizer can read, or the reason there is none.

A mapped binary is looked for where the process saw it, in this order: the mapping itself
(/proc/PID/map_files/…, which opens the very file mapped even when it was deleted or lives in
a container, while the process runs), the path inside the process's root
(/proc/PID/root/<path>, for another mount namespace), then the path on this host. A candidate
found by path must have the mapping's inode, so a binary replaced since the process started
is never symbolized with the new file's addresses. Then its line information: its own DWARF,
else a separate debug file found by build-id (<root>/.build-id/xx/yyyy.debug), else one named
by `.gnu_debuglink` (next to the binary, in .debug/ beside it, or under a debug root).
"""

from __future__ import annotations

import enum
import hashlib
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from bpfrun.kernel.elf import ElfError
from bpfrun.kernel.symbolize_elf import ElfInfo, parse_elf_info, read_elf_info
from bpfrun.kernel.symbolize_maps import Mapping, ProcessMaps

DEFAULT_DEBUG_ROOTS = ("/usr/lib/debug",)


class Reason(enum.Enum):
    """Why a frame stays unknown: a small fixed set, so reports can count them."""

    NO_MAPPING = "no mapping holds this address"
    ANONYMOUS = "anonymous memory (JIT?)"
    SPECIAL = "special mapping with no symbols"
    STRIPPED = "stripped binary with no debug file"
    NO_SYMBOL = "no symbol covers this address"
    DELETED = "binary deleted or replaced since the process started"
    NOT_VISIBLE = "binary not visible from here (another mount namespace)"
    UNREADABLE = "binary unreadable or not a 64-bit ELF file"


@dataclass(frozen=True)
class Module:
    """A binary (or the vDSO) ready to be symbolized."""

    key: tuple[str, str]  # (path as the process named it, build-id or inode:mtime): the cache
    name: str  # shown in brackets: basename, or "vdso"
    path: str  # as the process named it
    info: ElfInfo  # of the mapped binary: turns file offsets into virtual addresses
    obj: str | None  # the file the symbolizer reads: the binary or its debug file
    image: bytes | None  # the vDSO's bytes when there is no file to read
    symbols: ElfInfo  # of `obj` (or the image): the fallback's function symbols
    unknown_reason: Reason  # what an address no symbol covers is put down to

    def vaddr(self, mapping: Mapping, address: int) -> int | None:
        return self.info.vaddr_of(address - mapping.start + mapping.offset)


class ModuleFinder:
    """Resolves mappings to Modules, parsing each distinct ELF file once."""

    def __init__(self, debug_roots: Sequence[str] = DEFAULT_DEBUG_ROOTS) -> None:
        self.debug_roots = tuple(debug_roots)
        self._elf: dict[tuple[int, int, int, int], ElfInfo | None] = {}
        self._crc: dict[tuple[str, int, int], int] = {}

    def module(self, maps: ProcessMaps, mapping: Mapping) -> Module | Reason:
        if mapping.path == "[vdso]":
            return self._vdso(maps)
        if mapping.is_anonymous:
            return Reason.ANONYMOUS
        if not mapping.is_file:
            return Reason.SPECIAL
        found = _locate(maps, mapping)
        if isinstance(found, Reason):
            return found
        info = self._info(found)
        if info is None:
            return Reason.UNREADABLE
        debug = self._debug_file(info, maps, mapping.path)
        symbols = (self._info(debug) if debug else None) or info
        identity = info.build_id or _inode_and_mtime(found)
        return Module((mapping.path, identity), mapping.module, mapping.path, info,
                      debug or found, None, symbols, _unknown_reason(symbols))

    def _vdso(self, maps: ProcessMaps) -> Module | Reason:
        if maps.vdso is None:
            return Reason.UNREADABLE  # the image was not captured (no access to /proc/PID/mem)
        try:
            info = parse_elf_info(maps.vdso, "[vdso]")
        except ElfError:
            return Reason.UNREADABLE
        identity = info.build_id or hashlib.sha1(maps.vdso).hexdigest()
        debug = self._debug_file(info, maps, "")
        symbols = (self._info(debug) if debug else None) or info
        return Module(("[vdso]", identity), "vdso", "[vdso]", info, debug,
                      None if debug else maps.vdso, symbols, _unknown_reason(symbols))

    def _info(self, path: str) -> ElfInfo | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        key = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
        if key not in self._elf:
            try:
                self._elf[key] = read_elf_info(path)
            except (OSError, ValueError):  # ElfError is a ValueError
                self._elf[key] = None
        return self._elf[key]

    def _debug_file(self, info: ElfInfo, maps: ProcessMaps, path: str) -> str | None:
        """The separate debug file of a binary without DWARF, or None."""
        if info.has_debug_info:
            return None
        if info.build_id and len(info.build_id) > 2:
            for root in self.debug_roots:
                candidate = f"{root}/.build-id/{info.build_id[:2]}/{info.build_id[2:]}.debug"
                if os.path.isfile(candidate):
                    return candidate
        if info.debuglink and path:
            name, crc = info.debuglink
            for folder in self._debuglink_folders(maps, os.path.dirname(path)):
                candidate = os.path.join(folder, name)
                if os.path.isfile(candidate) and self._crc32(candidate) == crc:
                    return candidate
        return None

    def _debuglink_folders(self, maps: ProcessMaps, folder: str) -> list[str]:
        """Where GDB looks for a .gnu_debuglink file; inside the process's root first."""
        seen = [f"/proc/{maps.pid}/root{folder}"] if maps.alive() else []
        seen.append(folder)
        near = [f for base in seen for f in (base, f"{base}/.debug")]
        return near + [f"{root}{folder}" for root in self.debug_roots]

    def _crc32(self, path: str) -> int:
        """The CRC32 a .gnu_debuglink expects; read once per file (debug files are big)."""
        st = os.stat(path)
        key = (path, st.st_ino, st.st_mtime_ns)
        if key not in self._crc:
            self._crc[key] = _crc32(path)
        return self._crc[key]


def _locate(maps: ProcessMaps, mapping: Mapping) -> str | Reason:
    """A path that opens the mapped file itself, or why there is none."""
    candidates: list[tuple[str, bool]] = []  # (path, must the inode match?)
    if maps.alive():
        candidates.append((f"/proc/{maps.pid}/map_files/{mapping.start:x}-{mapping.end:x}",
                           False))
        candidates.append((f"/proc/{maps.pid}/root{mapping.path}", True))
    if not mapping.deleted:
        candidates.append((mapping.path, True))
    denied = replaced = False
    for path, check in candidates:
        try:
            st = os.stat(path)
        except PermissionError:  # map_files without CAP_SYS_ADMIN, or a closed folder
            denied = True
            continue
        except OSError:
            continue
        if not check or st.st_ino == mapping.inode:
            return path
        replaced = True
    if mapping.deleted:
        return Reason.DELETED
    if maps.foreign_mounts():
        return Reason.NOT_VISIBLE
    return Reason.UNREADABLE if denied and not replaced else Reason.DELETED


def _unknown_reason(symbols: ElfInfo) -> Reason:
    if symbols.has_symtab or symbols.has_debug_info:
        return Reason.NO_SYMBOL
    return Reason.STRIPPED


def _inode_and_mtime(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return "?"
    return f"{st.st_ino}:{st.st_mtime_ns}"


def _crc32(path: str) -> int:
    crc = 0
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                crc = zlib.crc32(chunk, crc)
    except OSError:
        return -1
    return crc
