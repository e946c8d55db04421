"""`bpfrun doctor` and the kernel cache (issue #13): as root it saves the tracepoint formats
for bpfrun without root; as a user it says whether they are there, stale or missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from bpfrun.kernel.kernelcache import CACHE_ENV, KernelCache
from bpfrun.runtime.doctor import Machine, check_kernel_cache, failures, run_checks

REL = "6.18.0-test"


@pytest.fixture
def machine_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(CACHE_ENV, raising=False)  # below the fake machine's /var/cache
    root = tmp_path / "m"
    sched = root / "sys/kernel/tracing/events/sched/sched_switch"
    sched.mkdir(parents=True)
    sched.joinpath("format").write_text("name: sched_switch\nID: 1\nformat:\n")
    (root / "sys/kernel/tracing/available_events").write_text("sched:sched_switch\n")
    (root / "proc").mkdir()
    (root / "proc/version").write_text("Linux version 6.18.0-test #1\n")
    return root


def cache(root: Path) -> KernelCache:
    return KernelCache(root / "var/cache/bpfrun/kernel", root, REL)


def test_as_root_it_saves_the_formats(machine_root: Path) -> None:
    check = check_kernel_cache(Machine(machine_root, REL, euid=0), refresh=True)
    assert check.ok and not check.required
    assert check.detail.startswith("saved 1 tracepoint formats to /")
    assert cache(machine_root).status() == "present"
    again = check_kernel_cache(Machine(machine_root, REL, euid=0))  # current: not rewritten
    assert again.ok and "this kernel's tracepoint formats" in again.detail


def test_as_a_user_it_reports_present_stale_or_missing(machine_root: Path) -> None:
    user = Machine(machine_root, REL, euid=1000)
    missing = check_kernel_cache(user)
    assert not missing.ok and missing.detail.startswith("no ")
    assert missing.fix is not None and "sudo bpfrun doctor" in missing.fix
    check_kernel_cache(Machine(machine_root, REL, euid=0))
    assert check_kernel_cache(user).ok
    (machine_root / "proc/version").write_text("Linux version 6.18.0-test #2\n")  # rebuilt
    stale = check_kernel_cache(user)
    assert not stale.ok and "another kernel build's" in stale.detail


def test_a_missing_cache_never_fails_the_machine(machine_root: Path) -> None:
    checks = run_checks(Machine(machine_root, REL, euid=1000), lambda: (True, "bcc", None),
                        lambda: None)
    assert "kernel cache" not in [c.name for c in failures(checks)]


def test_an_unwritable_folder_is_a_warning(machine_root: Path) -> None:
    (machine_root / "var/cache/bpfrun").mkdir(parents=True)
    (machine_root / "var/cache/bpfrun/kernel").write_text("a file, not a folder")
    check = check_kernel_cache(Machine(machine_root, REL, euid=0), refresh=True)
    assert not check.ok and check.detail.startswith("cannot write ")
