"""The `resolve` stage's window on the running kernel: tracepoint formats and probe existence.

Everything else in bpfrun sees the kernel only through the small `Kernel` protocol, so that
validation and compilation can be tested against recorded format files (`FakeKernel`) and run
without root. `LiveKernel` reads tracefs and never raises on unreadable files: a check it cannot
make answers None or [] and the caller says which kernel checks were skipped. Without root it
answers from the snapshot root's runs keep (bpfrun.kernel.kernelcache), so that `compile` emits
the same C with and without root.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from bpfrun.kernel.elf import ElfError, elf_function_symbols, resolve_library
from bpfrun.kernel.features import DEFAULT_FEATURES, Features, host_features
from bpfrun.kernel.kernelcache import KernelCache, Snapshot, snapshot_of
from bpfrun.kernel.tpformat import Field, TracepointFormat, parse_format

__all__ = [
    "ElfError",
    "FakeKernel",
    "Features",
    "Field",
    "Kernel",
    "LiveKernel",
    "TracepointFormat",
    "UnreadableKernel",
    "default_kernel",
    "elf_function_symbols",
    "parse_format",
    "resolve_library",
]

TRACEFS_ROOTS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")

# Trace event categories that are not kernel tracepoints, so a raw tracepoint cannot attach to
# them: ftrace's own, syscall events (syscalls:sys_enter_openat is synthesized from
# raw_syscalls:sys_enter), and the usual groups of dynamic events (other groups are read
# from dynamic_events).
_NOT_RAW_CATEGORIES = frozenset({"syscalls", "ftrace", "kprobes", "uprobes", "synthetic",
                                 "eprobes", "user_events"})

# A tracepoint name component; anything else (slashes, "..") would escape the events folder.
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


class Kernel(Protocol):
    """What the compiler may ask about the running kernel."""

    def readable(self) -> bool:
        """Could tracefs be read at all."""
        ...

    def tracepoint(self, category: str, event: str) -> TracepointFormat | None: ...

    def tracepoints(self, pattern: str = "*") -> list[str]:
        """Sorted "category:event" names matching a glob over "category:event"."""
        ...

    def kprobes_available(self) -> bool:
        """kprobe_events exists (CONFIG_KPROBES)."""
        ...

    def kprobe_functions(self, pattern: str = "*") -> list[str]:
        """Sorted traceable kernel functions matching a glob; [] when unknown."""
        ...

    def raw_tracepoint_exists(self, event: str) -> bool: ...

    def raw_tracepoints(self, pattern: str = "*") -> list[str]:
        """Sorted names a raw tracepoint can attach to, matching a glob."""
        ...

    def features(self) -> Features:
        """What the kernel offers that changes the generated C (ring buffer, ...)."""
        ...


class _TracefsKernel:
    """Reads a directory laid out like tracefs; the shared core of the live and fake kernels."""

    def __init__(self, root: str | Path | None) -> None:
        self.root = Path(root) if root is not None else None
        self._formats: dict[tuple[str, str], TracepointFormat | None] = {}
        self._names: list[str] | None = None
        self._dynamic: set[str] | None = None

    def readable(self) -> bool:
        if self.root is None:
            return False
        try:
            return (self.root / "events").is_dir() and os.access(self.root / "events", os.R_OK)
        except OSError:
            return False

    def tracepoint(self, category: str, event: str) -> TracepointFormat | None:
        key = (category, event)
        if key not in self._formats:
            self._formats[key] = self._read_format(category, event)
        return self._formats[key]

    def _text(self, rel: str) -> str:
        """A tracefs file's text, by its path below the root. Raises OSError, ValueError."""
        if self.root is None:
            raise FileNotFoundError(rel)
        return (self.root / rel).read_text()

    def _read_format(self, category: str, event: str) -> TracepointFormat | None:
        if not (_NAME_RE.match(category) and _NAME_RE.match(event)):
            return None
        try:
            text = self._text(f"events/{category}/{event}/format")
            return parse_format(text, category, event)
        except (OSError, ValueError, UnicodeDecodeError):
            return None

    def tracepoints(self, pattern: str = "*") -> list[str]:
        if self._names is None:
            self._names = sorted(set(self._list_events()))
        return [n for n in self._names if fnmatch.fnmatchcase(n, pattern)]

    def _list_events(self) -> Iterable[str]:
        try:
            # One read instead of walking ~2000 lazily created eventfs folders.
            text = self._text("available_events")
            yield from (line.strip() for line in text.splitlines() if ":" in line)
            return
        except (OSError, ValueError):
            pass
        if self.root is None:
            return
        try:
            categories = sorted(p for p in (self.root / "events").iterdir() if p.is_dir())
            for cat in categories:
                for ev in cat.iterdir():
                    if (ev / "format").is_file():
                        yield f"{cat.name}:{ev.name}"
        except OSError:
            return

    def kprobes_available(self) -> bool:
        return False

    def kprobe_functions(self, pattern: str = "*") -> list[str]:
        return []

    def raw_tracepoints(self, pattern: str = "*") -> list[str]:
        return self._event_raw_tracepoints(pattern)

    def _event_raw_tracepoints(self, pattern: str = "*") -> list[str]:
        """The raw tracepoints that have a trace event: every event outside the categories
        that are not tracepoints, unless it is a dynamic event (kprobe, uprobe, synthetic)."""
        if self._dynamic is None:
            self._dynamic = self._dynamic_events()
        names = set()
        for n in self.tracepoints():
            cat, _, event = n.partition(":")
            if cat not in _NOT_RAW_CATEGORIES and f"{cat}/{event}" not in self._dynamic:
                names.add(event)
        return sorted(n for n in names if fnmatch.fnmatchcase(n, pattern))

    def _dynamic_events(self) -> set[str]:
        """"group/event" of every dynamic event: their lines start "p:group/event", "r:…"."""
        words: list[str] = []
        for name in ("dynamic_events", "kprobe_events", "uprobe_events"):  # first: 5.5+
            with contextlib.suppress(OSError, ValueError):
                words += self._text(name).split()
        return {w.split(":", 1)[1] for w in words if ":" in w and "/" in w.split(":", 1)[1]}

    def raw_tracepoint_exists(self, event: str) -> bool:
        return bool(_NAME_RE.match(event)) and event in self.raw_tracepoints(event)

    def features(self) -> Features:
        # Read at each call, not once: the environment's overrides may change in between.
        return host_features()


