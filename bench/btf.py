"""Byte offsets of kernel struct members, read from the running kernel's BTF.

The benchmark's raw-tracepoint prototypes read `task_struct` fields straight from the pointers
a raw tracepoint receives. BCC compiles against whatever kernel headers are installed (6.1 on
the development machines, for a 6.18 kernel), so `p->pid` would use the wrong offset there;
/sys/kernel/btf/vmlinux describes the kernel that is actually running. This parses just enough
of the BTF format (types and strings; see the kernel's Documentation/bpf/btf.rst) to answer
"where is member M of struct S".
"""

from __future__ import annotations

import struct
from pathlib import Path

VMLINUX = Path("/sys/kernel/btf/vmlinux")

_KIND_INT, _KIND_PTR, _KIND_ARRAY, _KIND_STRUCT, _KIND_UNION, _KIND_ENUM = 1, 2, 3, 4, 5, 6
_KIND_FWD, _KIND_TYPEDEF, _KIND_VOLATILE, _KIND_CONST, _KIND_RESTRICT = 7, 8, 9, 10, 11
_KIND_FUNC, _KIND_FUNC_PROTO, _KIND_VAR, _KIND_DATASEC, _KIND_FLOAT = 12, 13, 14, 15, 16
_KIND_DECL_TAG, _KIND_TYPE_TAG, _KIND_ENUM64 = 17, 18, 19


class BtfError(RuntimeError):
    """The BTF file is missing, malformed, or lacks the asked-for member."""


def _extra_size(kind: int, vlen: int) -> int:
    """Bytes that follow the 12-byte common header of a type of this kind."""
    if kind == _KIND_INT:
        return 4
    if kind == _KIND_ARRAY:
        return 12
    if kind in (_KIND_STRUCT, _KIND_UNION):
        return 12 * vlen
    if kind == _KIND_ENUM:
        return 8 * vlen
    if kind == _KIND_FUNC_PROTO:
        return 8 * vlen
    if kind == _KIND_VAR:
        return 4
    if kind == _KIND_DATASEC:
        return 12 * vlen
    if kind == _KIND_DECL_TAG:
        return 4
    if kind == _KIND_ENUM64:
        return 12 * vlen
    return 0


def member_offsets(struct_name: str, members: list[str],
                   path: Path = VMLINUX) -> dict[str, int]:
    """Byte offset of each named top-level member of `struct struct_name`."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise BtfError(f"cannot read {path}: {e}") from None
    magic, _version, _flags, hdr_len = struct.unpack_from("<HBBI", data, 0)
    if magic != 0xEB9F:
        raise BtfError(f"{path} is not little-endian BTF")
    type_off, type_len, str_off, _str_len = struct.unpack_from("<IIII", data, 8)
    types = hdr_len + type_off
    strings = hdr_len + str_off

    def name_at(off: int) -> str:
        end = data.index(b"\0", strings + off)
        return data[strings + off:end].decode()

    pos, end = types, types + type_len
    while pos < end:
        name_off, info, _size = struct.unpack_from("<III", data, pos)
        kind, vlen, kflag = (info >> 24) & 0x1F, info & 0xFFFF, info >> 31
        body = pos + 12
        if kind == _KIND_STRUCT and name_at(name_off) == struct_name:
            found: dict[str, int] = {}
            for i in range(vlen):
                m_name, _m_type, m_off = struct.unpack_from("<III", data, body + 12 * i)
                bits = m_off & 0xFFFFFF if kflag else m_off
                name = name_at(m_name)
                if name in members:
                    if bits % 8:
                        raise BtfError(f"{struct_name}.{name} is a bitfield")
                    found[name] = bits // 8
            missing = [m for m in members if m not in found]
            if missing:
                raise BtfError(f"struct {struct_name} has no member(s) {', '.join(missing)} "
                               "at its top level")
            return found
        pos = body + _extra_size(kind, vlen)
    raise BtfError(f"no struct {struct_name} in {path}")
