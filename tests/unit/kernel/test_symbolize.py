"""Symbolizing addresses: frames and their text, the reasons a frame stays unknown, batching
and caching per module, the vDSO, and the fallback without llvm-symbolizer.

No C is built here: the binaries are this Python process's own (libc, the vDSO) and maps
written by hand. tests/integration/test_symbolize_workloads.py covers built workloads.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from bpfrun.kernel.elf import resolve_library
from bpfrun.kernel.symbolize import (
    Frame,
    ProcessMaps,
    Reason,
    Symbolizer,
    format_frame,
)
from bpfrun.kernel.symbolize_elf import parse_elf_info, read_elf_info
from bpfrun.kernel.symbolize_llvm import LlvmSymbolizer, Location, SourceFrame
from bpfrun.kernel.symbolize_modules import ModuleFinder

needs_llvm = pytest.mark.skipif(LlvmSymbolizer.find() is None,
                                reason="llvm-symbolizer ≥ 14 not installed (apt install llvm)")


class CountingBackend(LlvmSymbolizer):
    """Answers `fn_<vaddr>` for every address and records each batch it was given."""

    def __init__(self) -> None:
        super().__init__("fake-symbolizer", "0")
        self.calls: list[tuple[str, list[int]]] = []

    def symbolize(self, obj: str, vaddrs: Sequence[int]) -> dict[int, Location]:
        self.calls.append((obj, list(vaddrs)))
        return {v: (SourceFrame(f"fn_{v:x}", v - 4, "/src/f.c", 7, False),) for v in vaddrs}


def malloc_address() -> int:
    return ctypes.cast(ctypes.CDLL("libc.so.6").malloc, ctypes.c_void_p).value or 0


def own_maps() -> ProcessMaps:
    return ProcessMaps.capture(os.getpid())


def vdso_clock_gettime(maps: ProcessMaps) -> int:
    """The runtime address of clock_gettime in this process's vDSO."""
    assert maps.vdso is not None
    vdso = next(m for m in maps.mappings if m.path == "[vdso]")
    info = parse_elf_info(maps.vdso)
    func = next(f for f in info.functions if f.name.endswith("clock_gettime"))
    return vdso.start + info.segments[0].offset + func.start - info.segments[0].vaddr


def one_file_maps(path: str, inode: int, mount_ns: str | None = None) -> ProcessMaps:
    return ProcessMaps.parse(f"7f0000000000-7f0000100000 r-xp 00000000 08:01 {inode} {path}\n",
                             pid=4242, mount_ns=mount_ns)


# --- format_frame ----------------------------------------------------------------------------


@pytest.mark.parametrize(("frame", "text"), [
    (Frame(1, "test_memleak", "main", 0x4D, "/src/test_memleak.c", 14),
     "main+0x4d (test_memleak.c:14) [test_memleak]"),
    (Frame(1, "oncpu", "bpfr_busy_spin_us", None, "oncpu.c", 25, inlined=True),
     "bpfr_busy_spin_us (oncpu.c:25) [oncpu] (inlined)"),
    (Frame(1, "libc.so.6", "malloc", 0), "malloc+0x0 [libc.so.6]"),
    (Frame(1, "vdso", "__vdso_clock_gettime", 8), "__vdso_clock_gettime+0x8 [vdso]"),
    (Frame(1, "foo", reason=Reason.STRIPPED),
     "[unknown] [foo] (stripped binary with no debug file)"),
    (Frame(1, "", reason=Reason.NO_MAPPING), "[unknown] (no mapping holds this address)"),
])
def test_format_frame(frame: Frame, text: str) -> None:
    assert format_frame(frame) == text


def test_format_frame_can_leave_the_reason_out() -> None:
    frame = Frame(1, "anon", reason=Reason.ANONYMOUS)
    assert format_frame(frame, reason=False) == "[unknown] [anon]"
    assert frame.as_dict()["reason"] == "anonymous memory (JIT?)"