class LiveKernel(_TracefsKernel):
    """The running kernel, through tracefs (and /proc/kallsyms for raw tracepoints). Given a
    cache, it keeps a snapshot there when it reads tracefs, and answers from the snapshot
    when tracefs cannot be read (without root)."""

    def __init__(self, root: str | Path | None = None, kallsyms: str | Path = "/proc/kallsyms",
                 cache: KernelCache | None = None):
        if root is None:
            root = next((r for r in TRACEFS_ROOTS if os.path.isdir(f"{r}/events")), None)
        super().__init__(root)
        self.kallsyms = Path(kallsyms)
        self.cache = cache
        self._functions: list[str] | None = None
        self._raw: list[str] | None = None
        self.live = super().readable() and self._events_readable()
        self.snapshot: Snapshot | None = None
        if cache is not None and not self.live:
            self.snapshot = cache.load()
            self._raw = self.snapshot.raw_tracepoints if self.snapshot else None
        self._remembered = cache is None

    def _events_readable(self) -> bool:
        """The event list can be read, or there is none to read (a recorded tree)."""
        events = Path(str(self.root)) / "available_events"
        return os.access(events, os.R_OK) or not events.exists()

    def readable(self) -> bool:
        return self.live or self.snapshot is not None

    def _text(self, rel: str) -> str:
        if self.snapshot is None:
            return super()._text(rel)
        if rel not in self.snapshot.files:
            raise FileNotFoundError(rel)
        return self.snapshot.files[rel]

    def tracepoint(self, category: str, event: str) -> TracepointFormat | None:
        fmt = super().tracepoint(category, event)
        if fmt is not None and not self._remembered:  # root's first read: keep a snapshot
            self._remembered = True
            with contextlib.suppress(OSError):  # not root, or no place to write: no snapshot
                self.remember(force=False)
        return fmt

    def remember(self, force: bool = True) -> bool:
        """Save what this kernel's tracefs says to the cache, unless (not `force`) it holds
        this kernel's already; True when written. Raises OSError."""
        if self.cache is None or not self.live:
            return False
        events = self.tracepoints()
        if not force and self.cache.is_current(events):
            return False
        self.cache.save(snapshot_of(Path(str(self.root)), events, self.raw_tracepoints()))
        return True

    def kprobes_available(self) -> bool:
        if self.snapshot is not None:
            return "kprobe_events" in self.snapshot.files
        return self.root is not None and (self.root / "kprobe_events").exists()

    def kprobe_functions(self, pattern: str = "*") -> list[str]:
        if self._functions is None:
            self._functions = self._read_functions()
        return [f for f in self._functions if fnmatch.fnmatchcase(f, pattern)]

    def _read_functions(self) -> list[str]:
        try:
            text = self._text("available_filter_functions")
        except (OSError, ValueError):  # root-only, and locked down on some kernels
            return []
        # Lines are "name" or "name [module]"; the same name can appear for several modules.
        return sorted({line.split()[0] for line in text.splitlines() if line.strip()})

    def raw_tracepoint_exists(self, event: str) -> bool:
        # Most raw tracepoints have a trace event, listed in available_events (read once);
        # /proc/kallsyms, which also names those without one, took 0.17 s of every start.
        return bool(_NAME_RE.match(event)) and (
            event in self._event_raw_tracepoints(event) or event in self.raw_tracepoints(event))

    def raw_tracepoints(self, pattern: str = "*") -> list[str]:
        if self._raw is None:
            # Every tracepoint, including those without a trace event (e.g. pelt_cfs_tp),
            # has a __traceiter_<name> function (kernels >= 5.10).
            self._raw = self._kallsyms_tracepoints() or super().raw_tracepoints()
        return [n for n in self._raw if fnmatch.fnmatchcase(n, pattern)]

    def _kallsyms_tracepoints(self) -> list[str]:
        prefix = "__traceiter_"
        names: set[str] = set()
        try:
            with open(self.kallsyms) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) >= 3 and parts[2].startswith(prefix):
                        names.add(parts[2][len(prefix) :])
        except OSError:
            return []
        return sorted(names)


