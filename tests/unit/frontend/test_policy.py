"""The policy (issue #18.2): its file is checked at its places, and each rule refuses a
runbook that breaks it with the runbook's file:line:col and the rule's name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers.paths import FIXTURES, REPO

from bpfrun.compile.policy_check import check_runbook_policy
from bpfrun.errors import ValidationError
from bpfrun.frontend import policy as policy_mod
from bpfrun.frontend.params import placeholder_params
from bpfrun.frontend.policy import (
    DEFAULT_POLICY,
    Policy,
    check_unchanged,
    find_policy,
    load_policy,
)
from bpfrun.frontend.runbooks import load_runbook, shipped_runbooks
from bpfrun.kernel.tracefs import FakeKernel
from bpfrun.units import parse_duration

KERNEL = FakeKernel(FIXTURES / "tracefs")
HEAD = "apiVersion: bpfrun/v1\nname: t\ntitle: T\nsteps:\n  - id: s\n"
WRITES = HEAD + """\
    duration: 1h
    probes:
      - probe: tracepoint:syscalls:sys_enter_write
        emit: [comm, str(args.buf)]
"""
OPENS = HEAD + """\
    probes:
      - probe: tracepoint:syscalls:sys_enter_openat
        where: startswith(str(args.filename), "/etc")
        aggregate: [{id: hits, count: true}]
      - probe: tracepoint:syscalls:sys_enter_openat
        emit: [pid, str(args.filename)]
"""
PROFILE = HEAD + """\
    probes:
      - probe: profile:hz:49
        aggregate: [{id: hits, count: true, by: [kstack]}]
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def violations(policy: Policy, path: Path, override: str | None = None) -> list[str]:
    rb = load_runbook(path)
    try:
        check_runbook_policy(policy, rb, placeholder_params(rb), KERNEL,
                             parse_duration(override) if override else None)
    except ValidationError as e:
        return [f"{d.loc}: {d.message}" for d in e.diagnostics]
    return []


def test_the_default_policy_refuses_exporting_a_write_buffer(tmp_path: Path) -> None:
    path = write(tmp_path, "w.yaml", WRITES)
    [v] = violations(DEFAULT_POLICY, path)
    assert v.startswith(f"{path}:9:22: policy rule 'user_memory.raw_buffers' (default policy)")
    allowed = write(tmp_path, "p.yaml", "user_memory: {raw_buffers: true}\n")
    assert violations(load_policy(allowed), path) == []


def test_the_default_policy_refuses_exporting_io_data_at_a_uprobe(tmp_path: Path) -> None:
    path = write(tmp_path, "tls.yaml", HEAD + """\
    probes:
      - probe: uprobe:libc:write
        emit: [pid, str(arg1)]
""")
    [v] = violations(DEFAULT_POLICY, path)
    assert v.startswith(f"{path}:8:21: policy rule 'user_memory.raw_buffers'")
    assert "at uprobe:libc:write" in v


@pytest.mark.parametrize("path", shipped_runbooks(), ids=lambda p: p.stem)
def test_every_shipped_runbook_passes_the_default_policy(path: Path) -> None:
    assert violations(DEFAULT_POLICY, path) == []


@pytest.mark.parametrize(("policy", "runbook", "where", "rule"), [
    ("probes: {kinds: [tracepoint]}", PROFILE, "7:9", "probes.kinds"),
    ("probes: {tracepoint_categories: [sched, 'bl*']}", WRITES, "8:9",
     "probes.tracepoint_categories"),
    ("user_memory: {read: false}", OPENS, "8:27", "user_memory.read"),
    ("user_memory: {emit: false}", OPENS, "11:21", "user_memory.emit"),
    ("max_duration: 30m", WRITES, "6:15", "max_duration"),
    ("runbooks: {from: [shipped]}", PROFILE, "1:1", "runbooks.from"),
])
def test_each_rule_refuses_a_runbook_that_breaks_it(tmp_path: Path, policy: str, runbook: str,
                                                    where: str, rule: str) -> None:
    rules = load_policy(write(tmp_path, "policy.yaml", policy + "\n"))
    path = write(tmp_path, "r.yaml", runbook)
    found = violations(rules, path)
    assert any(v.startswith(f"{path}:{where}: policy rule '{rule}' ({tmp_path}/policy.yaml:1:")
               for v in found), found


def test_uprobe_targets_name_library_and_function(tmp_path: Path) -> None:
    rules = load_policy(write(tmp_path, "p.yaml", "probes:\n  uprobe_targets: ['libc:*alloc']\n"))
    memleak = REPO / "runbooks" / "memleak.yaml"
    found = violations(rules, memleak)
    assert found and all("'probes.uprobe_targets'" in v and "free in libc" in v for v in found)
    assert found[0].startswith(f"{memleak}:56:9:")  # the span end on free
    everything = load_policy(write(tmp_path, "q.yaml", "probes: {uprobe_targets: ['libc:*']}\n"))
    assert violations(everything, memleak) == []


