"""Containers and pods named from their runtimes' metadata on real BPF (issue #17): a docker
scope and a kubepods pod's containerd container are made under the unified hierarchy, each
running the same program (`cgnwork`, a copy of sleep), and their runtimes' metadata files
(docker's config.v2.json, containerd's bundle config.json with the kubelet's annotations)
are written under a temporary host root that bpfrun reads instead of /. The report names
the docker container by its name, `--pod NS/NAME` finds the pod with no /var/log/pods, and
`bpfrun test` aims at a runbook's target param. Cgroups and files are removed afterwards."""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers.cgroups import (
    bpfrun_on_host,
    cgroup_tree,
    containerd_container,
    docker_container,
    nanosleep_runbook,
    sleeper,
)
from helpers.paths import REPO

from bpfrun.kernel.containers import HostPaths
from bpfrun.runtime.selftest import run_selftest

pytestmark = pytest.mark.bpf

RUNBOOK = nanosleep_runbook("cgnames", "cgnwork")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tag = uuid.uuid4().hex
    uid = str(uuid.uuid4())
    docker, ctr = f"d0{tag}{tag}"[:64], f"c0{tag}{tag}"[:64]
    dirs = {"unit": f"system.slice/bpfrun-n{tag[:6]}.service",
            "docker": f"system.slice/docker-{docker}.scope",
            "pod": f"kubepods.slice/kubepods-burstable.slice/"
                   f"kubepods-burstable-pod{uid.replace('-', '_')}.slice"}
    dirs["ctr"] = f"{dirs['pod']}/cri-containerd-{ctr}.scope"
    host = tmp_path_factory.mktemp("host")
    try:
        docker_container(host, docker, f"nginx-{tag[:6]}")
        containerd_container(host, ctr, "app", "shop", f"web-{tag[:6]}", uid)
        work = sleeper(tmp_path_factory.mktemp("cgn"), "cgnwork")
        with cgroup_tree(list(dirs.values()), [dirs[k] for k in ("unit", "docker", "ctr")],
                         work) as by_path:
            yield {"dirs": dirs, "ids": {k: by_path[rel] for k, rel in dirs.items()},
                   "docker": docker, "tag": tag[:6], "uid": uid, "host": host}
    finally:
        shutil.rmtree(host, ignore_errors=True)


def run(tree: dict[str, Any], tmp_path: Path, *target: str) -> tuple[set[int], dict, str]:
    rb = tmp_path / "cgnames.yaml"
    rb.write_text(textwrap.dedent(RUNBOOK))
    out = tmp_path / "out"
    proc = subprocess.run(bpfrun_on_host(tree["host"], "run", str(rb), "-q", "-o", str(out),
                                         *target),
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((out / "result.json").read_text())
    rows = doc["steps"][0]["aggregations"]["by_cgroup"]["rows"]
    return {row["key"]["cgroup"] for row in rows}, doc, (out / "report.md").read_text()


def test_a_docker_container_is_named_by_its_name(tree: dict[str, Any], tmp_path: Path
                                                 ) -> None:
    ids, doc, report = run(tree, tmp_path, "--container", tree["docker"][:12])
    name = f"container nginx-{tree['tag']} ({tree['docker'][:12]}, docker)"
    assert ids == {tree["ids"]["docker"]}  # the raw id stays in result.json
    assert doc["host"]["cgroups"] == {str(tree["ids"]["docker"]): name}
    assert doc["host"]["target"]["label"] == name
    assert f"| Target | {name} |" in report and f"| {name} |" in report


def test_pod_by_namespace_and_name_from_the_bundle_annotations(tree: dict[str, Any],
                                                               tmp_path: Path) -> None:
    pod = f"shop/web-{tree['tag']}"
    ids, doc, report = run(tree, tmp_path, "--pod", pod)
    assert ids == {tree["ids"]["ctr"]}
    assert doc["host"]["target"]["label"] == f"pod {pod}"
    assert doc["host"]["cgroups"] == {str(tree["ids"]["ctr"]): f"pod {pod}, container app"}
    assert f"pod {pod}, container app" in report


def test_a_missing_pod_names_every_place_looked_in(tree: dict[str, Any],
                                                   tmp_path: Path) -> None:
    rb = tmp_path / "cgnames.yaml"
    rb.write_text(RUNBOOK)
    proc = subprocess.run(bpfrun_on_host(tree["host"], "run", str(rb), "--pod", "shop/nosuch"),
                          cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    for place in ("no pod shop/nosuch", "var/log/pods", "config.v2.json", "config.json"):
        assert place in proc.stderr


def test_bpfrun_test_aims_at_the_target_param(tree: dict[str, Any], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bpfrun.kernel.containers.HOST", HostPaths().under(tree["host"]))
    doc = yaml.safe_load(RUNBOOK)
    unit = Path(tree["dirs"]["unit"]).name
    doc["params"] = {"unit": {"type": "unit", "default": unit, "description": "the unit"}}
    doc["selftest"] = {"workload": ["/bin/sleep", "5"],
                       "expect": {"rows": {"sleeps.by_cgroup": {"min": 1}}}}
    path = tmp_path / "cgnames.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    res = run_selftest(path, out_dir=tmp_path / "out", root=tmp_path)
    assert res.ok, res.mismatches
    result = json.loads((tmp_path / "out/cgnames/result.json").read_text())
    rows = result["steps"][0]["aggregations"]["by_cgroup"]["rows"]
    assert {row["key"]["cgroup"] for row in rows} == {tree["ids"]["unit"]}  # not the others
    assert result["host"]["target"]["label"] == f"unit {unit}"
