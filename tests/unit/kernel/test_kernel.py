"""The kernel window: format parsing on recorded files, fake and live kernels, ELF symbols."""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import pytest
from helpers.paths import FIXTURES

from bpfrun.kernel.elf import ElfError, elf_function_symbols, resolve_library
from bpfrun.kernel.tracefs import (
    FakeKernel,
    LiveKernel,
    TracepointFormat,
    UnreadableKernel,
    parse_format,
)

TRACEFS = FIXTURES / "tracefs"
FORMATS = sorted(TRACEFS.glob("events/*/*/format"))
KINDS = {"int", "chararray", "data_loc_str", "data_loc", "strptr", "ptr", "array", "other"}


def load(category: str, event: str) -> TracepointFormat:
    text = (TRACEFS / "events" / category / event / "format").read_text()
    return parse_format(text, category, event)


@pytest.fixture
def fake() -> FakeKernel:
    return FakeKernel(TRACEFS)


# --- parse_format -------------------------------------------------------------------------


def test_fixture_set_is_recorded() -> None:
    assert len(FORMATS) >= 25
    assert (TRACEFS / "KERNEL").read_text().strip()


@pytest.mark.parametrize("path", FORMATS, ids=lambda p: f"{p.parent.parent.name}:{p.parent.name}")
def test_every_fixture_parses_consistently(path: Path) -> None:
    category, event = path.parent.parent.name, path.parent.name
    fmt = parse_format(path.read_text(), category, event)
    assert (fmt.category, fmt.event) == (category, event)
    assert fmt.id > 0
    assert fmt.common_size == 8
    assert fmt.fields, "every recorded event has fields"
    names = [f.name for f in fmt.fields]
    assert len(names) == len(set(names))
    assert not any(n.startswith("common_") for n in names)
    offsets = [f.offset for f in fmt.fields]
    assert offsets == sorted(offsets) and offsets[0] >= fmt.common_size
    for f in fmt.fields:
        assert f.kind in KINDS
        assert f.name in f.ctype
        assert f.size > 0
        assert f.kind != "other", f"{f.ctype} should be understood"
        if f.kind == "int":
            assert f.size in (1, 2, 4, 8)
        if f.kind in ("chararray", "array"):
            assert f.array_len is not None and f.size % f.array_len == 0
        else:
            assert f.array_len is None
        assert fmt.field(f.name) is f


def test_sched_switch() -> None:
    fmt = load("sched", "sched_switch")
    comm = fmt.field("prev_comm")
    assert comm is not None
    assert (comm.kind, comm.array_len, comm.offset, comm.size) == ("chararray", 16, 8, 16)
    assert comm.ctype == "char prev_comm[16]"
    pid = fmt.field("prev_pid")
    assert pid is not None
    assert (pid.kind, pid.signed, pid.size, pid.offset, pid.ctype) == (
        "int",
        True,
        4,
        24,
        "pid_t prev_pid",
    )
    assert [f.name for f in fmt.fields] == [
        "prev_comm",
        "prev_pid",
        "prev_prio",
        "prev_state",
        "next_comm",
        "next_pid",
        "next_prio",
    ]
    assert fmt.field("nope") is None
    assert fmt.probe == "tracepoint:sched:sched_switch"


def test_sys_enter_openat() -> None:
    fmt = load("syscalls", "sys_enter_openat")
    nr = fmt.field("__syscall_nr")
    assert nr is not None and (nr.kind, nr.offset, nr.size) == ("int", 8, 4)
    filename = fmt.field("filename")
    assert filename is not None
    assert (filename.kind, filename.size, filename.ctype) == ("strptr", 8, "const char * filename")
    dfd = fmt.field("dfd")
    # Syscall arguments are stored as 8-byte slots whatever their C type.
    assert dfd is not None and (dfd.kind, dfd.size, dfd.offset) == ("int", 8, 16)


def test_data_loc_strings() -> None:
    name = load("irq", "irq_handler_entry").field("name")
    assert name is not None
    assert (name.kind, name.ctype, name.size) == ("data_loc_str", "__data_loc char[] name", 4)
    fork = load("sched", "sched_process_fork")
    assert [f.name for f in fork.fields if f.kind == "data_loc_str"] == [
        "parent_comm",
        "child_comm",
    ]


