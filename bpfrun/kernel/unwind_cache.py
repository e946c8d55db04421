"""A disk cache of unwind tables: building libc's takes ≈0.5 s of CPU (more on a busy
machine), paid before every step that unwinds; read back from the cache it takes a few ms.

Entries live in $BPFRUN_CACHE_DIR, else $XDG_CACHE_HOME/bpfrun, else ~/.cache/bpfrun, under
unwind/, named after the file's path, device, inode, size and modification time and this
format's version: a replaced or upgraded library is read afresh, a stale entry is never
used. The cache is best effort: when it cannot be read or written, the table is built.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
from pathlib import Path

from bpfrun.kernel.unwind import ROW_FORMAT, UnwindRule, UnwindTable, build_table

CACHE_ENV = "BPFRUN_CACHE_DIR"
FORMAT = 1  # bump when UnwindRule, ROW_FORMAT or the interpretation of .eh_frame changes
_MAGIC = b"BPFRUNUW"
_HEADER = struct.Struct("<8sIII")  # magic, format, segments, rules
_SEGMENT = struct.Struct("<QQQ")


def cache_dir() -> Path:
    """Where unwind tables are kept."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]) / "unwind"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bpfrun" / "unwind"


def cached_table(path: str) -> UnwindTable:
    """`path`'s unwind table, from the cache when it holds this very file's."""
    st = os.stat(path)
    key = f"{os.path.realpath(path)}\0{st.st_dev}\0{st.st_ino}\0{st.st_size}\0" \
          f"{st.st_mtime_ns}\0{FORMAT}"
    entry = cache_dir() / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".bin")
    with contextlib.suppress(OSError, ValueError, struct.error):
        return decode(entry.read_bytes(), path)
    table = build_table(path)
    with contextlib.suppress(OSError):
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = entry.with_name(f".{entry.name}.{os.getpid()}.tmp")
        tmp.write_bytes(encode(table))
        os.replace(tmp, entry)  # readers see a whole entry or none
    return table


def encode(table: UnwindTable) -> bytes:
    return (_HEADER.pack(_MAGIC, FORMAT, len(table.segments), len(table.rules))
            + b"".join(_SEGMENT.pack(*seg) for seg in table.segments) + table.packed())


def decode(data: bytes, path: str) -> UnwindTable:
    """The table an `encode`d entry holds; ValueError when it is not one."""
    magic, fmt, n_segments, n_rules = _HEADER.unpack_from(data)
    size = _HEADER.size + n_segments * _SEGMENT.size + n_rules * ROW_FORMAT.size
    if magic != _MAGIC or fmt != FORMAT or len(data) != size:
        raise ValueError("not an unwind table of this format")
    at = _HEADER.size
    segments = tuple(_SEGMENT.unpack_from(data, at + i * _SEGMENT.size)
                     for i in range(n_segments))
    at += n_segments * _SEGMENT.size
    rules = tuple(UnwindRule(start, reg, cfa, rbp)
                  for start, cfa, rbp, reg in ROW_FORMAT.iter_unpack(data[at:]))
    return UnwindTable(path, rules, segments)
