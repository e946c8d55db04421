"""What the symbolizer needs to know about one ELF file, read without a dependency.

Its load segments (to turn a file offset into the address the symbolizer expects), its
build-id and `.gnu_debuglink` (to find a separate debug file), whether it still has a symbol
table and DWARF (to say *why* a frame stays unknown), and its function symbols with their
addresses (the fallback when llvm-symbolizer is missing). ELF64 only, like `elf.py`.
"""

from __future__ import annotations

import bisect
import functools
import mmap
import os
import struct
from dataclasses import dataclass, field

from bpfrun.kernel.elf import ElfError

_PT_LOAD = 1
_SHT_SYMTAB, _SHT_NOTE, _SHT_NOBITS, _SHT_DYNSYM = 2, 7, 8, 11
_STT_FUNC, _STT_GNU_IFUNC = 2, 10
_NT_GNU_BUILD_ID = 3
_BINDING_RANK = {1: 0, 2: 1, 0: 2}  # STB_GLOBAL, STB_WEAK, STB_LOCAL
_SYM64 = 24


@dataclass(frozen=True)
class Segment:
    """A PT_LOAD program header: file bytes [offset, offset+filesz) load at vaddr."""

    offset: int
    vaddr: int
    filesz: int


@dataclass(frozen=True)
class FunctionSymbol:
    start: int
    size: int
    name: str


@dataclass(frozen=True)
class ElfInfo:
    segments: tuple[Segment, ...]
    build_id: str | None  # lower-case hex
    debuglink: tuple[str, int] | None  # (file name, CRC32 of the debug file)
    has_symtab: bool  # a .symtab with contents (gone after `strip`)
    has_debug_info: bool  # DWARF .debug_info with contents (gone after `strip -g`)
    functions: tuple[FunctionSymbol, ...] = field(default=(), repr=False)  # sorted by start

    def vaddr_of(self, file_offset: int) -> int | None:
        """The ELF virtual address of a file offset inside a load segment, else None.

        This is what makes PIE, non-PIE and shared libraries alike: runtime address −
        mapping start + mapping offset is a file offset, and the segment maps it to the
        link-time address the symbol tables and DWARF use."""
        for seg in self.segments:
            if seg.offset <= file_offset < seg.offset + seg.filesz:
                return file_offset - seg.offset + seg.vaddr
        return None

    def function_at(self, vaddr: int) -> FunctionSymbol | None:
        """The function symbol covering vaddr; a sizeless one covers up to the next symbol."""
        i = bisect.bisect_right(self._starts, vaddr) - 1
        if i < 0:
            return None
        start = self.functions[i].start
        best = self.functions[bisect.bisect_left(self._starts, start)]  # the largest alias
        if best.size:
            return best if vaddr < start + best.size else None
        following = self._starts[i + 1] if i + 1 < len(self._starts) else None
        return best if following is None or vaddr < following else None

    @functools.cached_property
    def _starts(self) -> list[int]:
        return [f.start for f in self.functions]


