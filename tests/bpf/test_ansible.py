"""The Ansible collection for real (issue #16.2): ansible-core and ansible-lint from PyPI into
a tool venv (never bpfrun's dependencies), the playbook run against this machine with
`ansible-playbook -i localhost, -c local` — a shipped runbook with real BPF, a runbook file
copied over, params — its result fetched to results/localhost/ and merged; then ansible-lint
on the collection (production profile)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from helpers.paths import REPO

from bpfrun.result import validate_result

COLLECTION = REPO / "contrib" / "ansible"
PLAYBOOK = COLLECTION / "playbooks" / "investigate.yml"
TOOLS = ("ansible-core", "ansible-lint")

pytestmark = pytest.mark.bpf


@pytest.fixture(scope="module")
def ansible(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv's bin folder with ansible-playbook and ansible-lint; skip when PyPI says no."""
    home = tmp_path_factory.mktemp("ansible-tools")
    venv.create(home / "venv", with_pip=True)
    pip = [str(home / "venv" / "bin" / "python"), "-m", "pip", "install", "-q", *TOOLS]
    done = subprocess.run(pip, capture_output=True, text=True, timeout=540, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot install {', '.join(TOOLS)} from PyPI: {done.stderr[-500:]}")
    return home / "venv" / "bin"


@pytest.fixture(scope="module")
def collections(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """contrib/ansible as the collection bpfrun.fleet, where Ansible looks for collections."""
    root = tmp_path_factory.mktemp("collections")
    (root / "ansible_collections" / "bpfrun").mkdir(parents=True)
    (root / "ansible_collections" / "bpfrun" / "fleet").symlink_to(COLLECTION)
    return root


def bpfrun_command(folder: Path) -> str:
    """One executable running this checkout's bpfrun with this interpreter (BCC included)."""
    script = folder / "bpfrun"
    script.write_text(f"#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} -m bpfrun \"$@\"\n")
    script.chmod(0o755)
    return str(script)


def play(ansible: Path, collections: Path, workdir: Path, *extra: str
         ) -> subprocess.CompletedProcess[str]:
    command = bpfrun_command(workdir)
    env = {**os.environ, "PATH": f"{ansible}:{os.environ['PATH']}",
           "ANSIBLE_COLLECTIONS_PATH": str(collections), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_LOCAL_TEMP": str(workdir / "ansible-tmp"),
           "ANSIBLE_REMOTE_TEMP": str(workdir / "ansible-tmp")}
    argv = [str(ansible / "ansible-playbook"), "-i", "localhost,", "-c", "local",
            str(PLAYBOOK), "-e", f"bpfrun_command={command}",
            "-e", f"bpfrun_controller_command={command}",
            "-e", f"bpfrun_results_dir={workdir / 'results'}",
            "-e", f"bpfrun_remote_dir={workdir / 'remote'}",
            "-e", f"ansible_python_interpreter={sys.executable}",
            # root already; su keeps `become: true` honest where no sudo is installed
            "-e", "ansible_become_method=su", *extra]
    return subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def test_the_playbook_runs_a_shipped_runbook_fetches_and_merges(
        ansible: Path, collections: Path, tmp_path: Path) -> None:
    done = play(ansible, collections, tmp_path, "-e", "bpfrun_runbook=syscalls",
                "-e", "bpfrun_duration_seconds=2",
                "-e", '{"bpfrun_params": {"storm_rate": 1000000000}}')
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    fetched = json.loads((tmp_path / "results" / "localhost" / "result.json").read_text())
    assert fetched["runbook"]["name"] == "syscalls"
    assert fetched["params"]["storm_rate"] == "1000000000"
    assert fetched["status"] in ("clean", "fired")
    fleet = json.loads((tmp_path / "results" / "fleet" / "result.json").read_text())
    assert validate_result(fleet) == []
    assert fleet["hosts"]["coverage"] == 1.0
    assert [m["host"] for m in fleet["hosts"]["members"]] == ["localhost"]
    assert fleet["exit_code"] == fetched["exit_code"]
    assert (tmp_path / "results" / "fleet" / "report.md").is_file()


def test_a_runbook_file_is_copied_and_run(ansible: Path, collections: Path,
                                          tmp_path: Path) -> None:
    runbook = tmp_path / "count-switches.yaml"
    runbook.write_text("""\
apiVersion: bpfrun/v1
name: count-switches
title: Context switches
steps:
  - id: switches
    duration: 1s
    probes:
      - probe: tracepoint:sched:sched_switch
        aggregate:
          - {id: total, count: true}
""")
    done = play(ansible, collections, tmp_path, "-e", f"bpfrun_runbook={runbook}",
                "-e", "bpfrun_duration_seconds=1", "-e", "bpfrun_merge=false")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert (tmp_path / "remote" / "count-switches.yaml").is_file()
    fetched = json.loads((tmp_path / "results" / "localhost" / "result.json").read_text())
    total = fetched["steps"][0]["aggregations"]["total"]["rows"][0]["value"]
    assert total > 0
    assert not (tmp_path / "results" / "fleet").exists()


def test_the_collection_is_ansible_lint_clean(ansible: Path, collections: Path) -> None:
    env = {**os.environ, "PATH": f"{ansible}:{os.environ['PATH']}",
           "ANSIBLE_COLLECTIONS_PATH": str(collections), "NO_COLOR": "1"}
    done = subprocess.run([str(ansible / "ansible-lint"), "--profile", "production"],
                          cwd=COLLECTION, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
