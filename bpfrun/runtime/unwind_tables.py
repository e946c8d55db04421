"""Fill a loaded program's unwind maps (templates/unwind.c.j2): the unwind tables of the C
library and of the vDSO, one after the other, into `bpfrun_unwind_rows`, and into
`bpfrun_unwind_procs` where each process maps them, so that the kernel program can step over
their frames, which keep no frame pointers.

Processes are entered at the step's start (every process that maps one of them: a step's
filter is the kernel's business) and, later, when one stores its first user stack (the
runner passes the owner notices on): its first stacks are walked by frame pointers alone.
A process that the map has no room for, or whose libc is another file (a container), keeps
the plain walk for that module. libc's table is built once (≈0.5 s) and kept on disk
(kernel/unwind_cache.py); the vDSO's, a few ms, once per bpfrun process.
"""

from __future__ import annotations

import ctypes
import functools
import os
from typing import Any

from bpfrun.compile.program import Program
from bpfrun.kernel.elf import resolve_library
from bpfrun.kernel.unwind import (
    ROW_FORMAT,
    UnwindError,
    UnwindTable,
    build_vdso_table,
)
from bpfrun.kernel.unwind_cache import cached_table
from bpfrun.kernel.unwind_procs import MappedModule, find_module, vdso_image

ROWS_MAP, PROCS_MAP = "bpfrun_unwind_rows", "bpfrun_unwind_procs"  # unwind.c.j2's names
MODULES = 2  # BPFRUN_UNWIND_MODULES: the entries of struct bpfrun_unwind_proc
def _tables() -> list[UnwindTable]:
    return [t for t in (libc_table(), vdso_table()) if t is not None and t.rules]


@functools.lru_cache(maxsize=4)
def _table(path: str, identity: tuple[int, int, int, int]) -> UnwindTable | None:
    """The table of one version of a file (`identity`: device, inode, size, mtime)."""
    del identity  # only part of the cache key: a replaced file is read again
    try:
        return cached_table(path)
    except (UnwindError, OSError):
        return None


def libc_table() -> UnwindTable | None:
    """The unwind table of this machine's C library, or None where it cannot be read."""
    path = resolve_library("c")
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return _table(path, (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))


@functools.cache
def vdso_table() -> UnwindTable | None:
    """The vDSO's unwind table (the same image in every process of this kernel)."""
    image = vdso_image()
    try:
        return build_vdso_table(image) if image else None
    except UnwindError:
        return None


class UnwindTables:
    """The unwind maps of one loaded program, and the processes entered so far."""

    def __init__(self, bpf: Any, tables: list[tuple[UnwindTable, int]]) -> None:
        self.b = bpf
        self.tables = tables  # each table with its first row in the rows map
        self._seen: set[int] = set()
        self.processes = 0  # processes the kernel program can unwind

    @classmethod
    def load(cls, bpf: Any, prog: Program) -> UnwindTables | None:
        """Fills the maps of a program that unwinds user stacks (None: it does not, or no
        table is usable; its stacks are then walked by frame pointers)."""
        if not prog.unwind_user:
            return None
        found = _tables()
        rows = bpf[ROWS_MAP]
        if ctypes.sizeof(rows.Leaf) != ROW_FORMAT.size:
            return None
        tables, first = [], 0
        for table in found:
            if first + len(table.rules) <= rows.max_entries:
                tables.append((table, first))
                first += len(table.rules)
        if not tables:
            return None
        _fill_rows(rows, b"".join(t.packed() for t, _ in tables), first)
        loaded = cls(bpf, tables)
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                loaded.add(int(entry))
        return loaded

    def add(self, tgid: int) -> None:
        """Tells the kernel program where process `tgid` maps the modules (once)."""
        if tgid in self._seen:
            return
        self._seen.add(tgid)
        mapped = [(find_module(tgid, t), first, len(t.rules)) for t, first in self.tables]
        if not any(m for m, _, _ in mapped):
            return
        procs = self.b[PROCS_MAP]
        entry = procs.Leaf()
        for i, (module, first, count) in enumerate(mapped[:MODULES]):
            _set_module(entry.mod[i], module, first, count)
        try:
            procs[procs.Key(tgid)] = entry
        except Exception:  # noqa: BLE001 (BCC raises plain Exceptions): the map is full
            return
        self.processes += 1


def _set_module(slot: Any, module: MappedModule | None, first: int, count: int) -> None:
    if module is not None:  # else the zeroed slot's empty range [0, 0) matches no pc
        slot.lo, slot.hi, slot.bias = module.lo, module.hi, module.bias
        slot.first, slot.rows = first, count


def _fill_rows(rows: Any, packed: bytes, n: int) -> None:
    """All rules at once (BPF_MAP_UPDATE_BATCH), else one by one on older kernels."""
    values = (rows.Leaf * n).from_buffer_copy(packed)  # the same layout: load() checked
    keys = (rows.Key * n)(*range(n))
    try:
        rows.items_update_batch(keys, values)
    except Exception:  # noqa: BLE001 (BCC raises plain Exceptions)
        for i in range(n):
            rows[rows.Key(i)] = values[i]
