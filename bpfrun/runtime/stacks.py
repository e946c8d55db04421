"""Name a step's stacks once it has run: kernel frames with BCC, user frames from source.

While the step runs, `StackNamer.on_owner` hears of each process that stores its first user
stack and captures its memory map (`ProcessMaps`) then, so processes that exit before the
step ends still resolve; when a capture fails, BCC's own symbol cache for that process is
created instead (its names are the fallback). After the step, the runner decodes stack keys
as `StackRef`s, and `resolve` names them all at once: per process, one
`Symbolizer.symbolize_stacks` call for all its stacks (one llvm-symbolizer process per
module, never one per frame). Each stack becomes a `FramedStack`: frame names as folded
files and flame graphs use them (`main [prog]`, kernel: `do_sys_open`), and every frame in
full for the report (`main+0x4d (prog.c:14) [prog]`, inlined functions as their own frames).
"""

from __future__ import annotations

import ctypes
import itertools
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bpfrun.compile.program import STACK_LOST, STACK_NONE
from bpfrun.kernel.symbolize import Frame, ProcessMaps, Symbolizer
from bpfrun.result import FramedStack, StackFrame, SymbolCounts, UnresolvedFrames
from bpfrun.runtime.mapvalues import freeze, merge_any

# Processes whose memory map is read as soon as they store a user stack (each capture holds
# the map and the vDSO's bytes; a BCC fallback cache holds fds).
MAX_EARLY_SYMBOLS = 4096
LOST_STACK = FramedStack(["[lost stack]"], (StackFrame(None, reason="stack lost"),))
NOT_CAPTURED = "process exited before its memory map was read"


@dataclass(frozen=True)
class StackRef:
    """A stack key as read from the kernel, before it is named."""

    stack_id: int
    user: bool
    tgid: int
    caller: int | None = None  # a uprobe's return address: the second frame, spliced in
    top_return: bool = False  # taken at a uretprobe: the top frame is a return address


