"""Container and pod names from the container runtimes' own metadata files on this host (no
daemon API): docker's config.v2.json, the OCI bundle config.json of containerd and CRI-O
(the kubelet's annotations), podman's containers.json, and the kubelet's /var/log/pods.

Every read is bounded in size and cached for the life of one ContainerMetadata (one run);
a file that is missing, unreadable, too large or malformed names nothing, and the caller
shows the container's short id instead. The folders read are a HostPaths, which tests point
at a made-up host (HostPaths.under).
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

MAX_FILE = 1 << 20  # bytes of one container's metadata file (a few KB in practice)
MAX_INDEX = 16 << 20  # podman's containers.json lists every container of its store
MAX_LISTED = 10_000  # metadata files read when listing the pods of this host
STORE_IN_HOME = Path(".local/share/containers/storage")  # rootless podman's default store

# A pod's UID inside a cgroup path or an OCI linux.cgroupsPath (systemd: '_' for '-').
_POD_IN_PATH = re.compile(r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}"
                          r"[-_][0-9a-f]{12})")


@dataclass(frozen=True)
class HostPaths:
    """Where each runtime keeps its containers' metadata (the defaults are the real ones)."""

    docker: Path = Path("/var/lib/docker/containers")  # <id>/config.v2.json
    containerd: Path = Path("/run/containerd/io.containerd.runtime.v2.task")  # <ns>/<id>/
    stores: tuple[Path, ...] = (Path("/var/lib/containers/storage"),  # CRI-O and podman
                                Path("/run/containers/storage"))
    homes: tuple[Path, ...] = (Path("/root"),)  # rootless podman: <home>/STORE_IN_HOME
    home_parents: tuple[Path, ...] = (Path("/home"),)  # and every <parent>/<user>/…
    kubelet_pods: Path = Path("/var/log/pods")  # <namespace>_<name>_<uid>

    def under(self, root: Path) -> HostPaths:
        """The same folders under `root` instead of / (a made-up host for tests)."""
        def moved(p: Path) -> Path:
            return root / p.relative_to(p.anchor)
        changes: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            changes[f.name] = tuple(map(moved, value)) if isinstance(value, tuple) \
                else moved(value)
        return replace(self, **changes)

    def rootless_stores(self) -> list[Path]:
        """Each user's containers/storage store (rootless podman). Its files are the user's
        to write: only the names of podman containers are taken from them, never a pod."""
        homes = list(self.homes)
        for parent in self.home_parents:
            homes += sorted(Path(e.path) for e in _entries(parent) if e.is_dir())
        return [h / STORE_IN_HOME for h in homes]


HOST = HostPaths()  # what a ContainerMetadata reads unless given other paths


@dataclass(frozen=True)
class Pod:
    namespace: str
    name: str
    uid: str = ""

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class ContainerInfo:
    """What a runtime's metadata says of one container."""

    name: str = ""  # "" when the metadata names none
    pod: Pod | None = None
    sandbox: bool = False  # a pod's sandbox (pause) container

    def __bool__(self) -> bool:
        return bool(self.name or self.pod or self.sandbox)


