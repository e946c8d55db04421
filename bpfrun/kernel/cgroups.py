"""cgroups on this host: find the unified (v2) hierarchy, resolve a run's target (a path, a
systemd unit, a container id, a pod) to a cgroup id and level, and name cgroups by the path
conventions of systemd, docker, containerd, CRI-O, podman and the kubepods slices, and
containers and pods by the names their runtimes' metadata gives (bpfrun.kernel.containers).

The id of a cgroup v2 is its directory's inode number (what bpf_get_current_cgroup_id() and
bpf_get_current_ancestor_cgroup_id() return); its level is the number of path components
below the root. Hybrid hosts (v1 controllers with cgroup2 at /sys/fs/cgroup/unified) work the
same: the BPF helpers read the default hierarchy, which is what the cgroup2 mount shows.
Inside a cgroup namespace, paths and levels go through bpfrun.kernel.cgroupview.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bpfrun.errors import MachineError, UsageError
from bpfrun.kernel.cgroupview import CgroupView, is_whole, view_of
from bpfrun.kernel.containers import ContainerInfo, ContainerMetadata

MOUNTS = Path("/proc/self/mounts")
UNIFIED_FALLBACKS = (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified"))
KINDS = ("cgroup", "unit", "container", "pod")
MAX_WALK = 200_000  # directories looked at when searching the tree for a container or pod

_HEX_ID = r"[0-9a-f]{12,64}"
# Container scopes/folders of each runtime: (runtime, pattern of the last path component).
_CONTAINER_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("docker", re.compile(rf"^docker-({_HEX_ID})\.scope$")),
    ("containerd", re.compile(rf"^cri-containerd-({_HEX_ID})\.scope$")),
    # CRI-O and podman under the cgroupfs manager: the same name without .scope
    ("cri-o", re.compile(rf"^crio-(?:conmon-)?({_HEX_ID})(?:\.scope)?$")),
    ("podman", re.compile(rf"^libpod-(?:conmon-)?({_HEX_ID})(?:\.scope)?$")),
    ("containerd", re.compile(rf"^nerdctl-({_HEX_ID})\.scope$")),
)
_PARENT_RUNTIMES = {"docker": "docker", "libpod_parent": "podman", "containerd": "containerd"}
_POD_SLICE = re.compile(r"^kubepods(?:-[a-z]+)*-pod([0-9a-f_\-]{36})\.slice$")
_POD_DIR = re.compile(r"^pod([0-9a-f\-]{36})$")  # cgroupfs driver: kubepods/burstable/pod<uid>
_BARE_ID = re.compile(rf"^{_HEX_ID}$")


@dataclass(frozen=True)
class CgroupTarget:
    """What a run is aimed at: the cgroup, its id and level, and how to name it."""

    kind: str  # cgroup | unit | container | pod
    asked: str  # as given on the command line
    path: str  # relative to the unified root, "" for the root itself
    id: int
    level: int
    label: str  # "container 4f1c0ffee2b0 (docker)", "unit checkout.service", ...
    exact: bool = True  # False: `level` is only the least it can be (cgroupview)


def unified_root(mounts: Path = MOUNTS) -> Path:
    """Where the cgroup2 hierarchy is mounted (the whole hierarchy's mount when a cgroup
    namespace also has its own part mounted); MachineError on a pure v1 host."""
    try:
        lines = mounts.read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
    points = [parts[1].replace("\\040", " ") for line in lines
              if len(parts := line.split()) > 2 and parts[2] == "cgroup2"]
    found = [Path(p) for p in dict.fromkeys(reversed(points))][::-1]  # the last at a point
    if found:
        return next((p for p in found if is_whole(p)), found[0])
    for root in UNIFIED_FALLBACKS:
        if (root / "cgroup.controllers").exists():
            return root
    raise MachineError("no cgroup v2 (unified) hierarchy is mounted: aiming a runbook at a "
                       "cgroup needs it (pure cgroup v1 hosts cannot be targeted)",
                       "mount -t cgroup2 none /sys/fs/cgroup/unified, or boot with "
                       "systemd.unified_cgroup_hierarchy=1")


def cgroup_id(directory: Path) -> int:
    return os.stat(directory).st_ino


def walk(root: Path, limit: int = MAX_WALK) -> Iterator[str]:
    """Relative paths of every cgroup under `root` (breadth first, at most `limit`)."""
    queue, seen = [""], 0
    while queue and seen < limit:
        rel = queue.pop(0)
        seen += 1
        yield rel
        try:
            with os.scandir(root / rel) as it:
                queue += sorted(os.path.join(rel, e.name) for e in it
                                if e.is_dir(follow_symlinks=False))
        except OSError:
            continue


def resolve_target(kind: str, asked: str, root: Path | None = None,
                   meta: ContainerMetadata | None = None,
                   view: CgroupView | None = None) -> CgroupTarget:
    """The cgroup `asked` names; UsageError (exit 2) naming what was looked for if none.
    `meta` names containers and pods (default: this host's runtimes' metadata); `view` is
    how this process sees the hierarchy (default: that of the mount at `root`)."""
    if view is None:
        view = view_of(root if root is not None else unified_root())
    meta = meta if meta is not None else ContainerMetadata()
    rel = _find(kind, asked.strip(), view, meta)
    level, exact = view.level(rel)
    return CgroupTarget(kind, asked, rel, cgroup_id(view.mount / rel if rel else view.mount),
                        level, _name(view, rel, meta), exact)


def _find(kind: str, asked: str, view: CgroupView, meta: ContainerMetadata) -> str:
    if not asked:
        raise UsageError(f"--{kind}: empty (give what to aim at)", _hint(kind))
    root = view.mount
    if kind == "cgroup":
        return _find_path(asked, view)
    if kind == "unit":
        unit = asked if "." in asked else f"{asked}.service"
        matches = [r for r in walk(root) if os.path.basename(r) == unit]
        what = f"systemd unit {unit} (a folder named {unit} under {root})"
    elif kind == "container":
        matches = _find_container(asked, root, meta)
        what = f"container {asked} (an id prefix or a name its runtime's metadata gives, " \
               f"of a docker-/cri-containerd-/crio-/libpod-<id>.scope or docker/<id> " \
               f"under {root})"
    elif kind == "pod":
        uid = _pod_uid_asked(asked, meta)
        matches = [r for r in walk(root)
                   if (_pod_uid(os.path.basename(r)) or "x").startswith(uid)]
        shown = asked if uid == asked.lower() else f"{asked} (UID {uid})"
        what = f"pod {shown} (kubepods…-pod<uid>.slice or kubepods/…/pod<uid> under {root})"
    else:
        raise UsageError(f"unknown target kind {kind!r}", "one of: " + ", ".join(KINDS))
    matches = _outermost(matches)
    if not matches:
        raise UsageError(f"no cgroup for {what}{view.outside()}", _hint(kind))
    if len(matches) > 1:
        raise UsageError(f"{kind} {asked} matches {len(matches)} cgroups: "
                         + ", ".join(matches[:5]), "give a longer id or --cgroup PATH")
    return matches[0]


def _find_path(asked: str, view: CgroupView) -> str:
    """A folder under the mount, a path relative to the mount's root, or one as
    /proc/PID/cgroup writes it (from this process's cgroup namespace's root)."""
    root, p = view.mount, Path(asked)
    if p.is_absolute():
        try:
            rel: Path | None = p.resolve().relative_to(root.resolve())
        except ValueError:
            rel = None
        if rel is None:
            placed = view.from_namespace(asked)
            rel = Path(placed) if placed is not None else None
        if rel is None:
            raise UsageError(f"no cgroup {asked}: it is not under the unified hierarchy "
                             f"{root}{_as_proc_writes(view)}{view.outside()}", _hint("cgroup"))
    else:
        rel = p
    rel_s = str(rel).strip("/")
    if rel_s in ("", "."):
        return ""
    if ".." in rel.parts or not (root / rel_s).is_dir():
        raise UsageError(f"no cgroup {asked} (looked for the folder {root / rel_s}"
                         f"{_as_proc_writes(view) if p.is_absolute() else ''})"
                         f"{view.outside()}", _hint("cgroup"))
    return rel_s


def _as_proc_writes(view: CgroupView) -> str:
    if not view.in_namespace:
        return ""
    where = view.mount / view.ns_root if view.ns_root is not None else None
    return (f", as /proc/PID/cgroup writes it in this cgroup namespace, whose root is "
            f"{where if where is not None else 'not under ' + str(view.mount)}")


def _find_container(asked: str, root: Path, meta: ContainerMetadata) -> list[str]:
    """The containers whose id starts with `asked`, else the ones named `asked` (not their
    conmon monitors' scopes: the container is what runs inside)."""
    found = [(r, c) for r in walk(root) if (c := _container_id(r)) is not None
             and "-conmon-" not in os.path.basename(r)]
    by_id = [r for r, (_, cid) in found if cid.startswith(asked.lower())]
    if by_id:
        return by_id
    return [r for r, (runtime, cid) in found
            if (info := meta.container(runtime, cid)) is not None and info.name == asked]


def _pod_uid_asked(asked: str, meta: ContainerMetadata) -> str:
    """The UID (or its prefix) of the pod asked for by UID or by NAMESPACE/NAME."""
    if "/" not in asked:
        return asked.lower().replace("_", "-")
    known = meta.pod_uid(asked)  # the cgroup has the UID; the metadata maps one to other
    if known is None:
        raise UsageError(f"no pod {asked}: no UID for it in " + "; ".join(meta.looked_in()),
                         _hint("pod"))
    return known


def _outermost(paths: list[str]) -> list[str]:
    """Drop matches inside another match (a container's inner folders, conmon scopes)."""
    out: list[str] = []
    for p in sorted(paths, key=len):
        if not any(p.startswith(q + "/") for q in out):
            out.append(p)
    return out


def _hint(kind: str) -> str:
    return {"cgroup": "a path relative to the cgroup2 mount, e.g. system.slice/cron.service, "
                      "or as /proc/PID/cgroup's 0:: line writes it (from the root of this "
                      "process's cgroup namespace)",
            "unit": "systemctl status NAME shows its CGroup:",
            "container": "docker ps / crictl ps / podman ps show the ids (a prefix is "
                         "enough) and names",
            "pod": "NAMESPACE/NAME is looked up in the kubelet's and the runtimes' files "
                   "on this host; or give the UID (kubectl get pod NAME -n NAMESPACE "
                   "-o jsonpath='{.metadata.uid}')"}.get(kind, "")


def _container_id(rel: str) -> tuple[str, str] | None:
    """(runtime, id) when the last component of `rel` is a container's cgroup."""
    parts = [p for p in rel.split("/") if p]
    if not parts:
        return None
    last = parts[-1]
    for runtime, pattern in _CONTAINER_RULES:
        m = pattern.match(last)
        if m:
            return runtime, m.group(1)
    if _BARE_ID.match(last) and len(parts) > 1:  # cgroupfs driver: docker/<id>, pod<uid>/<id>
        parent = parts[-2]
        if parent in _PARENT_RUNTIMES:
            return _PARENT_RUNTIMES[parent], last
        if _pod_uid(parent):
            return "cri", last
    return None


def _pod_uid(component: str) -> str | None:
    m = _POD_SLICE.match(component) or _POD_DIR.match(component)
    return m.group(1).replace("_", "-") if m else None


def _name(view: CgroupView, rel: str, meta: ContainerMetadata) -> str:
    if not rel and not view.whole:
        return "cgroup / (the root of this cgroup namespace)"
    return name_of_path(rel, meta=meta)


def name_of_path(rel: str, pods: dict[str, str] | None = None,
                 meta: ContainerMetadata | None = None) -> str:
    """A reader's name for the cgroup at `rel` (relative to the unified root): pods by
    NAMESPACE/NAME (`pods` maps them to UIDs; else `meta`'s), containers by the name their
    runtime's metadata (`meta`) gives, else by short id."""
    parts = [p for p in rel.strip("/").split("/") if p]
    if not parts:
        return "cgroup / (the root: every task)"
    by_uid = {uid: name for name, uid in (pods or {}).items()}
    pod, container, unit = "", "", ""
    for i, comp in enumerate(parts):
        uid = _pod_uid(comp)
        if uid:
            pod, container, unit = _pod_name(uid, by_uid, meta), "", ""
            continue
        found = _container_id("/".join(parts[:i + 1]))
        if found:
            info = meta.container(*found) if meta is not None else None
            if info is not None and info.pod is not None and \
                    (not pod or pod == info.pod.uid or not info.pod.uid):
                pod = str(info.pod)  # the path has no pod, or one by UID only
            container = _container_name(*found, info, in_pod=bool(pod))
            continue
        if comp.endswith((".service", ".scope")) and not (pod or container or unit):
            unit = f"unit {comp}" if comp.endswith(".service") else f"scope {comp}"
    names = [n for n in (f"pod {pod}" if pod else "", container) if n] or [unit]
    return ", ".join(names) if any(names) else f"cgroup /{'/'.join(parts)}"


def _pod_name(uid: str, by_uid: dict[str, str], meta: ContainerMetadata | None) -> str:
    if uid in by_uid:
        return by_uid[uid]
    known = meta.pods().get(uid) if meta is not None else None
    return str(known) if known is not None else uid


def _container_name(runtime: str, cid: str, info: ContainerInfo | None, in_pod: bool) -> str:
    """How a container reads: by its name in a pod ("container nginx"), by name and short id
    alone ("container nginx (4f1c0ffee2b0, docker)"), by short id when nothing names it."""
    if info is not None and info.sandbox and in_pod:
        return "sandbox"
    if info is not None and info.name:
        return f"container {info.name}" if in_pod else \
            f"container {info.name} ({cid[:12]}, {runtime})"
    return f"container {cid[:12]} ({runtime})"


class CgroupNames:
    """cgroup id → name, from a walk of the tree taken during the run; ids gone by the time
    results are read keep their last name, else read as `cgroup <id> (gone)`. Container
    metadata is read once per run (`meta`), the pods' listing once per refresh."""

    def __init__(self, root: Path | None = None, meta: ContainerMetadata | None = None) -> None:
        self.root = root
        self.meta = meta if meta is not None else ContainerMetadata()
        self.cache: dict[int, str] = {}
        self.whole = True  # the walk saw the whole hierarchy: an id not in it is gone

    def refresh(self) -> None:
        try:
            view = view_of(self.root if self.root is not None else unified_root())
        except MachineError:
            return
        self.whole = view.whole
        self.meta.new_listing()
        for rel in walk(view.mount):
            try:
                self.cache[cgroup_id(view.mount / rel if rel else view.mount)] = \
                    _name(view, rel, self.meta)
            except OSError:
                continue

    def name(self, cid: int) -> str:
        if cid not in self.cache:
            self.refresh()
        gone = "gone" if self.whole else "gone, or outside this cgroup namespace"
        return self.cache.get(cid, f"cgroup {cid} ({gone})")