def test_pointers_and_arrays() -> None:
    execve = load("syscalls", "sys_enter_execve")
    assert execve.field("filename").kind == "strptr"  # type: ignore[union-attr]
    assert execve.field("argv").kind == "ptr"  # type: ignore[union-attr]  # char **, not a string
    assert load("syscalls", "sys_enter_openat2").field("how").kind == "ptr"  # type: ignore[union-attr]
    args = load("raw_syscalls", "sys_enter").field("args")
    assert args is not None and (args.kind, args.array_len, args.size) == ("array", 6, 48)
    saddr = load("sock", "inet_sock_set_state").field("saddr")
    assert saddr is not None and (saddr.kind, saddr.array_len) == ("array", 4)
    dead = load("sched", "sched_process_exit").field("group_dead")
    assert dead is not None and (dead.kind, dead.size, dead.signed) == ("int", 1, False)


SYNTHETIC = """name: synthetic
ID: 7
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;
\tfield:int common_extra;\toffset:8;\tsize:4;\tsigned:1;

\tfield:__data_loc u8[] payload;\toffset:12;\tsize:4;\tsigned:0;
\tfield:__rel_loc char[] rel;\toffset:16;\tsize:4;\tsigned:0;
\tfield:struct foo s;\toffset:20;\tsize:8;\tsigned:0;
\tfield:char comm[TASK_COMM_LEN];\toffset:28;\tsize:16;
\tfield special:unsigned char tail;\toffset:44;\tsize:1;\tsigned:0;

print fmt: "x"
"""


def test_synthetic_format_edge_cases() -> None:
    fmt = parse_format(SYNTHETIC, "cat", "synthetic")
    assert fmt.id == 7
    assert fmt.common_size == 12  # not always 8
    kinds = {f.name: (f.kind, f.array_len) for f in fmt.fields}
    assert kinds == {
        "payload": ("data_loc", None),
        "rel": ("other", None),  # __rel_loc offsets are relative; not supported
        "s": ("other", None),  # an 8-byte struct is not an integer
        "comm": ("chararray", 16),  # symbolic length: taken from the size
        "tail": ("int", None),
    }
    assert fmt.field("comm").signed is False  # type: ignore[union-attr]  # no signed: on old kernels


def test_parse_format_without_id_fails() -> None:
    with pytest.raises(ValueError, match="no ID"):
        parse_format("name: x\nformat:\n", "cat", "x")


# --- FakeKernel ---------------------------------------------------------------------------


def test_fake_kernel_listing(fake: FakeKernel) -> None:
    assert fake.readable()
    everything = fake.tracepoints()
    assert everything == sorted(everything) and len(everything) == len(FORMATS)
    assert fake.tracepoints("sched:*") == [
        "sched:sched_process_exec",
        "sched:sched_process_exit",
        "sched:sched_process_fork",
        "sched:sched_switch",
        "sched:sched_wakeup",
        "sched:sched_wakeup_new",
    ]
    assert fake.tracepoints("*:sys_exit_openat*") == [
        "syscalls:sys_exit_openat",
        "syscalls:sys_exit_openat2",
    ]
    assert fake.tracepoints("nope:*") == []
    assert fake.release == (TRACEFS / "KERNEL").read_text().strip()


def test_fake_kernel_tracepoint(fake: FakeKernel) -> None:
    fmt = fake.tracepoint("sched", "sched_switch")
    assert fmt == load("sched", "sched_switch")
    assert fake.tracepoint("sched", "sched_switch") is fmt  # cached
    assert fake.tracepoint("sched", "no_such_event") is None
    assert fake.tracepoint("no_such_category", "sched_switch") is None
    # Names are never turned into paths outside events/.
    assert fake.tracepoint("..", "tracefs") is None
    assert fake.tracepoint("sched/../irq", "irq_handler_entry") is None


def test_fake_kernel_raw_tracepoints(fake: FakeKernel) -> None:
    assert fake.raw_tracepoint_exists("sched_switch")
    assert fake.raw_tracepoint_exists("sys_enter")  # raw_syscalls:sys_enter
    # Per-syscall events are synthesized by ftrace: no raw tracepoint of that name.
    assert not fake.raw_tracepoint_exists("sys_enter_openat")
    assert not fake.raw_tracepoint_exists("sched_*")
    assert fake.raw_tracepoints("sched_wakeup*") == ["sched_wakeup", "sched_wakeup_new"]
    given = FakeKernel(TRACEFS, raw_tracepoints=["pelt_cfs_tp", "sched_switch"])
    assert given.raw_tracepoints() == ["pelt_cfs_tp", "sched_switch"]
    assert given.raw_tracepoint_exists("pelt_cfs_tp")


