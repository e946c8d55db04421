"""The symbolizer on built workloads: file:line of a leak in main, an inlined helper at -O2,
the vDSO of a live process, separate debug files, stripped, deleted and replaced binaries.

Call sites are found with objdump (binutils, installed with gcc) and checked against the
lines marked in the sources (`/* BPFR_..._LINE */`); no BPF is loaded. The addresses looked
up are return addresses (the instruction after a call), as a stack holds them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.workloads import VARIANTS, WORKLOAD_DIR, Workload, build, run

from bpfrun.kernel.symbolize import Frame, ProcessMaps, Reason, Symbolizer, format_frame
from bpfrun.kernel.symbolize_elf import parse_elf_info, read_elf_info
from bpfrun.kernel.symbolize_llvm import LlvmSymbolizer

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(LlvmSymbolizer.find() is None,
                       reason="llvm-symbolizer ≥ 14 not installed (apt install llvm)"),
    pytest.mark.skipif(not (shutil.which("objdump") and shutil.which("objcopy")),
                       reason="binutils (objdump, objcopy) not installed"),
]
VARIANT_IDS = [f"{opt}-{'fp' if fp else 'nofp'}" for opt, fp in VARIANTS]
_SIGUSR1_BIT = 1 << (signal.SIGUSR1 - 1)


def marked_line(workload: str, mark: str) -> int:
    lines = (WORKLOAD_DIR / f"{workload}.c").read_text().splitlines()
    return next(i for i, text in enumerate(lines, 1) if f"/* {mark} */" in text)


def return_addresses(binary: Path, function: str, callee: str) -> list[int]:
    """ELF addresses right after each call of callee@plt inside function."""
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(binary)],
                         capture_output=True, text=True, check=True).stdout
    body = out.split(f"<{function}>:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    found = []
    for this, following in zip(body, body[1:], strict=False):
        if re.search(rf"call\s+\w+ <{re.escape(callee)}@plt>", this):
            found.append(int(following.split(":", 1)[0], 16))
    assert found, f"no call of {callee} in {function} of {binary}"
    return found


def function_start(binary: Path, name: str) -> int:
    return next(f.start for f in read_elf_info(str(binary)).functions if f.name == name)


def runtime_address(maps: ProcessMaps, binary: Path, vaddr: int,
                    readable: Path | None = None) -> int:
    """Where the process mapped the ELF address vaddr of binary (read at `readable` when the
    process's path is not one this test can open)."""
    seg = next(s for s in read_elf_info(str(readable or binary)).segments
               if s.vaddr <= vaddr < s.vaddr + s.filesz)
    offset = vaddr - seg.vaddr + seg.offset
    mapping = next(m for m in maps.mappings
                   if m.path == str(binary) and m.offset <= offset < m.offset + m.end - m.start)
    return mapping.start + offset - mapping.offset


def static_maps(binary: Path, base: int = 0x555555554000) -> ProcessMaps:
    """The maps a process of binary would have (no process): one line per load segment."""
    lines = []
    for seg in read_elf_info(str(binary)).segments:
        start = base + (seg.vaddr & ~0xFFF)
        end = (base + seg.vaddr + seg.filesz + 0xFFF) & ~0xFFF
        lines.append(f"{start:x}-{end:x} r-xp {seg.offset & ~0xFFF:08x} 08:01 "
                     f"{binary.stat().st_ino} {binary}")
    return ProcessMaps.parse("\n".join(lines), pid=0)


def lookup(maps: ProcessMaps, address: int, **kwargs: object) -> list[Frame]:
    symbolizer = Symbolizer(**kwargs)  # type: ignore[arg-type]
    return symbolizer.symbolize(maps, [address], return_addresses=True)[address]


@contextlib.contextmanager
def started(binary: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """A workload binary from anywhere, running until the block ends (then its group dies)."""
    proc = subprocess.Popen([str(binary), *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, process_group=0)
    try:
        deadline = time.monotonic() + 10
        while not _ready(proc.pid):
            assert proc.poll() is None and time.monotonic() < deadline, "workload not ready"
            time.sleep(0.01)
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _ready(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    mask = next(ln.split()[1] for ln in status.splitlines() if ln.startswith("SigCgt:"))
    return bool(int(mask, 16) & _SIGUSR1_BIT)


# --- the workloads themselves ----------------------------------------------------------------


@pytest.mark.parametrize(("opt", "fp"), VARIANTS, ids=VARIANT_IDS)
def test_every_variant_builds_and_runs(opt: str, fp: bool) -> None:
    binary = build("oncpu", opt=opt, frame_pointers=fp)
    assert binary.name == "oncpu" + ("" if (opt, fp) == ("O0", True) else
                                     f"-{opt}" + ("" if fp else "-nofp"))
    assert int(run("oncpu", "--seconds", "0.2", opt=opt, frame_pointers=fp)["spins"]) > 50
    leaks = run("memleak_main", "--seconds", "0.3", "--count", "4", "--rate", "100",
                opt=opt, frame_pointers=fp)
    assert leaks == {"leaks": "4", "leaked_bytes": "4096"}


def test_prodcons_alternates_producer_and_consumer() -> None:
    with Workload("prodcons", "--seconds", "0", "--sleep-ms", "40", "--wait-ms", "10") as w:
        assert set(w.thread_names().values()) >= {"bpfr_prodcons", "bpfr_producer",
                                                  "bpfr_consumer"}
        time.sleep(0.6)
        totals = w.stop()
    assert int(totals["produced"]) >= 5
    assert abs(int(totals["produced"]) - int(totals["consumed"])) <= 1


# --- lines, inlined frames, the vDSO -----------------------------------------------------------


@pytest.mark.parametrize(("opt", "fp"), VARIANTS, ids=VARIANT_IDS)
def test_the_leak_resolves_to_main_at_its_line(opt: str, fp: bool) -> None:
    binary = build("memleak_main", opt=opt, frame_pointers=fp)
    line = marked_line("memleak_main", "BPFR_LEAK_LINE")
    [ret] = return_addresses(binary, "main", "malloc")
    with Workload("memleak_main", "--seconds", "0", "--rate", "1", opt=opt,
                  frame_pointers=fp) as w:
        maps = ProcessMaps.capture(w.pid)
    frames = lookup(maps, runtime_address(maps, binary, ret))
    offset = ret - function_start(binary, "main")
    assert format_frame(frames[-1]) == f"main+0x{offset:x} (memleak_main.c:{line}) [{binary.name}]"


@pytest.mark.parametrize("fp", [True, False], ids=["fp", "nofp"])
def test_the_helper_inlined_at_O2_shows_as_an_inlined_frame_and_its_caller(fp: bool) -> None:
    binary = build("oncpu", opt="O2", frame_pointers=fp)
    spin_line = marked_line("oncpu", "BPFR_SPIN_LINE")
    call_line = marked_line("oncpu", "BPFR_SPIN_CALL_LINE")
    assert "bpfr_busy_spin_us" not in {f.name for f in read_elf_info(str(binary)).functions}
    with Workload("oncpu", "--seconds", "0", "--spin-us", "100", "--idle-us", "1000",
                  opt="O2", frame_pointers=fp) as w:
        maps = ProcessMaps.capture(w.pid)
    symbolizer = Symbolizer()
    addresses = [runtime_address(maps, binary, a)
                 for a in return_addresses(binary, "bpfr_spinner", "clock_gettime")]
    chains = symbolizer.symbolize(maps, addresses, return_addresses=True)
    assert symbolizer.stats.batches == 1  # one llvm-symbolizer run for all of them
    texts = [[format_frame(f) for f in chains[a]] for a in addresses]
    expected = [f"bpfr_busy_spin_us (oncpu.c:{spin_line}) [{binary.name}] (inlined)",
                "bpfr_spinner+0x"]
    assert any(t[0] == expected[0] and t[-1].startswith(expected[1])
               and f"(oncpu.c:{call_line})" in t[-1] for t in texts), texts
    for chain in chains.values():
        assert chain[-1].function == "bpfr_spinner" and not chain[-1].inlined
        assert all(f.inlined and f.offset is None for f in chain[:-1])


@pytest.mark.parametrize("fp", [True, False], ids=["fp", "nofp"])
def test_at_O0_the_helper_is_a_function_of_its_own(fp: bool) -> None:
    binary = build("oncpu", opt="O0", frame_pointers=fp)
    line = marked_line("oncpu", "BPFR_SPIN_LINE")
    rets = return_addresses(binary, "bpfr_busy_spin_us", "clock_gettime")
    maps = static_maps(binary)
    frames = lookup(maps, runtime_address(maps, binary, rets[-1]))
    offset = rets[-1] - function_start(binary, "bpfr_busy_spin_us")
    assert [format_frame(f) for f in frames] == [
        f"bpfr_busy_spin_us+0x{offset:x} (oncpu.c:{line}) [{binary.name}]"]


@pytest.mark.parametrize(("opt", "fp"), VARIANTS, ids=VARIANT_IDS)
def test_the_producer_sleeps_and_locks_at_its_own_lines(opt: str, fp: bool) -> None:
    binary = build("prodcons", opt=opt, frame_pointers=fp)
    maps = static_maps(binary)
    for callee, mark in (("usleep", "BPFR_SLEEP_LINE"), ("pthread_mutex_lock", "BPFR_LOCK_LINE")):
        chains = [lookup(maps, runtime_address(maps, binary, ret))
                  for ret in return_addresses(binary, "bpfr_producer", callee)]
        # At -O2 workload.h's helpers (wl_gate_wait locks a mutex too) are inlined there.
        own = [chain[0] for chain in chains if chain[0].function == "bpfr_producer"]
        assert own and all(f.line == marked_line("prodcons", mark) for f in own), chains
        assert all(chain[-1].function == "bpfr_producer" for chain in chains)


def test_the_vdso_of_a_live_process_is_symbolized() -> None:
    with Workload("oncpu", "--seconds", "0", opt="O2") as w:
        maps = ProcessMaps.capture(w.pid)
    assert maps.vdso is not None, "could not read the vDSO from /proc/PID/mem"
    info = parse_elf_info(maps.vdso)
    func = next(f for f in info.functions if f.name.endswith("clock_gettime"))
    vdso = next(m for m in maps.mappings if m.path == "[vdso]")
    address = vdso.start + func.start - info.segments[0].vaddr + info.segments[0].offset + 5
    [frame] = Symbolizer().symbolize(maps, [address])[address]
    assert frame.function in ("__vdso_clock_gettime", "clock_gettime")
    assert format_frame(frame) == f"{frame.function}+0x5 [vdso]"


# --- debug files and stripped binaries -------------------------------------------------------


@pytest.fixture
def stripped(tmp_path: Path) -> tuple[Path, Path, int]:
    """(stripped copy of oncpu -O2, its debug file, a return address in the inlined helper)."""
    source = build("oncpu", opt="O2", frame_pointers=False)
    binary, debug = tmp_path / "bin" / "oncpu", tmp_path / "oncpu.debug"
    binary.parent.mkdir()
    subprocess.run(["objcopy", "--only-keep-debug", str(source), str(debug)], check=True)
    subprocess.run(["objcopy", "--strip-all", str(source), str(binary)], check=True)
    ret = return_addresses(source, "bpfr_spinner", "clock_gettime")[1]
    return binary, debug, ret


def test_a_stripped_binary_without_debug_file_is_unresolved(
        stripped: tuple[Path, Path, int], tmp_path: Path) -> None:
    binary, _debug, ret = stripped
    maps = static_maps(binary)
    [frame] = lookup(maps, runtime_address(maps, binary, ret), debug_roots=[str(tmp_path)])
    assert (frame.function, frame.line, frame.reason) == (None, None, Reason.STRIPPED)
    assert format_frame(frame) == "[unknown] [oncpu] (stripped binary with no debug file)"


def test_a_debug_file_is_found_by_build_id(stripped: tuple[Path, Path, int],
                                           tmp_path: Path) -> None:
    binary, debug, ret = stripped
    build_id = read_elf_info(str(binary)).build_id
    assert build_id, "gcc linked no build-id"
    root = tmp_path / "debug"
    target = root / ".build-id" / build_id[:2] / f"{build_id[2:]}.debug"
    target.parent.mkdir(parents=True)
    shutil.copy(debug, target)
    maps = static_maps(binary)
    frames = lookup(maps, runtime_address(maps, binary, ret), debug_roots=[str(root)])
    line = marked_line("oncpu", "BPFR_SPIN_LINE")
    assert (frames[0].function, frames[0].line, frames[0].inlined) == (
        "bpfr_busy_spin_us", line, True)
    assert frames[-1].function == "bpfr_spinner" and frames[-1].offset is not None


def test_a_debug_file_is_found_by_gnu_debuglink(stripped: tuple[Path, Path, int],
                                                tmp_path: Path) -> None:
    binary, debug, ret = stripped
    subprocess.run(["objcopy", f"--add-gnu-debuglink={debug}", str(binary)], check=True,
                   cwd=tmp_path)
    (binary.parent / ".debug").mkdir()
    shutil.copy(debug, binary.parent / ".debug" / debug.name)
    maps = static_maps(binary)
    frames = lookup(maps, runtime_address(maps, binary, ret), debug_roots=[str(tmp_path / "x")])
    assert frames[-1].function == "bpfr_spinner" and frames[-1].line is not None


# --- deleted and replaced binaries -----------------------------------------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="/proc/PID/map_files needs root")
def test_a_deleted_binary_resolves_while_its_process_lives_then_says_deleted(
        tmp_path: Path) -> None:
    binary = tmp_path / "memleak"
    shutil.copy(build("memleak_main", opt="O2"), binary)
    [ret] = return_addresses(binary, "main", "malloc")
    with started(binary, "--seconds", "0", "--rate", "1") as proc:
        address = runtime_address(ProcessMaps.capture(proc.pid), binary, ret)
        binary.unlink()
        maps = ProcessMaps.capture(proc.pid)
        assert all(m.deleted for m in maps.mappings if m.path == str(binary))
        assert lookup(maps, address)[-1].function == "main"  # through /proc/PID/map_files
    [frame] = lookup(maps, address)
    assert (frame.reason, frame.path) == (Reason.DELETED, str(binary))


def test_a_binary_replaced_after_the_process_ended_is_not_trusted(tmp_path: Path) -> None:
    binary = tmp_path / "memleak"
    shutil.copy(build("memleak_main", opt="O2"), binary)
    [ret] = return_addresses(binary, "main", "malloc")
    with started(binary, "--seconds", "0", "--rate", "1") as proc:
        maps = ProcessMaps.capture(proc.pid)
    address = runtime_address(maps, binary, ret)
    replacement = tmp_path / "new"
    shutil.copy(binary, replacement)
    os.replace(replacement, binary)  # same path and bytes, another inode: an upgrade
    [frame] = lookup(maps, address)
    assert frame.reason is Reason.DELETED


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                    reason="needs root and unshare(1) to make a mount namespace")
def test_a_binary_only_another_mount_namespace_sees(tmp_path: Path) -> None:
    """As in a container: the binary lives on a tmpfs mounted in the process's own mount
    namespace, so this host never sees it at that path."""
    source = build("memleak_main", opt="O2")
    [ret] = return_addresses(source, "main", "malloc")
    folder = tmp_path / "container"
    folder.mkdir()
    script = (f"mount -t tmpfs none {folder} && cp {source} {folder}/app && "
              f"exec {folder}/app --seconds 0 --rate 1")
    with started(Path(shutil.which("unshare") or "unshare"), "--mount",
                 "--propagation", "private", "sh", "-c", script) as proc:
        maps = ProcessMaps.capture(proc.pid)
        assert maps.foreign_mounts() and not (folder / "app").exists()
        address = runtime_address(maps, folder / "app", ret,
                                  readable=Path(f"/proc/{proc.pid}/root{folder}/app"))
        assert lookup(maps, address)[-1].function == "main"  # seen through /proc/PID/...
    [frame] = lookup(maps, address)
    assert (frame.reason, frame.module) == (Reason.NOT_VISIBLE, "app")

