"""Whether user stacks are unwound through libc: x86-64, bpf_task_pt_regs (5.15) and BTF,
or the environment's word; a fake kernel's C keeps the plain walk unless it asks."""

from __future__ import annotations

from pathlib import Path

from bpfrun.kernel.features import DEFAULT_FEATURES, host_features


def test_user_unwind_needs_x86_64_5_15_and_btf(tmp_path: Path) -> None:
    btf = tmp_path / "vmlinux"
    btf.write_text("")
    assert host_features("6.18.44", "x86_64", {}, str(btf)).user_unwind
    assert host_features("5.15.0", "x86_64", {}, str(btf)).user_unwind
    assert not host_features("5.14.0", "x86_64", {}, str(btf)).user_unwind
    assert not host_features("6.1.0", "aarch64", {}, str(btf)).user_unwind
    assert not host_features("6.1.0", "x86_64", {}, str(tmp_path / "none")).user_unwind
    assert not DEFAULT_FEATURES.user_unwind


def test_the_environment_turns_unwinding_on_or_off(tmp_path: Path) -> None:
    assert not host_features("6.1.0", "x86_64", {"BPFRUN_USER_UNWIND": "0"},
                             str(tmp_path)).user_unwind
    assert host_features("5.4.0", "x86_64", {"BPFRUN_USER_UNWIND": "1"},
                         str(tmp_path)).user_unwind
