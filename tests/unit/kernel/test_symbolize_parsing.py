"""The symbolizer's readers: /proc/PID/maps lines, ELF headers and notes, llvm-symbolizer JSON."""

from __future__ import annotations

import ctypes
import os
import struct
from pathlib import Path

import pytest

from bpfrun.kernel.elf import ElfError, resolve_library
from bpfrun.kernel.symbolize_elf import (
    ElfInfo,
    FunctionSymbol,
    Segment,
    _build_id,
    _debuglink,
    parse_elf_info,
    read_elf_info,
)
from bpfrun.kernel.symbolize_llvm import SymbolizerFailed, parse_json_lines
from bpfrun.kernel.symbolize_maps import ProcessMaps, parse_maps_line

MAPS = """\
55d0c6a00000-55d0c6a01000 r--p 00000000 fd:01 1054 /usr/bin/my prog
55d0c6a01000-55d0c6a05000 r-xp 00001000 fd:01 1054 /usr/bin/my prog
7f0000000000-7f0000021000 rw-p 00000000 00:00 0
7f0000100000-7f0000200000 r-xp 00000000 00:00 0                          [anon:v8 code]
7f1a2b000000-7f1a2b028000 r-xp 00028000 08:02 393 /usr/lib/libfoo.so (deleted)
7f1a2c000000-7f1a2c001000 r-xp 00000000 00:01 77 /memfd:jit (deleted)
7ffd4a3f0000-7ffd4a411000 rw-p 00000000 00:00 0                          [stack]
7ffd4a5fe000-7ffd4a600000 r-xp 00000000 00:00 0                          [vdso]
"""


# --- maps ------------------------------------------------------------------------------------


def test_a_maps_line_keeps_spaces_in_the_path_and_reads_hex_fields() -> None:
    m = parse_maps_line(MAPS.splitlines()[1])
    assert (m.start, m.end, m.perms, m.offset) == (0x55D0C6A01000, 0x55D0C6A05000, "r-xp", 0x1000)
    assert (m.dev, m.inode, m.path, m.deleted) == ((0xFD, 1), 1054, "/usr/bin/my prog", False)
    assert m.is_file and not m.is_anonymous and m.module == "my prog"


def test_deleted_files_lose_the_mark_but_keep_the_flag() -> None:
    m = parse_maps_line(MAPS.splitlines()[4])
    assert (m.path, m.deleted, m.module) == ("/usr/lib/libfoo.so", True, "libfoo.so")


@pytest.mark.parametrize(("line", "module", "anonymous", "is_file"), [
    (2, "anon", True, False),
    (3, "anon:v8 code", True, False),
    (5, "memfd:jit", True, True),
    (6, "stack", False, False),
    (7, "vdso", False, False),
])
def test_mapping_kinds(line: int, module: str, anonymous: bool, is_file: bool) -> None:
    m = parse_maps_line(MAPS.splitlines()[line])
    assert (m.module, m.is_anonymous, m.is_file) == (module, anonymous, is_file)


def test_a_bad_maps_line_is_refused() -> None:
    with pytest.raises(ValueError, match="not a /proc/PID/maps line"):
        parse_maps_line("hello world")


def test_find_uses_half_open_ranges() -> None:
    maps = ProcessMaps.parse(MAPS)
    assert maps.find(0x55D0C6A00FFF).offset == 0  # type: ignore[union-attr]
    assert maps.find(0x55D0C6A01000).offset == 0x1000  # type: ignore[union-attr]
    assert maps.find(0x55D0C6A05000) is None
    assert maps.find(0x10) is None


def test_a_snapshot_without_a_start_time_is_never_taken_for_a_live_process() -> None:
    assert not ProcessMaps.parse(MAPS, pid=os.getpid()).alive()


def test_capture_of_this_process_holds_its_vdso_image() -> None:
    maps = ProcessMaps.capture(os.getpid())
    assert maps.alive() and not maps.foreign_mounts()
    vdso = next(m for m in maps.mappings if m.path == "[vdso]")
    assert maps.vdso is not None and len(maps.vdso) == vdso.end - vdso.start
    assert maps.vdso[:4] == b"\x7fELF"


def test_capture_of_a_missing_process_raises_oserror() -> None:
    with pytest.raises(OSError):
        ProcessMaps.capture(2**22 + 1)  # above pid_max's ceiling


# --- ELF -------------------------------------------------------------------------------------


def _libc() -> str:
    path = resolve_library("libc.so.6") or resolve_library("c")
    if path is None:
        pytest.skip("no libc.so.6 found")
    return path


