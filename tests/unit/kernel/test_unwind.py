"""Unwind tables from .eh_frame: the call-frame interpreter on hand-made programs, and the
real libc's table against binutils' own reading of it (`readelf --debug-dump=frames-interp`),
including the rule at the return address of the `syscall` in clock_nanosleep, where a thread
that sleeps sits. Finding the library in a process's maps is tested on written lines.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from types import SimpleNamespace
from typing import Any

import pytest

from bpfrun.kernel.elf import resolve_library
from bpfrun.kernel.unwind import (
    CFA_NONE,
    CFA_RBP,
    CFA_RSP,
    ROW_FORMAT,
    UnwindRule,
    UnwindTable,
    _fde_rules,
    _merged,
    build_table,
)
from bpfrun.kernel.unwind_procs import MappedModule, file_identity, module_in_maps

LIBC = resolve_library("c")


@dataclass
class Op:
    name: str


def instr(name: str, *args: int) -> Any:
    return SimpleNamespace(opcode=Op(f"DW_CFA_{name}"), args=list(args))


def fde(start: int, size: int, *instructions: Any) -> Any:
    cie = SimpleNamespace(
        header={"code_alignment_factor": 1, "data_alignment_factor": -8},
        instructions=[instr("def_cfa", 7, 8), instr("offset", 16, 1)])
    return SimpleNamespace(cie=cie, header={"initial_location": start, "address_range": size},
                           instructions=list(instructions))


def test_push_rbp_frame_then_frame_pointer_cfa() -> None:
    rows = _fde_rules(fde(
        0x1000, 0x40,
        instr("advance_loc", 1), instr("def_cfa_offset", 16), instr("offset", 6, 2),
        instr("advance_loc", 3), instr("def_cfa_register", 6),
        instr("advance_loc", 0x30), instr("def_cfa", 7, 8)))
    assert rows == [
        UnwindRule(0x1000, CFA_RSP, 8, 0),
        UnwindRule(0x1001, CFA_RSP, 16, -16),
        UnwindRule(0x1004, CFA_RBP, 16, -16),
        UnwindRule(0x1034, CFA_RSP, 8, -16),
        UnwindRule(0x1040),  # the end of the function: no rule after it
    ]


def test_remember_restore_state_and_gnu_args_size() -> None:
    rows = _fde_rules(fde(
        0x2000, 0x20,
        instr("advance_loc", 4), instr("def_cfa_offset", 48), instr("GNU_args_size", 0),
        instr("remember_state"), instr("advance_loc", 4), instr("def_cfa_offset", 8),
        instr("advance_loc", 2), instr("restore_state")))
    assert [(r.start, r.cfa_offset) for r in rows] == [
        (0x2000, 8), (0x2004, 48), (0x2008, 8), (0x200a, 48), (0x2020, 0)]


def test_unusable_rules_become_no_rule() -> None:
    rows = _fde_rules(fde(
        0x3000, 0x10,
        instr("advance_loc", 2), instr("def_cfa_expression", 0),
        instr("advance_loc", 2), instr("def_cfa", 7, 16), instr("register", 6, 3)))
    assert [r.cfa_reg for r in rows] == [CFA_RSP, CFA_NONE, CFA_NONE, CFA_NONE]


def test_merge_keeps_a_function_start_over_the_previous_end() -> None:
    rows = [UnwindRule(0x10, CFA_RSP, 8), UnwindRule(0x20), UnwindRule(0x20, CFA_RSP, 8),
            UnwindRule(0x24, CFA_RSP, 8), UnwindRule(0x30)]
    assert _merged(rows) == (UnwindRule(0x10, CFA_RSP, 8), UnwindRule(0x30))
    table = UnwindTable("x", _merged(rows))
    assert table.rule_at(0x2f) == UnwindRule(0x10, CFA_RSP, 8)
    assert table.rule_at(0x30) is None and table.rule_at(0x0f) is None
    assert table.packed() == ROW_FORMAT.pack(0x10, 8, 0, CFA_RSP) + ROW_FORMAT.pack(
        0x30, 0, 0, CFA_NONE)


# -- the real libc -----------------------------------------------------------------------

needs_libc = pytest.mark.skipif(LIBC is None or shutil.which("readelf") is None,
                                reason="needs the C library and binutils' readelf")
_ROW = re.compile(r"^([0-9a-f]{16}) (.*)$")


@cache
def libc_table() -> UnwindTable:
    assert LIBC is not None
    return build_table(LIBC)


@cache
def readelf_rows() -> dict[int, dict[str, str]]:
    """Address -> column -> rule, for the rows readelf prints in plain columns."""
    assert LIBC is not None
    # readelf exits 1 over warnings (a missing separate debug file) after a full dump.
    out = subprocess.run(["readelf", "--debug-dump=frames-interp", LIBC], check=False,
                         capture_output=True, text=True).stdout
    rows: dict[int, dict[str, str]] = {}
    cols: list[str] = []
    for line in out.splitlines():
        if line.strip().startswith("LOC"):
            cols = line.split()[1:]
        elif (m := _ROW.match(line)) and cols and len(m.group(2).split()) == len(cols):
            rows[int(m.group(1), 16)] = dict(zip(cols, m.group(2).split(), strict=True))
    return rows


def expected(row: dict[str, str]) -> tuple[int, int, int] | None:
    """readelf's row as (cfa_reg, cfa_offset, rbp_offset), None where no rule is usable."""
    cfa = re.fullmatch(r"(rsp|rbp)\+(\d+)", row["CFA"])
    rbp = row.get("rbp", "u")
    if not cfa or row.get("ra") != "c-8" or not re.fullmatch(r"u|s|c-\d+", rbp):
        return None
    reg = CFA_RSP if cfa.group(1) == "rsp" else CFA_RBP
    return reg, int(cfa.group(2)), int(rbp[1:]) if rbp.startswith("c") else 0


