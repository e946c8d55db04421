"""The runbook language against the real kernel: one probe kind or feature per test, each
asserting on numbers a workload makes known (bytes written, events emitted, the function
that allocates)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from helpers.paths import REPO
from helpers.workloads import Workload

REPO = REPO
pytestmark = pytest.mark.bpf

HEADER = "apiVersion: bpfrun/v1\nname: t\ntitle: T\n"


def run_runbook(tmp_path: Path, body: str, *args: str, workload: Workload | None = None,
                expect_code: tuple[int, ...] = (0, 1)) -> dict[str, Any]:
    """Write a runbook, run it, start the (waiting) workload once probes are attached."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    rb = tmp_path / "t.yaml"
    rb.write_text(HEADER + textwrap.dedent(body))
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "bpfrun", "run", str(rb), "-o", str(out),
                             *args], cwd=REPO, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stderr is not None
    log = []
    if workload is not None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            log.append(line)
            if not line or ": attached" in line:
                break
        workload.start()
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode in expect_code, "".join(log) + err
    result: dict[str, Any] = json.loads((out / "result.json").read_text())
    return result


def step(result: dict[str, Any], index: int = 0) -> dict[str, Any]:
    s: dict[str, Any] = result["steps"][index]
    assert s["status"] == "ran", s["reason"]
    return s


