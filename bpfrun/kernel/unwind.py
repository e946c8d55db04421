"""Unwind tables: the `.eh_frame` call-frame rules of a library without frame pointers,
reduced to what a BPF program needs to step over its frames on x86-64.

Debian's libc keeps no frame pointers, so a frame-pointer walk from inside it (what
`bpf_get_stack` does) skips the callers of the libc function a thread blocks in. The
compiler's call-frame information (CFI) says, for every instruction, where the canonical
frame address (CFA: the caller's stack pointer) is — the stack or frame pointer plus an
offset — and where the return address and the caller's frame pointer were saved. This module
interprets those rules once in user space (pyelftools parses the section; the DWARF
call-frame program is run here, so that every opcode glibc uses is known) into a sorted
table of `UnwindRule`s, one per address range, that the kernel program searches.

Only what x86-64 needs is kept: the CFA as rsp or rbp plus an offset, the return address at
CFA-8 (always, in the System V ABI), and rbp saved at CFA+n or left unchanged. Any other
rule (a DWARF expression for the CFA, as in PLT stubs and signal trampolines) becomes a
"no rule" range, where the kernel stops using the table.
"""

from __future__ import annotations

import bisect
import io
import struct
from dataclasses import dataclass, field
from typing import Any, BinaryIO

REG_RBP, REG_RSP, REG_RA = 6, 7, 16  # DWARF register numbers on x86-64
CFA_NONE, CFA_RSP, CFA_RBP = 0, 1, 2  # UnwindRule.cfa_reg, as the kernel program reads it
RA_OFFSET = -8  # the return address is pushed by `call`, just below the CFA
# struct bpfrun_unwind_row of the template: u32 start; s32 cfa_off; s16 rbp_off; u8 cfa_reg
ROW_FORMAT = struct.Struct("<IihBx")
_INT16 = range(-(1 << 15), 1 << 15)
_INT32 = range(-(1 << 31), 1 << 31)


class UnwindError(ValueError):
    """The file has no `.eh_frame` this module can read (or is not an x86-64 ELF file)."""


@dataclass(frozen=True, order=True)
class UnwindRule:
    """From address `start` (a virtual address in the file) to the next rule's start.

    CFA = (rsp if cfa_reg == CFA_RSP else rbp) + cfa_offset; the return address is at
    CFA-8; the caller's rbp is at CFA + rbp_offset, or unchanged when rbp_offset is 0.
    cfa_reg CFA_NONE: no usable rule here (outside any function, or a rule too complex).
    """

    start: int
    cfa_reg: int = CFA_NONE
    cfa_offset: int = 0
    rbp_offset: int = 0

    def same_rule(self, other: UnwindRule) -> bool:
        return (self.cfa_reg, self.cfa_offset, self.rbp_offset) == (
            other.cfa_reg, other.cfa_offset, other.rbp_offset)


