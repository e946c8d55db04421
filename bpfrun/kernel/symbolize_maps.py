"""A process's memory map, captured while it lives, so its addresses can be symbolized later.

`ProcessMaps.capture(pid)` reads /proc/PID/maps and copies the vDSO's bytes from
/proc/PID/mem (the vDSO is an ELF image that exists only in memory, with a symbol table of
its own). It also notes what is needed to find the process's files after the fact: its start
time (so a reused pid is never taken for it) and its mount namespace (a binary inside a
container is not at the same path, or not there at all, on the host).
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import os
from dataclasses import dataclass, field

_DELETED = " (deleted)"


@dataclass(frozen=True)
class Mapping:
    """One line of /proc/PID/maps."""

    start: int
    end: int
    perms: str
    offset: int  # file offset of `start`
    dev: tuple[int, int]  # (major, minor)
    inode: int
    path: str  # "" for anonymous memory; "[vdso]", "[stack]", ... for special mappings
    deleted: bool = False  # the kernel marked the path "(deleted)"

    @property
    def is_file(self) -> bool:
        return self.inode != 0 and self.path.startswith("/")

    @property
    def is_anonymous(self) -> bool:
        """Memory no file backs: JIT code, or data; memfd and /dev/zero count as such."""
        if self.path == "" or self.path.startswith("[anon"):
            return True
        return self.path.startswith(("/memfd:", "/dev/zero", "/SYSV"))

    @property
    def module(self) -> str:
        """The name shown in brackets after a frame: a file's basename, `vdso`, `anon`."""
        if self.path.startswith("["):
            return self.path.strip("[]")
        return os.path.basename(self.path) if self.path else "anon"


def parse_maps_line(line: str) -> Mapping:
    """Parses `start-end perms offset major:minor inode [path]`; the path may hold spaces."""
    fields = line.split(None, 5)
    if len(fields) < 5:
        raise ValueError(f"not a /proc/PID/maps line: {line!r}")
    start, _, end = fields[0].partition("-")
    major, _, minor = fields[3].partition(":")
    path = fields[5].rstrip("\n") if len(fields) > 5 else ""
    deleted = path.endswith(_DELETED)
    if deleted:
        path = path[: -len(_DELETED)]
    return Mapping(int(start, 16), int(end, 16), fields[1], int(fields[2], 16),
                   (int(major, 16), int(minor, 16)), int(fields[4]), path, deleted)


@dataclass(frozen=True)
class ProcessMaps:
    """A snapshot of one process's mappings (sorted by address)."""

    pid: int
    mappings: tuple[Mapping, ...]
    vdso: bytes | None = field(default=None, repr=False)  # the [vdso] image, if it was read
    start_time: int | None = None  # /proc/PID/stat field 22, in clock ticks since boot
    mount_ns: str | None = None  # readlink /proc/PID/ns/mnt, e.g. "mnt:[4026531841]"

    @classmethod
    def parse(cls, text: str, pid: int = 0, *, vdso: bytes | None = None,
              start_time: int | None = None, mount_ns: str | None = None) -> ProcessMaps:
        """A snapshot from maps text alone (tests, or maps saved elsewhere)."""
        found = sorted((parse_maps_line(ln) for ln in text.splitlines() if ln.strip()),
                       key=lambda m: m.start)
        return cls(pid, tuple(found), vdso, start_time, mount_ns)

    @classmethod
    def capture(cls, pid: int) -> ProcessMaps:
        """Reads the live process's maps and vDSO. Raises OSError (ProcessLookupError,
        FileNotFoundError) when the process is gone or its maps cannot be read."""
        start_time = _start_time(pid)
        with open(f"/proc/{pid}/maps") as f:
            text = f.read()
        snapshot = cls.parse(text, pid, start_time=start_time, mount_ns=_mount_ns(pid))
        vdso = next((m for m in snapshot.mappings if m.path == "[vdso]"), None)
        image = _read_memory(pid, vdso.start, vdso.end - vdso.start) if vdso else None
        if _start_time(pid) != start_time:
            raise ProcessLookupError(f"process {pid} exited while its maps were read")
        return cls(pid, snapshot.mappings, image, start_time, snapshot.mount_ns)

    def find(self, address: int) -> Mapping | None:
        """The mapping holding address, or None."""
        i = bisect.bisect_right(self._starts, address) - 1
        if i >= 0 and address < self.mappings[i].end:
            return self.mappings[i]
        return None

    def alive(self) -> bool:
        """True while the very process captured still runs (not a later one with its pid)."""
        if self.start_time is None:
            return False
        try:
            return _start_time(self.pid) == self.start_time
        except OSError:
            return False

    def foreign_mounts(self) -> bool:
        """True when the process saw another mount namespace than ours (a container)."""
        if self.mount_ns is None:
            return False
        return self.mount_ns != _mount_ns(os.getpid())

    @functools.cached_property
    def _starts(self) -> list[int]:
        return [m.start for m in self.mappings]


def _start_time(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        # After the parenthesised comm: state is field 3, starttime field 22.
        return int(f.read().rsplit(")", 1)[1].split()[19])


def _mount_ns(pid: int) -> str | None:
    with contextlib.suppress(OSError):
        return os.readlink(f"/proc/{pid}/ns/mnt")
    return None


def _read_memory(pid: int, address: int, size: int) -> bytes | None:
    """Bytes of another process's memory; None without the right (ptrace read access)."""
    try:
        with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
            mem.seek(address)
            return mem.read(size)
    except OSError:
        return None