@pytest.mark.parametrize("storage", ["task", "hash"])
def test_span_over_write_sums_the_bytes_the_workload_wrote(
        tmp_path: Path, storage: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BPFRUN_SPAN_STORAGE", storage)  # tid spans: task storage or a hash
    with Workload("writer", "--count", "20", "--rate", "200", "--seconds", "30",
                  wait_signal=True) as w:
        result = run_runbook(tmp_path, """
            steps:
              - id: w
                duration: 3s
                span:
                  begin: {probe: tracepoint:syscalls:sys_enter_write, key: tid,
                          where: comm == "bpfr_heavy"}
                  end: {probe: tracepoint:syscalls:sys_exit_write, key: tid}
                  aggregate:
                    - {id: bytes, sum: begin.args.count, by: [comm]}
                    - {id: written, sum: args.ret}
                    - {id: lat, stats: duration}
            """, workload=w)
        totals = w.stop()
    s = step(result)
    rows = s["aggregations"]["bytes"]["rows"]
    assert rows == [{"key": {"comm": "bpfr_heavy"}, "value": int(totals["heavy_bytes"])}]
    assert s["aggregations"]["written"]["rows"][0]["value"] == int(totals["heavy_bytes"])
    assert s["aggregations"]["lat"]["rows"][0]["value"]["count"] == 20


@pytest.mark.parametrize("buffer", ["ringbuf", "perf"])
def test_emit_limit_keeps_the_first_rows_and_counts_the_rest(
        tmp_path: Path, buffer: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BPFRUN_EVENT_BUFFER", buffer)
    with Workload("openat_loop", "--count", "200", "--rate", "1000", "--seconds", "30",
                  "--name", "bpfr_lim", "--path", "/etc/hostname", wait_signal=True) as w:
        result = run_runbook(tmp_path, """
            steps:
              - id: e
                duration: 3s
                probes:
                  - probe: tracepoint:syscalls:sys_enter_openat
                    id: opens
                    where: comm == "bpfr_lim"
                    emit: [pid, comm, str(args.filename)]
                    limit: 50
            """, workload=w)
    events = step(result)["events"][0]
    assert len(events["rows"]) == 50
    assert events["dropped"] == 150
    assert events["rows"][0]["str(args.filename)"] == "/etc/hostname"
    assert events["rows"][0]["comm"] == "bpfr_lim"


def test_uprobe_on_malloc_attributes_bytes_to_the_calling_function(tmp_path: Path) -> None:
    with Workload("leak", "--seconds", "30", wait_signal=True) as w:
        result = run_runbook(tmp_path, f"""
            steps:
              - id: m
                duration: 3s
                probes:
                  - probe: uprobe:libc:malloc
                    where: pid == {w.pid}
                    aggregate:
                      - {{id: by_stack, sum: arg0, by: [ustack], top: 10, unit: bytes}}
              - id: r
                duration: 2s
                probes:
                  - probe: uretprobe:libc:malloc
                    where: pid == {w.pid} && retval != 0
                    aggregate: [{{id: ok, count: true}}]
            """, workload=w)
    rows = step(result)["aggregations"]["by_stack"]["rows"]
    frames = [f for r in rows for f in r["key"]["ustack"]]
    by_caller = {}
    for r in rows:
        callers = [f for f in r["key"]["ustack"] if f.startswith(("leaky_", "balanced_"))]
        if callers:
            by_caller[callers[0].split(" ")[0]] = r["value"]
    assert "leaky_alloc" in by_caller, frames[:20]
    assert by_caller["leaky_alloc"] % 4096 == 0  # leak.c's leaky_alloc: 4096 bytes a call
    assert by_caller.get("balanced_alloc", 0) % 1024 == 0
    assert step(result, 1)["aggregations"]["ok"]["rows"][0]["value"] > 0


def sample_user_stacks(tmp_path: Path, w: Workload, probe: str, top: int = 5) -> dict[str, Any]:
    """One 3 s step counting the samples of `probe` in workload w by user stack: the step."""
    result = run_runbook(tmp_path, f"""
        steps:
          - id: p
            duration: 3s
            probes:
              - probe: {probe}
                where: pid == {w.pid}
                aggregate: [{{id: samples, count: true, by: [ustack], top: {top}}}]
        """, workload=w)
    return step(result)


def test_profile_finds_the_hot_function_in_user_stacks(tmp_path: Path) -> None:
    with Workload("spin", "--seconds", "30", wait_signal=True) as w:
        rows = sample_user_stacks(tmp_path, w, "profile:hz:99")["aggregations"]["samples"]["rows"]
    top = rows[0]["key"]["ustack"]
    assert top[0].startswith("bpfr_hot_function"), top
    assert sum(r["value"] for r in rows) > 100  # ~99 Hz for 3 s on one busy thread


def test_software_cpu_clock_samples_the_busy_thread(tmp_path: Path) -> None:
    # Perf-event programs are compiled against a declared-only struct bpf_perf_event_data
    # (no uapi header); this checks such a program loads, attaches and walks stacks.
    with Workload("spin", "--seconds", "30", wait_signal=True) as w:
        s = sample_user_stacks(tmp_path, w, "software:cpu-clock:1000000")
    rows = s["aggregations"]["samples"]["rows"]
    assert rows[0]["key"]["ustack"][0].startswith("bpfr_hot_function"), rows[0]
    assert sum(r["value"] for r in rows) > 300  # one sample per ms of CPU, ~3000 if unloaded


def test_profile_walks_kernel_stacks_only_for_samples_in_the_kernel(tmp_path: Path) -> None:
    # Samples in user mode skip the kernel walk (x86-64 reads the CPL from the registers);
    # those that interrupt a system call must still have its kernel stack.
    with Workload("syscall_loop", "--seconds", "30", wait_signal=True) as w:
        result = run_runbook(tmp_path, f"""
            steps:
              - id: p
                duration: 3s
                probes:
                  - probe: profile:hz:999
                    where: pid == {w.pid}
                    aggregate: [{{id: k, count: true, by: [kstack], top: 50}}]
            """, workload=w)
    rows = step(result)["aggregations"]["k"]["rows"]
    in_kernel = sum(r["value"] for r in rows if r["key"]["kstack"])
    in_user = sum(r["value"] for r in rows if not r["key"]["kstack"])
    assert in_kernel > 100 and in_user > 100, (in_kernel, in_user)
    frames = {f for r in rows for f in r["key"]["kstack"]}
    assert any("syscall" in f for f in frames), sorted(frames)[:30]
    assert "[lost stack]" not in frames


@pytest.mark.parametrize("buffer", ["ringbuf", "perf"])
def test_user_stacks_of_a_process_that_exited_are_symbolized(
        tmp_path: Path, buffer: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # BCC reads a process's memory map when it first symbolizes for it; at the end of the
    # step this one is gone. bpfrun hears of each new user stack's process at once.
    monkeypatch.setenv("BPFRUN_EVENT_BUFFER", buffer)
    with Workload("spin", "--seconds", "1", wait_signal=True) as w:
        s = sample_user_stacks(tmp_path, w, "profile:hz:99")
        assert int(w.wait(timeout=1)["loops"]) > 0  # done after 1 s of a 3 s step
    rows = s["aggregations"]["samples"]["rows"]
    assert rows[0]["key"]["ustack"][:2] == ["bpfr_hot_function [spin]", "bpfr_outer [spin]"], rows


def test_thousands_of_distinct_stacks_are_all_kept(tmp_path: Path) -> None:
    # A BPF_STACK_TRACE map of 16,384 buckets lost ~10% of these samples to bucket
    # collisions (-EEXIST); stacks kept in a hash map by their hash lose none.
    with Workload("stacks", "--stacks", "4096", "--seconds", "30", wait_signal=True) as w:
        s = sample_user_stacks(tmp_path, w, "software:cpu-clock:200000", top=10)
    agg = s["aggregations"]["samples"]
    assert s["lost"]["stacks"] == 0
    assert agg["total_rows"] > 1000  # ~5,000 samples over 4,096 paths
    paths = [r["key"]["ustack"] for r in agg["rows"] if r["key"]["ustack"][0].startswith("sb_")]
    assert paths, agg["rows"]
    frames = paths[0]
    assert frames[0].startswith("sb_work") and len(frames) >= 26, frames
    assert {f.split(" ")[0] for f in frames[1:25]} <= {
        f"sb_{d}{suffix}" for d in range(13) for suffix in ("", "_a", "_b")}, frames


def test_raw_tracepoint_and_fallback_from_kprobe(tmp_path: Path) -> None:
    with Workload("openat_loop", "--count", "100", "--rate", "500", "--seconds", "30",
                  "--name", "bpfr_raw", wait_signal=True) as w:
        result = run_runbook(tmp_path, """
            steps:
              - id: raw
                duration: 3s
                probes:
                  - probe: rawtracepoint:sys_enter
                    where: comm == "bpfr_raw" && arg1 == 257
                    aggregate: [{id: openat, count: true}]
                  - probe: kprobe:do_sys_openat2
                    fallbacks: [tracepoint:syscalls:sys_enter_openat]
                    where: comm == "bpfr_raw"
                    aggregate: [{id: fallback, count: true}]
            """, workload=w)
    s = step(result)
    assert s["aggregations"]["openat"]["rows"][0]["value"] == 100
    assert s["aggregations"]["fallback"]["rows"][0]["value"] == 100
    assert s["fallbacks"] == {"kprobe:do_sys_openat2": "tracepoint:syscalls:sys_enter_openat"}


def test_hist_lhist_and_stats_of_a_known_distribution(tmp_path: Path) -> None:
    with Workload("writer", "--count", "30", "--rate", "300", "--seconds", "30",
                  wait_signal=True) as w:
        result = run_runbook(tmp_path, """
            steps:
              - id: h
                duration: 3s
                probes:
                  - probe: tracepoint:syscalls:sys_enter_write
                    where: comm == "bpfr_heavy" || comm == "bpfr_light"
                    aggregate:
                      - {id: sizes, hist: args.count, unit: bytes, by: [comm]}
                      - {id: linear, lhist: args.count, min: 0, max: 65536, step: 16384}
                      - {id: biggest, max: args.count, unit: bytes}
                      - {id: avg, avg: args.count, by: [comm]}
                thresholds:
                  - id: big
                    when: biggest.value >= 64KiB
                    message: "largest write ${{ biggest.value }}"
            """, workload=w)
    s = step(result)
    sizes = {r["key"]["comm"]: r["value"] for r in s["aggregations"]["sizes"]["rows"]}
    assert sizes["bpfr_heavy"]["count"] == 30 and sizes["bpfr_light"]["count"] == 30
    assert sizes["bpfr_heavy"]["buckets"] == [{"low": 65536, "high": 131072, "count": 30}]
    assert sizes["bpfr_light"]["p99"] == 512  # upper bound capped by the exact max
    linear = s["aggregations"]["linear"]["rows"][0]["value"]["buckets"]
    assert {"low": 0, "high": 16384, "count": 30} in linear
    assert {"low": 65536, "high": None, "count": 30} in linear
    assert s["aggregations"]["biggest"]["rows"][0]["value"] == 65536
    assert s["thresholds"]["big"] == {"fired": True, "severity": "warning",
                                      "message": "largest write 64KiB",
                                      "message_markdown": "largest write 64KiB",
                                      "when": "biggest.value >= 64KiB"}
    avg = {r["key"]["comm"]: r["value"] for r in s["aggregations"]["avg"]["rows"]}
    assert avg == {"bpfr_heavy": 65536, "bpfr_light": 512}


def test_usdt_probe_reads_its_arguments(tmp_path: Path) -> None:
    from helpers.workloads import build

    binary = build("usdt_app")
    with Workload("usdt_app", "--count", "40", "--rate", "200", "--seconds", "30",
                  wait_signal=True) as w:
        result = run_runbook(tmp_path, f"""
            steps:
              - id: u
                duration: 3s
                probes:
                  - probe: usdt:{binary}:bpfr:request
                    aggregate:
                      - {{id: reqs, count: true}}
                      - {{id: bytes, sum: arg1, unit: bytes}}
            """, workload=w)
        totals = w.stop()
    s = step(result)
    assert s["aggregations"]["reqs"]["rows"][0]["value"] == 40
    assert s["aggregations"]["bytes"]["rows"][0]["value"] == int(totals["bytes"])


def test_interval_records_the_aggregations_over_time(tmp_path: Path) -> None:
    with Workload("openat_loop", "--rate", "200", "--seconds", "30", "--name", "bpfr_tick",
                  wait_signal=True) as w:
        result = run_runbook(tmp_path, """
            steps:
              - id: i
                duration: 3500ms
                probes:
                  - probe: tracepoint:syscalls:sys_enter_openat
                    where: comm == "bpfr_tick"
                    aggregate: [{id: opens, count: true}]
                  - probe: interval:s:1
            """, workload=w)
    s = step(result)
    points = s["series"]["points"]
    assert [round(p["t"]) for p in points] == [1, 2, 3]
    assert all(p["opens"] > 0 for p in points[1:])  # the workload opens all the time
    assert sum(p["opens"] for p in points) <= s["aggregations"]["opens"]["rows"][0]["value"]


def test_stop_after_ends_the_step_once_enough_hits_arrived(tmp_path: Path) -> None:
    with Workload("openat_loop", "--rate", "500", "--seconds", "60", "--name", "bpfr_stop",
                  wait_signal=True) as w:
        result = run_runbook(tmp_path, """
            steps:
              - id: s
                duration: 30s
                stop_after: 100
                probes:
                  - probe: tracepoint:syscalls:sys_enter_openat
                    where: comm == "bpfr_stop"
                    aggregate: [{id: opens, count: true}]
            """, workload=w)
    s = step(result)
    assert s["seconds"] < 15  # not the 30 s asked for
    assert s["aggregations"]["opens"]["rows"][0]["value"] >= 100


def test_signed_fields_keep_their_sign_as_keys(tmp_path: Path) -> None:
    with Workload("openat_loop", "--count", "20", "--rate", "200", "--seconds", "30",
                  "--fail-path", "--name", "bpfr_errno", wait_signal=True) as w:
        result = run_runbook(tmp_path, """
            steps:
              - id: e
                duration: 3s
                probes:
                  - probe: tracepoint:syscalls:sys_exit_openat
                    where: comm == "bpfr_errno" && args.ret < 0
                    aggregate: [{id: errors, count: true, by: [args.ret]}]
            """, workload=w)
    rows = step(result)["aggregations"]["errors"]["rows"]
    assert rows == [{"key": {"args.ret": -2}, "value": 20}]  # ENOENT, not 2**64 - 2


def test_pending_begins_and_entry_arguments_find_unfreed_memory(tmp_path: Path) -> None:
    with Workload("leak", "--seconds", "30", wait_signal=True) as w:
        result = run_runbook(tmp_path, f"""
            steps:
              - id: m
                duration: 3s
                span:
                  begin: {{probe: "uretprobe:libc:malloc", key: retval,
                          where: pid == {w.pid} && retval != 0}}
                  end: {{probe: "uprobe:libc:free", key: arg0, where: pid == {w.pid}}}
                  aggregate: [{{id: freed, count: true, by: [begin.ustack]}}]
                  pending:
                    - {{id: unfreed, sum: begin.entry.arg0, by: [begin.ustack], unit: bytes}}
            """, workload=w)
    s = step(result)
    unfreed = {r["key"]["begin.ustack"][0].split(" ")[0]: r["value"]
               for r in s["aggregations"]["unfreed"]["rows"]}
    assert unfreed["leaky_alloc"] > 0 and unfreed["leaky_alloc"] % 4096 == 0
    assert "balanced_alloc" not in unfreed  # its blocks are freed
    freed = {r["key"]["begin.ustack"][0].split(" ")[0] for r in s["aggregations"]["freed"]["rows"]}
    assert "balanced_alloc" in freed


def test_long_string_comparisons_load_and_match_exactly(tmp_path: Path) -> None:
    # clang merges 16 or more byte comparisons of adjacent memory into a bcmp call, which a
    # BPF program cannot make: a 15-character comm (15 bytes and the terminator) or a path of
    # 15+ characters failed to load ("Argument list too long") until the chain was split.
    name = "bpfr_fifteen_ch"  # 15 characters: the longest comm
    with Workload("syscall_loop", "--syscall", "getppid", "--calls", "300", "--name", name,
                  "--seconds", "30", wait_signal=True) as loop:
        result = run_runbook(tmp_path / "comm", """
            steps:
              - id: s
                duration: 3s
                probes:
                  - probe: rawtracepoint:sys_enter
                    where: comm == "bpfr_fifteen_ch" && arg1 == syscall_nr("getppid")
                    aggregate: [{id: calls, count: true}]
            """, workload=loop)
        assert loop.stop()["calls"] == "300"
    assert step(result)["aggregations"]["calls"]["rows"][0]["value"] == 300
    path = "/usr/lib/os-release"  # 19 characters
    with Workload("openat_loop", "--path", path, "--count", "40", "--rate", "400",
                  "--seconds", "30", wait_signal=True) as opener:
        result = run_runbook(tmp_path / "path", f"""
            steps:
              - id: s
                duration: 3s
                probes:
                  - probe: tracepoint:syscalls:sys_enter_openat
                    where: pid == {opener.pid} && str(args.filename) == "{path}"
                    aggregate: [{{id: opens, count: true}}]
            """, workload=opener)
    assert step(result)["aggregations"]["opens"]["rows"][0]["value"] == 40
