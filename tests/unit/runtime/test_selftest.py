"""`bpfrun test`: comparing results with `expect`, finding and building workloads, and real runs."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from helpers.runbooks import expect_of, selftest_of, write_runbook

from bpfrun.errors import UsageError, ValidationError
from bpfrun.frontend.runbooks import load_runbook
from bpfrun.result import (
    AggregationResult,
    AggregationRow,
    EventsResult,
    Host,
    RunbookInfo,
    RunResult,
    StepResult,
    StepStatus,
    ThresholdResult,
)
from bpfrun.runtime.selftest import (
    SelftestResult,
    build_workload,
    collect,
    compare,
    default_root,
    exit_code,
    render_result,
    resolve_workload,
    run_selftest,
    summary,
)

WORKLOAD_H = '#include <stdio.h>\n#define GREETING "hello"\n'
WORKLOAD_C = '#include "workload.h"\nint main(void) { puts(GREETING); return 0; }\n'


def step(sid: str, status: StepStatus = "ran", reason: str | None = None, **parts: Any
         ) -> StepResult:
    return StepResult(sid, sid, None, status, reason, **parts)


def threshold(fired: bool | None, message: str) -> ThresholdResult:
    return ThresholdResult(fired, "warning", message, "x")


def count_by(keys: tuple[str, ...], *rows: tuple[dict[str, Any], int]) -> AggregationResult:
    return AggregationResult("count", keys, None, None, len(rows),
                             tuple(AggregationRow(key, value) for key, value in rows))


def run_result(*steps: StepResult) -> RunResult:
    return RunResult(RunbookInfo("t", "t.yaml", "T", ""), Host("h", "6.1.0"), "0.1",
                     "2025-01-01T00:00:00Z", "2025-01-01T00:00:05Z", {}, "clean", 0,
                     steps=steps)


SKIP_REASON = "steps.runq.quiet is false; steps.runq.quiet did not fire: 1 wakeups"
RESULT = run_result(
    step("runq",
         thresholds={"slow": threshold(True, "p99 run-queue latency is 8.19ms (limit 1ms)"),
                     "quiet": threshold(False, "1 wakeups"),
                     "empty": threshold(None, "no samples")},
         captures={"culprit": "hog_thread", "n": 5, "p99": "8.19ms", "gone": None},
         aggregations={"slow_by": count_by(("comm",), ({"comm": "a"}, 3), ({"comm": "b"}, 1)),
                       "none": count_by(())},
         events=(EventsResult("tracepoint:a:b", "execs", ("x",), ({"x": 1},), 0, 1),)),
    step("offcpu", "skipped", SKIP_REASON),
)


# --- compare ----------------------------------------------------------------------------------

def test_compare_all_expectations_holding_gives_no_mismatch() -> None:
    expect = {"fired": ["runq.slow"], "not_fired": ["runq.quiet", "runq.empty"],
              "captures": {"runq.culprit": "hog_thread", "runq.n": 5, "runq.p99": "8.19ms",
                           "runq.gone": None},
              "steps": {"runq": "ran", "offcpu": "skipped"},
              "rows": {"runq.slow_by": {"min": 2}, "runq.none": {"min": 0},
                       "runq.execs": {"min": 1}}}
    assert compare(expect_of(expect), RESULT) == []


def test_compare_threshold_mismatches_say_why() -> None:
    expect = {"fired": ["runq.quiet", "runq.empty"], "not_fired": ["runq.slow"]}
    assert compare(expect_of(expect), RESULT) == [
        "runq.quiet: expected fired, but it did not fire (1 wakeups)",
        "runq.empty: expected fired, but it had no data (no samples)",
        "runq.slow: expected not to fire, but it fired "
        "(p99 run-queue latency is 8.19ms (limit 1ms))",
    ]


def test_compare_fired_in_a_skipped_step_gives_the_skip_reason() -> None:
    result = run_result(step("offcpu", "skipped", "steps.runq.slow is false"))
    assert compare(expect_of({"fired": ["offcpu.deep"]}), result) == [
        "offcpu.deep: expected fired, but step offcpu was skipped (steps.runq.slow is false)"]


def test_compare_captures_compare_display_strings() -> None:
    # YAML 5 and "5" are the same capture; so are 5 and 5.0.
    assert compare(expect_of({"captures": {"runq.n": "5"}}), RESULT) == []
    assert compare(expect_of({"captures": {"runq.n": 5.0}}), RESULT) == []
    assert compare(expect_of({"captures": {"runq.culprit": "bpfr_hog", "runq.gone": "x",
                                           "runq.n": None}}), RESULT) == [
        'captures runq.culprit: expected "bpfr_hog", got "hog_thread"',
        'captures runq.gone: expected "x", got null',
        'captures runq.n: expected null, got "5"',
    ]


def test_compare_step_status_and_rows() -> None:
    expect = {"steps": {"offcpu": "ran"},
              "rows": {"runq.none": {"min": 1}, "runq.slow_by": {"min": 3},
                       "offcpu.stacks": {"min": 1}}}
    assert compare(expect_of(expect), RESULT) == [
        f"steps offcpu: expected ran, got skipped ({SKIP_REASON})",
        "rows runq.none: expected at least 1 row, got 0",
        "rows runq.slow_by: expected at least 3 rows, got 2",
        f"rows offcpu.stacks: expected at least 1 row, got 0: step offcpu was skipped "
        f"({SKIP_REASON})",
    ]


def test_compare_an_unexpected_failed_step_is_a_mismatch() -> None:
    result = run_result(step("a", "failed", "attach failed: no such tracepoint"),
                        step("b", "skipped", "an earlier step failed"))
    assert compare(expect_of({}), result) == ["steps a: failed unexpectedly "
                                              "(attach failed: no such tracepoint)"]
    assert compare(expect_of({"steps": {"a": "failed"}}), result) == []


def test_compare_missing_step_is_named() -> None:
    assert compare(expect_of({"fired": ["nope.x"], "captures": {"nope.c": 1}}), RESULT) == [
        "nope.x: the result has no step 'nope'",
        "captures nope.c: the result has no step 'nope'",
    ]


# --- params, output, collect ------------------------------------------------------------------

def test_selftest_params_substitute_the_workload_pid() -> None:
    params = {"pid": "${{ workload.pid }}", "comm": "x", "n": 3, "label": "p=${{workload.pid}}"}
    assert selftest_of({"params": params}).param_values(4242) == {
        "pid": "4242", "comm": "x", "n": 3, "label": "p=4242"}
    assert selftest_of({}).param_values(1) == {}


def test_render_and_summary_lines(tmp_path: Path) -> None:
    ok = SelftestResult("runq-latency", True, [], tmp_path / "r.md", None, 12.34)
    bad = SelftestResult("opens", False, ["s.x: expected fired, but it did not fire (0)"],
                         tmp_path / "f.md", None, 3.0, "no kprobes here")
    skip = SelftestResult("plain", True, skipped="no selftest")
    assert render_result(ok) == "PASS runq-latency (12.3s)"
    assert render_result(bad).splitlines() == [
        "FAIL opens", "  note: no kprobes here",
        "  s.x: expected fired, but it did not fire (0)", f"  report: {tmp_path / 'f.md'}"]
    assert render_result(skip) == "SKIP plain (no selftest)"
    assert summary([ok, bad]) == "1 passed, 1 failed"
    assert summary([ok, skip]) == "1 passed, 0 failed, 1 skipped"
    assert summary([ok], invalid=2) == "1 passed, 0 failed, 2 invalid"
    assert (exit_code([ok, skip]), exit_code([ok, bad]), exit_code([ok], 1),
            exit_code([bad], 1, machine=True)) == (0, 1, 2, 3)


def test_collect_files_folders_and_shipped_names(tmp_path: Path, repo_root: Path) -> None:
    (tmp_path / "b.yaml").write_text("x")
    (tmp_path / "a.yml").write_text("x")
    (tmp_path / "notes.txt").write_text("x")
    assert collect([tmp_path]) == [tmp_path / "b.yaml", tmp_path / "a.yml"]
    assert collect(["syscalls"]) == [repo_root / "runbooks" / "syscalls.yaml"]
    with pytest.raises(UsageError):
        collect([tmp_path / "missing.yaml"])


def test_default_root_is_the_checkout_of_a_shipped_runbook(repo_root: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    assert default_root(repo_root / "runbooks" / "syscalls.yaml") == repo_root
    monkeypatch.chdir(tmp_path)
    assert default_root(tmp_path / "elsewhere" / "x.yaml") == tmp_path


# --- workloads --------------------------------------------------------------------------------

@pytest.fixture
def workloads(tmp_path: Path) -> Path:
    folder = tmp_path / "tests" / "workloads"
    folder.mkdir(parents=True)
    (folder / "workload.h").write_text(WORKLOAD_H)
    (folder / "hello.c").write_text(WORKLOAD_C)
    return folder


def test_resolve_workload_builds_from_source(workloads: Path, tmp_path: Path) -> None:
    argv = resolve_workload(["tests/workloads/hello", "--seconds", "3"], tmp_path)
    binary = workloads / "build" / "hello"
    assert argv == [str(binary), "--seconds", "3"]
    assert os.access(binary, os.X_OK)
    assert (workloads / "build" / ".gitignore").read_text() == "*\n"
    assert subprocess.run([binary], capture_output=True, text=True).stdout == "hello\n"


def test_build_only_when_a_source_or_header_is_newer(workloads: Path) -> None:
    binary = build_workload(workloads / "hello.c")
    old = time.time() - 100
    os.utime(binary, (old, old))
    for src in (workloads / "hello.c", workloads / "workload.h"):
        os.utime(src, (old - 10, old - 10))
    build_workload(workloads / "hello.c")
    assert binary.stat().st_mtime == pytest.approx(old)  # up to date: untouched
    (workloads / "workload.h").write_text(WORKLOAD_H.replace("hello", "again"))
    build_workload(workloads / "hello.c")
    assert binary.stat().st_mtime > old + 50


def test_a_broken_source_is_a_usage_error_with_the_compiler_output(workloads: Path) -> None:
    (workloads / "broken.c").write_text("int main(void) { return nope; }\n")
    with pytest.raises(UsageError, match=r"compiling .*broken\.c failed(.|\n)*nope"):
        build_workload(workloads / "broken.c")
    assert not (workloads / "build" / "broken").exists()


def test_resolve_workload_keeps_existing_paths_and_bare_names(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "tool").write_text("#!/bin/sh\n")
    assert resolve_workload(["bin/tool", "-x"], tmp_path) == [str(tmp_path / "bin/tool"), "-x"]
    assert resolve_workload(["sleep", "5"], tmp_path) == ["sleep", "5"]
    assert resolve_workload(["/bin/true"], tmp_path) == ["/bin/true"]


# --- runbooks with selftests ------------------------------------------------------------------

def test_no_selftest_is_skipped_not_failed(tmp_path: Path) -> None:
    res = run_selftest(write_runbook(tmp_path, None))
    assert (res.ok, res.skipped, res.report) == (True, "no selftest", None)


def test_expectations_naming_unknown_things_are_invalid(tmp_path: Path) -> None:
    path = write_runbook(tmp_path, {
        "workload": ["/bin/true"],
        "params": {"pid": "${{ workload.tid }}", "nope": 1},
        "expect": {"fired": ["s.opened", "s.missing"], "captures": {"x.who": "a"},
                   "rows": {"s.who": {"min": 1}}, "steps": {"t": "ran"}}})
    with pytest.raises(ValidationError) as info:
        load_runbook(path)  # the selftest's problems are the runbook's
    text = info.value.render()
    for fragment in ["selftest param 'nope' is not a param of opens-test",
                     "only use ${{ workload.pid }}, not 'workload.tid'",
                     "selftest expect fired: step s has no threshold 'missing'",
                     "selftest expect captures: no step 'x'",
                     "selftest expect rows: step s has no aggregation 'who'",
                     "selftest expect steps: no step 't'"]:
        assert fragment in text
    assert f"{path}:" in text  # every problem has a file:line:col


def test_collect_runs_a_runbook_named_twice_once(repo_root: Path) -> None:
    shipped = repo_root / "runbooks" / "syscalls.yaml"
    assert collect(["syscalls", shipped, repo_root / "runbooks"]).count(shipped) == 1
