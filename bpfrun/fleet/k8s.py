"""Kubernetes: a runbook as manifests (one Job per node), and the results back from their logs.

`render_manifests` gives a ConfigMap holding the runbook and, per node, a Job pinned to it
(nodeSelector on kubernetes.io/hostname, tolerating every taint) whose one container runs
`bpfrun run` privileged in the host's PID namespace, with /sys, /lib/modules and /usr/src
mounted read-only, a deadline from the runbook's duration and a time to live once finished.
The container prints result.json between marker lines, so `kubectl logs` carries it;
`collect_results` finds those blocks in saved logs (`kubectl logs --prefix` included, and any
noise around them) and writes `<node>/result.json` for `bpfrun merge`.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from bpfrun.errors import UsageError
from bpfrun.expr.evaluate import EvalError, render_template
from bpfrun.frontend.model import Runbook
from bpfrun.units import parse_duration

BEGIN = "----- BEGIN BPFRUN RESULT"
END = "----- END BPFRUN RESULT -----"
IMAGE = "bpfrun:latest"  # what contrib/container/Containerfile builds; push it, pass --image
MARGIN_SECONDS = 120  # compiling and loading each step, pulling the image
TTL_SECONDS = 3600
UNKNOWN_STEP_NS = 10 * 10**9
LABEL = "app.kubernetes.io/name"
_BEGIN = re.compile(re.escape(BEGIN) + r" node=(\S+) -----")
_DNS = re.compile(r"[^a-z0-9-]+")


def dns_name(*parts: str, limit: int = 63) -> str:
    """A DNS-1123 label from `parts`: lower case, '-' for the rest, at most `limit` long."""
    name = _DNS.sub("-", "-".join(parts).lower()).strip("-")
    return name[:limit].rstrip("-") or "bpfrun"


def _script(runbook_file: str, params: Mapping[str, str], duration: str | None) -> str:
    """The container's shell: run, then print result.json between markers; 0 and 1 (fired)
    end the Job well, so that a finding is not a failed Job."""
    words = ["bpfrun", "run", f"/runbook/{runbook_file}"]
    for k, v in params.items():
        words += ["-p", f"{k}={v}"]
    words += ["--duration", duration] if duration else []
    return (" ".join(shlex.quote(w) for w in words) + " -q -o /tmp/report\n"
            "rc=$?\n"
            f'echo "{BEGIN} node=$NODE_NAME -----"\n'
            "cat /tmp/report/result.json\n"
            f'echo "{END}"\n'
            'if [ "$rc" -le 1 ]; then exit 0; fi\nexit "$rc"\n')


def _job(name: str, node: str, config_map: str, runbook: str, script: str, image: str,
         deadline: int, namespace: str) -> dict[str, Any]:
    mounts = [("sys", "/sys"), ("modules", "/lib/modules"), ("src", "/usr/src")]
    labels = {LABEL: "bpfrun", "bpfrun/runbook": dns_name(runbook)}
    container = {
        "name": "bpfrun", "image": image, "command": ["/bin/sh", "-c", script],
        "env": [{"name": "NODE_NAME",
                 "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
        "securityContext": {"privileged": True},
        "volumeMounts": [{"name": n, "mountPath": p, "readOnly": True} for n, p in mounts]
        + [{"name": "runbook", "mountPath": "/runbook", "readOnly": True}],
    }
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "backoffLimit": 0, "activeDeadlineSeconds": deadline,
            "ttlSecondsAfterFinished": TTL_SECONDS,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never", "hostPID": True,
                    "nodeSelector": {"kubernetes.io/hostname": node},
                    "tolerations": [{"operator": "Exists"}],
                    "containers": [container],
                    "volumes": [{"name": n, "hostPath": {"path": p, "type": "Directory"}}
                                for n, p in mounts]
                    + [{"name": "runbook", "configMap": {"name": config_map}}],
                },
            },
        },
    }


def render_manifests(runbook_name: str, runbook_text: str, nodes: Sequence[str],
                     run_seconds: int, params: Mapping[str, str] | None = None,
                     duration: str | None = None, image: str = IMAGE,
                     namespace: str = "default") -> list[dict[str, Any]]:
    """The ConfigMap and one Job per node; `run_seconds` is how long the runbook's steps
    take in all (the deadline adds MARGIN_SECONDS)."""
    if not nodes:
        raise UsageError("no node to run on", hint="give --node NAME or --all-nodes")
    config_map = dns_name("bpfrun", runbook_name)
    file = f"{runbook_name}.yaml"
    docs: list[dict[str, Any]] = [{
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": config_map, "namespace": namespace,
                     "labels": {LABEL: "bpfrun"}},
        "data": {file: runbook_text},
    }]
    script = _script(file, params or {}, duration)
    for node in sorted(set(nodes)):
        docs.append(_job(dns_name("bpfrun", runbook_name, node), node, config_map,
                         runbook_name, script, image, run_seconds + MARGIN_SECONDS,
                         namespace))
    return docs


class _Dumper(yaml.SafeDumper):
    """Block scalars for multi-line text (the runbook, the script), no anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def manifests_text(docs: Sequence[Mapping[str, Any]]) -> str:
    return yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                         width=100, allow_unicode=True)


