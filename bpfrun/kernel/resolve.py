"""Resolve: probe names → what this kernel offers (tracepoint formats, kprobes, uprobe targets).

A probe and its fallbacks are tried in order; the first that exists here is used and the
result says which one ran. When the kernel cannot be read (validate/compile without root),
probes are assumed to exist and the caller is told which checks were skipped.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from bpfrun.kernel.probes import suggest_probes
from bpfrun.kernel.tracefs import Kernel, TracepointFormat, resolve_library

_SHAPES = {  # kind → number of ':'-separated parts after the kind, and what they are
    "tracepoint": (2, "tracepoint:CATEGORY:EVENT"),
    "rawtracepoint": (1, "rawtracepoint:EVENT"),
    "kprobe": (1, "kprobe:FUNCTION"),
    "kretprobe": (1, "kretprobe:FUNCTION"),
    "uprobe": (2, "uprobe:BINARY_OR_LIBRARY:SYMBOL"),
    "uretprobe": (2, "uretprobe:BINARY_OR_LIBRARY:SYMBOL"),
    "usdt": (3, "usdt:BINARY:PROVIDER:NAME"),
    "profile": (2, "profile:hz:99"),
    "software": (2, "software:cpu-clock:1000000"),
    "interval": (2, "interval:s:1"),
}
_ALIASES = {"t": "tracepoint", "rt": "rawtracepoint", "k": "kprobe", "kr": "kretprobe",
            "u": "uprobe", "ur": "uretprobe", "U": "usdt", "p": "profile", "s": "software",
            "i": "interval"}
# Kernel-side names (tracepoint category and event, functions; `foo.isra.0` included): they
# become tracefs paths and BCC arguments, so nothing else may pass, even from a `${{ }}`.
_KERNEL_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
SOFTWARE_EVENTS = {"cpu-clock": 0, "task-clock": 1, "page-faults": 2, "context-switches": 3,
                   "cpu-migrations": 4, "minor-faults": 5, "major-faults": 6}


@dataclass(frozen=True)
class ProbeRef:
    kind: str
    parts: tuple[str, ...]
    text: str

    @property
    def canonical(self) -> str:
        return ":".join((self.kind, *self.parts))


def parse_probe(text: str) -> ProbeRef:
    """'tracepoint:sched:sched_switch' → ProbeRef. Raises ValueError saying the right shape."""
    kind, sep, rest = text.strip().partition(":")
    kind = _ALIASES.get(kind, kind)
    if not sep or kind not in _SHAPES:
        kinds = ", ".join(_SHAPES)
        raise ValueError(f"'{text}' is not a probe; probes start with one of: {kinds}")
    n, shape = _SHAPES[kind]
    parts = rest.split(":")
    if kind in ("uprobe", "uretprobe") and len(parts) > 2:  # a path may not contain ':' but be kind
        parts = [":".join(parts[:-1]), parts[-1]]
    if len(parts) != n or not all(parts):
        raise ValueError(f"'{text}' does not have the shape {shape}")
    if kind in ("tracepoint", "rawtracepoint", "kprobe", "kretprobe"):
        bad = next((p for p in parts if not _KERNEL_NAME_RE.fullmatch(p)), None)
        if bad is not None:
            raise ValueError(f"'{text}': '{bad}' is not a kernel name (letters, digits, '_' "
                             "and '.')")
    if kind in ("profile", "interval"):
        unit_ok = parts[0] in (("hz", "s", "ms", "us") if kind == "profile" else ("s", "ms"))
        if not unit_ok or not parts[1].isdigit() or int(parts[1]) <= 0:
            raise ValueError(f"'{text}' does not have the shape {shape}")
    if kind == "software" and (parts[0] not in SOFTWARE_EVENTS or not parts[1].isdigit()):
        raise ValueError(f"'{text}': software events are {', '.join(SOFTWARE_EVENTS)} "
                         "followed by a sample period, e.g. software:cpu-clock:1000000")
    return ProbeRef(kind, tuple(parts), text)


@dataclass
class ProbeCtx:
    """What an expression at one probe can read."""

    kind: str  # tracepoint rawtracepoint kprobe kretprobe uprobe uretprobe usdt profile software
    name: str  # the probe as written, for messages
    fmt: TracepointFormat | None = None

    @property
    def user_pointers(self) -> bool:
        return self.kind in ("uprobe", "uretprobe", "usdt") or (
            self.fmt is not None and self.fmt.category == "syscalls")


@dataclass(frozen=True)
class Resolved:
    ref: ProbeRef
    ctx: ProbeCtx
    target: str | None  # uprobe/usdt: the resolved binary path
    checked: bool  # False when the kernel could not be read and existence was assumed
    requested: str = ""  # the probe as first written (before fallbacks)
    skipped: tuple[str, ...] = ()  # why the candidates before this one were not used


def _near(ref: ProbeRef, kernel: Kernel) -> str:
    close = suggest_probes(kernel, ref.canonical)[:1]
    return f" (did you mean {close[0]}?)" if close else ""


def why_missing(ref: ProbeRef, kernel: Kernel) -> str | None:
    """None when the probe can be used on this kernel, else a reason naming what is missing."""
    if ref.kind == "tracepoint":
        if kernel.readable() and kernel.tracepoint(*ref.parts) is None:
            return (f"tracepoint {ref.parts[0]}:{ref.parts[1]} does not exist on this kernel"
                    + _near(ref, kernel))
    elif ref.kind == "rawtracepoint":
        if kernel.readable() and not kernel.raw_tracepoint_exists(ref.parts[0]):
            return (f"raw tracepoint {ref.parts[0]} does not exist on this kernel"
                    + _near(ref, kernel))
    elif ref.kind in ("kprobe", "kretprobe"):
        if not kernel.readable():
            return None
        if not kernel.kprobes_available():
            return "kprobes are not available on this kernel: CONFIG_KPROBES is off"
        # An empty list means the function list could not be read: assume it exists.
        if kernel.kprobe_functions() and not kernel.kprobe_functions(ref.parts[0]):
            return (f"function {ref.parts[0]} cannot be kprobed (not in "
                    "available_filter_functions)" + _near(ref, kernel))
    elif ref.kind in ("uprobe", "uretprobe", "usdt") and resolve_library(ref.parts[0]) is None \
            and not os.path.exists(ref.parts[0]):
        return f"binary or library '{ref.parts[0]}' was not found"
    return None


def resolve_probe(candidates: list[str], kernel: Kernel) -> tuple[Resolved | None, list[str]]:
    """First usable candidate, and the reasons each earlier candidate was passed over.

    Raises ValueError for a malformed probe name (a validation error, not a machine one).
    """
    reasons: list[str] = []
    for text in candidates:
        ref = parse_probe(text)
        reason = why_missing(ref, kernel)
        if reason:
            reasons.append(reason)
            continue
        fmt: TracepointFormat | None = None
        if ref.kind == "tracepoint" and kernel.readable():
            fmt = kernel.tracepoint(*ref.parts)
        target = None
        if ref.kind in ("uprobe", "uretprobe", "usdt"):
            target = resolve_library(ref.parts[0]) or ref.parts[0]
        return Resolved(ref, ProbeCtx(ref.kind, text, fmt), target, kernel.readable(),
                        candidates[0], tuple(reasons)), reasons
    return None, reasons
