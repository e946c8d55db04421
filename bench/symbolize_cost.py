"""What source-level symbolization costs: N thousand user addresses over a few modules.

Starts tests/workloads/oncpu (built here at -O2 -g), captures its maps, draws random addresses
inside functions of libc, the dynamic loader, the workload and the vDSO, and times:
  cold      a new Symbolizer: one llvm-symbolizer process per module, all addresses at once
  warm      the same addresses again (answers from the cache)
  symtab    the fallback without llvm-symbolizer (ELF symbol tables, no lines)
  addr2line binutils' `addr2line -i -f -C` on the same addresses, one process per module,
            one after the other (no offsets: it prints no function start)
Prints wall time per 1,000 frames and per module process (cold modules run side by side,
so a module's time is its process's, and the cold total is about the slowest module's).
No root needed.

    .venv/bin/python bench/symbolize_cost.py [--addresses N] [--seed S]
"""

from __future__ import annotations

import argparse
import contextlib
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from bpfrun.kernel.symbolize import ProcessMaps, Symbolizer
from bpfrun.kernel.symbolize_llvm import LlvmSymbolizer, Location
from bpfrun.kernel.symbolize_modules import Module, ModuleFinder

REPO = Path(__file__).resolve().parent.parent

SHARES = {"libc": 0.5, "ld-linux": 0.1, "oncpu": 0.3, "vdso": 0.1}


class TimedBackend(LlvmSymbolizer):
    """llvm-symbolizer that records (object, addresses, seconds) per process."""

    def __init__(self, real: LlvmSymbolizer) -> None:
        super().__init__(real.executable, real.version, real.timeout)
        self.runs: list[tuple[str, int, float]] = []

    def symbolize(self, obj: str, vaddrs: Sequence[int]) -> dict[int, Location]:
        start = time.perf_counter()
        found = super().symbolize(obj, vaddrs)
        self.runs.append((obj, len(vaddrs), time.perf_counter() - start))
        return found


@contextlib.contextmanager
def live_oncpu(folder: Path) -> Iterator[ProcessMaps]:
    binary = folder / "oncpu"
    subprocess.run(["gcc", "-std=c11", "-O2", "-g", "-pthread", "-o", str(binary),
                    str(REPO / "tests/workloads/oncpu.c")], check=True)
    proc = subprocess.Popen([str(binary), "--seconds", "0", "--idle-us", "10000"],
                            stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        yield ProcessMaps.capture(proc.pid)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def draw_addresses(maps: ProcessMaps, count: int, rng: random.Random) -> list[int]:
    """Addresses inside functions, spread over the modules as SHARES says."""
    finder = ModuleFinder()
    picked: list[int] = []
    for prefix, share in SHARES.items():
        mapping = next(m for m in maps.mappings if "x" in m.perms and m.module.startswith(prefix)
                       or (prefix == "vdso" and m.path == "[vdso]"))
        module = finder.module(maps, mapping)
        assert isinstance(module, Module), (prefix, module)
        functions = [f for f in module.symbols.functions if f.size > 1] or [
            f for f in module.info.functions if f.size > 1]
        base = mapping.start - mapping.offset  # file offset 0 in memory
        for _ in range(int(count * share)):
            func = rng.choice(functions)
            vaddr = func.start + rng.randrange(func.size)
            seg = next(s for s in module.info.segments if s.vaddr <= vaddr < s.vaddr + s.filesz)
            picked.append(base + vaddr - seg.vaddr + seg.offset)
    rng.shuffle(picked)
    return picked


def timed(symbolizer: Symbolizer, maps: ProcessMaps, addresses: list[int]) -> float:
    start = time.perf_counter()
    symbolizer.symbolize(maps, addresses, return_addresses=True)
    return time.perf_counter() - start


def addr2line_seconds(maps: ProcessMaps, addresses: list[int]) -> float:
    """The same batches through addr2line (-i -f -C), one process per module."""
    exe = shutil.which("addr2line")
    if exe is None:
        return float("nan")
    finder, batches = ModuleFinder(), dict[str, list[int]]()
    for address in addresses:
        mapping = maps.find(address)
        module = finder.module(maps, mapping) if mapping else None
        if isinstance(module, Module) and module.obj and mapping:
            vaddr = module.vaddr(mapping, address)
            if vaddr is not None:
                batches.setdefault(module.obj, []).append(vaddr)
    start = time.perf_counter()
    for obj, vaddrs in batches.items():
        text = "".join(f"0x{v - 1:x}\n" for v in vaddrs)
        subprocess.run([exe, "-i", "-f", "-C", "-e", obj], input=text, capture_output=True,
                       text=True, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addresses", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args()
    real = LlvmSymbolizer.find()
    if real is None:
        sys.exit("llvm-symbolizer not found (apt install llvm)")
    with tempfile.TemporaryDirectory() as tmp, live_oncpu(Path(tmp)) as maps:
        addresses = draw_addresses(maps, args.addresses, random.Random(args.seed))
        backend = TimedBackend(real)
        cold_symbolizer = Symbolizer(backend=backend)
        cold = timed(cold_symbolizer, maps, addresses)
        warm = timed(cold_symbolizer, maps, addresses)
        symtab = timed(Symbolizer(backend=None), maps, addresses)
        a2l = addr2line_seconds(maps, addresses)
        empty = TimedBackend(real)
        empty.symbolize(backend.runs[0][0], [0x1000])
    n = len(addresses) / 1000
    print(f"{len(addresses)} addresses, {len(backend.runs)} modules, {real.describe()}")
    print(f"{'':10} {'total s':>8} {'ms/1000 frames':>15}")
    for name, seconds in (("cold", cold), ("warm", warm), ("symtab", symtab),
                          ("addr2line", a2l)):
        print(f"{name:10} {seconds:8.3f} {seconds / n * 1000:15.1f}")
    print("per module process (cold):")
    for obj, count, seconds in backend.runs:
        print(f"  {count:6} addresses {seconds * 1000:8.1f} ms  {obj}")
    print(f"llvm-symbolizer start, one address: {empty.runs[0][2] * 1000:.1f} ms")


if __name__ == "__main__":
    main()