def test_libc_has_load_segments_a_build_id_and_its_functions() -> None:
    info = read_elf_info(_libc())
    assert info.segments and info.build_id and len(info.build_id) >= 16
    libc = ctypes.CDLL("libc.so.6")
    runtime = ctypes.cast(libc.malloc, ctypes.c_void_p).value
    maps = ProcessMaps.capture(os.getpid())
    mapping = maps.find(runtime or 0)
    assert mapping is not None and mapping.module.startswith("libc")
    vaddr = info.vaddr_of(runtime - mapping.start + mapping.offset)  # type: ignore[operator]
    func = info.function_at(vaddr + 3)  # type: ignore[operator]
    assert func is not None and func.name == "malloc" and func.start == vaddr


def test_vaddr_of_maps_file_offsets_through_the_load_segments() -> None:
    info = ElfInfo((Segment(0, 0, 0x1000), Segment(0x1000, 0x401000, 0x500)), None, None,
                   False, False)
    assert info.vaddr_of(0x10) == 0x10
    assert info.vaddr_of(0x1010) == 0x401010
    assert info.vaddr_of(0x1500) is None  # past the segment's file bytes


def test_function_at_prefers_the_plain_global_alias_and_respects_sizes() -> None:
    funcs = (FunctionSymbol(0x100, 0x20, "malloc"), FunctionSymbol(0x100, 0x20, "__GI_malloc"),
             FunctionSymbol(0x200, 0, "sizeless"), FunctionSymbol(0x300, 0x10, "last"))
    info = ElfInfo((), None, None, True, False, funcs)
    assert info.function_at(0x110).name == "malloc"  # type: ignore[union-attr]
    assert info.function_at(0x120) is None  # in the gap after malloc's 0x20 bytes
    assert info.function_at(0x2FF).name == "sizeless"  # type: ignore[union-attr]
    assert info.function_at(0x310) is None
    assert info.function_at(0x50) is None


def test_the_vdso_image_lists_clock_gettime() -> None:
    image = ProcessMaps.capture(os.getpid()).vdso
    assert image is not None
    info = parse_elf_info(image, "[vdso]")
    names = {f.name for f in info.functions}
    assert names & {"__vdso_clock_gettime", "clock_gettime"}
    assert not info.has_symtab and not info.has_debug_info


def test_build_id_and_debuglink_sections() -> None:
    note = struct.pack("<III", 4, 3, 1) + b"GNU\0" + b"abc\0"  # an NT_GNU_ABI_TAG first
    note += struct.pack("<III", 4, 4, 3) + b"GNU\0" + bytes.fromhex("deadbeef")
    assert _build_id(note, "<") == "deadbeef"
    assert _debuglink(b"foo.debug\0\0\0" + struct.pack("<I", 0x1234), "<") == ("foo.debug", 0x1234)


@pytest.mark.parametrize("data", [b"not an elf file at all" * 4, b"\x7fELF\x01" + b"\0" * 60])
def test_non_elf64_is_refused(data: bytes) -> None:
    with pytest.raises(ElfError):
        parse_elf_info(data)


def test_a_truncated_elf_is_refused(tmp_path: Path) -> None:
    data = Path(_libc()).read_bytes()[:200]
    with pytest.raises(ElfError, match="malformed"):
        parse_elf_info(data)


# --- llvm-symbolizer JSON ----------------------------------------------------------------------

JSON = """\
{"Address":"0x1995","ModuleName":"oncpu","Symbol":[{"Column":9,"Discriminator":0,"FileName":"/w/oncpu.c","FunctionName":"bpfr_busy_spin_us","Line":25,"StartAddress":"0x1990","StartFileName":"/w/oncpu.c","StartLine":19},{"Column":9,"Discriminator":0,"FileName":"/w/oncpu.c","FunctionName":"bpfr_spinner","Line":37,"StartAddress":"0x18b0","StartFileName":"/w/oncpu.c","StartLine":30}]}
{"Address":"0x20","ModuleName":"x","Symbol":[{"Column":0,"Discriminator":0,"FileName":"","FunctionName":"","Line":0,"StartAddress":"","StartFileName":"","StartLine":0}]}
{"Address":"0x30","Error":{"Message":"No such file or directory"},"ModuleName":"gone"}
"""


def test_json_lines_give_the_inlined_chain_innermost_first() -> None:
    found = parse_json_lines(JSON)
    inner, outer = found[0x1995]
    assert (inner.function, inner.line, inner.inlined) == ("bpfr_busy_spin_us", 25, True)
    assert (outer.function, outer.start, outer.file, outer.inlined) == (
        "bpfr_spinner", 0x18B0, "/w/oncpu.c", False)
    assert found[0x20] == () and found[0x30] == ()


def test_unreadable_json_is_a_symbolizer_failure() -> None:
    with pytest.raises(SymbolizerFailed, match="unreadable"):
        parse_json_lines("Segmentation fault\n")