# --- reasons ---------------------------------------------------------------------------------


def test_addresses_outside_files_get_their_reason() -> None:
    maps = ProcessMaps.parse(
        "7f0000000000-7f0000021000 rw-p 00000000 00:00 0\n"
        "7ffd4a3f0000-7ffd4a411000 rw-p 00000000 00:00 0 [stack]\n"
        "7ffd4a5fe000-7ffd4a600000 r-xp 00000000 00:00 0 [vdso]\n")
    backend = CountingBackend()
    found = Symbolizer(backend=backend).symbolize(
        maps, [0x7F0000000010, 0x7FFD4A3F0010, 0x7FFD4A5FE010, 0x10])
    reasons = {a: (frames[0].module, frames[0].reason) for a, frames in found.items()}
    assert reasons == {
        0x7F0000000010: ("anon", Reason.ANONYMOUS),
        0x7FFD4A3F0010: ("stack", Reason.SPECIAL),
        0x7FFD4A5FE010: ("vdso", Reason.UNREADABLE),  # parsed maps carry no vDSO image
        0x10: ("", Reason.NO_MAPPING),
    }
    assert backend.calls == []


def test_a_deleted_binary_of_an_exited_process_is_deleted(tmp_path: Path) -> None:
    maps = ProcessMaps.parse("7f0000000000-7f0000100000 r-xp 00000000 08:01 99 "
                             f"{tmp_path}/prog (deleted)\n", pid=4242)
    [frame] = Symbolizer(backend=CountingBackend()).symbolize(maps, [0x7F0000000100])[
        0x7F0000000100]
    assert (frame.reason, frame.module, frame.path) == (Reason.DELETED, "prog", f"{tmp_path}/prog")


def test_a_binary_replaced_at_its_path_is_not_used() -> None:
    true = shutil.which("true") or "/bin/true"
    maps = one_file_maps(true, inode=os.stat(true).st_ino + 1)
    [frame] = Symbolizer(backend=CountingBackend()).symbolize(maps, [0x7F000000A000])[
        0x7F000000A000]
    assert frame.reason is Reason.DELETED


def test_a_binary_of_another_mount_namespace_is_not_visible() -> None:
    maps = one_file_maps("/opt/app/bin/server", inode=12, mount_ns="mnt:[1]")
    [frame] = Symbolizer(backend=CountingBackend()).symbolize(maps, [0x7F0000001000])[
        0x7F0000001000]
    assert frame.reason is Reason.NOT_VISIBLE


def test_a_stripped_binary_with_no_symbol_is_stripped() -> None:
    python = os.path.realpath(sys.executable)
    info = read_elf_info(python)
    if info.has_symtab or info.has_debug_info:
        pytest.skip(f"{python} is not stripped here")
    maps = one_file_maps(python, inode=os.stat(python).st_ino)
    address = 0x7F0000000000 + info.segments[0].offset + 0x10  # the ELF header: no function
    [frame] = Symbolizer(backend=None).symbolize(maps, [address])[address]
    assert frame.reason in (Reason.STRIPPED, Reason.NO_SYMBOL)  # a debug file may exist
    assert frame.path == python


# --- batching and caching --------------------------------------------------------------------


def test_one_batch_per_module_and_answers_are_cached() -> None:
    backend = CountingBackend()
    symbolizer = Symbolizer(backend=backend)
    maps = own_maps()
    malloc = malloc_address()
    first = symbolizer.symbolize(maps, [malloc, malloc + 1, malloc + 2, malloc])
    assert len(backend.calls) == 1 and len(backend.calls[0][1]) == 3
    vaddr = backend.calls[0][1][0]  # malloc's ELF virtual address, the smallest of the three
    assert [f.function for f in first[malloc]] == [f"fn_{vaddr:x}"]
    assert first[malloc][0].offset == 4 and first[malloc][0].file == "/src/f.c"
    symbolizer.symbolize(maps, [malloc + 1])
    assert len(backend.calls) == 1  # from the cache
    assert symbolizer.stats.addresses == 4 and symbolizer.stats.looked_up == 3


