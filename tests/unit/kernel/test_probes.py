"""`bpfrun probes` listing and the suggestions shown with unknown probes and fields."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.paths import FIXTURES

from bpfrun.kernel.elf import resolve_library
from bpfrun.kernel.probes import (
    KPROBES_MISSING,
    TRACEFS_MISSING,
    list_probes,
    suggest_fields,
    suggest_probes,
)
from bpfrun.kernel.tracefs import FakeKernel, UnreadableKernel

TRACEFS = FIXTURES / "tracefs"


@pytest.fixture
def fake() -> FakeKernel:
    return FakeKernel(TRACEFS)


@pytest.fixture
def with_kprobes() -> FakeKernel:
    return FakeKernel(TRACEFS, kprobes=True, functions=["vfs_read", "vfs_write", "do_sys_openat2"])


def block(lines: list[str], header: str) -> list[str]:
    """The header line and the indented field lines under it."""
    start = lines.index(header)
    out = [header]
    for line in lines[start + 1 :]:
        if not line.startswith("    "):
            break
        out.append(line)
    return out


def test_verbose_sys_enter_write_shows_its_fields(fake: FakeKernel) -> None:
    lines = list_probes(fake, "sys_enter_write", verbose=True)
    fields = block(lines, "tracepoint:syscalls:sys_enter_write")
    assert fields == [
        "tracepoint:syscalls:sys_enter_write",
        "    int __syscall_nr  (int, 4 bytes)",
        "    unsigned int fd  (int, 8 bytes, unsigned)",
        "    const char * buf  (ptr, 8 bytes; str() reads it)",
        "    size_t count  (int, 8 bytes, unsigned)",
    ]
    assert not any("filename" in line for line in fields)


def test_verbose_sched_switch(fake: FakeKernel) -> None:
    lines = list_probes(fake, "tracepoint:sched:sched_switch", verbose=True)
    assert lines == [
        "tracepoint:sched:sched_switch",
        "    char prev_comm[16]  (string, 16 bytes)",
        "    pid_t prev_pid  (int, 4 bytes)",
        "    int prev_prio  (int, 4 bytes)",
        "    long prev_state  (int, 8 bytes)",
        "    char next_comm[16]  (string, 16 bytes)",
        "    pid_t next_pid  (int, 4 bytes)",
        "    int next_prio  (int, 4 bytes)",
    ]


def test_verbose_data_loc(fake: FakeKernel) -> None:
    lines = list_probes(fake, "tracepoint:irq:irq_handler_entry", verbose=True)
    assert "    __data_loc char[] name  (string, 4 bytes, variable length)" in lines


def test_glob_over_full_name(fake: FakeKernel) -> None:
    assert list_probes(fake, "tracepoint:sched:sched_wakeup*", verbose=False) == [
        "tracepoint:sched:sched_wakeup",
        "tracepoint:sched:sched_wakeup_new",
    ]
    # Exact names match only themselves; no kprobe note when kprobes were not asked for.
    assert list_probes(fake, "tracepoint:sched:sched_wakeup", False) == [
        "tracepoint:sched:sched_wakeup"
    ]
    assert list_probes(fake, "rawtracepoint:sched_wakeup*", False) == [
        "rawtracepoint:sched_wakeup",
        "rawtracepoint:sched_wakeup_new",
    ]
    assert list_probes(fake, "t*:irq:*", False) == [
        "tracepoint:irq:irq_handler_entry",
        "tracepoint:irq:irq_handler_exit",
    ]


def test_bare_word_matches_anywhere(fake: FakeKernel) -> None:
    lines = list_probes(fake, "openat", False)
    assert [line for line in lines if not line.startswith("#")] == [
        "tracepoint:syscalls:sys_enter_openat",
        "tracepoint:syscalls:sys_enter_openat2",
        "tracepoint:syscalls:sys_exit_openat",
        "tracepoint:syscalls:sys_exit_openat2",
    ]
    # The word may match a kprobe this kernel cannot offer: say so.
    assert KPROBES_MISSING in lines
    switch = list_probes(fake, "sched_switch", False)
    assert "tracepoint:sched:sched_switch" in switch
    assert "rawtracepoint:sched_switch" in switch


def test_everything(fake: FakeKernel) -> None:
    lines = list_probes(fake, None, False)
    tracepoints = [line for line in lines if line.startswith("tracepoint:")]
    assert tracepoints == [f"tracepoint:{n}" for n in fake.tracepoints()]
    raw = [line for line in lines if line.startswith("rawtracepoint:")]
    assert "rawtracepoint:sys_enter" in raw
    assert not any("sys_enter_openat" in line for line in raw)
    assert lines[-1] == KPROBES_MISSING
    assert lines == list_probes(fake, "*", False)


def test_kprobes(fake: FakeKernel, with_kprobes: FakeKernel) -> None:
    assert list_probes(fake, "kprobe:vfs_*", False) == [KPROBES_MISSING]
    assert list_probes(with_kprobes, "kprobe:vfs_*", False) == [
        "kprobe:vfs_read",
        "kprobe:vfs_write",
    ]
    assert list_probes(with_kprobes, "kretprobe:vfs_read", False) == ["kretprobe:vfs_read"]
    assert "kprobe:do_sys_openat2" in list_probes(with_kprobes, "openat", False)
    assert KPROBES_MISSING not in list_probes(with_kprobes, None, False)


def test_unreadable_kernel_says_why() -> None:
    assert list_probes(UnreadableKernel(), None, False) == [TRACEFS_MISSING, KPROBES_MISSING]
    assert list_probes(UnreadableKernel(), "tracepoint:*", False) == [TRACEFS_MISSING]


def test_uprobes_from_pattern(fake: FakeKernel) -> None:
    libc = resolve_library("libc")
    lines = list_probes(fake, "uprobe:libc:mall*", False)
    assert f"uprobe:{libc}:malloc" in lines
    assert all(line.startswith(f"uprobe:{libc}:mall") for line in lines)
    assert not any(line.startswith("tracepoint:") for line in lines)
    assert f"uretprobe:{libc}:free" in list_probes(fake, "uretprobe:libc:free", False)
    assert f"uprobe:{libc}:calloc" in list_probes(fake, f"uprobe:{libc}", False)


def test_uprobes_from_binary_argument(fake: FakeKernel) -> None:
    libc = resolve_library("libc")
    lines = list_probes(fake, "free", False, binary="libc")
    assert f"uprobe:{libc}:free" in lines
    assert all(line.startswith(f"uprobe:{libc}:") and "free" in line for line in lines)
    everything = list_probes(fake, None, False, binary=libc)
    assert f"uprobe:{libc}:malloc" in everything and len(everything) > 1000


def test_uprobes_of_unknown_or_bad_files(fake: FakeKernel, tmp_path: Path) -> None:
    [line] = list_probes(fake, "uprobe:no_such_library_xyz:*", False)
    assert line.startswith("# no library or program named 'no_such_library_xyz'")
    text = tmp_path / "notes.txt"
    text.write_text("not an ELF file, just some text that is long enough to be read\n" * 2)
    [line] = list_probes(fake, None, False, binary=str(text))
    assert line.startswith(f"# cannot read symbols of {text}") and "not an ELF" in line


def test_suggest_fields(fake: FakeKernel) -> None:
    fmt = fake.tracepoint("syscalls", "sys_enter_write")
    assert fmt is not None
    assert suggest_fields(fmt) == (
        "fields of tracepoint:syscalls:sys_enter_write: fd (int), buf (ptr), count (int)"
    )
    switch = fake.tracepoint("sched", "sched_switch")
    assert switch is not None
    assert "prev_comm (string), prev_pid (int)" in suggest_fields(switch)


def test_suggest_probes(fake: FakeKernel, with_kprobes: FakeKernel) -> None:
    assert (
        suggest_probes(fake, "tracepoint:sched:sched_swich")[0] == "tracepoint:sched:sched_switch"
    )
    assert (
        suggest_probes(fake, "tracepoint:shed:sched_switch")[0] == "tracepoint:sched:sched_switch"
    )
    opens = suggest_probes(fake, "tracepoint:syscalls:sys_enter_opnat")
    assert opens[0] == "tracepoint:syscalls:sys_enter_openat" and len(opens) <= 3
    assert suggest_probes(fake, "rawtracepoint:sched_swtch")[0] == "rawtracepoint:sched_switch"
    assert suggest_probes(fake, "tracepoint:zzzz:qqqq") == []
    assert suggest_probes(fake, "kprobe:vfs_raed") == []  # no kprobes here
    assert suggest_probes(with_kprobes, "kprobe:vfs_raed")[0] == "kprobe:vfs_read"
    assert suggest_probes(fake, "irq_handler_entr")[0].endswith("irq_handler_entry")
