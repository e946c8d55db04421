"""Cgroups made for a real-BPF test under the unified hierarchy, each running a copy of
`sleep` under a name of the test's choosing, and removed afterwards whatever happens.

    with cgroup_tree(["system.slice/x.service", ...], run_in=[...], program=path) as ids:
        ...   # ids: {relative path: cgroup id}

Folders that already exist (system.slice on most hosts) are used and left alone; the ones
made here are removed deepest first once their processes are gone.

in_cgroup_namespace() wraps a command in `unshare --cgroup` rooted at one of those cgroups.

The container runtimes' metadata files (docker_container, containerd_container) are written
under a temporary host root that bpfrun reads instead of / (bpfrun_on_host).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from bpfrun.errors import MachineError
from bpfrun.kernel.cgroups import cgroup_id, unified_root


def unified_root_or_skip() -> Path:
    """The unified hierarchy's mount; without one, a skip — or a failure where BPF tests are
    required (CI): there a missing feature must not pass by skipping."""
    try:
        return unified_root()
    except MachineError as e:
        if os.environ.get("BPFRUN_REQUIRE_BPF", "") not in ("", "0") or \
                os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(f"cgroup targeting needs the unified hierarchy: {e}", pytrace=False)
        pytest.skip(str(e))


def nanosleep_runbook(name: str, comm: str) -> str:
    """A one-step runbook counting `comm`'s nanosleep calls by cgroup (what the cgroup tests
    run against their sleepers)."""
    return f"""\
apiVersion: bpfrun/v1
name: {name}
title: which cgroups make nanosleep calls
steps:
  - id: sleeps
    title: nanosleeps by cgroup
    duration: 1s
    probes:
      - probe: tracepoint:syscalls:sys_enter_clock_nanosleep
        where: comm == "{comm}"
        aggregate:
          - {{id: by_cgroup, count: true, by: [cgroup]}}
"""


def sleeper(folder: Path, name: str) -> Path:
    """A copy of /bin/sleep called `name`, so the tests' probes can filter on its comm."""
    path = folder / name
    shutil.copy("/bin/sleep", path)
    return path


@contextlib.contextmanager
def cgroup_tree(paths: Sequence[str], run_in: Sequence[str],
                program: Path) -> Iterator[dict[str, int]]:
    """Make `paths` (relative to the unified root, parents first as needed), start `program`
    in a loop in each of `run_in`, and yield {path: cgroup id} for every path."""
    root = unified_root_or_skip()
    made: list[Path] = []
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for rel in paths:
            parts = rel.split("/")
            for i in range(1, len(parts) + 1):
                d = root.joinpath(*parts[:i])
                if not d.exists():
                    d.mkdir()
                    made.append(d)
        for rel in run_in:
            procs.append(subprocess.Popen(
                ["sh", "-c", f"echo $$ > {root / rel}/cgroup.procs; "
                             f"while :; do {program} 0.01; done"], start_new_session=True))
        time.sleep(0.3)
        yield {rel: cgroup_id(root / rel) for rel in paths}
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, 9)
            p.wait()
        time.sleep(0.2)
        for d in reversed(made):
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)


# --- bpfrun inside a cgroup namespace -------------------------------------------------------

def in_cgroup_namespace(rel: str, argv: Sequence[str], own_mount: bool = False) -> list[str]:
    """The argv that runs `argv` in the cgroup `rel` (relative to the unified root) as the
    root of a new cgroup namespace (`unshare --cgroup`), seeing the host's hierarchy at its
    mount; with `own_mount`, in a new mount namespace too where only the namespace's own part
    is mounted there (as in a container with a private cgroup namespace)."""
    root = unified_root_or_skip()
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux)")
    run = " ".join(shlex.quote(a) for a in argv)
    inner = f"umount -l {root} && mount -t cgroup2 cgroup2 {root} && exec {run}" \
        if own_mount else f"exec {run}"
    namespaces = ["--cgroup", "--mount"] if own_mount else ["--cgroup"]
    return ["sh", "-c", f"echo $$ > {shlex.quote(str(root / rel))}/cgroup.procs && exec "
            f"unshare {' '.join(namespaces)} sh -c {shlex.quote(inner)}"]


# --- a made-up container host: the runtimes' metadata files under a temporary root ----------

# `python -c LAUNCH ROOT run …`: bpfrun with its container metadata read under ROOT instead
# of / (bpfrun.kernel.containers.HOST), so a test never writes into the real /var or /run.
LAUNCH = ("import sys; from pathlib import Path; import bpfrun.kernel.containers as c; "
          "c.HOST = c.HostPaths().under(Path(sys.argv.pop(1))); "
          "from bpfrun.cli import main; main()")


def bpfrun_on_host(host: Path, *args: str) -> list[str]:
    """The argv of `bpfrun ARGS…` reading container metadata under `host`."""
    return [sys.executable, "-c", LAUNCH, str(host), *args]


def docker_container(host: Path, cid: str, name: str) -> None:
    """docker's config.v2.json of container `cid` called `name`, as dockerd writes it."""
    _write_json(host / "var/lib/docker/containers" / cid / "config.v2.json",
                {"ID": cid, "Name": f"/{name}", "Driver": "overlay2",
                 "Config": {"Hostname": cid[:12], "Image": "nginx:1.25",
                            "Labels": {"maintainer": "bpfrun tests"}},
                 "State": {"Running": True, "Pid": 1}})


def containerd_container(host: Path, cid: str, name: str, namespace: str, pod: str,
                         uid: str) -> None:
    """containerd's OCI bundle config.json of a kubelet container (CRI annotations)."""
    _write_json(host / "run/containerd/io.containerd.runtime.v2.task/k8s.io" / cid /
                "config.json",
                {"ociVersion": "1.1.0", "root": {"path": "rootfs"},
                 "annotations": {"io.kubernetes.cri.container-name": name,
                                 "io.kubernetes.cri.container-type": "container",
                                 "io.kubernetes.cri.sandbox-name": pod,
                                 "io.kubernetes.cri.sandbox-namespace": namespace,
                                 "io.kubernetes.cri.sandbox-uid": uid},
                 "linux": {"cgroupsPath": f"kubepods-burstable-pod{uid.replace('-', '_')}"
                                          f".slice:cri-containerd:{cid}"}})


def _write_json(path: Path, doc: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
