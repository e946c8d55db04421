"""A run aimed at one cgroup (issue #17) on real BPF: cgroups named like a systemd unit, a
docker container and a kubepods pod's containerd container are made under the unified
hierarchy, the same program (`cgtwork`, a copy of sleep) runs in each, and each of
--unit/--container/--pod/--cgroup sees only the right ones; a parent covers its children.
The cgroups are removed afterwards, also when a test fails."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.cgroups import cgroup_tree, nanosleep_runbook, sleeper, unified_root_or_skip
from helpers.paths import REPO
from helpers.runs import start_run, wait_for

pytestmark = pytest.mark.bpf

RUNBOOK = nanosleep_runbook("cgtest", "cgtwork")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    tag = uuid.uuid4().hex
    uid = str(uuid.uuid4())
    docker = f"{tag}{tag}"[:64]
    ctr = f"c0{tag}{tag}"[:64]
    dirs = {
        "unit": f"system.slice/bpfrun-t{tag[:6]}.service",
        "docker": f"system.slice/docker-{docker}.scope",
        "pod": f"kubepods.slice/kubepods-burstable.slice/"
               f"kubepods-burstable-pod{uid.replace('-', '_')}.slice",
    }
    dirs["ctr"] = f"{dirs['pod']}/cri-containerd-{ctr}.scope"
    work = sleeper(tmp_path_factory.mktemp("cg"), "cgtwork")
    with cgroup_tree(list(dirs.values()), [dirs[k] for k in ("unit", "docker", "ctr")],
                     work) as by_path:
        ids = {k: by_path[rel] for k, rel in dirs.items()}
        yield {"dirs": dirs, "ids": ids, "docker": docker, "uid": uid}


def seen(tmp_path: Path, *target: str) -> set[int]:
    return run(tmp_path, *target)[0]


def run(tmp_path: Path, *target: str) -> tuple[set[int], dict, str]:
    rb = tmp_path / "cgtest.yaml"
    rb.write_text(textwrap.dedent(RUNBOOK))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "bpfrun", "run", str(rb), "-q", "-o",
                           str(out), *target], cwd=REPO, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((out / "result.json").read_text())
    agg = doc["steps"][0]["aggregations"]
    ids = {row["key"]["cgroup"] for row in agg["by_cgroup"]["rows"]}
    return ids, doc, (out / "report.md").read_text()


def test_unit_sees_only_its_service(tree: dict, tmp_path: Path) -> None:
    name = Path(tree["dirs"]["unit"]).name
    ids, doc, report = run(tmp_path, "--unit", name)
    assert ids == {tree["ids"]["unit"]}
    assert doc["host"]["target"]["label"] == f"unit {name}"
    assert doc["host"]["cgroups"] == {str(tree["ids"]["unit"]): f"unit {name}"}
    assert f"| Target | unit {name} |" in report


def test_container_prefix_sees_only_that_container(tree: dict, tmp_path: Path) -> None:
    assert seen(tmp_path, "--container", tree["docker"][:12]) == {tree["ids"]["docker"]}


def test_pod_uid_covers_its_container(tree: dict, tmp_path: Path) -> None:
    ids, doc, report = run(tmp_path, "--pod", tree["uid"])
    assert ids == {tree["ids"]["ctr"]}
    name = f"pod {tree['uid']}, container c0{tree['docker'][:10]} (containerd)"
    assert doc["host"]["cgroups"] == {str(tree["ids"]["ctr"]): name}
    assert name in report


def test_parent_cgroup_covers_its_children(tree: dict, tmp_path: Path) -> None:
    got, _, report = run(tmp_path, "--cgroup", "system.slice")  # may hold other units
    assert f"container {tree['docker'][:12]} (docker)" in report
    assert {tree["ids"]["unit"], tree["ids"]["docker"]} <= got
    assert tree["ids"]["ctr"] not in got
    pod = seen(tmp_path, "--cgroup", "/" + tree["dirs"]["pod"])  # as /proc/PID/cgroup has it
    assert pod == {tree["ids"]["ctr"]}


def test_missing_target_is_a_usage_error(tmp_path: Path) -> None:
    unified_root_or_skip()
    rb = tmp_path / "cgtest.yaml"
    rb.write_text(RUNBOOK)
    proc = subprocess.run([sys.executable, "-m", "bpfrun", "run", str(rb), "--container",
                           "0123456789abcdef"], cwd=REPO, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 2
    assert "container 0123456789abcdef" in proc.stderr and "Traceback" not in proc.stderr


def test_a_target_removed_during_the_run_is_reported(tmp_path: Path) -> None:
    root = unified_root_or_skip()
    unit = root / f"bpfrun-gone-{uuid.uuid4().hex[:8]}.service"
    unit.mkdir()
    rb = tmp_path / "cgtest.yaml"
    rb.write_text(RUNBOOK.replace("duration: 1s", "duration: 3s"))
    out = tmp_path / "out"
    proc = start_run([rb, "-o", out, "--unit", unit.name])
    try:
        wait_for(proc, timeout=60)
    finally:
        unit.rmdir()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    doc = json.loads((out / "result.json").read_text())
    assert [f["threshold"] for f in doc["findings"]] == ["target_gone"]
    assert "was removed" in doc["findings"][0]["message"]
