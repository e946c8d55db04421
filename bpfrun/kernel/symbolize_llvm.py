"""The llvm-symbolizer backend: one process per module, every address of that module at once.

llvm-symbolizer reads addresses on stdin and, with `--output-style=JSON --inlines`, answers
one JSON object per address: the chain of functions inlined at it (innermost first) with
file, line and the function's start address. It reads DWARF (also compressed, and split
into a separate debug file we hand it) and falls back to .symtab/.dynsym names by itself.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

MIN_VERSION = 14  # JSON output with StartAddress
_NAMES = ("llvm-symbolizer", *(f"llvm-symbolizer-{v}" for v in range(20, MIN_VERSION - 1, -1)))
_VERSION = re.compile(r"LLVM version (\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class SourceFrame:
    """One function at an address: the address's own function, or one inlined into it."""

    function: str
    start: int | None  # where the function (or, inlined, this inlined copy) begins
    file: str | None
    line: int | None
    inlined: bool  # inlined into the next SourceFrame of its Location


Location = tuple[SourceFrame, ...]
"""What is known at one address, innermost inlined function first; () when nothing is."""


class SymbolizerFailed(RuntimeError):
    """The llvm-symbolizer process failed, timed out or answered something unreadable."""


class LlvmSymbolizer:
    """Runs one llvm-symbolizer executable; `find()` picks the one on this machine."""

    def __init__(self, executable: str, version: str, timeout: float = 120.0) -> None:
        self.executable = executable
        self.version = version
        self.timeout = timeout
        self.processes = 0  # how many it has run: the cost is mostly one start per module

    @classmethod
    def find(cls) -> LlvmSymbolizer | None:
        """The first llvm-symbolizer ≥ 14 on $PATH (plain name, then versioned), or None."""
        for name in _NAMES:
            path = shutil.which(name)
            version = _version(path) if path else None
            if path and version:
                return cls(path, version)
        return None

    def describe(self) -> str:
        return f"llvm-symbolizer {self.version} ({self.executable})"

    def symbolize(self, obj: str, vaddrs: Sequence[int]) -> dict[int, Location]:
        """The Location of each ELF virtual address of the object file `obj`."""
        if not vaddrs:
            return {}
        cmd = [self.executable, f"--obj={obj}", "--output-style=JSON", "--inlines",
               "--demangle", "--functions=linkage"]
        text = "".join(f"0x{a:x}\n" for a in vaddrs)
        self.processes += 1
        try:
            proc = subprocess.run(cmd, input=text, capture_output=True, text=True,
                                  timeout=self.timeout)
        except (OSError, subprocess.SubprocessError) as e:
            raise SymbolizerFailed(f"{self.executable}: {e}") from None
        if proc.returncode != 0:
            raise SymbolizerFailed(f"{self.executable} --obj={obj} exited {proc.returncode}: "
                                   f"{proc.stderr.strip()[:500]}")
        return parse_json_lines(proc.stdout)


def parse_json_lines(output: str) -> dict[int, Location]:
    """Address → Location from llvm-symbolizer's JSON lines (an `Error` entry gives ())."""
    found: dict[int, Location] = {}
    for line in output.splitlines():
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            address = int(entry["Address"], 16)
        except (ValueError, KeyError, TypeError) as e:
            raise SymbolizerFailed(f"unreadable llvm-symbolizer output {line[:200]!r}: {e}") from e
        found[address] = _location(entry.get("Symbol") or [])
    return found


def _location(symbols: list[dict[str, object]]) -> Location:
    frames = []
    for i, sym in enumerate(symbols):
        name = str(sym.get("FunctionName") or "")
        if not name or name == "??":
            continue
        start = str(sym.get("StartAddress") or "")
        line = sym.get("Line")
        frames.append(SourceFrame(
            function=name,
            start=int(start, 16) if start else None,
            file=str(sym.get("FileName") or "") or None,
            line=line if isinstance(line, int) and line > 0 else None,
            inlined=i < len(symbols) - 1,  # each entry but the last is inlined into the next
        ))
    return tuple(frames)


@functools.cache
def _version(path: str) -> str | None:
    """The LLVM version of an llvm-symbolizer if it is recent enough, else None."""
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VERSION.search(out.stdout + out.stderr)
    if not match or int(match.group(1)) < MIN_VERSION:
        return None
    return ".".join(g for g in match.groups() if g is not None)
