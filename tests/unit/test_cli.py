"""The CLI contract: exit codes, where output goes, and no tracebacks on bad input."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.paths import REPO

REPO = REPO


def bpfrun(*args: str, user: str | None = None, cwd: Path = REPO
           ) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "bpfrun", *args]
    if user:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    return subprocess.run(cmd, cwd=cwd, text=True, capture_output=True, timeout=120)


def test_list_shows_shipped_runbooks_with_params() -> None:
    r = bpfrun("list")
    assert r.returncode == 0, r.stderr
    assert "runq-latency" in r.stdout and "syscalls" in r.stdout
    assert "threshold=1ms" in r.stdout


def test_validate_shipped_runbooks() -> None:
    r = bpfrun("validate", "runbooks/")
    assert r.returncode == 0, r.stderr
    assert "runbooks/runq-latency.yaml: ok" in r.stdout


def test_validate_takes_shipped_runbook_names_like_run() -> None:
    r = bpfrun("validate", "runq-latency")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("runbooks/runq-latency.yaml: ok")
    r = bpfrun("validate", "no-such-runbook")
    assert r.returncode == 2 and "shipped runbooks:" in r.stderr


def test_validate_reports_every_problem_with_position_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: bpfrun/v1\nname: bad\ntitle: Bad\nsteps:\n"
        "  - id: s\n    probes:\n"
        "      - probe: tracepoint:syscalls:sys_enter_write\n"
        "        wehre: pid == 1\n"
        "        aggregate: [{id: c, count: true}]\n"
        "      - probe: tracepoint:syscalls:sys_enter_write\n"
        "        aggregate: [{id: d, count: true, by: [pid], top: many}]\n")
    r = bpfrun("validate", str(bad))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert f"{bad}:8:9: error: unknown key 'wehre' in probe; did you mean 'where'?" in r.stderr
    assert f"{bad}:11:" in r.stderr  # the second problem is reported too
    assert "^" in r.stderr  # caret under the culprit


def test_type_error_against_the_kernel_lists_real_fields(tmp_path: Path) -> None:
    bad = tmp_path / "typo.yaml"
    bad.write_text(
        "apiVersion: bpfrun/v1\nname: typo\ntitle: Typo\nsteps:\n"
        "  - id: s\n    probes:\n"
        "      - probe: tracepoint:syscalls:sys_enter_write\n"
        "        where: args.filename == \"x\"\n"
        "        aggregate: [{id: c, count: true}]\n")
    r = bpfrun("validate", str(bad))
    assert r.returncode == 2, r.stdout
    assert f"{bad}:8:16: error: tracepoint:syscalls:sys_enter_write has no field 'filename'" \
        in r.stderr
    assert "fd, buf, count" in r.stderr


def test_bad_param_names_the_param_and_loads_nothing() -> None:
    r = bpfrun("run", "runq-latency", "--param", "threshold=fast")
    assert r.returncode == 2
    assert "param 'threshold' (duration)" in r.stderr and "Traceback" not in r.stderr
    r = bpfrun("run", "runq-latency", "--param", "treshold=5ms")
    assert r.returncode == 2 and "unknown param 'treshold'" in r.stderr
    r = bpfrun("compile", "runq-latency", "--param", "nonsense")
    assert r.returncode == 2 and "NAME=VALUE" in r.stderr


def test_unknown_runbook_lists_shipped_ones() -> None:
    r = bpfrun("run", "no-such-runbook")
    assert r.returncode == 2
    assert "runq-latency" in r.stderr


def test_compile_prints_c_deterministically() -> None:
    a = bpfrun("compile", "runq-latency", "--param", "comm=x\"y")
    b = bpfrun("compile", "runq-latency", "--param", "comm=x\"y")
    assert a.returncode == 0, a.stderr
    assert a.stdout == b.stdout
    assert "int bpfrun_runq_probe" in a.stdout
    assert 'x"y' not in a.stdout.replace('\\"', "")  # the quote only appears escaped
    only = bpfrun("compile", "runq-latency", "--step", "offcpu")
    assert "step offcpu" in only.stdout and "step runq" not in only.stdout


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv missing")
def test_validate_and_compile_work_without_root() -> None:
    r = bpfrun("compile", "syscalls", user="65534")
    assert r.returncode == 0, r.stderr
    assert "BPF_PERCPU_HASH" in r.stdout
    v = bpfrun("validate", "runbooks/", user="65534")
    assert v.returncode == 0, v.stderr


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv missing")
def test_run_without_root_exits_3_with_the_fix() -> None:
    r = bpfrun("run", "syscalls", "--duration", "1s", user="65534")
    assert r.returncode == 3, r.stderr
    assert "sudo" in r.stderr


def test_doctor_passes_here() -> None:
    r = bpfrun("doctor")
    assert "bcc" in r.stdout.lower()
    assert r.returncode in (0, 3)


KPROBE_ONLY = """\
apiVersion: bpfrun/v1
name: kp
title: Kprobe only
steps:
  - id: k
    duration: 1s
    probes:
      - probe: kprobe:do_sys_openat2
        where: pid > 0
        aggregate: [{id: calls, count: true, by: [comm]}]
"""


def test_kprobe_compiles_but_cannot_run_without_kprobes(tmp_path: Path) -> None:
    rb = tmp_path / "kp.yaml"
    rb.write_text(KPROBE_ONLY)
    c = bpfrun("compile", str(rb))
    assert c.returncode == 0, c.stderr
    assert "struct pt_regs *ctx" in c.stdout
    from bpfrun.runtime.doctor import has_kprobes

    if has_kprobes():  # pragma: no cover - not on the development machines
        pytest.skip("this kernel has kprobes")
    r = bpfrun("run", str(rb), "-o", str(tmp_path / "out"))
    assert r.returncode == 3
    assert "kprobes are not available on this kernel: CONFIG_KPROBES is off" in r.stderr
    assert not (tmp_path / "out").exists()  # nothing was loaded or written