class ContainerMetadata:
    """Reads the runtimes' metadata for one run: each file at most once, each container's
    answer remembered; the pods' listing is made anew by new_listing() (new pods appear)."""

    def __init__(self, paths: HostPaths | None = None) -> None:
        self.paths = paths if paths is not None else HOST
        self._files: dict[Path, Any] = {}  # what each file said (not the whole document)
        self._containers: dict[str, ContainerInfo | None] = {}
        self._pods: dict[str, Pod] | None = None
        self._readers: dict[str, Callable[[str], ContainerInfo | None]] = {
            "docker": self._docker, "containerd": self._containerd, "cri-o": self._crio,
            "podman": self._podman}

    # --- one container -------------------------------------------------------------------

    def container(self, runtime: str, cid: str) -> ContainerInfo | None:
        """What the metadata says of container `cid` (the runtime its cgroup names first,
        then the others: ids are unique across runtimes); None when nothing names it."""
        if cid not in self._containers:
            order = [runtime] if runtime in self._readers else []
            order += [r for r in self._readers if r != runtime]
            found = (self._readers[r](cid) for r in order)
            info = next((i for i in found if i), None)
            if info is None and runtime == "podman":  # users' stores name users' containers
                info = self._podman(cid, self.paths.rootless_stores())
            self._containers[cid] = info
        return self._containers[cid]

    def _docker(self, cid: str) -> ContainerInfo | None:
        info: ContainerInfo | None = self._read(
            self.paths.docker / cid / "config.v2.json", _docker_config)
        return info

    def _containerd(self, cid: str) -> ContainerInfo | None:
        for ns in _entries(self.paths.containerd):
            info: ContainerInfo | None = self._read(Path(ns.path) / cid / "config.json",
                                                    _bundle)
            if info:
                return info
        return None

    def _crio(self, cid: str) -> ContainerInfo | None:
        for store in self.paths.stores:
            info: ContainerInfo | None = self._read(
                store / "overlay-containers" / cid / "userdata" / "config.json", _bundle)
            if info:
                return info
        return None

    def _podman(self, cid: str, stores: Iterable[Path] = ()) -> ContainerInfo | None:
        for store in stores or self.paths.stores:
            names: dict[str, str] = self._read(
                store / "overlay-containers" / "containers.json", _podman_names, MAX_INDEX)
            if names.get(cid):
                return ContainerInfo(names[cid])
        return None

    # --- pods ----------------------------------------------------------------------------

    def new_listing(self) -> None:
        """Forget the pods' listing (not the files read): the next pods() lists anew."""
        self._pods = None

    def pods(self) -> dict[str, Pod]:
        """Pod UID → pod, from the kubelet's log folders and every container's metadata."""
        if self._pods is None:
            pods: dict[str, Pod] = {}
            for info in self._every_container():
                if info.pod is not None and info.pod.uid:
                    pods.setdefault(info.pod.uid, info.pod)
            for e in _entries(self.paths.kubelet_pods):
                parts = e.name.split("_")
                if len(parts) == 3 and all(parts):
                    pods[parts[2]] = Pod(parts[0], parts[1], parts[2])
            self._pods = pods
        return self._pods

    def pod_uid(self, namespace_name: str) -> str | None:
        """The UID of pod NAMESPACE/NAME, when this host's metadata knows it."""
        return next((uid for uid, pod in sorted(self.pods().items())
                     if str(pod) == namespace_name), None)

    def looked_in(self) -> list[str]:
        """Where pods() looks, for a message naming every place."""
        p = self.paths
        crio = " and ".join(f"{s}/overlay-containers/<id>/userdata/config.json"
                            for s in p.stores)
        return [f"{p.kubelet_pods}/<namespace>_<name>_<uid>",
                f"docker labels in {p.docker}/<id>/config.v2.json",
                f"containerd annotations in {p.containerd}/<namespace>/<id>/config.json",
                f"CRI-O annotations in {crio}"]

    def _every_container(self) -> Iterator[ContainerInfo]:
        docker = [e.name for e in _entries(self.paths.docker)]
        bundles = [Path(c.path) / "config.json" for ns in _entries(self.paths.containerd)
                   for c in _entries(Path(ns.path))]
        bundles += [Path(c.path) / "userdata" / "config.json" for s in self.paths.stores
                    for c in _entries(s / "overlay-containers") if c.is_dir()]
        for cid in docker[:MAX_LISTED]:
            yield self._docker(cid) or ContainerInfo()
        for path in bundles[:max(0, MAX_LISTED - len(docker))]:
            yield self._read(path, _bundle) or ContainerInfo()

    def _read(self, path: Path, parse: Callable[[Any], Any], limit: int = MAX_FILE) -> Any:
        """What `parse` makes of the JSON document at `path` (None when it is missing,
        unreadable, over `limit` or not JSON), read once."""
        if path not in self._files:
            self._files[path] = parse(_read_json(path, limit))
        return self._files[path]


