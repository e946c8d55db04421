"""User-space symbol lookup for uprobes: find a library by short name, list an ELF's functions.

A tiny pure-Python reader of ELF64 symbol tables (.symtab and .dynsym), so that `resolve` and
`bpfrun probes` can check `uprobe:libc:malloc` without BCC, root or another dependency.
"""

from __future__ import annotations

import fnmatch
import functools
import glob
import mmap
import os
import platform
import shutil
import struct
import subprocess

_SHT_SYMTAB, _SHT_DYNSYM = 2, 11
_STT_FUNC, _STT_GNU_IFUNC = 2, 10
_SHN_UNDEF = 0
_SYM64_SIZE = 24

# ldconfig tags each entry with its ABI; prefer the one of this machine over e.g. i386 libs.
_LDCONFIG_ARCH = {"x86_64": "x86-64", "aarch64": "AArch64", "ppc64le": "64bit", "s390x": "64bit"}
_LIB_DIRS = (
    f"/lib/{platform.machine()}-linux-gnu",
    f"/usr/lib/{platform.machine()}-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
    "/usr/local/lib",
)


class ElfError(ValueError):
    """The file is not an ELF file this reader understands (it reads ELF64 only)."""


def elf_function_symbols(path: str, pattern: str = "*") -> list[str]:
    """Defined function symbols (FUNC and GNU_IFUNC) of an ELF64 file matching a glob, sorted.

    Raises OSError when the file cannot be read and ElfError when it is not ELF64.
    """
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size < 64:
            raise ElfError(f"{path}: not an ELF file")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            try:
                names = _function_names(data, path)
            except (struct.error, IndexError) as e:  # truncated or corrupt tables
                raise ElfError(f"{path}: malformed ELF file ({e})") from None
    return sorted(n for n in names if fnmatch.fnmatchcase(n, pattern))


def _function_names(data: mmap.mmap, path: str) -> set[str]:
    if data[:4] != b"\x7fELF":
        raise ElfError(f"{path}: not an ELF file")
    if data[4] != 2:
        raise ElfError(f"{path}: only 64-bit ELF files are supported")
    end = {1: "<", 2: ">"}.get(data[5])
    if end is None:
        raise ElfError(f"{path}: unknown ELF byte order")
    (shoff,) = struct.unpack_from(end + "Q", data, 0x28)
    shentsize, shnum = struct.unpack_from(end + "HH", data, 0x3A)
    sections = [
        struct.unpack_from(end + "IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)
    ]
    names: set[str] = set()
    for _name, sh_type, _flags, _addr, offset, size, link, _info, _align, entsize in sections:
        if sh_type not in (_SHT_SYMTAB, _SHT_DYNSYM) or link >= len(sections):
            continue
        str_off, str_size = sections[link][4], sections[link][5]
        strtab = data[str_off : str_off + str_size]
        step = entsize or _SYM64_SIZE
        for pos in range(offset, offset + size - _SYM64_SIZE + 1, step):
            st_name, st_info, _other, st_shndx = struct.unpack_from(end + "IBBH", data, pos)
            if st_shndx == _SHN_UNDEF or (st_info & 0xF) not in (_STT_FUNC, _STT_GNU_IFUNC):
                continue
            stop = strtab.find(b"\0", st_name)
            name = strtab[st_name : stop if stop >= 0 else None].decode("utf-8", "replace")
            if name:
                names.add(name)
    return names


def resolve_library(name: str) -> str | None:
    """Path of a library or program given as a path, a short name ("libc", "ssl") or a soname.

    Looks in `ldconfig -p`, then the usual library folders, then $PATH (for programs).
    """
    if "/" in name:
        return os.path.abspath(name) if os.path.isfile(name) else None
    stem = name if name.startswith("lib") else "lib" + name
    wanted = {name, stem}
    for soname, path in _ldconfig_entries():
        base = soname.split(".so", 1)[0]
        if (soname == name or base in wanted) and os.path.isfile(path):
            return path
    for folder in _LIB_DIRS:
        # libfoo.so is often a linker script, so only a file that is really ELF counts.
        candidates = [os.path.join(folder, name), *sorted(glob.glob(f"{folder}/{stem}.so*"))]
        for path in candidates:
            if _is_elf(path):
                return path
    return shutil.which(name)


def _is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return os.path.isfile(path) and f.read(4) == b"\x7fELF"
    except OSError:
        return False


@functools.lru_cache(maxsize=1)
def _ldconfig_entries() -> tuple[tuple[str, str], ...]:
    """(soname, path) from `ldconfig -p`, this machine's ABI first; empty if it cannot run."""
    exe = shutil.which("ldconfig") or next(
        (p for p in ("/sbin/ldconfig", "/usr/sbin/ldconfig") if os.path.exists(p)), None
    )
    if exe is None:
        return ()
    try:
        out = subprocess.run([exe, "-p"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    arch = _LDCONFIG_ARCH.get(platform.machine(), "")
    native: list[tuple[str, str]] = []
    other: list[tuple[str, str]] = []
    for line in out.splitlines():
        left, sep, path = line.partition(" => ")
        if not sep:
            continue
        soname, _, tags = left.strip().partition(" ")
        (native if arch and arch in tags else other).append((soname, path.strip()))
    return tuple(native + other)
