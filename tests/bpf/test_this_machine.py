"""This machine, for real: doctor's checks pass, the live tracefs matches the recorded formats
the unit tests compile against, and `bpfrun probes` lists the live kernel."""

from __future__ import annotations

import os

import pytest
from helpers.paths import FIXTURES

from bpfrun.kernel.probes import list_probes
from bpfrun.kernel.tracefs import default_kernel, parse_format
from bpfrun.runtime.doctor import run_checks


@pytest.mark.bpf
def test_this_machine_can_run_bpf() -> None:
    checks = {c.name: c for c in run_checks()}
    for name in ("privileges", "bcc", "kernel headers", "tracefs"):
        assert checks[name].ok, f"{name}: {checks[name].detail} (fix: {checks[name].fix})"
    assert checks["bcc"].detail.startswith("BCC ")


@pytest.mark.bpf
def test_live_kernel_matches_recorded_sched_switch() -> None:
    k = default_kernel()
    assert k.readable(), "tracefs must be mounted: mount -t tracefs nodev /sys/kernel/tracing"
    live = k.tracepoint("sched", "sched_switch")
    assert live is not None
    recorded = parse_format(
        (FIXTURES / "tracefs/events/sched/sched_switch/format").read_text(), "sched",
        "sched_switch")
    assert live.fields == recorded.fields
    assert live.common_size == recorded.common_size
    assert "sched:sched_switch" in k.tracepoints("sched:*")
    assert "syscalls:sys_enter_write" in k.tracepoints()
    assert k.raw_tracepoint_exists("sched_switch")
    assert not k.raw_tracepoint_exists("sys_enter_openat")
    assert k.kprobes_available() == os.path.exists("/sys/kernel/tracing/kprobe_events")


@pytest.mark.bpf
def test_live_listing() -> None:
    k = default_kernel()
    lines = list_probes(k, "tracepoint:syscalls:sys_enter_write", verbose=True)
    assert lines[0] == "tracepoint:syscalls:sys_enter_write"
    assert [line.split("  (")[0].strip() for line in lines[1:]] == [
        "int __syscall_nr",
        "unsigned int fd",
        "const char * buf",
        "size_t count",
    ]
    assert "rawtracepoint:sched_switch" in list_probes(k, "rawtracepoint:sched_sw*", False)
