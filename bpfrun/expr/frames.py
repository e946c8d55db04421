"""Expression functions over stacks: which frame is the program's own code, and what it called.

A finding about stacks should name the culprit's code — `main (memleak_main.c:44)` — not the
innermost frame, which is usually in the C library, the vDSO or the kernel. The rule for the
program's **own** frame: the innermost user frame that has a function name and whose module
is not the kernel, the vDSO, anonymous memory, or a system library (the dynamic loader and
the C and C++ runtimes: libc, libm, libpthread, libdl, librt, libstdc++, libgcc_s, …). So the
main executable's code and the program's own shared libraries count; a library the program
chose (libz, libssl) counts too, as it is where the time went on the program's behalf.

Stacks are what expressions see as stack keys: lists of frame names (`main [prog]`) that,
after symbolization, carry each frame in full (`frames`: function, offset, file, line,
module, inlined — bpfrun/result/values.py StackFrame). A stack without frames (from an
older result) is read from its names.

    own_frame(stack)  the own frame in full: `main+0x4d (memleak_main.c:44) [memleak_main]`
    code(stack)       the own frame as a finding names it: `main (memleak_main.c:44)`; with
                      no own frame, the innermost named user frame with its module
    via(stack)        the function the own frame called: `clock_gettime` (null: none)
    code_via(stack)   `bpfr_busy_spin_us (oncpu.c:24) via clock_gettime`
    hottest(agg)      the rows of a stack aggregation grouped by the function of their own
                      frame; the heaviest group: .code .via .code_via .frame .value .stack
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bpfrun.units import Duration, Size

NOT_CODE_MODULES = frozenset({"kernel", "vdso", "[vdso]", "vsyscall", "[vsyscall]", "anon",
                              "[anon]", "[heap]", "[stack]", ""})
SYSTEM_LIBRARY = re.compile(
    r"^(ld-linux.*|ld-musl.*|ld\.so.*|ld-\d.*|lib(c|m|pthread|dl|rt|resolv|util|anl|crypt|"
    r"mvec|nsl|thread_db|BrokenLocale|memusage|SegFault|gcc_s|stdc\+\+|atomic|nss_\w+)"
    r"([-.].*)?\.so.*)$")
_NAME = re.compile(r"^(?P<function>.*?)(?: \[(?P<module>[^\]]*)\])?$")


class FrameLike(Protocol):
    """One frame of a stack in full (bpfrun.result.StackFrame; the expr stage comes first)."""

    @property
    def function(self) -> str | None: ...
    @property
    def file(self) -> str | None: ...
    @property
    def line(self) -> int | None: ...
    @property
    def module(self) -> str: ...

    def text(self) -> str: ...


@dataclass(frozen=True)
class NamedFrame:
    """A frame known only by its name in a folded stack: `main [prog]`, kernel `do_sys_open`."""

    function: str | None
    module: str
    file: str | None = None
    line: int | None = None
    inlined: bool = False

    def text(self) -> str:
        name = self.function or "[unknown]"
        return f"{name} [{self.module}]" if self.module else name


class FrameError(ValueError):
    """A frame function applied to something that is not a stack or a stack aggregation."""


def frames_of(stack: Any) -> Sequence[FrameLike]:
    """The frames of a stack key, innermost first."""
    if not isinstance(stack, (list, tuple)) or isinstance(stack, str):
        raise FrameError("takes a stack (a ustack or kstack key of a row)")
    frames = getattr(stack, "frames", None)
    if frames:
        return tuple(frames)
    return tuple(_from_name(str(name)) for name in stack)


def _from_name(name: str) -> NamedFrame:
    m = _NAME.match(name)
    function, module = (m.group("function"), m.group("module")) if m else (name, None)
    known = function if function and not function.startswith("[unknown") else None
    # A bare name is a kernel frame (user frames are always named with their module).
    return NamedFrame(known, module if module is not None else "kernel")


def is_own(frame: FrameLike) -> bool:
    """A named frame of the program's own code (see the module's doc for the rule)."""
    module = frame.module or ""
    return bool(frame.function) and module not in NOT_CODE_MODULES \
        and not SYSTEM_LIBRARY.match(module)


def own_index(frames: Sequence[FrameLike]) -> int | None:
    return next((i for i, f in enumerate(frames) if is_own(f)), None)


def code_index(frames: Sequence[FrameLike]) -> int | None:
    """The own frame, else the innermost named user frame (else none)."""
    own = own_index(frames)
    if own is not None:
        return own
    return next((i for i, f in enumerate(frames)
                 if f.function and f.module != "kernel"), None)


def own_frame(stack: Any) -> str | None:
    frames = frames_of(stack)
    i = own_index(frames)
    return None if i is None else frames[i].text()


def code(stack: Any) -> str | None:
    frames = frames_of(stack)
    i = code_index(frames)
    return None if i is None else short(frames[i], own=is_own(frames[i]))


def short(frame: FrameLike, *, own: bool = True) -> str:
    """`function (file.c:LINE)`; the module instead when there is no line, or when the frame
    is not the program's own (so `clock_nanosleep [libc.so.6]` says where it is)."""
    name = (frame.function or "[unknown]").split("@", 1)[0]  # no symbol version
    if own and frame.file and frame.line:
        return f"{name} ({frame.file.rsplit('/', 1)[-1]}:{frame.line})"
    return f"{name} [{frame.module}]" if frame.module else name