def test_fake_kernel_kprobes(fake: FakeKernel) -> None:
    assert not fake.kprobes_available()
    assert fake.kprobe_functions() == []
    k = FakeKernel(TRACEFS, kprobes=True, functions=["vfs_write", "vfs_read", "do_sys_openat2"])
    assert k.kprobes_available()
    assert k.kprobe_functions("vfs_*") == ["vfs_read", "vfs_write"]


# --- LiveKernel over a directory ----------------------------------------------------------


def test_live_kernel_on_missing_root_never_raises(tmp_path: Path) -> None:
    k = LiveKernel(tmp_path / "absent", kallsyms=tmp_path / "absent-kallsyms")
    assert not k.readable()
    assert k.tracepoint("sched", "sched_switch") is None
    assert k.tracepoints() == []
    assert not k.kprobes_available()
    assert k.kprobe_functions() == []
    assert not k.raw_tracepoint_exists("sched_switch")
    u = UnreadableKernel()
    assert not u.readable() and u.tracepoints() == [] and u.tracepoint("sched", "x") is None


def test_live_kernel_reads_tracefs_layout(tmp_path: Path) -> None:
    root = tmp_path / "tracing"
    shutil.copytree(TRACEFS / "events", root / "events")
    (root / "available_events").write_text("sched:sched_switch\nirq:irq_handler_entry\n")
    (root / "kprobe_events").write_text("")
    (root / "available_filter_functions").write_text("vfs_read\nvfs_write\nfoo_init [foo]\n")
    kallsyms = tmp_path / "kallsyms"
    kallsyms.write_text(
        "ffffffff8139bb30 T __traceiter_sched_switch\n"
        "ffffffff8139c330 T __traceiter_pelt_cfs_tp\n"
        "ffffffff81000000 T vfs_read\n"
        "ffffffffc0000000 t __traceiter_foo_event\t[foo]\n"
    )
    # A format that cannot be read is reported as missing, not raised.
    (root / "events" / "sched" / "sched_switch" / "format").unlink()
    (root / "events" / "sched" / "sched_switch" / "format").mkdir()

    k = LiveKernel(root, kallsyms=kallsyms)
    assert k.readable()
    assert k.tracepoints() == ["irq:irq_handler_entry", "sched:sched_switch"]
    assert k.tracepoint("sched", "sched_switch") is None
    assert k.tracepoint("irq", "irq_handler_entry") == load("irq", "irq_handler_entry")
    assert k.kprobes_available()
    assert k.kprobe_functions() == ["foo_init", "vfs_read", "vfs_write"]
    assert k.raw_tracepoints() == ["foo_event", "pelt_cfs_tp", "sched_switch"]
    assert k.raw_tracepoint_exists("pelt_cfs_tp")  # no event folder: from kallsyms
    assert k.raw_tracepoint_exists("irq_handler_entry")  # a listed event: no kallsyms needed
    assert not k.raw_tracepoint_exists("sched_wakeup")  # neither listed nor in kallsyms
    assert not k.raw_tracepoint_exists("no_such_tracepoint")


def test_dynamic_events_are_not_raw_tracepoints(tmp_path: Path) -> None:
    root = tmp_path / "tracing"
    for group, event in (("kprobes", "kp_open"), ("mygroup", "my_probe"), ("sched", "sched_x")):
        (root / "events" / group / event).mkdir(parents=True)
        (root / "events" / group / event / "format").write_text("")
    (root / "dynamic_events").write_text("p:kprobes/kp_open do_sys_openat2\n"
                                         "r:mygroup/my_probe vfs_read\n")
    k = LiveKernel(root, kallsyms=tmp_path / "none")
    assert not k.raw_tracepoint_exists("kp_open")
    assert not k.raw_tracepoint_exists("my_probe")  # a kprobe event in a group of its own
    assert k.raw_tracepoint_exists("sched_x")


def test_live_kernel_falls_back_to_events_without_kallsyms(tmp_path: Path) -> None:
    k = LiveKernel(TRACEFS, kallsyms=tmp_path / "none")
    assert k.tracepoints() == FakeKernel(TRACEFS).tracepoints()
    assert k.raw_tracepoint_exists("sched_switch")
    assert not k.raw_tracepoint_exists("sys_enter_write")


