"""Where a library with an unwind table is mapped in a process: its code's address range and
load bias, read from /proc/PID/maps, for the kernel program's per-process entry.

A mapping counts only when it is the very file the table was built from (same device and
inode): a process in a container with its own libc gets no entry, and its stacks are walked
by frame pointers alone, as before. The vDSO is no file: its table is built from this
process's own [vdso] image (`vdso_image`), which the kernel maps into every process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

from bpfrun.kernel.unwind import VDSO, UnwindTable


@dataclass(frozen=True)
class MappedModule:
    """The code of one library in one process: pc - bias is the address in the file."""

    lo: int
    hi: int
    bias: int


def file_identity(path: str) -> tuple[int, int, int]:
    """(major, minor, inode) of a file, as /proc/PID/maps shows its device and inode."""
    st = os.stat(path)
    return os.major(st.st_dev), os.minor(st.st_dev), st.st_ino


def find_module(pid: int, table: UnwindTable) -> MappedModule | None:
    """The executable mapping of `table`'s file in process `pid`, or None (not mapped, or the
    process is gone)."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    return module_in_maps(lines, table)


def module_in_maps(lines: list[str], table: UnwindTable) -> MappedModule | None:
    """Like find_module, from the lines of a maps file."""
    identity: tuple[int, int, int] | None = None
    if table.path != VDSO:
        try:
            identity = file_identity(table.path)
        except OSError:
            return None
    for start, end, offset, ident, path in _code_mappings(lines):
        if (path != VDSO) if identity is None else (ident != identity):
            continue
        for seg_offset, seg_vaddr, seg_size in table.segments:
            if seg_offset <= offset < seg_offset + max(seg_size, 1):
                return MappedModule(start, end, start - (offset - seg_offset + seg_vaddr))
    return None


def vdso_image() -> bytes | None:
    """The bytes of this process's [vdso] mapping (None where it cannot be read)."""
    try:
        with open("/proc/self/maps") as f:
            lines = f.read().splitlines()
        start, end = next((s, e) for s, e, _o, _i, path in _code_mappings(lines)
                          if path == VDSO)
        with open("/proc/self/mem", "rb", buffering=0) as mem:
            mem.seek(start)
            return mem.read(end - start)
    except (OSError, StopIteration):
        return None


def _code_mappings(
        lines: list[str]) -> Iterator[tuple[int, int, int, tuple[int, int, int], str]]:
    """(start, end, file offset, (major, minor, inode), path) of each executable mapping."""
    for line in lines:
        parts = line.split(None, 5)
        if len(parts) < 5 or "x" not in parts[1]:
            continue
        try:
            start, end = (int(x, 16) for x in parts[0].split("-"))
            major, minor = (int(x, 16) for x in parts[3].split(":"))
            ident = (major, minor, int(parts[4]))
            yield start, end, int(parts[2], 16), ident, parts[5].strip() if len(parts) > 5 else ""
        except ValueError:
            continue