def via(stack: Any) -> str | None:
    frames = frames_of(stack)
    i = own_index(frames)
    if not i:  # no own frame, or it is the innermost: it called nothing
        return None
    return plain_function(frames[i - 1].function)


def plain_function(name: str | None) -> str | None:
    """A library function as its callers know it: glibc's internal aliases
    (`__GI___clock_nanosleep`, `__libc_malloc`) and symbol versions dropped."""
    if not name:
        return name
    name = name.split("@", 1)[0].removeprefix("__GI_")
    name = re.sub(r"^__libc_(?=\w)", "", name)
    return name.lstrip("_") or name


def code_via(stack: Any) -> str | None:
    where, callee = code(stack), via(stack)
    return where if where is None or callee is None else f"{where} via {callee}"


def hottest(rows: Sequence[Any]) -> dict[str, Any] | None:
    """The function whose code frames carry the most of a stack aggregation's value (rows:
    objects with a `key` dict and a `value`), as {code, via, code_via, frame, value, stack}:
    the rows' values summed as they are typed, and the heaviest row's stack; None when no
    row has a named user frame."""
    groups: dict[tuple[str | None, str], list[Any]] = {}  # -> [value, stack, weight]
    for row in rows:
        stack = _user_stack(getattr(row, "key", {}))
        if stack is None:
            continue
        frames = frames_of(stack)
        i = code_index(frames)
        if i is None:
            continue
        ident, weight = (frames[i].function, frames[i].module), _magnitude(row.value)
        group = groups.get(ident)
        if group is None:
            groups[ident] = [row.value, stack, weight]
            continue
        group[0] = add_values(group[0], row.value)
        if weight > group[2]:
            group[1], group[2] = stack, weight
    if not groups:
        return None
    value, stack, _ = max(groups.values(), key=lambda g: _magnitude(g[0]))
    return {"code": code(stack), "via": via(stack), "code_via": code_via(stack),
            "frame": own_frame(stack), "value": value, "stack": stack}


def _user_stack(key: dict[str, Any]) -> Any:
    """A row's user stack key (`ustack`, `begin.ustack`), else its first stack key."""
    stacks = [(k, v) for k, v in key.items() if isinstance(v, (list, tuple))]
    user = [v for k, v in stacks if k.rsplit(".", 1)[-1] == "ustack"]
    return user[0] if user else (stacks[0][1] if stacks else None)


def _magnitude(value: Any) -> float:
    if isinstance(value, Duration):
        return value.ns
    if isinstance(value, Size):
        return value.bytes
    if isinstance(value, dict):  # stats and histograms: how many values
        return float(value.get("count") or 0)
    return float(value or 0)


def add_values(a: Any, b: Any) -> Any:
    if isinstance(a, Duration) and isinstance(b, Duration):
        return Duration(a.ns + b.ns)
    if isinstance(a, Size) and isinstance(b, Size):
        return Size(a.bytes + b.bytes)
    if isinstance(a, dict) or isinstance(b, dict):
        return {"count": _magnitude(a) + _magnitude(b)}
    return (a or 0) + (b or 0)