# --- ELF symbols --------------------------------------------------------------------------


def test_real_libc_has_malloc_and_free() -> None:
    libc = resolve_library("libc")
    assert libc is not None and os.path.isabs(libc)
    assert os.path.basename(libc).startswith("libc.so")
    functions = elf_function_symbols(libc)
    assert {"malloc", "free", "calloc", "realloc"} <= set(functions)
    assert functions == sorted(set(functions))
    assert "malloc" in elf_function_symbols(libc, "mall*")
    assert all(f.startswith("mall") for f in elf_function_symbols(libc, "mall*"))
    assert "environ" not in functions  # a data object, not a function


def test_resolve_library() -> None:
    libc = resolve_library("libc")
    assert resolve_library(libc) == libc  # type: ignore[arg-type]
    assert resolve_library("c") == libc
    assert resolve_library("/no/such/file.so") is None
    assert resolve_library("no_such_library_xyz") is None
    sh = resolve_library("sh")  # not a library: found on $PATH
    assert sh is not None and os.path.isfile(sh)


def _elf64(symbols: list[tuple[str, int, int]], big_endian: bool = False) -> bytes:
    """A minimal ELF64 file with one .symtab: (name, st_info, st_shndx) per symbol."""
    e = ">" if big_endian else "<"
    strtab = b"\0" + b"".join(n.encode() + b"\0" for n, _, _ in symbols)
    syms = struct.pack(e + "IBBHQQ", 0, 0, 0, 0, 0, 0)
    pos = 1
    for name, info, shndx in symbols:
        syms += struct.pack(e + "IBBHQQ", pos, info, 0, shndx, 0x1000, 16)
        pos += len(name) + 1
    header_size, sh_size = 64, 64
    str_off = header_size
    sym_off = str_off + len(strtab)
    sh_off = sym_off + len(syms)
    ident = b"\x7fELF" + bytes([2, 2 if big_endian else 1, 1]) + bytes(9)
    header = ident + struct.pack(
        e + "HHIQQQIHHHHHH", 3, 62, 1, 0, 0, sh_off, 0, 64, 0, 0, sh_size, 3, 0
    )
    null = bytes(sh_size)
    strtab_sh = struct.pack(e + "IIQQQQIIQQ", 0, 3, 0, 0, str_off, len(strtab), 0, 0, 1, 0)
    symtab_sh = struct.pack(e + "IIQQQQIIQQ", 0, 2, 0, 0, sym_off, len(syms), 1, 1, 8, 24)
    return header + strtab + syms + null + strtab_sh + symtab_sh


@pytest.mark.parametrize("big_endian", [False, True])
def test_elf_reader_on_synthetic_file(tmp_path: Path, big_endian: bool) -> None:
    func, ifunc, obj = 0x12, 0x1A, 0x11  # STB_GLOBAL with STT_FUNC / STT_GNU_IFUNC / STT_OBJECT
    path = tmp_path / "lib.so"
    path.write_bytes(
        _elf64(
            [
                ("work", func, 1),
                ("memcpy", ifunc, 1),
                ("counter", obj, 1),
                ("imported", func, 0),  # undefined: lives in another library
                ("work", func, 1),
            ],
            big_endian,
        )
    )
    assert elf_function_symbols(str(path)) == ["memcpy", "work"]
    assert elf_function_symbols(str(path), "w*") == ["work"]


def test_elf_reader_rejects_other_files(tmp_path: Path) -> None:
    text = tmp_path / "script.sh"
    text.write_text("#!/bin/sh\necho this is not an ELF file at all, just text, long enough\n")
    with pytest.raises(ElfError, match="not an ELF"):
        elf_function_symbols(str(text))
    elf32 = tmp_path / "elf32"
    elf32.write_bytes(b"\x7fELF\x01\x01\x01" + bytes(100))
    with pytest.raises(ElfError, match="64-bit"):
        elf_function_symbols(str(elf32))
    truncated = tmp_path / "truncated"
    truncated.write_bytes(_elf64([("f", 0x12, 1)])[:120])
    with pytest.raises(ElfError):
        elf_function_symbols(str(truncated))
    with pytest.raises(OSError):
        elf_function_symbols(str(tmp_path / "missing"))
