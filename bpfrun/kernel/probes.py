"""The logic of `bpfrun probes`: list what this kernel (or a binary) offers, suggest near names.

Output lines follow `bpftrace -l` / `-lv`, so on-call engineers can paste them into a runbook.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Callable

from bpfrun.kernel.elf import ElfError, elf_function_symbols, resolve_library
from bpfrun.kernel.tracefs import Field, Kernel, TracepointFormat

KPROBES_MISSING = (
    "# kprobes are not available on this kernel (CONFIG_KPROBES is off): "
    "kprobe:* probes cannot attach"
)
TRACEFS_MISSING = (
    "# tracefs cannot be read: mount it (mount -t tracefs nodev /sys/kernel/tracing) "
    "and run as root to list tracepoints"
)
_KPROBE_PROVIDERS = ("kprobe", "kretprobe")
_UPROBE_PROVIDERS = ("uprobe", "uretprobe")
_GLOB_CHARS = re.compile(r"[*?\[]")

# Short names for a field's kind: what an expression can do with it.
_KIND_LABELS = {
    "int": "int",
    "chararray": "string",
    "data_loc_str": "string",
    "strptr": "ptr",
    "ptr": "ptr",
    "array": "array",
    "data_loc": "array",
    "other": "other",
}


def list_probes(
    kernel: Kernel, pattern: str | None, verbose: bool, binary: str | None = None
) -> list[str]:
    """Probe names matching a glob over the full name (a bare word matches as *word*).

    With `binary` (a path or a library name such as "libc"), or a pattern such as
    `uprobe:libc:mall*`, lists the uprobes of that file instead of kernel probes.
    """
    glob = _normalize(pattern)
    provider, _, rest = glob.partition(":")
    if provider in _UPROBE_PROVIDERS and ":" in rest:
        target, _, symbols = rest.partition(":")
        return _uprobes(provider, target, symbols or "*", None)
    if provider in _UPROBE_PROVIDERS and binary is None:
        return _uprobes(provider, rest, "*", None)
    if binary is not None:
        return _uprobes("uprobe", binary, "*", glob)

    lines: list[str] = []
    wants_tracefs = _may_match(glob, "tracepoint") or _may_match(glob, "rawtracepoint")
    if wants_tracefs and not kernel.readable():
        lines.append(TRACEFS_MISSING)
    matches = _matcher(glob)
    if _may_match(glob, "tracepoint"):
        for name in kernel.tracepoints():
            probe = f"tracepoint:{name}"
            if matches(probe):
                lines.append(probe)
                if verbose:
                    category, event = name.split(":", 1)
                    lines.extend(_field_lines(kernel.tracepoint(category, event)))
    if _may_match(glob, "rawtracepoint"):
        raw = (f"rawtracepoint:{n}" for n in kernel.raw_tracepoints())
        lines.extend(p for p in raw if matches(p))
    if any(_may_match(glob, p) for p in _KPROBE_PROVIDERS):
        lines.extend(_kprobes(kernel, glob))
    return lines


def _normalize(pattern: str | None) -> str:
    pattern = (pattern or "").strip()
    if not pattern:
        return "*"
    if ":" not in pattern:  # like bpftrace: a bare word is searched anywhere in the name
        return f"*{pattern}*" if pattern != "*" else "*"
    kinds = ("tracepoint", "rawtracepoint", "kprobe", "kretprobe", "uprobe", "uretprobe",
             "usdt", "t", "rt", "k", "kr", "u", "ur", "*")
    if pattern.split(":", 1)[0] not in kinds and "*" not in pattern.split(":", 1)[0]:
        return f"*:{pattern}"  # 'block:*' means the tracepoints tracepoint:block:*
    return pattern


def _matcher(glob: str) -> Callable[[str], object]:
    # One compiled regex: kprobe lists hold tens of thousands of names.
    return re.compile(fnmatch.translate(glob)).match


def _may_match(glob: str, provider: str) -> bool:
    """Could the glob match some probe of this provider (judged by the part before ':')."""
    if ":" not in glob:
        return True
    return fnmatch.fnmatchcase(provider, glob.split(":", 1)[0])


def _field_lines(fmt: TracepointFormat | None) -> list[str]:
    if fmt is None:
        return ["    # format file unreadable"]
    return [f"    {f.ctype}  ({field_description(f)})" for f in fmt.fields]


def field_description(field: Field) -> str:
    """ "int, 4 bytes", "string, 16 bytes", "ptr, 8 bytes; str() reads it"."""
    text = f"{_KIND_LABELS.get(field.kind, field.kind)}, {field.size} bytes"
    if field.kind == "int" and not field.signed:
        text += ", unsigned"
    elif field.kind == "strptr":
        text += "; str() reads it"
    elif field.kind == "data_loc_str":
        text += ", variable length"
    return text


def _kprobes(kernel: Kernel, glob: str) -> list[str]:
    if not kernel.kprobes_available():
        return [KPROBES_MISSING]
    functions = kernel.kprobe_functions()
    if not functions:
        return ["# kernel functions cannot be listed (available_filter_functions unreadable)"]
    provider = "kretprobe" if glob.startswith("kretprobe:") else "kprobe"
    matches = _matcher(glob)
    return [p for p in (f"{provider}:{fn}" for fn in functions) if matches(p)]


def _uprobes(provider: str, target: str, symbols: str, glob: str | None) -> list[str]:
    """uprobe:<path>:<symbol> lines; `glob`, when given, filters the full names instead."""
    path = resolve_library(target)
    if path is None:
        return [f"# no library or program named {target!r} found (ldconfig -p, $PATH)"]
    try:
        names = elf_function_symbols(path, symbols)
    except (OSError, ElfError) as e:
        return [f"# cannot read symbols of {path}: {e}"]
    probes = [f"{provider}:{path}:{name}" for name in names]
    if glob is not None:
        matches = _matcher(glob)
        probes = [p for p in probes if matches(p)]
    return probes


def suggest_fields(fmt: TracepointFormat) -> str:
    """ "fields of tracepoint:syscalls:sys_enter_write: fd (int), buf (ptr), count (int)"."""
    # __syscall_nr and friends are bookkeeping, not what the user was looking for.
    shown = [f for f in fmt.fields if not f.name.startswith("__")]
    listing = ", ".join(f"{f.name} ({_KIND_LABELS.get(f.kind, f.kind)})" for f in shown)
    return f"fields of {fmt.probe}: {listing or '(none)'}"


def suggest_probes(kernel: Kernel, name: str) -> list[str]:
    """Up to 3 existing probes close to a misspelled one, closest first."""
    provider = name.split(":", 1)[0] if ":" in name else ""
    candidates: list[str] = []
    if provider in ("", "tracepoint"):
        candidates += [f"tracepoint:{n}" for n in kernel.tracepoints()]
    if provider in ("", "rawtracepoint"):
        candidates += [f"rawtracepoint:{n}" for n in kernel.raw_tracepoints()]
    if provider in _KPROBE_PROVIDERS and kernel.kprobes_available():
        candidates += [f"{provider}:{fn}" for fn in kernel.kprobe_functions()]
    if not provider:  # a name without provider: compare with what follows the provider
        tails = {c.split(":", 1)[1]: c for c in candidates}
        close = difflib.get_close_matches(name, list(tails), n=3, cutoff=0.6)
        return [tails[c] for c in close]
    return difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