def cluster_nodes() -> list[str]:
    """Every node's name, from kubectl; UsageError when kubectl is not there or fails."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise UsageError("--all-nodes needs kubectl", hint="give the nodes with --node NAME")
    done = subprocess.run([kubectl, "get", "nodes", "-o", "jsonpath={.items[*].metadata.name}"],
                          capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise UsageError(f"kubectl get nodes failed: {done.stderr.strip()}")
    return done.stdout.split()


def kubectl_logs(namespace: str, runbook: str | None = None) -> str:
    """The logs of bpfrun's Jobs (of one runbook, or all), from kubectl."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise UsageError("no LOG given and no kubectl to read the Jobs' logs",
                         hint="save them with kubectl logs -l app.kubernetes.io/name=bpfrun "
                              "--prefix --tail=-1 and give the file")
    selector = f"{LABEL}=bpfrun" + (f",bpfrun/runbook={dns_name(runbook)}" if runbook else "")
    done = subprocess.run([kubectl, "logs", "-n", namespace, "-l", selector, "--prefix",
                           "--tail=-1", "--max-log-requests=1000"],
                          capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise UsageError(f"kubectl logs failed: {done.stderr.strip()}")
    return done.stdout


def run_seconds(runbook: Runbook, params: Mapping[str, Any], override_ns: int | None = None
                ) -> int:
    """How long the runbook's steps take one after another, in whole seconds: each step's
    duration with `params` (or `override_ns`, run --duration); 10 s where only the run knows."""
    total = 0
    for step in runbook.steps:
        ns = override_ns
        if ns is None:
            try:
                ns = parse_duration(render_template(step.duration.parts,
                                                    {"params": dict(params), "steps": {}}))
            except (EvalError, ValueError, KeyError, TypeError):
                ns = UNKNOWN_STEP_NS
        total += ns
    return math.ceil(total / 1e9)


def extract_results(text: str) -> list[tuple[str, dict[str, Any]]]:
    """(node, result.json document) for every complete, readable block in `text`. A line
    prefix before the begin marker (`kubectl logs --prefix`) is taken off the block's lines."""
    out: list[tuple[str, dict[str, Any]]] = []
    node: str | None = None
    prefix, body = "", list[str]()
    for line in text.splitlines():
        m = _BEGIN.search(line)
        if m:
            node, prefix, body = m.group(1), line[: m.start()], []
            continue
        if node is None:
            continue
        line = line.removeprefix(prefix) if prefix and line.startswith(prefix) else line
        if line.strip() == END:
            try:
                doc = json.loads("\n".join(body))
            except ValueError:
                doc = None
            if isinstance(doc, dict):
                out.append((node, doc))
            node = None
        else:
            body.append(line)
    return out


def collect_results(texts: Sequence[str], out_dir: Path) -> list[Path]:
    """Write each node's result.json to `out_dir/<node>/`; the last block of a node wins."""
    found: dict[str, dict[str, Any]] = {}
    for text in texts:
        for node, doc in extract_results(text):
            found[node] = doc
    if not found:
        raise UsageError("no bpfrun result in these logs",
                         hint="save them with kubectl logs -l app.kubernetes.io/name=bpfrun")
    written = []
    for node, doc in sorted(found.items()):
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", node).lstrip(".")  # never "..": a folder
        folder = out_dir / (safe or "node")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "result.json"
        path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)
    return written
