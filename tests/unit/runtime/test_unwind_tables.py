"""Filling a program's unwind maps, on a stand-in for BCC's tables: libc's rules then the
vDSO's go into the rows map in the kernel's layout, this process (which maps both) gets its
entry, each process is read once, and a program that does not unwind gets nothing."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import Any

import pytest

from bpfrun.compile.program import Program
from bpfrun.kernel.elf import resolve_library
from bpfrun.kernel.unwind import ROW_FORMAT
from bpfrun.runtime.unwind_tables import (
    PROCS_MAP,
    ROWS_MAP,
    UnwindTables,
    libc_table,
    vdso_table,
)


class Row(ctypes.Structure):
    _fields_ = [("start", ctypes.c_uint32), ("cfa_off", ctypes.c_int32),
                ("rbp_off", ctypes.c_int16), ("cfa_reg", ctypes.c_uint8),
                ("pad", ctypes.c_uint8)]


class Module(ctypes.Structure):
    _fields_ = [("lo", ctypes.c_uint64), ("hi", ctypes.c_uint64), ("bias", ctypes.c_uint64),
                ("first", ctypes.c_uint32), ("rows", ctypes.c_uint32)]


class Proc(ctypes.Structure):
    _fields_ = [("mod", Module * 2)]


class Table(dict[int, Any]):
    """What the runtime uses of a BCC table: Key, Leaf, max_entries, item assignment."""

    def __init__(self, key: Any, leaf: Any, max_entries: int, batch: bool = True) -> None:
        super().__init__()
        self.Key, self.Leaf, self.max_entries, self.batch = key, leaf, max_entries, batch

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(int(key.value), value)

    def items_update_batch(self, keys: Any, values: Any) -> None:
        if not self.batch:
            raise Exception("BPF_MAP_UPDATE_BATCH has failed")  # noqa: TRY002 (as BCC does)
        for k, v in zip(keys, values, strict=True):
            super().__setitem__(int(k), v)


def program(unwind: bool) -> Program:
    prog = Program("s")
    prog.unwind_user = unwind
    return prog


@pytest.fixture(autouse=True)
def _cache_in_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BPFRUN_CACHE_DIR", str(tmp_path))


needs_libc = pytest.mark.skipif(resolve_library("c") is None, reason="needs the C library")


@needs_libc
@pytest.mark.parametrize("batch", [True, False])
def test_rules_and_this_process_are_loaded(batch: bool) -> None:
    assert ctypes.sizeof(Row) == ROW_FORMAT.size
    bpf = {ROWS_MAP: Table(ctypes.c_int, Row, 65536, batch),
           PROCS_MAP: Table(ctypes.c_uint32, Proc, 16384)}
    tables = UnwindTables.load(bpf, program(True))
    assert tables is not None
    table = libc_table()
    assert table is not None
    vdso = vdso_table()
    assert vdso is not None and vdso.rules  # the vDSO's rules follow libc's
    rows = bpf[ROWS_MAP]
    assert len(rows) == len(table.rules) + len(vdso.rules)
    last = len(table.rules) - 1
    assert (rows[last].start, rows[last].cfa_reg) == (table.rules[-1].start,
                                                     table.rules[-1].cfa_reg)
    assert rows[last + 1].start == vdso.rules[0].start
    libc, vdso_mod = bpf[PROCS_MAP][os.getpid()].mod
    assert libc.lo < libc.hi and (libc.first, libc.rows) == (0, len(table.rules))
    assert vdso_mod.lo < vdso_mod.hi and vdso_mod.bias == vdso_mod.lo  # mapped from offset 0
    assert (vdso_mod.first, vdso_mod.rows) == (len(table.rules), len(vdso.rules))
    assert tables.processes >= 1
    del bpf[PROCS_MAP][os.getpid()]
    tables.add(os.getpid())  # already seen: not read again
    assert os.getpid() not in bpf[PROCS_MAP]


def test_a_program_that_does_not_unwind_gets_nothing() -> None:
    assert UnwindTables.load({}, program(False)) is None


@needs_libc
def test_a_table_larger_than_the_map_is_not_loaded() -> None:
    bpf = {ROWS_MAP: Table(ctypes.c_int, Row, 10), PROCS_MAP: Table(ctypes.c_uint32, Proc, 1)}
    assert UnwindTables.load(bpf, program(True)) is None
    assert not bpf[PROCS_MAP]