@dataclass(frozen=True)
class UnwindTable:
    """The rules of one file, sorted by start, adjacent equal rules merged."""

    path: str
    rules: tuple[UnwindRule, ...]
    # Executable PT_LOAD segments as (file offset, virtual address, size), both rounded down
    # to the page, as the loader maps them: they turn a mapping into the load bias.
    segments: tuple[tuple[int, int, int], ...] = ()
    _starts: list[int] = field(default_factory=list, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._starts.extend(r.start for r in self.rules)

    def rule_at(self, address: int) -> UnwindRule | None:
        """The rule that covers `address` (a virtual address in the file), if any."""
        i = bisect.bisect_right(self._starts, address) - 1
        if i < 0 or self.rules[i].cfa_reg == CFA_NONE:
            return None
        return self.rules[i]

    def packed(self) -> bytes:
        """The rules as the kernel program's array of struct bpfrun_unwind_row."""
        return b"".join(ROW_FORMAT.pack(r.start, r.cfa_offset, r.rbp_offset, r.cfa_reg)
                        for r in self.rules)


VDSO = "[vdso]"  # UnwindTable.path of the vDSO's table: an image in memory, not a file


def build_table(path: str) -> UnwindTable:
    """Reads `path`'s `.eh_frame` and returns its unwind table."""
    try:
        with open(path, "rb") as f:
            return _table_of(f, path)
    except OSError as exc:
        raise UnwindError(f"{path}: {exc}") from exc


def build_vdso_table(image: bytes) -> UnwindTable:
    """The unwind table of the vDSO, from its image (the bytes of a process's [vdso]
    mapping: the kernel maps the same image into every process)."""
    return _table_of(io.BytesIO(image), VDSO)


def _table_of(stream: BinaryIO, path: str) -> UnwindTable:
    try:
        from elftools.common.exceptions import ELFError
        from elftools.dwarf.callframe import FDE
        from elftools.elf.elffile import ELFFile
    except ImportError as exc:  # a declared dependency; say so rather than crash
        raise UnwindError("pyelftools is not installed (pip install pyelftools)") from exc
    try:
        elf = ELFFile(stream)
        if elf["e_machine"] != "EM_X86_64":
            raise UnwindError(f"{path}: unwind tables are built for x86-64 only")
        if elf.get_section_by_name(".eh_frame") is None:
            raise UnwindError(f"{path}: no .eh_frame section")
        segments = tuple(_code_segments(elf))
        rows: list[UnwindRule] = []
        for entry in elf.get_dwarf_info().EH_CFI_entries():
            if isinstance(entry, FDE):
                rows.extend(_fde_rules(entry))
    except (OSError, ELFError, ValueError, KeyError) as exc:
        raise UnwindError(f"{path}: {exc}") from exc
    return UnwindTable(path, _merged(rows), segments)


_PAGE = 4096


def _code_segments(elf: Any) -> list[tuple[int, int, int]]:
    out = []
    for seg in elf.iter_segments():
        if seg["p_type"] == "PT_LOAD" and seg["p_flags"] & 1:  # PF_X
            skew = seg["p_offset"] % _PAGE
            out.append((seg["p_offset"] - skew, seg["p_vaddr"] - skew, seg["p_filesz"] + skew))
    return out


def _merged(rows: list[UnwindRule]) -> tuple[UnwindRule, ...]:
    """Sorted by start; where a function's "no rule" end meets the next function's first
    row at the same address, the function's row wins; equal neighbours become one."""
    by_start: dict[int, UnwindRule] = {}
    for row in sorted(rows, key=lambda r: (r.start, r.cfa_reg != CFA_NONE)):
        by_start[row.start] = row
    out: list[UnwindRule] = []
    for row in sorted(by_start.values()):
        if not out or not out[-1].same_rule(row):
            out.append(row)
    return tuple(out)


@dataclass
class _State:
    """The rules in force while the call-frame program runs (None: unusable)."""

    cfa: tuple[int, int] | None = None  # (DWARF register, offset)
    regs: dict[int, Any] = field(default_factory=dict)  # register -> ("offset", n) | other

    def copy(self) -> _State:
        return _State(self.cfa, dict(self.regs))

    def rule(self, start: int) -> UnwindRule:
        if self.cfa is None or self.regs.get(REG_RA) != ("offset", RA_OFFSET):
            return UnwindRule(start)
        reg, offset = self.cfa
        cfa_reg = {REG_RSP: CFA_RSP, REG_RBP: CFA_RBP}.get(reg, CFA_NONE)
        rbp = self.regs.get(REG_RBP, ("same", 0))
        if rbp[0] == "offset" and rbp[1] in _INT16 and rbp[1] != 0:
            rbp_offset = rbp[1]
        elif rbp[0] == "same":
            rbp_offset = 0
        else:  # rbp kept in another register or by an expression: cannot follow
            return UnwindRule(start)
        if cfa_reg == CFA_NONE or offset not in _INT32:
            return UnwindRule(start)
        return UnwindRule(start, cfa_reg, offset, rbp_offset)


def _fde_rules(fde: Any) -> list[UnwindRule]:
    """The rows of one function's call-frame program, and a "no rule" row at its end."""
    cie = fde.cie
    code_align = cie.header["code_alignment_factor"]
    data_align = cie.header["data_alignment_factor"]
    start = fde.header["initial_location"]
    end = start + fde.header["address_range"]
    if end > 1 << 32:  # the kernel's table keeps 32-bit addresses
        return []
    initial = _State()
    for instr in cie.instructions:
        _step(instr, initial, None, [], code_align, data_align)
    return _rows_of(fde, initial, (code_align, data_align), start, end)


def _rows_of(fde: Any, initial: _State, align: tuple[int, int], start: int,
             end: int) -> list[UnwindRule]:
    """Runs the FDE's instructions; a row is emitted each time the address advances."""
    state, saved = initial.copy(), list[_State]()
    pc = [start]
    rows: list[UnwindRule] = []
    for instr in fde.instructions:
        before = pc[0]
        rule = state.rule(before)
        _step(instr, state, initial, saved, *align, pc)
        if pc[0] != before:
            rows.append(rule)
    rows.append(state.rule(pc[0]))
    rows = [r for r in rows if r.start < end]
    rows.append(UnwindRule(end))
    return rows


_ADVANCE = {"DW_CFA_advance_loc", "DW_CFA_advance_loc1", "DW_CFA_advance_loc2",
            "DW_CFA_advance_loc4"}


def _step(instr: Any, state: _State, initial: _State | None, saved: list[_State],
          code_align: int, data_align: int, pc: list[int] | None = None) -> None:
    """Applies one call-frame instruction to `state` (and `pc`, when it advances)."""
    name, args = _opcode_name(instr.opcode), instr.args
    if name in _ADVANCE or name == "DW_CFA_set_loc":
        if pc is not None:
            pc[0] = args[0] if name == "DW_CFA_set_loc" else pc[0] + args[0] * code_align
    elif name == "DW_CFA_def_cfa":
        state.cfa = (args[0], args[1])
    elif name == "DW_CFA_def_cfa_sf":
        state.cfa = (args[0], args[1] * data_align)
    elif name == "DW_CFA_def_cfa_register":
        state.cfa = (args[0], state.cfa[1]) if state.cfa else None
    elif name == "DW_CFA_def_cfa_offset":
        state.cfa = (state.cfa[0], args[0]) if state.cfa else None
    elif name == "DW_CFA_def_cfa_offset_sf":
        state.cfa = (state.cfa[0], args[0] * data_align) if state.cfa else None
    elif name == "DW_CFA_def_cfa_expression":
        state.cfa = None
    elif name in ("DW_CFA_offset", "DW_CFA_offset_extended", "DW_CFA_offset_extended_sf"):
        state.regs[args[0]] = ("offset", args[1] * data_align)
    elif name in ("DW_CFA_same_value", "DW_CFA_undefined"):
        state.regs[args[0]] = ("same", 0)
    elif name in ("DW_CFA_restore", "DW_CFA_restore_extended"):
        base = initial.regs if initial is not None else {}
        if args[0] in base:
            state.regs[args[0]] = base[args[0]]
        else:
            state.regs.pop(args[0], None)
    elif name == "DW_CFA_remember_state":
        saved.append(state.copy())
    elif name == "DW_CFA_restore_state":
        if saved:
            back = saved.pop()
            state.cfa, state.regs = back.cfa, back.regs
    elif name in ("DW_CFA_nop", "DW_CFA_GNU_args_size"):
        pass  # args_size only matters to exception handling
    elif name in ("DW_CFA_register", "DW_CFA_expression", "DW_CFA_val_expression",
                  "DW_CFA_val_offset", "DW_CFA_val_offset_sf"):
        state.regs[args[0]] = ("other", 0)
    else:  # an opcode this module does not know: nothing here can be trusted
        state.cfa = None


def _opcode_name(opcode: Any) -> str:
    """pyelftools gives opcodes as ints (≤ 0.32) or as an enum (0.33): its DWARF name."""
    name = getattr(opcode, "name", None)
    if name is not None:
        return name if name.startswith("DW_CFA_") else f"DW_CFA_{name}"
    from elftools.dwarf.callframe import instruction_name
    return str(instruction_name(opcode))
