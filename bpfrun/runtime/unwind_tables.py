"""Fill a loaded program's unwind maps (templates/unwind.c.j2): the C library's unwind table
into `bpfrun_unwind_rows`, and into `bpfrun_unwind_procs` where each process maps that
library, so that the kernel program can step over libc frames without frame pointers.

Processes are entered at the step's start (every process that maps the library: a step's
filter is the kernel's business) and, later, when one stores its first user stack (the
runner passes the owner notices on): its first stacks are walked by frame pointers alone.
A process that the map has no room for, or whose libc is another file (a container), keeps
the plain walk. The table is built once per library file and process (≈0.5 s for libc).
"""

from __future__ import annotations

import ctypes
import functools
import os
from typing import Any

from bpfrun.compile.program import Program
from bpfrun.kernel.elf import resolve_library
from bpfrun.kernel.unwind import ROW_FORMAT, UnwindError, UnwindTable, build_table
from bpfrun.kernel.unwind_procs import find_module

ROWS_MAP, PROCS_MAP = "bpfrun_unwind_rows", "bpfrun_unwind_procs"  # unwind.c.j2's names


@functools.lru_cache(maxsize=4)
def _table(path: str, identity: tuple[int, int, int, int]) -> UnwindTable | None:
    """The table of one version of a file (`identity`: device, inode, size, mtime)."""
    del identity  # only part of the cache key: a replaced file is read again
    try:
        return build_table(path)
    except UnwindError:
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


class UnwindTables:
    """The unwind maps of one loaded program, and the processes entered so far."""

    def __init__(self, bpf: Any, table: UnwindTable) -> None:
        self.b = bpf
        self.table = table
        self._seen: set[int] = set()
        self.processes = 0  # processes whose libc the kernel program knows

    @classmethod
    def load(cls, bpf: Any, prog: Program) -> UnwindTables | None:
        """Fills the maps of a program that unwinds user stacks (None: it does not, or the
        library has no usable table; its stacks are then walked by frame pointers)."""
        if not prog.unwind_user:
            return None
        table = libc_table()
        if table is None or not table.rules:
            return None
        rows = bpf[ROWS_MAP]
        if len(table.rules) > rows.max_entries or ctypes.sizeof(rows.Leaf) != ROW_FORMAT.size:
            return None
        _fill_rows(rows, table)
        tables = cls(bpf, table)
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                tables.add(int(entry))
        return tables

    def add(self, tgid: int) -> None:
        """Tells the kernel program where process `tgid` maps the library (once)."""
        if tgid in self._seen:
            return
        self._seen.add(tgid)
        module = find_module(tgid, self.table)
        if module is None:
            return
        procs = self.b[PROCS_MAP]
        try:
            procs[procs.Key(tgid)] = procs.Leaf(module.lo, module.hi, module.bias,
                                               len(self.table.rules), 0)
        except Exception:  # noqa: BLE001 (BCC raises plain Exceptions): the map is full
            return
        self.processes += 1


def _fill_rows(rows: Any, table: UnwindTable) -> None:
    """All rules at once (BPF_MAP_UPDATE_BATCH), else one by one on older kernels."""
    n = len(table.rules)
    values = (rows.Leaf * n).from_buffer_copy(table.packed())  # the same layout: load()
    keys = (rows.Key * n)(*range(n))
    try:
        rows.items_update_batch(keys, values)
    except Exception:  # noqa: BLE001 (BCC raises plain Exceptions)
        for i in range(n):
            rows[rows.Key(i)] = values[i]