class FakeKernel(_TracefsKernel):
    """A kernel made of recorded format files (tracefs/events/<cat>/<event>/format), with
    the features it is given (never the host's: the C it gets is the same everywhere)."""

    def __init__(
        self,
        root: str | Path,
        kprobes: bool = False,
        functions: Iterable[str] = (),
        raw_tracepoints: Iterable[str] | None = None,
        features: Features = DEFAULT_FEATURES,
    ) -> None:
        super().__init__(root)
        self._features = features
        self._kprobes = kprobes
        self._functions = sorted(set(functions))
        self._raw = sorted(set(raw_tracepoints)) if raw_tracepoints is not None else None

    @property
    def release(self) -> str | None:
        """The `uname -r` of the machine the formats were recorded on, if noted in KERNEL."""
        try:
            return (Path(str(self.root)) / "KERNEL").read_text().strip() or None
        except OSError:
            return None

    def kprobes_available(self) -> bool:
        return self._kprobes

    def features(self) -> Features:
        return self._features

    def kprobe_functions(self, pattern: str = "*") -> list[str]:
        if not self._kprobes:
            return []
        return [f for f in self._functions if fnmatch.fnmatchcase(f, pattern)]

    def raw_tracepoints(self, pattern: str = "*") -> list[str]:
        if self._raw is None:
            return super().raw_tracepoints(pattern)
        return [n for n in self._raw if fnmatch.fnmatchcase(n, pattern)]


class UnreadableKernel(_TracefsKernel):
    """Stands in when tracefs cannot be read: every kernel check is skipped, not failed; the
    features are still the host's (`compile` without root shows the C this machine runs)."""

    def __init__(self) -> None:
        super().__init__(None)


def default_kernel() -> Kernel:
    """The running kernel if its tracefs (or root's snapshot of it) can be read, else one
    whose readable() is False."""
    live = LiveKernel(cache=KernelCache.default())
    return live if live.readable() else UnreadableKernel()