def rule_tuple(rule: UnwindRule | None) -> tuple[int, int, int] | None:
    return None if rule is None else (rule.cfa_reg, rule.cfa_offset, rule.rbp_offset)


@needs_libc
def test_libc_table_agrees_with_readelf() -> None:
    table, rows = libc_table(), readelf_rows()
    assert len(table.rules) > 1000
    wrong = {hex(a): (row, table.rule_at(a)) for a, row in rows.items()
             if a and rule_tuple(table.rule_at(a)) != expected(row)}
    assert not wrong, list(wrong.items())[:5]


def function_code(path: str, name: str) -> tuple[int, bytes]:
    from elftools.elf.elffile import ELFFile
    with open(path, "rb") as f:
        elf = ELFFile(f)
        for sym in elf.get_section_by_name(".dynsym").iter_symbols():
            if sym.name == name and sym["st_size"]:
                addr, size = sym["st_value"], sym["st_size"]
                for seg in elf.iter_segments():
                    if seg["p_type"] == "PT_LOAD" and seg["p_vaddr"] <= addr < (
                            seg["p_vaddr"] + seg["p_filesz"]):
                        f.seek(addr - seg["p_vaddr"] + seg["p_offset"])
                        return addr, f.read(size)
    raise AssertionError(f"{name} not in {path}")


@needs_libc
def test_rule_after_the_syscall_in_clock_nanosleep() -> None:
    """A thread asleep in clock_nanosleep has its pc just after a `syscall` (0f 05): the
    rule there must give readelf's CFA, or the unwinder reads a wrong return address."""
    assert LIBC is not None
    start, code = function_code(LIBC, "clock_nanosleep")
    returns = [start + m.end() for m in re.finditer(b"\x0f\x05", code)]
    assert returns
    rows = readelf_rows()
    row_starts = sorted(rows)
    for pc in returns:
        at = max(a for a in row_starts if a <= pc)
        rule = libc_table().rule_at(pc)
        assert rule is not None
        assert rule_tuple(rule) == expected(rows[at]), hex(pc)
        assert rule.cfa_reg == CFA_RSP and rule.cfa_offset % 8 == 0


# -- where the library is in a process -----------------------------------------------------

@needs_libc
def test_module_in_maps_gives_the_load_bias() -> None:
    table = libc_table()
    off, vaddr, _size = table.segments[0]
    major, minor, inode = file_identity(table.path)
    base = 0x7F0000000000
    lines = [
        f"{base:x}-{base + 0x26000:x} r--p 00000000 {major:02x}:{minor:02x} {inode} {LIBC}",
        f"{base + vaddr:x}-{base + vaddr + 0x10000:x} r-xp {off:08x} {major:02x}:{minor:02x} "
        f"{inode} {LIBC}",
        f"{base + 0x500000:x}-{base + 0x510000:x} r-xp {off:08x} {major:02x}:{minor:02x} "
        f"{inode + 1} /other/libc.so.6",
    ]
    assert module_in_maps(lines, table) == MappedModule(base + vaddr, base + vaddr + 0x10000,
                                                        base)
    assert module_in_maps(lines[2:], table) is None  # another file: another table


@needs_libc
def test_this_process_maps_its_libc_where_the_bias_points() -> None:
    """pc - bias of a libc function in this process is its address in the file."""
    import ctypes

    from bpfrun.kernel.unwind_procs import find_module
    table = libc_table()
    module = find_module(os.getpid(), table)
    assert module is not None
    addr = ctypes.cast(ctypes.CDLL(LIBC).clock_nanosleep, ctypes.c_void_p).value
    assert addr is not None and module.lo <= addr < module.hi
    assert addr - module.bias == function_code(table.path, "clock_nanosleep")[0]


# -- the vDSO --------------------------------------------------------------------------------

def test_the_vdso_has_a_table_and_is_found_in_maps_by_name() -> None:
    from bpfrun.kernel.unwind import VDSO, build_vdso_table
    from bpfrun.kernel.unwind_procs import vdso_image
    image = vdso_image()
    if image is None:
        pytest.skip("this process has no readable [vdso]")
    table = build_vdso_table(image)
    assert table.path == VDSO and table.rules
    assert any(r.cfa_reg == CFA_RBP for r in table.rules)  # its functions keep frame pointers
    line = "7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0                  [vdso]"
    assert module_in_maps([line], table) == MappedModule(0x7FFD00000000, 0x7FFD00002000,
                                                         0x7FFD00000000)
    assert module_in_maps([line.replace("[vdso]", "[vsyscall]")], table) is None