class StackNamer:
    """Reads stacks from the program's stack map and names them (see the module's doc)."""

    def __init__(self, bpf: Any, symbolizer: Symbolizer | None = None) -> None:
        self.b = bpf
        self._symbolizer = symbolizer
        self._stacks: dict[int, list[int] | None] = {}  # stack id -> frames (None: lost)
        self._owners: dict[int, int] = {}  # user stack id -> the process that stored it first
        self._early: set[int] = set()  # processes whose map (or BCC cache) was read in time
        self._maps: dict[int, ProcessMaps] = {}
        self._known: dict[int, bool] = {}  # process -> its memory map can be read
        self.counts: SymbolCounts | None = None  # set by resolve when there were user stacks
        self._unresolved: Counter[tuple[str, str]] = Counter()  # (reason, path) -> frames

    @property
    def symbolizer(self) -> Symbolizer:
        if self._symbolizer is None:
            self._symbolizer = Symbolizer()
        return self._symbolizer

    def on_owner(self, stack_id: int, tgid: int) -> None:
        """A process stored a user stack: read its memory map while it lives (once)."""
        self._owners.setdefault(stack_id, tgid)
        if tgid in self._early or len(self._early) >= MAX_EARLY_SYMBOLS:
            return
        self._early.add(tgid)
        try:
            self._maps[tgid] = ProcessMaps.capture(tgid)
        except OSError:
            # BCC reads /proc/PID/maps when it creates the process's symbol cache and loads
            # symbol tables from the files later: this works after the process has exited.
            self.b.sym(0, tgid)

    def resolve(self, refs: Iterable[StackRef]) -> dict[StackRef, FramedStack]:
        """Every stack named; user stacks per process in one batch."""
        out: dict[StackRef, FramedStack] = {}
        by_pid: dict[int, list[tuple[StackRef, list[int]]]] = {}  # user stacks per process
        for ref in dict.fromkeys(refs):
            addrs = self._frames_of(ref)
            if ref.stack_id == STACK_NONE:
                out[ref] = FramedStack([])
            elif addrs is None:
                out[ref] = LOST_STACK
            elif not ref.user:
                out[ref] = self._kernel(addrs)
            else:
                by_pid.setdefault(self._sym_pid(ref), []).append((ref, addrs))
        self._unresolved.clear()
        user_frames = 0
        for pid, group in by_pid.items():
            named = self._user(pid, [addrs for _, addrs in group],
                               [ref.top_return for ref, _ in group])
            for (ref, _), frames in zip(group, named, strict=True):
                out[ref] = FramedStack([_name(f) for f in frames], tuple(frames))
                user_frames += len(frames)
        if by_pid:
            self.counts = SymbolCounts(user_frames, sum(self._unresolved.values()), tuple(
                UnresolvedFrames(reason, module, n)
                for (reason, module), n in self._unresolved.most_common()))
        return out

    def _frames_of(self, ref: StackRef) -> list[int] | None:
        addrs = self._stack_frames(ref.stack_id)
        if addrs is not None and ref.caller is not None:
            addrs = addrs[:1] + [ref.caller] + addrs[1:]
        return addrs

    def _stack_frames(self, stack_id: int) -> list[int] | None:
        """The frames stored under a stack id (None: lost), innermost first; each stack is
        read from the kernel once however many keys share it."""
        if stack_id <= STACK_LOST:
            return None
        if stack_id not in self._stacks:
            try:
                ips = self.b["stacks"][ctypes.c_uint64(stack_id)].ip
            except KeyError:
                self._stacks[stack_id] = None
            else:
                self._stacks[stack_id] = list(itertools.takewhile(bool, ips))
        return self._stacks[stack_id]

    def _sym_pid(self, ref: StackRef) -> int:
        """Whose memory map names a user stack's frames: its own process's if it was read in
        time or the process still runs; else that of the process that stored the same stack
        first (identical return addresses: a forked sibling with the same layout)."""
        tgid = ref.tgid
        if tgid not in self._known:
            self._known[tgid] = tgid in self._early or os.path.exists(f"/proc/{tgid}")
        return tgid if self._known[tgid] else self._owners.get(ref.stack_id, tgid)

    def _kernel(self, addrs: list[int]) -> FramedStack:
        frames = []
        for addr in addrs:
            text = _text(self.b.ksym(addr, show_module=False, show_offset=True))
            name, _, offset = text.rpartition("+0x")
            if not name:
                frames.append(StackFrame(text, module="kernel"))
            else:
                frames.append(StackFrame(name, int(offset, 16), module="kernel"))
        return FramedStack([f.function or "[unknown]" for f in frames], tuple(frames))

    def _user(self, pid: int, stacks: list[list[int]],
              top_returns: list[bool]) -> list[list[StackFrame]]:
        maps = self._maps.get(pid)
        if maps is None and pid not in self._early:
            try:
                maps = self._maps[pid] = ProcessMaps.capture(pid)
            except OSError:
                maps = None
        if maps is None:
            return [[self._bcc_frame(addr, pid) for addr in stack] for stack in stacks]
        named = self.symbolizer.symbolize_stacks(maps, stacks, top_returns)
        for f in (f for stack in named for frames in stack for f in frames):
            if f.reason is not None:
                self._unresolved[(f.reason.value, f.path or f.module)] += 1
        return [[_frame(f) for frames in stack for f in frames] for stack in named]

    def _bcc_frame(self, addr: int, pid: int) -> StackFrame:
        """BCC's name for a frame of a process whose map we could not capture."""
        text = _text(self.b.sym(addr, pid, show_module=True, show_offset=True))
        name, _, module = text.partition(" [")
        module = module.removesuffix("]")
        if name == "[unknown]":
            self._unresolved[(NOT_CAPTURED, module)] += 1
            return StackFrame(None, module=module, reason=NOT_CAPTURED)
        function, _, offset = name.rpartition("+0x")
        if not function:
            return StackFrame(name, module=module)
        return StackFrame(function, int(offset, 16), module=module)


def named_key(key: dict[str, Any], named: dict[StackRef, FramedStack]) -> dict[str, Any]:
    return {k: named[v] if isinstance(v, StackRef) else v for k, v in key.items()}


def named_rows(rows: list[tuple[dict[str, Any], Any]],
               named: dict[StackRef, FramedStack]) -> list[tuple[dict[str, Any], Any]]:
    """Rows with their stacks named; rows whose stacks got the same names (one stack
    stored by several processes) merged into one."""
    out: dict[tuple[Any, ...], tuple[dict[str, Any], Any]] = {}
    for key, value in rows:
        key = named_key(key, named)
        ident = freeze(key)
        out[ident] = (key, merge_any(out[ident][1], value)) if ident in out else (key, value)
    return list(out.values())


def _frame(f: Frame) -> StackFrame:
    return StackFrame(f.function, f.offset, f.file, f.line, f.module, f.inlined,
                      f.reason.value if f.reason else None)


def _name(f: StackFrame) -> str:
    """A user frame's name in folded stacks: `function [module]`, as BCC names it."""
    function = f.function or "[unknown]"
    return f"{function} [{f.module}]" if f.module else function


def _text(name: Any) -> str:
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
