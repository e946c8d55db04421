"""`bpfrun k8s render` and `collect` (issue #16.3): the manifests of a shipped runbook, checked
against the Kubernetes schemas offline (kubernetes-validate, a dev extra), and the results
taken out of saved `kubectl logs` with two nodes' results and noise around them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers.paths import FIXTURES, REPO

from bpfrun.errors import UsageError
from bpfrun.fleet import load_hosts, merge_hosts
from bpfrun.fleet.k8s import (
    BEGIN,
    END,
    MARGIN_SECONDS,
    collect_results,
    extract_results,
    manifests_text,
    render_manifests,
    run_seconds,
)
from bpfrun.frontend.params import resolve_params
from bpfrun.frontend.runbooks import find_runbook, load_runbook

TREE = FIXTURES / "results" / "fleet"


def bpfrun(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bpfrun", *args], cwd=REPO, text=True,
                          capture_output=True, timeout=60, check=False)


def rendered(*args: str) -> list[dict]:
    done = bpfrun("k8s", "render", "runq-latency", *args)
    assert done.returncode == 0, done.stderr
    return list(yaml.safe_load_all(done.stdout))


def test_a_configmap_and_one_pinned_privileged_job_per_node() -> None:
    docs = rendered("--node", "worker-2", "--node", "worker-1", "-p", "threshold=2ms")
    assert [d["kind"] for d in docs] == ["ConfigMap", "Job", "Job"]
    shipped = find_runbook("runq-latency").read_text()
    assert docs[0]["data"] == {"runq-latency.yaml": shipped}
    job = docs[1]
    assert job["metadata"]["name"] == "bpfrun-runq-latency-worker-1"
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/hostname": "worker-1"}
    assert pod["hostPID"] is True and pod["restartPolicy"] == "Never"
    container = pod["containers"][0]
    assert container["securityContext"] == {"privileged": True}
    mounts = {m["mountPath"]: m["readOnly"] for m in container["volumeMounts"]}
    assert mounts == {"/sys": True, "/lib/modules": True, "/usr/src": True, "/runbook": True}
    script = container["command"][2]
    assert "-p threshold=2ms" in script and BEGIN in script and END in script
    # Two steps of the default 10s each.
    assert job["spec"]["activeDeadlineSeconds"] == 20 + MARGIN_SECONDS
    assert job["spec"]["ttlSecondsAfterFinished"] > 0


def test_the_deadline_follows_the_duration() -> None:
    rb = load_runbook(find_runbook("runq-latency"))
    assert run_seconds(rb, resolve_params(rb, {"duration": "30s"})) == 60
    assert run_seconds(rb, resolve_params(rb, {}), override_ns=5 * 10**9) == 10
    job = rendered("--node", "n", "--duration", "5s")[1]
    assert job["spec"]["activeDeadlineSeconds"] == 10 + MARGIN_SECONDS


def test_a_node_is_required() -> None:
    done = bpfrun("k8s", "render", "runq-latency")
    assert done.returncode == 2 and "--node" in done.stderr
    with pytest.raises(UsageError):
        render_manifests("x", "", [], 10)


def test_the_manifests_are_valid_kubernetes_objects() -> None:
    validate = pytest.importorskip("kubernetes_validate")
    rb = find_runbook("runq-latency")
    docs = render_manifests("runq-latency", rb.read_text(), ["worker-1", "cp.example.com"], 60,
                            {"comm": "my app's 'thread'"})
    for doc in yaml.safe_load_all(manifests_text(docs)):
        validate.validate(doc, "1.30.0", strict=True)


def _log(node: str, doc: dict, prefix: str = "") -> str:
    body = json.dumps(doc, indent=2).splitlines()
    lines = ["starting", f"{BEGIN} node={node} -----", *body, END, "bye"]
    return "\n".join(prefix + line for line in lines) + "\n"


def test_collect_takes_two_results_out_of_noisy_logs(tmp_path: Path) -> None:
    alpha = json.loads((TREE / "alpha" / "result.json").read_text())
    bravo = json.loads((TREE / "bravo" / "result.json").read_text())
    saved = ("W1202 12:00:00 warning: something\n"
             + _log("node-a", alpha, "[pod/bpfrun-runq-latency-node-a-x1/bpfrun] ")
             + f"{BEGIN} node=broken -----\n{{ not json\n{END}\n"
             + _log("node-b", bravo) + f"{BEGIN} node=cut -----\n{{\n")
    assert [n for n, _ in extract_results(saved)] == ["node-a", "node-b"]
    log = tmp_path / "jobs.log"
    log.write_text(saved)
    done = bpfrun("k8s", "collect", str(log), "-o", str(tmp_path / "results"))
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "results" / "node-a" / "result.json").read_text()) == alpha
    fleet = merge_hosts(load_hosts([str(tmp_path / "results")]))
    assert [m["host"] for m in (fleet.result.hosts or {})["members"]] == ["node-b", "node-a"]


def test_collect_keeps_node_names_inside_the_folder(tmp_path: Path) -> None:
    alpha = json.loads((TREE / "alpha" / "result.json").read_text())
    written = collect_results([_log("../../etc", alpha)], tmp_path)
    assert written[0].parent.parent == tmp_path
    with pytest.raises(UsageError, match="no bpfrun result"):
        collect_results(["nothing here"], tmp_path)


def test_collect_without_logs_asks_kubectl_or_says_how(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "bpfrun", "k8s", "collect", "-o",
                           str(tmp_path)], cwd=REPO, text=True, capture_output=True,
                          timeout=60, check=False, env={"PATH": "/nonexistent"})
    assert done.returncode == 2, done.stderr
    assert "kubectl" in done.stderr