def test_stacks_look_up_callers_one_byte_earlier_but_keep_their_offset() -> None:
    backend = CountingBackend()
    maps = own_maps()
    malloc = malloc_address()
    [[top], [caller]] = Symbolizer(backend=backend).symbolize_stacks(maps, [[malloc, malloc]])[0]
    assert top.function != caller.function  # the caller was looked up at vaddr - 1
    assert caller.offset == top.offset + 1 == 5  # the fake starts functions 4 before


def test_a_failing_backend_falls_back_to_the_symbol_table() -> None:
    class Broken(LlvmSymbolizer):
        def symbolize(self, obj: str, vaddrs: Sequence[int]) -> dict[int, Location]:
            from bpfrun.kernel.symbolize_llvm import SymbolizerFailed
            raise SymbolizerFailed("boom")

    symbolizer = Symbolizer(backend=Broken("x", "0"))
    malloc = malloc_address()
    [frame] = symbolizer.symbolize(own_maps(), [malloc + 8])[malloc + 8]
    assert (frame.function, frame.offset, frame.line) == ("malloc", 8, None)
    assert symbolizer.stats.failures and "boom" in symbolizer.stats.failures[0]


# --- the real backend and the fallback ---------------------------------------------------------


@needs_llvm
def test_libc_malloc_and_the_vdso_with_llvm_symbolizer() -> None:
    maps = own_maps()
    malloc, clock = malloc_address(), vdso_clock_gettime(maps)
    symbolizer = Symbolizer()
    assert symbolizer.describe().startswith("llvm-symbolizer ")
    found = symbolizer.symbolize(maps, [malloc + 4, clock + 4])
    assert found[malloc + 4][-1].function == "malloc" and found[malloc + 4][-1].offset == 4
    assert found[malloc + 4][-1].module.startswith("libc")
    vdso = found[clock + 4][-1]
    assert vdso.function in ("__vdso_clock_gettime", "clock_gettime")
    assert format_frame(vdso).startswith(f"{vdso.function}+0x4 ") and vdso.module == "vdso"
    assert symbolizer.stats.batches == 2  # libc and the vDSO: one process each


def test_without_llvm_symbolizer_names_come_from_symbol_tables() -> None:
    maps = own_maps()
    malloc, clock = malloc_address(), vdso_clock_gettime(maps)
    symbolizer = Symbolizer(backend=None)
    assert "llvm-symbolizer not found" in symbolizer.describe()
    found = symbolizer.symbolize(maps, [malloc + 4, clock])
    assert format_frame(found[malloc + 4][0]).startswith("malloc+0x4 [libc")
    assert found[clock][0].function in ("__vdso_clock_gettime", "clock_gettime")
    assert found[clock][0].offset == 0


# --- debug files -----------------------------------------------------------------------------


def test_a_debug_file_is_found_by_build_id_under_a_debug_root(tmp_path: Path) -> None:
    libc = resolve_library("libc.so.6")
    assert libc is not None
    info = read_elf_info(libc)
    if info.has_debug_info or not info.build_id:
        pytest.skip("libc has its own DWARF or no build-id here")
    debug = tmp_path / ".build-id" / info.build_id[:2] / f"{info.build_id[2:]}.debug"
    debug.parent.mkdir(parents=True)
    debug.write_bytes(Path(libc).read_bytes())  # any ELF does for finding it
    maps = own_maps()
    mapping = maps.find(malloc_address())
    assert mapping is not None
    module = ModuleFinder([str(tmp_path)]).module(maps, mapping)
    assert not isinstance(module, Reason) and module.obj == str(debug)
    elsewhere = ModuleFinder([str(tmp_path / "nothing")]).module(maps, mapping)
    assert not isinstance(elsewhere, Reason) and elsewhere.obj != str(debug)
