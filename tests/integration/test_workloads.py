"""The C workloads build, honour their options, print sane totals, and never outlive a test."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import workloads
from helpers.workloads import (
    WORKLOADS,
    BuildError,
    Workload,
    WorkloadError,
    build,
    parse_totals,
    run,
)

pytestmark = pytest.mark.timeout(60)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.fixture(scope="module", autouse=True)
def _built() -> None:
    for name in WORKLOADS:
        build(name)


# --- build -----------------------------------------------------------------------------------


def test_every_workload_builds_to_an_executable() -> None:
    for name in WORKLOADS:
        binary = build(name)
        assert binary == workloads.BUILD_DIR / name
        assert os.access(binary, os.X_OK)
        before = binary.stat().st_mtime_ns
        assert build(name).stat().st_mtime_ns == before  # up to date: not rebuilt


def test_every_source_is_listed() -> None:
    sources = {p.stem for p in workloads.WORKLOAD_DIR.glob("*.c")}
    assert sources == set(WORKLOADS)


def test_build_dir_is_ignored_by_git() -> None:
    assert (workloads.BUILD_DIR / ".gitignore").read_text() == "*\n"


@pytest.fixture
def scratch_workloads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(workloads, "WORKLOAD_DIR", tmp_path)
    monkeypatch.setattr(workloads, "BUILD_DIR", tmp_path / "build")
    return tmp_path


def test_build_rebuilds_a_stale_binary(scratch_workloads: Path) -> None:
    source = scratch_workloads / "tiny.c"
    source.write_text("int main(void) { return 0; }\n")
    binary = build("tiny")
    first = binary.stat().st_mtime_ns
    later = first + 5_000_000_000
    os.utime(source, ns=(later, later))
    assert build("tiny").stat().st_mtime_ns > first


def test_build_reports_gcc_errors(scratch_workloads: Path) -> None:
    (scratch_workloads / "broken.c").write_text("int main(void) { return undeclared_name; }\n")
    with pytest.raises(BuildError, match="undeclared_name") as info:
        build("broken")
    assert "-fno-builtin" in str(info.value)  # the command is shown
    assert not (scratch_workloads / "build" / "broken").exists()


def test_build_unknown_workload_names_the_known_ones() -> None:
    with pytest.raises(BuildError, match="no workload named 'nope'.*openat_loop"):
        build("nope")


def test_concurrent_builds_agree(scratch_workloads: Path) -> None:
    (scratch_workloads / "tiny.c").write_text(
        '#include <stdio.h>\nint main(void) { puts("x=1"); return 0; }\n'
    )
    with ThreadPoolExecutor(4) as pool:
        paths = set(pool.map(lambda _: build("tiny"), range(8)))
    assert paths == {scratch_workloads / "build" / "tiny"}
    assert run("tiny", timeout=10) == {"x": "1"}


# --- totals parsing --------------------------------------------------------------------------


def test_parse_totals_takes_the_last_key_value_line() -> None:
    out = "bpfr-arg1 bpfr-arg2\nopens=3 failed=0\n"
    assert parse_totals(out) == {"opens": "3", "failed": "0"}
    with pytest.raises(WorkloadError, match="no key=value"):
        parse_totals("hello world\n")


# --- each workload ---------------------------------------------------------------------------


def test_openat_loop_count_and_thread_name() -> None:
    with Workload("openat_loop", "--count", 50, "--seconds", 1, "--name", "bpfr_t_open") as w:
        assert list(w.thread_names().values()) == ["bpfr_t_open"]
        assert w.wait(10) == {"opens": "50", "failed": "0"}


def test_openat_loop_fail_path_counts_enoent() -> None:
    assert run("openat_loop", "--count", 5, "--fail-path", "--seconds", 0.2) == {
        "opens": "5",
        "failed": "5",
    }
    missing = run("openat_loop", "--count", 3, "--path", "/nonexistent/x", "--seconds", 0.2)
    assert missing == {"opens": "3", "failed": "3"}


def test_openat_loop_is_paced_over_the_window() -> None:
    totals = run("openat_loop", "--rate", 100, "--seconds", 0.5)
    assert 10 <= int(totals["opens"]) <= 60  # ~50: the work is spread, not done at once


def test_wait_signal_holds_the_work_until_start() -> None:
    with Workload("openat_loop", "--seconds", 5, wait_signal=True) as w:
        time.sleep(0.2)
        assert w.stop() == {"opens": "0", "failed": "0"}
    with Workload("openat_loop", "--count", 7, "--seconds", 0.3, wait_signal=True) as w:
        time.sleep(0.4)  # longer than --seconds: the window starts at SIGUSR1
        w.start()
        assert w.wait(10)["opens"] == "7"


def test_runq_contention_same_cpu_names_and_priority() -> None:
    args = ("--same-cpu", "--seconds", 1, "--victim", "bpfr_t_vic", "--hog", "bpfr_t_hog")
    with Workload("runq_contention", *args) as w:
        assert sorted(w.thread_names().values()) == ["bpfr_runq", "bpfr_t_hog", "bpfr_t_vic"]
        totals = w.wait(10)
    assert int(totals["victim_wakeups"]) > 0
    assert int(totals["hog_loops"]) > 0
    assert totals["victim_policy"] in {"idle", "nice19"}


def test_runq_contention_split_runs_at_normal_priority() -> None:
    totals = run("runq_contention", "--split", "--seconds", 0.5)
    assert int(totals["victim_wakeups"]) > 0
    assert totals["victim_policy"] == "normal"


def test_runq_contention_rejects_both_modes() -> None:
    with pytest.raises(WorkloadError, match="exclude each other"):
        Workload("runq_contention", "--same-cpu", "--split")


def test_writer_count_gives_exact_bytes() -> None:
    with Workload("writer", "--count", 10, "--seconds", 1) as w:
        assert sorted(w.thread_names().values()) == ["bpfr_heavy", "bpfr_light", "bpfr_writer"]
        totals = w.wait(10)
    assert totals == {
        "heavy_bytes": "655360",
        "light_bytes": "5120",
        "heavy_writes": "10",
        "light_writes": "10",
    }


def test_writer_to_a_file(tmp_path: Path) -> None:
    target = tmp_path / "out"
    run("writer", "--path", target, "--count", 3, "--heavy-bytes", 100, "--seconds", 0.2)
    assert target.stat().st_size == 3 * 100 + 3 * 512


def test_spin_spends_time_in_hot_and_cold() -> None:
    totals = run("spin", "--seconds", 0.5)
    assert int(totals["loops"]) > 0
    assert 0 < int(totals["cold_loops"]) <= int(totals["loops"])


def test_spin_symbols_are_in_the_binary() -> None:
    data = build("spin").read_bytes()
    for symbol in (b"bpfr_hot_function", b"bpfr_cold_function", b"bpfr_outer"):
        assert symbol in data


def test_leak_totals_are_consistent() -> None:
    totals = run("leak", "--rate", 100, "--seconds", 0.5, "--leak-size", 1000)
    rounds = int(totals["balanced"])
    assert rounds > 0
    assert int(totals["leaks"]) == 3 * rounds
    assert int(totals["leaked_bytes"]) == rounds * (1000 + 2048 + 1536)


def test_execer_runs_children() -> None:
    assert run("execer", "--count", 3, "--seconds", 0.5) == {"execs": "3", "failed": "0"}
    assert run("execer", "--exec", "/nonexistent", "--count", 2, "--seconds", 0.3) == {
        "execs": "2",
        "failed": "2",
    }


def test_execer_child_output_does_not_hide_the_totals() -> None:
    totals = run("execer", "--exec", "/bin/echo", "--count", 2, "--seconds", 0.3)
    assert totals == {"execs": "2", "failed": "0"}


@pytest.mark.parametrize("syscall", ["getppid", "getpid", "read0"])
def test_syscall_loop(syscall: str) -> None:
    totals = run("syscall_loop", "--syscall", syscall, "--seconds", 0.2)
    assert int(totals["calls"]) > 1000
    assert float(totals["rate"]) > 0


def test_syscall_loop_fixed_calls_and_bad_syscall() -> None:
    assert run("syscall_loop", "--calls", 1000)["calls"] == "1000"
    with pytest.raises(WorkloadError, match="unknown --syscall 'open'"):
        Workload("syscall_loop", "--syscall", "open")


def test_pingpong_round_trips() -> None:
    totals = run("pingpong", "--round-trips", 1000)
    assert totals["round_trips"] == "1000"
    assert float(totals["rate"]) > 0 and float(totals["seconds"]) > 0


def test_pingpong_child_is_named_and_reaped() -> None:
    with Workload("pingpong", "--seconds", 0.5) as w:
        pids = w.group_pids()
        assert len(pids) == 2
        child = next(p for p in pids if p != w.pid)
        assert Path(f"/proc/{child}/comm").read_text().strip() == "bpfr_pong"
        assert int(w.wait(10)["round_trips"]) > 0
    assert not _alive(child)


# --- common behaviour ------------------------------------------------------------------------


def test_sigterm_ends_an_unbounded_run_cleanly() -> None:
    with Workload("spin", "--seconds", 0) as w:
        time.sleep(0.2)
        totals = w.stop()
        assert w.returncode == 0
    assert int(totals["loops"]) > 0


def test_sigint_also_ends_it() -> None:
    with Workload("openat_loop", "--seconds", 0) as w:
        os.kill(w.pid, signal.SIGINT)
        assert "opens" in w.wait(5)


def test_bad_arguments_are_reported() -> None:
    with pytest.raises(WorkloadError, match="unknown argument '--bogus'"):
        Workload("spin", "--bogus")
    with pytest.raises(WorkloadError, match="1-15 characters"):
        Workload("spin", "--name", "a_name_that_is_too_long")


def test_no_process_survives_a_failing_test() -> None:
    with pytest.raises(RuntimeError), Workload("pingpong", "--seconds", 0) as w:
        pids = w.group_pids()
        raise RuntimeError("the test failed")
    assert len(pids) == 2
    assert not any(_alive(p) for p in pids)


def test_no_process_survives_without_a_with_block() -> None:
    w = Workload("execer", "--seconds", 0)
    pid = w.pid
    del w  # the finalizer kills the group when the object goes away
    assert not _alive(pid)
