"""Source-level symbols for user-space addresses: `function+0xoff (file.c:LINE) [module]`.

Given a process's memory map (`ProcessMaps.capture(pid)`, taken while it lives) and a batch
of addresses, `Symbolizer` answers, per address, the frames at it — the innermost inlined
function first, then the functions it was inlined into, each with file and line when the
binary has line information — or one unresolved frame with a `Reason` from a fixed set
(no mapping, anonymous memory, stripped binary, binary deleted or replaced, not visible
from here, ...). It runs after a step, off the hot path: per module, one symbolizer process
for all of that module's addresses, and answers are cached per (path, build-id).

Backend: **llvm-symbolizer** (LLVM ≥ 14), found on $PATH; Debian's `llvm-14` package ships
it, next to the libLLVM that BCC already depends on. Why it:
- it is LLVM's own, used by every sanitizer report, so it keeps up with DWARF 5, compressed
  debug sections and new compilers, and it walks inlined subroutines (`--inlines`) and
  demangles C++ and Rust;
- batch mode: it reads addresses on stdin and writes one JSON object per address with the
  inlined chain and each function's start address (`--output-style=JSON`), so the offset
  `+0x4d` comes with the lines from one lookup and nothing is scraped from text; a process
  costs ~25 ms to start, then microseconds per address (bench/symbolize_cost.py);
- it reads the separate debug file we hand it (`--obj`), and .symtab/.dynsym when there is
  no DWARF.
Passed over: `addr2line -i -f -C` (binutils) batches too, but prints bare text pairs with no
function start, so offsets would need a second, own symbol-table lookup, and "??" cannot
tell "no symbol" from "no file"; pyelftools is pure Python: its DWARF line programs take
seconds for a libc-sized debug file, and inlined chains and demangling would be ours to write.
Without llvm-symbolizer, names come from the ELF symbol tables (read here, in Python):
`function+0xoff [module]` without file, line or inlined frames (`Symbolizer.describe()`
says which backend is in use).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

from bpfrun.kernel.symbolize_llvm import LlvmSymbolizer, Location, SourceFrame, SymbolizerFailed
from bpfrun.kernel.symbolize_maps import Mapping, ProcessMaps
from bpfrun.kernel.symbolize_modules import DEFAULT_DEBUG_ROOTS, Module, ModuleFinder, Reason

__all__ = ["DEFAULT_DEBUG_ROOTS", "Frame", "ProcessMaps", "Reason", "Symbolizer", "format_frame"]

Request = tuple[int, bool]  # (address, is it a return address?)


@dataclass(frozen=True)
class Frame:
    """One function at an address, or an unresolved frame (function None, reason set)."""

    address: int  # as the process saw it
    module: str  # a binary's basename, "vdso", "anon", "stack", ...; "" outside any mapping
    function: str | None = None
    offset: int | None = None  # from the function's start; None for an inlined frame
    file: str | None = None
    line: int | None = None
    inlined: bool = False  # inlined into the next frame of its address
    reason: Reason | None = None  # why function is None
    path: str = ""  # the mapped file as the process named it ("" when none)

    @property
    def resolved(self) -> bool:
        return self.function is not None

    def as_dict(self) -> dict[str, object]:
        """The JSON form (result.json): the reason as its sentence."""
        return {"address": self.address, "module": self.module, "function": self.function,
                "offset": self.offset, "file": self.file, "line": self.line,
                "inlined": self.inlined, "reason": self.reason.value if self.reason else None,
                "path": self.path}


def format_frame(frame: Frame, *, reason: bool = True) -> str:
    """`function+0xoff (file.c:LINE) [module]`, `... (inlined)`, or `[unknown] [module]`
    followed by the reason in parentheses (unless reason=False)."""
    if frame.function is None:
        text = f"[unknown] [{frame.module}]" if frame.module else "[unknown]"
        return f"{text} ({frame.reason.value})" if reason and frame.reason else text
    text = frame.function
    if frame.offset is not None:
        text += f"+0x{frame.offset:x}"
    if frame.file and frame.line:
        text += f" ({os.path.basename(frame.file)}:{frame.line})"
    text += f" [{frame.module}]"
    return text + " (inlined)" if frame.inlined else text


@dataclass
class SymbolizeStats:
    """What the lookups cost so far: addresses asked, module lookups run, cache answers."""

    addresses: int = 0
    looked_up: int = 0  # addresses sent to the backend (the rest came from the cache)
    batches: int = 0  # backend runs: one per module per call with new addresses
    failures: list[str] = field(default_factory=list)  # backend errors (fell back to symbols)


class Symbolizer:
    """Symbolizes addresses of captured processes; keeps its caches across calls."""

    def __init__(self, debug_roots: Sequence[str] = DEFAULT_DEBUG_ROOTS,
                 backend: LlvmSymbolizer | None | Literal["auto"] = "auto") -> None:
        self.backend = LlvmSymbolizer.find() if backend == "auto" else backend
        self.modules = ModuleFinder(debug_roots)
        self.stats = SymbolizeStats()
        self.workers = max(1, min(4, os.cpu_count() or 1))  # symbolizer processes at once
        self._cache: dict[tuple[str, str], dict[int, Location]] = {}

    def describe(self) -> str:
        """Which backend answers, for doctor and reports."""
        if self.backend is not None:
            return self.backend.describe()
        return ("ELF symbol tables only (llvm-symbolizer not found): function names without "
                "file:line or inlined frames; install the llvm package for them")

    def symbolize(self, maps: ProcessMaps, addresses: Iterable[int], *,
                  return_addresses: bool = False) -> dict[int, list[Frame]]:
        """Address → its frames, innermost inlined function first.

        With return_addresses, each address is the one after a call (a caller's frame in a
        stack): it is looked up one byte earlier, so the line is the call's, while the
        offset stays the address's own, as `perf` and BCC show it."""
        requests = [(a, return_addresses) for a in dict.fromkeys(addresses)]
        return {a: frames for (a, _), frames in self._symbolize(maps, requests).items()}

    def symbolize_stacks(self, maps: ProcessMaps, stacks: Sequence[Sequence[int]],
                         top_returns: Sequence[bool] = ()) -> list[list[list[Frame]]]:
        """Whole stacks at once (innermost first): the top address is taken as exact, the
        others as return addresses; every module is looked up once for all the stacks.
        `top_returns[i]`: stack i's top address is a return address too (taken at a
        function's return, a uretprobe)."""
        tops = list(top_returns) + [False] * (len(stacks) - len(top_returns))
        asked = [[(a, i > 0 or top) for i, a in enumerate(stack)]
                 for stack, top in zip(stacks, tops, strict=True)]
        found = self._symbolize(maps, list(dict.fromkeys(r for rs in asked for r in rs)))
        return [[found[r] for r in rs] for rs in asked]

    def _symbolize(self, maps: ProcessMaps,
                   requests: list[Request]) -> dict[Request, list[Frame]]:
        self.stats.addresses += len(requests)
        modules: dict[Mapping, Module | Reason] = {}
        planned: dict[Request, tuple[Module, int, int] | Frame] = {}
        pending: dict[tuple[str, str], tuple[Module, set[int]]] = {}
        for address, is_return in requests:
            plan = self._plan(maps, modules, address, is_return)
            planned[(address, is_return)] = plan
            if isinstance(plan, Frame):
                continue
            module, _, lookup = plan
            if lookup not in self._cache.setdefault(module.key, {}):
                pending.setdefault(module.key, (module, set()))[1].add(lookup)
        self._lookup_all(list(pending.values()))
        return {request: [plan] if isinstance(plan, Frame)
                else _frames(request[0], plan[0], plan[1], self._cache[plan[0].key][plan[2]])
                for request, plan in planned.items()}

    def _plan(self, maps: ProcessMaps, modules: dict[Mapping, Module | Reason], address: int,
              is_return: bool) -> tuple[Module, int, int] | Frame:
        """(module, virtual address, address to look up), or the unresolved frame."""
        mapping = maps.find(address)
        if mapping is None:
            return Frame(address, "", reason=Reason.NO_MAPPING)
        if mapping not in modules:
            modules[mapping] = self.modules.module(maps, mapping)
        module = modules[mapping]
        if isinstance(module, Reason):
            return Frame(address, mapping.module, reason=module, path=_file_path(mapping))
        vaddr = module.vaddr(mapping, address)
        if vaddr is None:
            return Frame(address, module.name, reason=Reason.NO_SYMBOL, path=module.path)
        return module, vaddr, vaddr - 1 if is_return and vaddr > 0 else vaddr

    def _lookup_all(self, jobs: list[tuple[Module, set[int]]]) -> None:
        """Runs the modules' batches side by side: each is its own process, and a big
        debug file (libc's) would otherwise hold up all the others."""
        batches = [(module, sorted(lookups)) for module, lookups in jobs]
        workers = min(len(batches), self.workers)
        if workers <= 1:
            found = [self._lookup(module, vaddrs) for module, vaddrs in batches]
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                found = list(pool.map(lambda batch: self._lookup(*batch), batches))
        for (module, vaddrs), locations in zip(batches, found, strict=True):
            self._cache[module.key].update(locations)
            self.stats.looked_up += len(vaddrs)
            self.stats.batches += 1

    def _lookup(self, module: Module, vaddrs: list[int]) -> dict[int, Location]:
        if self.backend is not None:
            try:
                with _readable(module) as obj:
                    found = self.backend.symbolize(obj, vaddrs)
                return {v: found.get(v, ()) for v in vaddrs}
            except (SymbolizerFailed, OSError) as e:
                self.stats.failures.append(f"{module.path}: {e}")
        return {v: _from_symbol_table(module, v) for v in vaddrs}


@contextlib.contextmanager
def _readable(module: Module) -> Iterator[str]:
    """A path the symbolizer can open: the module's file, or the vDSO image written out."""
    if module.obj is not None:
        yield module.obj
        return
    assert module.image is not None
    with tempfile.NamedTemporaryFile(prefix="bpfrun-vdso-", suffix=".so") as f:
        f.write(module.image)
        f.flush()
        yield f.name


def _from_symbol_table(module: Module, vaddr: int) -> Location:
    func = module.symbols.function_at(vaddr)
    return () if func is None else (SourceFrame(func.name, func.start, None, None, False),)


def _frames(address: int, module: Module, vaddr: int, location: Location) -> list[Frame]:
    if not location:
        return [Frame(address, module.name, reason=module.unknown_reason, path=module.path)]
    frames = []
    for source in location:
        offset = None
        if not source.inlined and source.start is not None and source.start <= vaddr:
            offset = vaddr - source.start
        frames.append(Frame(address, module.name, source.function, offset, source.file,
                            source.line, source.inlined, None, module.path))
    return frames


def _file_path(mapping: Mapping) -> str:
    return mapping.path if mapping.is_file else ""
