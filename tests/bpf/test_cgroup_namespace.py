"""bpfrun inside a cgroup namespace (issue #17) on real BPF: `unshare --cgroup` runs it with
the namespace's root at a cgroup made for the test, which has two units below it, each running
the same program (`cgnwork`, a copy of sleep), while a third unit runs it outside the
namespace. Paths as /proc/PID/cgroup writes them there are placed through the namespace's root
(the BPF helpers' ids and levels are global), with the host's hierarchy mounted and with only
the namespace's own part mounted (as in a container with a private cgroup namespace), where a
target outside that part is a usage error saying so. The cgroups are removed afterwards, also
when a test fails."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.cgroups import cgroup_tree, in_cgroup_namespace, nanosleep_runbook, sleeper
from helpers.paths import REPO

pytestmark = pytest.mark.bpf

RUNBOOK = nanosleep_runbook("cgns", "cgnwork")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """The namespace's root `ns`, units `a` and `b` below it and `out` beside it: their
    paths (relative to the unified root), unit names and cgroup ids."""
    tag = uuid.uuid4().hex[:6]
    top = f"bpfrun-ns{tag}.slice"
    units = {"a": f"bpfrun-na{tag}.service", "b": f"bpfrun-nb{tag}.service",
             "out": f"bpfrun-no{tag}.service"}
    dirs = {"ns": f"{top}/ns", "a": f"{top}/ns/{units['a']}",
            "b": f"{top}/ns/{units['b']}", "out": f"{top}/{units['out']}"}
    work = sleeper(tmp_path_factory.mktemp("cgn"), "cgnwork")
    with cgroup_tree(list(dirs.values()), [dirs[k] for k in ("a", "b", "out")],
                     work) as by_path:
        yield {"dirs": dirs, "units": units, "ids": {k: by_path[r] for k, r in dirs.items()}}


def bpfrun_in_namespace(tree: dict, tmp_path: Path, *target: str,
                        own_mount: bool = False) -> subprocess.CompletedProcess[str]:
    rb = tmp_path / "cgns.yaml"
    rb.write_text(textwrap.dedent(RUNBOOK))
    argv = [sys.executable, "-m", "bpfrun", "run", str(rb), "-q", "-o", str(tmp_path / "out"),
            *target]
    return subprocess.run(in_cgroup_namespace(tree["dirs"]["ns"], argv, own_mount),
                          cwd=REPO, capture_output=True, text=True, timeout=180, check=False)


def seen(tree: dict, tmp_path: Path, *target: str, own_mount: bool = False) -> tuple[set, dict]:
    proc = bpfrun_in_namespace(tree, tmp_path, *target, own_mount=own_mount)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((tmp_path / "out" / "result.json").read_text())
    rows = doc["steps"][0]["aggregations"]["by_cgroup"]["rows"]
    return {r["key"]["cgroup"] for r in rows}, doc


@pytest.mark.parametrize("own_mount", [False, True], ids=["host-hierarchy", "own-part"])
def test_the_namespace_root_covers_its_units_only(tree: dict, tmp_path: Path,
                                                  own_mount: bool) -> None:
    ids, doc = seen(tree, tmp_path, "--cgroup", "/", own_mount=own_mount)  # not every task
    assert ids == {tree["ids"]["a"], tree["ids"]["b"]}
    assert doc["host"]["target"]["id"] == tree["ids"]["ns"]
    for unit in ("a", "b"):
        assert doc["host"]["cgroups"][str(tree["ids"][unit])] == f"unit {tree['units'][unit]}"


@pytest.mark.parametrize("own_mount", [False, True], ids=["host-hierarchy", "own-part"])
def test_a_path_as_the_namespace_writes_it_and_a_unit(tree: dict, tmp_path: Path,
                                                      own_mount: bool) -> None:
    a, b = tree["units"]["a"], tree["units"]["b"]
    ids, doc = seen(tree, tmp_path, "--cgroup", f"/{a}", own_mount=own_mount)
    assert ids == {tree["ids"]["a"]}
    assert doc["host"]["target"]["label"] == f"unit {a}"
    ids, _ = seen(tree, tmp_path, "--unit", b, own_mount=own_mount)
    assert ids == {tree["ids"]["b"]}


def test_the_host_hierarchy_reaches_outside_the_namespace(tree: dict, tmp_path: Path) -> None:
    ids, doc = seen(tree, tmp_path, "--unit", tree["units"]["out"])
    assert ids == {tree["ids"]["out"]}
    assert doc["host"]["cgroups"] == {str(tree["ids"]["out"]): f"unit {tree['units']['out']}"}


def test_a_target_outside_the_namespaces_own_part_exits_2(tree: dict, tmp_path: Path) -> None:
    proc = bpfrun_in_namespace(tree, tmp_path, "--unit", tree["units"]["out"], own_mount=True)
    assert proc.returncode == 2, proc.stderr
    assert f"systemd unit {tree['units']['out']}" in proc.stderr
    assert "only a part of the cgroup hierarchy is mounted" in proc.stderr
    assert "Traceback" not in proc.stderr
