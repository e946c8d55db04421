"""Root's snapshot of the tracepoint formats (issue #13): written by a kernel that reads
tracefs, read back identical by one that cannot, ignored for another kernel build, and
`compile` without either refuses rather than emit C that cannot compile.

The "machine" is a temporary folder: a tracefs tree made from tests/fixtures/tracefs, a
/proc/version and a BTF file, whose identity the cache is keyed by.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest
from helpers.paths import FIXTURES
from typer.testing import CliRunner

import bpfrun.cli
import bpfrun.cli.check
from bpfrun.frontend.runbooks import shipped_runbooks
from bpfrun.kernel import kernelcache
from bpfrun.kernel.kernelcache import CACHE_ENV, KernelCache, events_digest, snapshot_of
from bpfrun.kernel.tracefs import Kernel, LiveKernel, UnreadableKernel

RELEASE = "6.18.0-test"
KALLSYMS = ("ffffffff8139bb30 T __traceiter_sched_switch\n"
            "ffffffff8139c330 T __traceiter_pelt_cfs_tp\n")


def make_machine(root: Path) -> Path:
    """A machine folder with tracefs at sys/kernel/tracing; returns the tracefs root."""
    tracing = root / "sys/kernel/tracing"
    shutil.copytree(FIXTURES / "tracefs" / "events", tracing / "events")
    events = sorted(f"{p.parent.parent.name}:{p.parent.name}"
                    for p in (tracing / "events").glob("*/*/format"))
    (tracing / "available_events").write_text("".join(f"{e}\n" for e in events))
    (tracing / "kprobe_events").write_text("")
    (tracing / "dynamic_events").write_text("p:kprobes/kp_open do_sys_openat2\n")
    (tracing / "available_filter_functions").write_text("vfs_read\nvfs_write\n")
    (root / "proc").mkdir()
    (root / "proc/version").write_text("Linux version 6.18.0-test (ci@test) #1 SMP\n")
    (root / "proc/kallsyms").write_text(KALLSYMS)
    (root / "sys/kernel/btf").mkdir(parents=True)
    (root / "sys/kernel/btf/vmlinux").write_bytes(b"BTF one build")
    return tracing


@pytest.fixture
def machine(tmp_path: Path) -> Path:
    root = tmp_path / "machine"
    make_machine(root)
    return root


def cache_of(machine: Path, folder: Path) -> KernelCache:
    return KernelCache(folder, machine, RELEASE)


def live(machine: Path, cache: KernelCache) -> LiveKernel:
    return LiveKernel(machine / "sys/kernel/tracing", kallsyms=machine / "proc/kallsyms",
                      cache=cache)


def blind(machine: Path, cache: KernelCache) -> LiveKernel:
    """The same machine seen by a user who cannot read tracefs."""
    return LiveKernel(machine / "no-tracefs", kallsyms=machine / "no-kallsyms", cache=cache)


def answers(k: Kernel) -> dict[str, object]:
    """Everything a kernel answers that the compiler may ask."""
    names = k.tracepoints()
    return {
        "readable": k.readable(), "names": names,
        "formats": [k.tracepoint(*n.split(":", 1)) for n in names],
        "kprobes": k.kprobes_available(), "functions": k.kprobe_functions(),
        "raw": k.raw_tracepoints(),
        "raw_exists": [k.raw_tracepoint_exists(e) for e in
                       ("sched_switch", "pelt_cfs_tp", "kp_open", "irq_handler_entry", "nope")],
    }


def test_snapshot_is_written_world_readable_and_read_back_identical(machine: Path,
                                                                     tmp_path: Path) -> None:
    cache = cache_of(machine, tmp_path / "var/cache/bpfrun/kernel")
    root = live(machine, cache)
    assert cache.status() == "missing"
    assert root.tracepoint("sched", "sched_switch") is not None  # the first read saves it
    assert cache.status() == "present" and cache.path.name == f"{RELEASE}.json"
    assert stat.S_IMODE(cache.path.stat().st_mode) == 0o644
    assert stat.S_IMODE(cache.folder.stat().st_mode) == 0o755
    assert [p.name for p in cache.folder.iterdir()] == [cache.path.name]  # no temp file left
    tracing = machine / "sys/kernel/tracing"
    assert cache.load() == snapshot_of(tracing, root.tracepoints(), root.raw_tracepoints())

    user = blind(machine, cache)
    assert user.snapshot is not None and not user.live
    assert answers(user) == answers(live(machine, cache))
    assert user.tracepoint("sched", "sched_switch") == root.tracepoint("sched", "sched_switch")
    assert user.kprobe_functions() == ["vfs_read", "vfs_write"]
    assert user.raw_tracepoints() == ["pelt_cfs_tp", "sched_switch"]  # kallsyms, as root saw


def test_a_current_snapshot_is_kept_and_a_new_event_rewrites_it(machine: Path,
                                                                 tmp_path: Path) -> None:
    cache = cache_of(machine, tmp_path / "cache")
    assert live(machine, cache).remember(force=False)
    assert not live(machine, cache).remember(force=False)  # current: not written again
    events = machine / "sys/kernel/tracing/available_events"
    events.write_text(events.read_text() + "kprobes:kp_open\n")  # a tool's probe: ignored
    assert not live(machine, cache).remember(force=False)
    events.write_text(events.read_text() + "mymod:my_event\n")  # a module came
    assert live(machine, cache).remember(force=False)
    assert "mymod:my_event" in blind(machine, cache).tracepoints()
    assert events_digest(["a:b", "kprobes:x"]) == events_digest(["a:b"])


def test_another_build_of_the_same_release_is_not_used(machine: Path, tmp_path: Path) -> None:
    cache = cache_of(machine, tmp_path / "cache")
    live(machine, cache).remember()
    (machine / "sys/kernel/btf/vmlinux").write_bytes(b"BTF another build")
    assert cache.status() == "stale" and cache.load() is None
    assert "another kernel build's" in cache.describe()
    user = blind(machine, cache)
    assert not user.readable() and user.tracepoints() == []
    live(machine, cache).remember()
    (machine / "proc/version").write_text("Linux version 6.18.0-test (ci@test) #2 SMP\n")
    assert cache.status() == "stale" and not blind(machine, cache).readable()
    other = KernelCache(cache.folder, machine, "6.19.0-test")  # another release: another file
    assert other.status() == "missing" and "there is no kernel cache" in other.describe()


def test_damaged_oversized_and_linked_snapshots_are_ignored(machine: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    cache = cache_of(machine, tmp_path / "cache")
    live(machine, cache).remember()
    text = cache.path.read_text()
    monkeypatch.setattr(kernelcache, "MAX_BYTES", 1000)
    assert cache.load() is None
    monkeypatch.undo()
    cache.path.write_text(text.split("\n")[0] + "\n{not json")
    assert cache.load() is None and not blind(machine, cache).readable()
    cache.path.write_text("garbage")
    assert cache.status() == "stale"
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(text)
    cache.path.unlink()
    cache.path.symlink_to(elsewhere)
    assert cache.load() is None  # never read through a symlink
    live(machine, cache).remember()  # the link is replaced, its target left alone
    assert not cache.path.is_symlink() and elsewhere.read_text() == text


def test_the_folder_is_never_a_symlink_nor_writable_by_others(machine: Path,
                                                             tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(NotADirectoryError):
        live(machine, cache_of(machine, tmp_path / "link")).remember()
    assert list(target.iterdir()) == []
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(PermissionError):
        live(machine, cache_of(machine, shared)).remember()
    # The automatic save of a first read never raises: the read still answers.
    assert live(machine, cache_of(machine, shared)).tracepoint("sched", "sched_switch")


def test_without_a_cache_nothing_changes(machine: Path, tmp_path: Path) -> None:
    k = LiveKernel(machine / "sys/kernel/tracing", kallsyms=machine / "proc/kallsyms")
    assert k.tracepoint("sched", "sched_switch") is not None and not k.remember()
    assert not LiveKernel(machine / "absent").readable()


# --- compile and validate through the CLI -----------------------------------------------------


def run_cli(monkeypatch: pytest.MonkeyPatch, kernel: Kernel, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(bpfrun.cli.check, "default_kernel", lambda: kernel)
    result = CliRunner().invoke(bpfrun.cli.app, list(args))
    assert "internal error" not in result.stderr, result.stderr
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("path", shipped_runbooks(), ids=lambda p: p.stem)
def test_compile_from_the_snapshot_emits_roots_c(path: Path, machine: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    cache = cache_of(machine, tmp_path / "cache")
    monkeypatch.setenv(CACHE_ENV, str(cache.folder))
    code, root_c, _ = run_cli(monkeypatch, live(machine, cache), "compile", str(path))
    assert cache.status() == "present" or "tracepoint:" not in path.read_text()
    user = blind(machine, cache)
    assert user.readable() or cache.status() == "missing"
    assert run_cli(monkeypatch, user, "compile", str(path))[:2] == (code, root_c)


def test_runq_latency_from_the_snapshot_has_its_records(machine: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    cache = cache_of(machine, tmp_path / "cache")
    live(machine, cache).remember()
    code, c, stderr = run_cli(monkeypatch, blind(machine, cache), "compile", "runq-latency")
    assert code == 0, stderr
    assert "struct bpfrun_tp_sched_sched_switch {" in c and "not readable" not in stderr


def test_compile_without_tracefs_or_snapshot_refuses_clearly(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    code, c, stderr = run_cli(monkeypatch, UnreadableKernel(), "compile", "runq-latency")
    assert code == 3 and c == ""
    assert "cannot compile without this kernel's tracepoint formats" in stderr
    assert f"there is no kernel cache {tmp_path}/cache/" in stderr
    # Every probe at once, each once.
    assert stderr.count("  step runq: tracepoint:sched:sched_wakeup") == 1
    assert "  step offcpu: tracepoint:sched:sched_switch" in stderr
    assert "hint: run `sudo bpfrun doctor` once" in stderr


def test_compile_of_probes_that_need_no_tracefs_still_works(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    runbook = tmp_path / "p.yaml"
    runbook.write_text("apiVersion: bpfrun/v1\nname: p\ntitle: P\nsteps:\n  - id: s\n"
                       "    probes:\n      - probe: profile:hz:99\n"
                       "        aggregate: [{id: c, count: true}]\n")
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    code, c, stderr = run_cli(monkeypatch, UnreadableKernel(), "compile", str(runbook))
    assert code == 0 and "int " in c
    assert "tracefs is not readable" in stderr


def test_validate_without_tracefs_or_snapshot_says_how_to_get_the_checks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    code, out, stderr = run_cli(monkeypatch, UnreadableKernel(), "validate", "runq-latency",
                                "syscalls")
    assert code == 0 and out.count(": ok") == 2
    assert stderr.count("note: kernel checks were skipped") == 1
    assert "run `sudo bpfrun doctor` once" in stderr


def test_the_default_cache_folder_follows_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert KernelCache.default().folder == tmp_path
    monkeypatch.delenv(CACHE_ENV)
    assert KernelCache.default().folder == Path("/var/cache/bpfrun/kernel")
    assert KernelCache.default().path.name == os.uname().release + ".json"