def _read_json(path: Path, limit: int) -> Any:
    """Regular files only: a FIFO or device planted in a user's store must not block or
    feed the run (O_NONBLOCK makes opening a FIFO return at once)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return None
            data = f.read(limit + 1)
        return None if len(data) > limit else json.loads(data)
    except (OSError, ValueError, RecursionError):
        return None


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError:
        return []


def _text(value: Any, limit: int = 253) -> str:
    """A name as the metadata gives it, without control characters (they reach terminals
    and reports) and at most `limit` characters (a DNS name's length)."""
    if not isinstance(value, str):
        return ""
    return "".join(c for c in value if c.isprintable()).strip()[:limit]


def _docker_config(doc: Any) -> ContainerInfo | None:
    """docker's config.v2.json: its Name, or the kubelet's labels (dockershim, whose Name
    is k8s_<container>_<pod>_…)."""
    if not isinstance(doc, dict):
        return None
    config = doc.get("Config")
    labels = config.get("Labels") if isinstance(config, dict) else None
    info = _kubelet_labels(labels if isinstance(labels, dict) else {})
    return info if info.name else replace(info, name=_text(doc.get("Name")).lstrip("/"))


def _podman_names(doc: Any) -> dict[str, str]:
    """podman's containers.json: container id → its first name."""
    names: dict[str, str] = {}
    for entry in doc if isinstance(doc, list) else []:
        given = entry.get("names") if isinstance(entry, dict) else None
        if isinstance(given, list) and given and isinstance(entry.get("id"), str):
            names[entry["id"]] = _text(given[0])
    return names


def _kubelet_labels(labels: dict[str, Any]) -> ContainerInfo:
    """Docker labels or CRI-O annotations the kubelet sets (io.kubernetes.*)."""
    name = _text(labels.get("io.kubernetes.container.name"))
    pod = _pod(labels.get("io.kubernetes.pod.namespace"), labels.get("io.kubernetes.pod.name"),
               labels.get("io.kubernetes.pod.uid"))
    sandbox = name == "POD" or labels.get("io.kubernetes.docker.type") == "podsandbox" or \
        labels.get("io.kubernetes.cri-o.ContainerType") == "sandbox"
    return ContainerInfo("" if sandbox else name, pod, sandbox)


def _bundle(doc: Any) -> ContainerInfo | None:
    """An OCI bundle's config.json: containerd's CRI annotations, else the kubelet's
    (CRI-O), else nerdctl's name; the pod's UID from its cgroupsPath when not annotated."""
    if not isinstance(doc, dict):
        return None
    notes = doc.get("annotations")
    notes = notes if isinstance(notes, dict) else {}
    if "io.kubernetes.cri.sandbox-name" in notes:
        sandbox = notes.get("io.kubernetes.cri.container-type") == "sandbox"
        info = ContainerInfo("" if sandbox else _text(notes.get(
            "io.kubernetes.cri.container-name")), _pod(
            notes.get("io.kubernetes.cri.sandbox-namespace"),
            notes.get("io.kubernetes.cri.sandbox-name"),
            notes.get("io.kubernetes.cri.sandbox-uid")), sandbox)
    else:
        info = _kubelet_labels(notes)
        if not info:
            info = ContainerInfo(_text(notes.get("nerdctl/name")))
    if info.pod is not None and not info.pod.uid:
        linux = doc.get("linux")
        m = _POD_IN_PATH.search(_text(linux.get("cgroupsPath"), 4096) if isinstance(linux, dict)
                                else "")
        if m:
            info = replace(info, pod=replace(info.pod, uid=m.group(1).replace("_", "-")))
    return info


def _pod(namespace: Any, name: Any, uid: Any) -> Pod | None:
    ns, pod = _text(namespace), _text(name)
    return Pod(ns, pod, _text(uid).lower()) if ns and pod else None