def read_elf_info(path: str) -> ElfInfo:
    """Parses the file at path; raises OSError if unreadable, ElfError if not ELF64."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size < 64:
            raise ElfError(f"{path}: not an ELF file")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return parse_elf_info(data, path)


def parse_elf_info(data: bytes | mmap.mmap, name: str = "image") -> ElfInfo:
    """Parses an ELF image held in memory (a file's bytes, or the vDSO copied from a process)."""
    if data[:4] != b"\x7fELF":
        raise ElfError(f"{name}: not an ELF file")
    if data[4] != 2:
        raise ElfError(f"{name}: only 64-bit ELF files are supported")
    end = {1: "<", 2: ">"}.get(data[5])
    if end is None:
        raise ElfError(f"{name}: unknown ELF byte order")
    try:
        return _parse(data, end)
    except (struct.error, IndexError, ValueError) as e:
        raise ElfError(f"{name}: malformed ELF file ({e})") from None


def _parse(data: bytes | mmap.mmap, end: str) -> ElfInfo:
    phoff, shoff = struct.unpack_from(end + "QQ", data, 0x20)
    phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from(end + "HHHHH", data, 0x36)
    segments = []
    for i in range(phnum):
        p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz = struct.unpack_from(
            end + "IIQQQQ", data, phoff + i * phentsize
        )
        if p_type == _PT_LOAD:
            segments.append(Segment(p_offset, p_vaddr, p_filesz))
    sections = [
        struct.unpack_from(end + "IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)
    ]
    names = _section_names(data, sections, shstrndx)
    build_id, debuglink = None, None
    has_symtab = has_debug_info = False
    functions: list[tuple[int, FunctionSymbol]] = []  # (preference, symbol)
    for sec, name in zip(sections, names, strict=True):
        _n, sh_type, _f, _a, offset, size = sec[:6]
        if sh_type == _SHT_NOTE and build_id is None:
            build_id = _build_id(data[offset : offset + size], end)
        elif name == ".gnu_debuglink":
            debuglink = _debuglink(data[offset : offset + size], end)
        elif name in (".debug_info", ".zdebug_info") and sh_type != _SHT_NOBITS:
            has_debug_info = size > 0
        if sh_type in (_SHT_SYMTAB, _SHT_DYNSYM):
            has_symtab = has_symtab or (sh_type == _SHT_SYMTAB and size > _SYM64)
            functions += _functions(data, sec, sections, end)
    # Of aliases at one address the first is shown: the largest, then a global one with the
    # fewest leading underscores (`malloc`, not `__GI___libc_malloc`).
    ranked = sorted(functions, key=lambda pf: (pf[1].start, -pf[1].size, pf[0], pf[1].name))
    first: dict[tuple[int, str], FunctionSymbol] = {}
    for _, func in ranked:
        first.setdefault((func.start, func.name), func)
    ordered = list(first.values())
    return ElfInfo(tuple(segments), build_id, debuglink, has_symtab, has_debug_info,
                   tuple(ordered))


def _section_names(data: bytes | mmap.mmap, sections: list[tuple[int, ...]],
                   shstrndx: int) -> list[str]:
    if not 0 < shstrndx < len(sections):
        return [""] * len(sections)
    table = data[sections[shstrndx][4] : sections[shstrndx][4] + sections[shstrndx][5]]
    return [_cstring(table, sec[0]) for sec in sections]


def _cstring(table: bytes, start: int) -> str:
    stop = table.find(b"\0", start)
    return table[start : stop if stop >= 0 else None].decode("utf-8", "replace")


def _build_id(notes: bytes, end: str) -> str | None:
    pos = 0
    while pos + 12 <= len(notes):
        namesz, descsz, note_type = struct.unpack_from(end + "III", notes, pos)
        name_at = pos + 12
        desc_at = name_at + (namesz + 3) // 4 * 4
        if note_type == _NT_GNU_BUILD_ID and notes[name_at : name_at + namesz] == b"GNU\0":
            return notes[desc_at : desc_at + descsz].hex()
        pos = desc_at + (descsz + 3) // 4 * 4
    return None


def _debuglink(section: bytes, end: str) -> tuple[str, int] | None:
    stop = section.find(b"\0")
    if stop <= 0:
        return None
    crc_at = (stop + 4) // 4 * 4  # the name's NUL, padded to 4 bytes, then the CRC
    (crc,) = struct.unpack_from(end + "I", section, crc_at)
    return section[:stop].decode("utf-8", "replace"), crc


def _functions(data: bytes | mmap.mmap, sec: tuple[int, ...], sections: list[tuple[int, ...]],
               end: str) -> list[tuple[int, FunctionSymbol]]:
    _n, _t, _f, _a, offset, size, link, _i, _al, entsize = sec
    if link >= len(sections):
        return []
    strtab = data[sections[link][4] : sections[link][4] + sections[link][5]]
    if (entsize or _SYM64) != _SYM64:
        return []
    table = data[offset : offset + size - size % _SYM64]
    found = []
    for st_name, st_info, _other, st_shndx, value, sym_size in struct.iter_unpack(
        end + "IBBHQQ", table
    ):
        if st_shndx == 0 or (st_info & 0xF) not in (_STT_FUNC, _STT_GNU_IFUNC):
            continue
        name = _cstring(strtab, st_name).split("@", 1)[0]
        if name:
            binding = _BINDING_RANK.get(st_info >> 4, 3)
            preference = binding * 100 + len(name) - len(name.lstrip("_"))
            found.append((preference, FunctionSymbol(value, sym_size, name)))
    return found