def test_a_shipped_runbook_comes_from_the_shipped_folder(tmp_path: Path) -> None:
    rules = load_policy(write(tmp_path, "p.yaml", f"runbooks: {{from: [shipped, {tmp_path}]}}\n"))
    assert violations(rules, REPO / "runbooks" / "profile.yaml") == []
    assert violations(rules, write(tmp_path, "mine.yaml", PROFILE)) == []


def test_scheduled_runs_may_be_held_to_the_shipped_runbooks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rules = load_policy(write(tmp_path, "p.yaml", "runbooks: {scheduled: [shipped]}\n"))
    mine = write(tmp_path, "mine.yaml", PROFILE)
    rb = load_runbook(mine)
    check_runbook_policy(rules, rb, {}, KERNEL)  # by hand: anything
    with pytest.raises(ValidationError, match="'runbooks.scheduled'") as e:
        check_runbook_policy(rules, rb, {}, KERNEL, scheduled=True)
    assert str(e.value.diagnostics[0].loc) == f"{mine}:1:1"
    shipped = load_runbook(REPO / "runbooks" / "profile.yaml")
    check_runbook_policy(rules, shipped, placeholder_params(shipped), KERNEL, scheduled=True)
    monkeypatch.setenv("BPFRUN_SCHEDULED", "1")
    assert policy_mod.is_scheduled()
    monkeypatch.setenv("BPFRUN_SCHEDULED", "0")
    assert not policy_mod.is_scheduled()


def test_max_duration_bounds_run_duration_too(tmp_path: Path) -> None:
    rules = load_policy(write(tmp_path, "p.yaml", "max_duration: 2h\n"))
    path = write(tmp_path, "w.yaml", WRITES.replace("emit: [comm, str(args.buf)]",
                                                    "aggregate: [{id: hits, count: true}]"))
    assert violations(rules, path) == []
    [v] = violations(rules, path, override="3h")
    assert "'max_duration'" in v and "--duration 10800s is longer than 7200s" in v


@pytest.mark.parametrize(("text", "where"), [
    ("probes: {kindz: [tracepoint]}\n", "1:10"),
    ("max_duration: forever\n", "1:15"),
    ("user_memory:\n  read: maybe\n", "2:9"),
    ("runbooks: {from: [relative/path]}\n", "1:19"),
])
def test_a_bad_policy_file_is_an_error_at_its_place(tmp_path: Path, text: str,
                                                    where: str) -> None:
    path = write(tmp_path, "p.yaml", text)
    with pytest.raises(ValidationError) as e:
        load_policy(path)
    assert str(e.value.diagnostics[0].loc) == f"{path}:{where}", e.value.render()


def test_the_system_policy_is_read_when_there_is_one(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    system = tmp_path / "policy.yaml"
    monkeypatch.setattr(policy_mod, "SYSTEM_POLICY", system)
    assert find_policy(None) == DEFAULT_POLICY
    system.write_text("user_memory: {emit: false}\n")
    assert find_policy(None).user_memory_emit is False
    other = write(tmp_path, "other.yaml", "max_duration: 1m\n")
    assert find_policy(str(other)).max_duration == 60 * 10**9


def test_a_runbook_changed_after_validation_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", PROFILE)
    rb = load_runbook(path)
    check_unchanged(rb)
    path.write_text(PROFILE.replace("49", "999"))
    with pytest.raises(ValidationError, match="changed after it was validated"):
        check_unchanged(rb)
    path.unlink()
    with pytest.raises(ValidationError):
        check_unchanged(rb)


def test_validate_applies_the_policy_with_exit_2(tmp_path: Path) -> None:
    path = write(tmp_path, "w.yaml", WRITES)
    rules = write(tmp_path, "p.yaml", "user_memory: {raw_buffers: true}\n")

    def validate(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bpfrun", "validate", *args], cwd=REPO,
                              text=True, capture_output=True, timeout=120)

    r = validate(str(path))
    assert r.returncode == 2 and f"{path}:9:22: error: policy rule " \
        "'user_memory.raw_buffers'" in r.stderr
    assert validate("--policy", str(rules), str(path)).returncode == 0
    bad = write(tmp_path, "bad.yaml", "probes: {kinds: [nope]}\n")
    r = validate("--policy", str(bad), str(path))
    assert r.returncode == 2 and f"{bad}:1:18" in r.stderr
