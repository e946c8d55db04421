"""On this machine, for real (issue #13): after root's `bpfrun doctor`, `bpfrun compile` run as
`nobody` (who cannot read tracefs) prints exactly root's C; without the cache it refuses
(exit 3) and says how to get it. Needs root and tracefs; loads no BPF program."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.paths import REPO

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(os.geteuid() != 0 or not os.path.isdir("/sys/kernel/tracing/events")
                       or shutil.which("setpriv") is None,
                       reason="needs root, tracefs and setpriv"),
]

NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


@pytest.fixture
def cache_folder() -> Iterator[Path]:
    """A folder nobody can read (pytest's own are root's only)."""
    top = Path(tempfile.mkdtemp(prefix="bpfrun-kcache-"))
    top.chmod(0o755)
    yield top / "kernel"
    shutil.rmtree(top)


def bpfrun(args: list[str], folder: Path, as_nobody: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "BPFRUN_KERNEL_CACHE": str(folder)}
    prefix = NOBODY if as_nobody else []
    return subprocess.run([*prefix, sys.executable, "-m", "bpfrun", *args], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=60)


def test_nobody_compiles_roots_c_after_doctor(cache_folder: Path) -> None:
    runbook = str(REPO / "runbooks" / "runq-latency.yaml")
    refused = bpfrun(["compile", runbook], cache_folder, as_nobody=True)
    assert refused.returncode == 3 and refused.stdout == "", refused.stderr
    assert "sudo bpfrun doctor" in refused.stderr

    doctor = bpfrun(["doctor"], cache_folder)
    assert "[ok  ] kernel cache: saved " in doctor.stdout, doctor.stdout
    seen = bpfrun(["doctor"], cache_folder, as_nobody=True)
    assert "[ok  ] kernel cache: " in seen.stdout, seen.stdout

    root = bpfrun(["compile", runbook], cache_folder)
    nobody = bpfrun(["compile", runbook], cache_folder, as_nobody=True)
    assert root.returncode == nobody.returncode == 0, nobody.stderr
    assert "struct bpfrun_tp_sched_sched_switch {" in root.stdout
    assert nobody.stdout == root.stdout
    assert "not readable" not in nobody.stderr

    checked = bpfrun(["validate", runbook], cache_folder, as_nobody=True)
    assert checked.returncode == 0 and "kernel checks were skipped" not in checked.stderr
    typo = cache_folder.parent / "typo.yaml"  # the kernel checks run for nobody too
    typo.write_text("apiVersion: bpfrun/v1\nname: t\ntitle: T\nsteps:\n  - id: s\n"
                    "    probes:\n      - probe: tracepoint:sched:sched_swich\n"
                    "        aggregate: [{id: c, count: true}]\n")
    typo.chmod(0o644)
    wrong = bpfrun(["validate", str(typo)], cache_folder, as_nobody=True)
    assert wrong.returncode == 2 and "did you mean tracepoint:sched:sched_switch" in wrong.stderr
