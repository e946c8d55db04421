"""Kernel features: the host's read from its release, architecture and BTF, overridden by the
environment; a fake kernel's pinned, whatever the host."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.paths import FIXTURES

from bpfrun.kernel.features import Features, host_features
from bpfrun.kernel.tracefs import FakeKernel, LiveKernel, UnreadableKernel


def test_features_follow_the_release(tmp_path: Path) -> None:
    btf = tmp_path / "vmlinux"
    btf.write_text("")
    assert host_features("6.1.0-13-amd64", "x86_64", {}, str(btf)) == Features(
        True, True, "x86_64", user_unwind=True)
    assert host_features("5.10.0", "aarch64", {}, str(btf)) == Features(True, False, "aarch64")
    assert host_features("5.4.0-150-generic", "x86_64", {}, str(btf)) == Features(
        False, False, "x86_64")
    # Task storage from tracing programs needs BTF as well.
    assert not host_features("6.1.0", "x86_64", {}, str(tmp_path / "none")).task_storage


def test_the_environment_overrides_the_host(tmp_path: Path) -> None:
    env = {"BPFRUN_EVENT_BUFFER": "perf", "BPFRUN_SPAN_STORAGE": "hash"}
    f = host_features("6.1.0", "x86_64", env, str(tmp_path))
    assert (f.ring_buffer, f.task_storage) == (False, False)
    f = host_features("5.4.0", "x86_64", {"BPFRUN_EVENT_BUFFER": "ringbuf",
                                          "BPFRUN_SPAN_STORAGE": "task"}, str(tmp_path))
    assert (f.ring_buffer, f.task_storage) == (True, True)
    f = host_features("6.1.0", "x86_64", {"BPFRUN_EVENT_BUFFER": "bogus"}, str(tmp_path))
    assert f.ring_buffer  # an unknown value changes nothing


def test_user_mode_check_is_x86_64s() -> None:
    assert Features(arch="x86_64").user_mode_check
    assert not Features(arch="aarch64").user_mode_check


def test_live_kernels_read_the_host_and_its_environment(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BPFRUN_EVENT_BUFFER", "perf")
    for kernel in (LiveKernel(tmp_path / "absent", kallsyms=tmp_path / "none"),
                   UnreadableKernel()):
        assert not kernel.features().ring_buffer
    monkeypatch.setenv("BPFRUN_EVENT_BUFFER", "ringbuf")  # read at each call
    assert UnreadableKernel().features().ring_buffer


def test_a_fake_kernel_pins_its_features(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BPFRUN_EVENT_BUFFER", "perf")
    monkeypatch.setenv("BPFRUN_SPAN_STORAGE", "hash")
    assert FakeKernel(FIXTURES / "tracefs").features() == Features(True, True, "x86_64")
    arm = Features(ring_buffer=False, task_storage=False, arch="aarch64")
    assert FakeKernel(FIXTURES / "tracefs", features=arm).features() == arm
