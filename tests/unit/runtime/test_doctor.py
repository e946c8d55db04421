"""doctor and BCC loading against fake machines built in tmp_path, plus the real one."""

from __future__ import annotations

import gzip
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import conftest
import pytest

from bpfrun.errors import EXIT_MACHINE, MachineError
from bpfrun.runtime import bccload
from bpfrun.runtime.doctor import (
    Check,
    Machine,
    failures,
    has_kprobes,
    kernel_config,
    render_checks,
    require_runnable,
    run_checks,
)

REL = "6.18.0-test"
GOOD_CONFIG = {
    "CONFIG_BPF_SYSCALL": "y",
    "CONFIG_BPF_EVENTS": "y",
    "CONFIG_PERF_EVENTS": "y",
    "CONFIG_KPROBES": "y",
    "CONFIG_UPROBE_EVENTS": "y",
    "CONFIG_FTRACE_SYSCALLS": "y",
}
ALL_CAPS = "000001ffffffffff"


def bcc_ok() -> tuple[bool, str, str | None]:
    return True, "BCC 0.26.0 from /fake", None


def bcc_missing() -> tuple[bool, str, str | None]:
    return False, "BCC's python module is not installed", "apt install python3-bpfcc"


def write(path: Path, text: str | bytes = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def config_text(config: dict[str, str], off: tuple[str, ...] = ()) -> str:
    lines = ["# Automatically generated file; DO NOT EDIT."]
    lines += [f"{k}={v}" for k, v in config.items()]
    lines += [f"# {k} is not set" for k in off]
    return "\n".join(lines) + "\n"


def make_machine(
    root: Path,
    *,
    headers: str = "real",
    tracefs: bool = True,
    config: dict[str, str] | None = GOOD_CONFIG,
    euid: int = 0,
    cap_eff: str = ALL_CAPS,
) -> Machine:
    """A fake machine: headers is "real", "symlink" (the workaround), "dangling" or "none"."""
    write(root / "proc/self/status", f"Name:\tpython\nCapEff:\t{cap_eff}\n")
    modules = root / "lib/modules"
    if headers == "real":
        (modules / REL / "build").mkdir(parents=True)
    elif headers == "symlink":
        # As on the dev VMs: absolute links, which must be followed inside the fake root.
        (root / "usr/src/linux-headers-6.1.0-9-amd64").mkdir(parents=True)
        (modules / "6.1.0-9-amd64").mkdir(parents=True)
        os.symlink("/usr/src/linux-headers-6.1.0-9-amd64", modules / "6.1.0-9-amd64/build")
        os.symlink("/lib/modules/6.1.0-9-amd64", modules / REL)
    elif headers == "dangling":
        (modules / REL).mkdir(parents=True)
        os.symlink("/usr/src/linux-headers-gone", modules / REL / "build")
    if tracefs:
        (root / "sys/kernel/tracing/events/sched").mkdir(parents=True)
    if config is not None:
        off = tuple(k for k in GOOD_CONFIG if k not in config)
        write(root / "proc/config.gz", gzip.compress(config_text(config, off).encode()))
    return Machine(root=root, release=REL, euid=euid)


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


# --- kernel headers ----------------------------------------------------------------------------


def test_missing_headers_fails_with_setup_fix(tmp_path: Path) -> None:
    check = by_name(run_checks(make_machine(tmp_path, headers="none"), bcc_ok))["kernel headers"]
    assert not check.ok and check.required
    assert f"/lib/modules/{REL}/build" in check.detail
    assert check.fix is not None and "make setup" in check.fix
    assert f"linux-headers-{REL}" in check.fix


def test_symlinked_headers_are_ok_and_named_as_the_workaround(tmp_path: Path) -> None:
    check = by_name(run_checks(make_machine(tmp_path, headers="symlink"), bcc_ok))["kernel headers"]
    assert check.ok
    assert "symlink to /lib/modules/6.1.0-9-amd64" in check.detail
    assert "workaround" in check.detail


def test_build_link_into_another_kernels_headers_is_the_workaround(tmp_path: Path) -> None:
    machine = make_machine(tmp_path, headers="none")
    (tmp_path / "lib/modules/6.1.0-9-amd64/build").mkdir(parents=True)
    (tmp_path / f"lib/modules/{REL}").mkdir(parents=True)  # a real folder, e.g. with modules
    os.symlink("/lib/modules/6.1.0-9-amd64/build", tmp_path / f"lib/modules/{REL}/build")
    check = by_name(run_checks(machine, bcc_ok))["kernel headers"]
    assert check.ok and "headers of kernel 6.1.0-9-amd64" in check.detail
    assert f"/lib/modules/{REL}/build is a symlink" in check.detail


def test_real_headers_are_not_called_a_workaround(tmp_path: Path) -> None:
    check = by_name(run_checks(make_machine(tmp_path), bcc_ok))["kernel headers"]
    assert check.ok and "workaround" not in check.detail


def test_dangling_build_link_is_reported(tmp_path: Path) -> None:
    check = by_name(run_checks(make_machine(tmp_path, headers="dangling"), bcc_ok))[
        "kernel headers"
    ]
    assert not check.ok
    assert "/usr/src/linux-headers-gone" in check.detail


def test_kheaders_archive_counts_as_headers(tmp_path: Path) -> None:
    machine = make_machine(tmp_path, headers="none")
    write(tmp_path / "sys/kernel/kheaders.tar.xz", b"\xfd7zXZ")
    check = by_name(run_checks(machine, bcc_ok))["kernel headers"]
    assert check.ok and "kheaders" in check.detail


# --- tracefs, privileges -----------------------------------------------------------------------


def test_tracefs_missing_fails_with_mount_command(tmp_path: Path) -> None:
    check = by_name(run_checks(make_machine(tmp_path, tracefs=False), bcc_ok))["tracefs"]
    assert not check.ok and check.required
    assert check.fix is not None
    assert "mount -t tracefs nodev /sys/kernel/tracing" in check.fix


def test_tracefs_under_debugfs_is_accepted(tmp_path: Path) -> None:
    machine = make_machine(tmp_path, tracefs=False)
    (tmp_path / "sys/kernel/debug/tracing/events").mkdir(parents=True)
    check = by_name(run_checks(machine, bcc_ok))["tracefs"]
    assert check.ok and "/sys/kernel/debug/tracing" in check.detail


def test_non_root_without_capabilities_is_told_to_use_sudo(tmp_path: Path) -> None:
    machine = make_machine(tmp_path, euid=1000, cap_eff="0000000000000000")
    check = by_name(run_checks(machine, bcc_ok))["privileges"]
    assert not check.ok and check.fix is not None and "sudo" in check.fix


def test_non_root_with_cap_bpf_and_cap_perfmon_is_enough(tmp_path: Path) -> None:
    caps = f"{(1 << 39) | (1 << 38):016x}"
    check = by_name(run_checks(make_machine(tmp_path, euid=1000, cap_eff=caps), bcc_ok))[
        "privileges"
    ]
    assert check.ok and "CAP_BPF" in check.detail


def test_root_without_capabilities_is_not_enough(tmp_path: Path) -> None:
    machine = make_machine(tmp_path, cap_eff="0000000000000000")
    assert not by_name(run_checks(machine, bcc_ok))["privileges"].ok


# --- kernel config -------------------------------------------------------------------------------


def test_kprobes_off_names_the_option_and_the_fallback(tmp_path: Path) -> None:
    config = {k: v for k, v in GOOD_CONFIG.items() if k != "CONFIG_KPROBES"}
    machine = make_machine(tmp_path, config=config)
    check = by_name(run_checks(machine, bcc_ok))["kprobes"]
    assert not check.ok and not check.required
    assert "CONFIG_KPROBES is off" in check.detail
    assert "kprobe/kretprobe probes will fail" in check.detail
    assert "tracepoint" in (check.fix or "")
    assert has_kprobes(machine) is False


def test_kprobes_on(tmp_path: Path) -> None:
    machine = make_machine(tmp_path)
    assert by_name(run_checks(machine, bcc_ok))["kprobes"].ok
    assert has_kprobes(machine) is True


def test_kernel_config_parses_values_and_omits_unset(tmp_path: Path) -> None:
    machine = make_machine(tmp_path, config=None)
    write(
        tmp_path / f"boot/config-{REL}",
        'CONFIG_BPF_SYSCALL=y\nCONFIG_LOCALVERSION="-test"\n# CONFIG_KPROBES is not set\n',
    )
    config = kernel_config(machine)
    assert config == {"CONFIG_BPF_SYSCALL": "y", "CONFIG_LOCALVERSION": "-test"}


def test_bpf_syscall_off_is_a_required_failure(tmp_path: Path) -> None:
    config = {k: v for k, v in GOOD_CONFIG.items() if k != "CONFIG_BPF_SYSCALL"}
    check = by_name(run_checks(make_machine(tmp_path, config=config), bcc_ok))["bpf"]
    assert not check.ok and check.required
    assert "CONFIG_BPF_SYSCALL is off" in check.detail


def test_unreadable_config_is_said_not_failed(tmp_path: Path) -> None:
    checks = by_name(run_checks(make_machine(tmp_path, config=None), bcc_ok))
    assert checks["kernel config"].ok
    assert "cannot read /proc/config.gz" in checks["kernel config"].detail
    assert "bpf" not in checks and "perf events" not in checks
    # Without a config, tracefs still tells whether kprobes exist.
    assert not checks["kprobes"].ok


def test_kprobe_events_file_means_kprobes_without_config(tmp_path: Path) -> None:
    machine = make_machine(tmp_path, config=None)
    write(tmp_path / "sys/kernel/tracing/kprobe_events")
    assert has_kprobes(machine) is True
    assert "kprobes" not in by_name(run_checks(machine, bcc_ok))


# --- require_runnable ----------------------------------------------------------------------------


def test_require_runnable_lists_every_failed_required_check_with_its_fix(tmp_path: Path) -> None:
    config = {k: v for k, v in GOOD_CONFIG.items() if k != "CONFIG_KPROBES"}
    machine = make_machine(tmp_path, headers="none", tracefs=False, config=config)
    with pytest.raises(MachineError) as info:
        require_runnable(machine=machine, bcc=bcc_missing)
    err = info.value
    assert err.exit_code == EXIT_MACHINE == 3
    for name in ("bcc", "kernel headers", "tracefs"):
        assert f"{name}:" in err.message
    assert "privileges" not in err.message
    assert "kprobes" not in err.message  # optional unless asked for
    assert "fix: apt install python3-bpfcc" in err.message
    assert "fix: run `make setup`" in err.message
    assert "fix: mount -t tracefs nodev /sys/kernel/tracing" in err.message
    assert "bpfrun doctor" in (err.hint or "")


def test_require_runnable_adds_the_optional_checks_named_in_needs(tmp_path: Path) -> None:
    config = {k: v for k, v in GOOD_CONFIG.items() if k != "CONFIG_KPROBES"}
    machine = make_machine(tmp_path, config=config)
    require_runnable(machine=machine, bcc=bcc_ok)  # kprobes are not needed: passes
    with pytest.raises(MachineError, match="CONFIG_KPROBES is off"):
        require_runnable({"kprobes"}, machine=machine, bcc=bcc_ok)
    with pytest.raises(ValueError, match="kprobe"):
        require_runnable({"kprobe"}, machine=machine, bcc=bcc_ok)


def test_render_checks_shows_fixes_under_failures(tmp_path: Path) -> None:
    text = render_checks(run_checks(make_machine(tmp_path, tracefs=False), bcc_ok))
    assert "[FAIL] tracefs:" in text
    assert "fix: mount -t tracefs" in text
    assert "[ok  ] privileges: running as root" in text


# --- bccload -------------------------------------------------------------------------------------


@pytest.fixture
def clean_bcc_modules(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Hide any loaded bcc for the test and put it back afterwards."""
    saved = {n: m for n, m in sys.modules.items() if n == "bcc" or n.startswith("bcc.")}
    for name in saved:
        monkeypatch.delitem(sys.modules, name)
    yield
    for name in [n for n in sys.modules if n == "bcc" or n.startswith("bcc.")]:
        del sys.modules[name]
    sys.modules.update(saved)


def fake_real_bcc(directory: Path) -> Path:
    write(directory / "bcc/libbcc.py", "lib = 'fake libbcc'\n")
    write(
        directory / "bcc/__init__.py",
        "from .libbcc import lib\n__version__ = '9.9.9'\nclass BPF:\n    pass\n",
    )
    return directory


def fake_impostor(directory: Path) -> Path:
    write(directory / "bcc/__init__.py", "lattice = True\n")
    return directory


@pytest.mark.usefixtures("clean_bcc_modules")
def test_impostor_is_bypassed_for_the_os_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(fake_impostor(tmp_path / "venv-site")))
    os_dir = fake_real_bcc(tmp_path / "dist-packages")
    module = bccload.import_bcc([os_dir])
    assert module.__version__ == "9.9.9" and hasattr(module, "BPF")
    assert sys.modules["bcc"] is module
    assert sys.modules["bcc.libbcc"].lib == "fake libbcc"  # submodules load from the OS copy
    ok, detail, fix = bccload.bcc_status([os_dir])
    assert ok and detail == f"BCC 9.9.9 from {os_dir / 'bcc'}" and fix is None


@pytest.mark.usefixtures("clean_bcc_modules")
def test_impostor_alone_gives_the_uninstall_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(fake_impostor(tmp_path / "venv-site")))
    with pytest.raises(MachineError) as info:
        bccload.import_bcc([tmp_path / "nothing-here"])
    assert info.value.exit_code == 3
    assert "not iovisor BCC" in info.value.message
    assert info.value.hint is not None and "pip uninstall bcc" in info.value.hint
    assert "bcc" not in sys.modules  # the impostor is not left behind for others to import


@pytest.mark.usefixtures("clean_bcc_modules")
def test_no_bcc_anywhere_gives_the_install_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "path", [p for p in sys.path if not Path(p, "bcc").exists()])
    ok, detail, fix = bccload.bcc_status([tmp_path])
    assert not ok and "not installed" in detail
    assert fix is not None and ("python3-bpfcc" in fix or "python3-bcc" in fix)


@pytest.mark.parametrize(
    ("os_release", "hint"),
    [
        ('ID=debian\nVERSION_ID="12"\n', "apt install python3-bpfcc"),
        ("ID=ubuntu\nID_LIKE=debian\n", "apt install python3-bpfcc"),
        ('ID="rocky"\nID_LIKE="rhel centos fedora"\n', "dnf install python3-bcc"),
    ],
)
def test_install_hint_per_distro(tmp_path: Path, os_release: str, hint: str) -> None:
    assert bccload.install_hint(write(tmp_path / "os-release", os_release)) == hint


# --- the bpf marker's rule (conftest) ----------------------------------------------------------


class _MarkedItem:
    def get_closest_marker(self, name: str) -> pytest.Mark | None:
        return pytest.mark.bpf.mark if name == "bpf" else None


def test_bpf_marker_skips_locally_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest, "bpf_unavailable_reason", lambda: "tracefs: not mounted")
    item = _MarkedItem()
    monkeypatch.delenv("BPFRUN_REQUIRE_BPF", raising=False)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="tracefs: not mounted"):
        conftest.pytest_runtest_setup(item)  # type: ignore[arg-type]
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="tracefs: not mounted"):
        conftest.pytest_runtest_setup(item)  # type: ignore[arg-type]
    monkeypatch.delenv("CI")
    monkeypatch.setenv("BPFRUN_REQUIRE_BPF", "1")
    with pytest.raises(pytest.fail.Exception):
        conftest.pytest_runtest_setup(item)  # type: ignore[arg-type]


# --- symbolizer --------------------------------------------------------------------------------


def test_symbolizer_found_is_described(tmp_path: Path) -> None:
    described = "llvm-symbolizer 14.0.6 (/usr/bin/llvm-symbolizer)"
    checks = by_name(run_checks(make_machine(tmp_path), bcc_ok, lambda: described))
    assert checks["symbolizer"] == Check("symbolizer", True, described, required=False)


def test_missing_symbolizer_warns_with_the_package_to_install(tmp_path: Path) -> None:
    check = by_name(run_checks(make_machine(tmp_path), bcc_ok, lambda: None))["symbolizer"]
    assert not check.ok and not check.required
    assert "function names only, no file:line or inlined frames" in check.detail
    assert check.fix is not None and "apt install llvm-14" in check.fix
    assert "dnf install llvm" in check.fix
    assert check not in failures([check])  # a warning: runs go on without it
