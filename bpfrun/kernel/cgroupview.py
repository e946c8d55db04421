"""The unified cgroup hierarchy as this process sees it, which inside a cgroup namespace (a
container, `unshare --cgroup`) is not what the kernel's BPF helpers see.

bpf_get_current_cgroup_id() and bpf_get_current_ancestor_cgroup_id(level) are global: ids are
inode numbers of the hierarchy's folders, levels count from the hierarchy's real root. Inside
a cgroup namespace /proc/PID/cgroup writes paths from the namespace's root ("/" for it, "/.."
above it), and a cgroup2 mount made there shows only the namespace's part of the tree. So:

- ids are always right: a folder's inode number is its cgroup id, whatever the mount;
- levels are right when the mount's root is the hierarchy's root (`whole`: the host's hierarchy
  is mounted, as with `unshare --cgroup` alone, or a container given the host's
  /sys/fs/cgroup); when it is a part, its root's level is hidden from user space, and only a
  floor is known (the compiled filter then looks at every level from the floor down);
- a path as /proc/PID/cgroup writes it is placed through this process's namespace root, found
  from /proc/self/mountinfo (the mount's root as seen from the namespace: "/../.." is two
  levels above it) and the folder whose cgroup.procs holds this process.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")
SELF_CGROUP = Path("/proc/self/cgroup")
# Files the kernel gives every cgroup but the hierarchy's root: a mount whose root has one is
# a part of the hierarchy (a cgroup namespace's own mount, or a bind of a subtree).
NOT_ON_ROOT = ("cgroup.events", "cgroup.type")
_OCTAL = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class CgroupView:
    """Where the unified hierarchy is mounted and which part of it that mount shows."""

    mount: Path
    whole: bool = True  # the mount's root is the hierarchy's root: paths give global levels
    mount_seen: str = "/"  # the mount's root as this process's cgroup namespace writes it
    ns_root: str | None = ""  # this namespace's root, relative to the mount; None: not in it

    @property
    def in_namespace(self) -> bool:
        """This process sees the hierarchy from a cgroup namespace below its root."""
        return self.mount_seen != "/" or not self.whole

    def level(self, rel: str) -> tuple[int, bool]:
        """(level, exact) of the cgroup at `rel`: its global level, or when the mount shows a
        part of the hierarchy the least it can be (the part's root is not the real root)."""
        depth = len(_parts(rel))
        return (depth, True) if self.whole else (depth + 1, False)

    def from_namespace(self, path: str) -> str | None:
        """The folder (relative to the mount) of a path as /proc/PID/cgroup writes it in this
        process's cgroup namespace ("/", "/sub", "/../other"); None when the mount does not
        show it (or this namespace's root could not be placed in the mount)."""
        ups, downs = _split(path)
        m_ups, m_downs = _split(self.mount_seen)
        if m_downs:  # the mount's root is beside or below the namespace's root
            if ups == m_ups and downs[:len(m_downs)] == m_downs:
                return "/".join(downs[len(m_downs):])
            return None
        if self.ns_root is None or ups > m_ups:
            return None
        base = _parts(self.ns_root)
        return "/".join(base[:len(base) - ups] + downs)

    def outside(self) -> str:
        """Why a cgroup may not be found here: only a part of the hierarchy is mounted."""
        if self.whole:
            return ""
        return (f"; only a part of the cgroup hierarchy is mounted at {self.mount} (this "
                "cgroup namespace's own): cgroups outside it cannot be aimed at from here")


def view_of(mount: Path, mountinfo: Path = MOUNTINFO, self_cgroup: Path = SELF_CGROUP,
            pid: int | None = None) -> CgroupView:
    """How this process sees the cgroup2 hierarchy mounted at `mount`."""
    whole = is_whole(mount)
    seen = _mount_root_seen(mount, mountinfo)
    ups, downs = _split(seen)
    ns_root: str | None = ""
    if downs:
        ns_root = None
    elif ups:
        ns_root = _namespace_root(mount, ups, self_cgroup, os.getpid() if pid is None else pid)
    return CgroupView(mount, whole, seen, ns_root)


def cgroup2_mounts(mountinfo: Path = MOUNTINFO) -> list[tuple[Path, str]]:
    """(mount point, root as this namespace writes it) of each cgroup2 mount, the last one at a
    mount point only (an earlier one there is hidden under it)."""
    try:
        lines = mountinfo.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    found: dict[str, str] = {}
    for line in lines:
        head, sep, tail = line.partition(" - ")
        fields, fstype = head.split(), tail.split()[:1]
        if sep and len(fields) >= 5 and fstype == ["cgroup2"]:
            point = _unescape(fields[4])
            found.pop(point, None)
            found[point] = _unescape(fields[3])
    return [(Path(p), root) for p, root in found.items()]


def is_whole(mount: Path) -> bool:
    return not any((mount / f).exists() for f in NOT_ON_ROOT)


def _mount_root_seen(mount: Path, mountinfo: Path) -> str:
    for point, root in cgroup2_mounts(mountinfo):
        if point == mount:
            return root
    return "/"  # a mount the table does not list (tests' folders): its own root


def _namespace_root(mount: Path, ups: int, self_cgroup: Path, pid: int) -> str | None:
    """The folder `ups` levels below the mount's root that is this namespace's root: the one
    under which this process's own cgroup (its path in /proc/self/cgroup) holds its pid."""
    own = _own_cgroup(self_cgroup)
    if own is None:
        return None
    own_ups, own_downs = _split(own)
    if own_ups:
        return None  # moved out of its own namespace: nothing places the namespace's root
    found = [rel for rel in _at_depth(mount, ups)
             if _holds(mount.joinpath(rel, *own_downs) / "cgroup.procs", pid)]
    return found[0] if len(found) == 1 else None


def _own_cgroup(self_cgroup: Path) -> str | None:
    try:
        lines = self_cgroup.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    return next((line[3:] for line in lines if line.startswith("0::")), None)


def _at_depth(mount: Path, depth: int, limit: int = 200_000) -> list[str]:
    """Folders exactly `depth` levels below the mount's root (relative paths)."""
    level = [""]
    for _ in range(depth):
        nxt: list[str] = []
        for rel in level:
            try:
                with os.scandir(mount / rel) as it:
                    nxt += [os.path.join(rel, e.name) for e in it
                            if e.is_dir(follow_symlinks=False)]
            except OSError:
                continue
            if len(nxt) > limit:
                return []
        level = nxt
    return level


def _holds(procs: Path, pid: int) -> bool:
    try:
        return str(pid) in procs.read_text(encoding="utf-8").split()
    except OSError:
        return False


def _split(path: str) -> tuple[int, list[str]]:
    """("/../../a/b") → (2, ["a", "b"]): the ups a namespace path begins with, then the rest."""
    parts = _parts(path)
    ups = 0
    while ups < len(parts) and parts[ups] == "..":
        ups += 1
    return ups, parts[ups:]


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p and p != "."]


def _unescape(field: str) -> str:
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)
