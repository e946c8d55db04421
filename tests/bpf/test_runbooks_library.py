"""The shipped runbook library (issue 5): every runbook is complete, valid and compiles, and,
with real BPF, finds the problem its workload plants.

The real runs start the workload a runbook's `selftest:` names, run `bpfrun run` as a user
would, and check result.json twice: against the selftest's own `expect` (so the YAML and the
runbook cannot drift apart) and against what the planted problem must look like — e.g.
memleak names the leaking function and never the balanced one. Durations come from the
selftests (2-3 s per step), so the whole file runs in about two minutes.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers.paths import REPO
from helpers.runbooks import expect_of
from helpers.workloads import WORKLOADS, Workload, run

from bpfrun.expr.evaluate import display
from bpfrun.result import RunResult
from bpfrun.runtime.selftest import compare

REPO = REPO
RUNBOOKS = REPO / "runbooks"
BPFRUN = [sys.executable, "-m", "bpfrun"]
# Names are part of the CLI contract (issue 5).
SHIPPED = ("triage", "runq-latency", "offcpu", "profile", "memleak", "opens", "writes", "execs",
           "syscalls", "block-latency", "tcp-retransmits", "irq-handler")
# Runbooks aimed at one process take pid and/or comm.
PROCESS_PARAMS = {"offcpu": {"pid", "comm"}, "profile": {"pid", "comm"}, "memleak": {"pid"},
                  "opens": {"pid", "comm"}, "writes": {"pid", "comm"}, "execs": {"comm"},
                  "syscalls": {"pid", "comm"}, "runq-latency": {"comm"}}
_PID_TEMPLATE = re.compile(r"\$\{\{\s*workload\.pid\s*\}\}")


def doc(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((RUNBOOKS / f"{name}.yaml").read_text())
    return data


def bpfrun(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BPFRUN, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


# --- the library as files: no root, no BPF ----------------------------------------------------

def test_every_shipped_runbook_exists_and_nothing_else() -> None:
    assert {p.stem for p in RUNBOOKS.glob("*.yaml")} == set(SHIPPED)


def test_the_library_validates() -> None:
    proc = bpfrun("validate", "runbooks/")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    for name in SHIPPED:
        assert f"runbooks/{name}.yaml: ok" in proc.stdout


@pytest.mark.parametrize("name", SHIPPED)
def test_runbook_is_documented_and_parameterised(name: str) -> None:
    rb = doc(name)
    assert rb["name"] == name
    assert len(rb.get("description", "")) > 200, "the description says what to do next"
    assert "next" in rb["description"].lower()
    params = rb.get("params") or {}
    assert params.get("duration", {}).get("type") == "duration"
    assert PROCESS_PARAMS.get(name, set()) <= set(params)
    for step in rb["steps"]:
        assert step.get("why", "").strip(), f"step {step['id']} has no `why`"
        assert step.get("duration") == "${{ params.duration }}", step["id"]


@pytest.mark.parametrize("name", SHIPPED)
def test_runbook_has_a_selftest_with_a_known_workload(name: str) -> None:
    selftest = doc(name)["selftest"]
    workload = Path(selftest["workload"][0])
    assert workload.parent == Path("tests/workloads")
    assert (REPO / workload.parent / f"{workload.name}.c").is_file()
    assert workload.name in WORKLOADS
    assert selftest.get("expect"), "a selftest must expect something"


@pytest.mark.parametrize("name", SHIPPED)
def test_runbook_compiles_without_root(name: str) -> None:
    proc = bpfrun("compile", name)
    assert proc.returncode == 0, proc.stderr
    assert "int " in proc.stdout  # C functions, one program per step


def test_readme_table_lists_every_runbook() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Runbooks", 1)[1].split("\n## ", 1)[0]
    assert "TODO" not in section
    for name in SHIPPED:
        assert f"| `{name}` |" in section, name


def test_contributor_guide_covers_write_validate_test_and_review() -> None:
    guide = (RUNBOOKS / "README.md").read_text()
    for command in ("bpfrun validate", "bpfrun compile", "bpfrun test", "bpfrun run"):
        assert command in guide


# --- the workloads added for the library -----------------------------------------------------

def test_lockwait_alternates_holder_and_waiter() -> None:
    totals = run("lockwait", "--seconds", "0.5", "--hold-ms", "10")
    assert int(totals["holds"]) > 5
    assert int(totals["waits"]) > 5


def test_blockio_writes_and_reads_directly() -> None:
    totals = run("blockio", "--seconds", "0.3", "--rate", "100")
    assert int(totals["writes"]) > 5
    assert int(totals["bytes"]) == int(totals["writes"]) * 4096
    assert int(totals["reads"]) == int(totals["writes"])


def test_blockio_rejects_unaligned_sizes() -> None:
    from helpers.workloads import WorkloadError  # noqa: PLC0415

    with pytest.raises(WorkloadError, match="multiple of 4096"):
        run("blockio", "--size", "1000")


def test_tcp_retrans_connects_to_its_port() -> None:
    totals = run("tcp_retrans", "--seconds", "0.3", "--rate", "50", "--port", "0")
    assert int(totals["connects"]) > 5
    assert 0 < int(totals["port"]) < 65536


# --- real runs: the planted problem is found --------------------------------------------------

def run_selftest_by_hand(name: str, tmp_path: Path) -> tuple[dict[str, Any], Path]:
    """Start the selftest's workload, `bpfrun run` the runbook with its params, and return
    result.json after checking it against the selftest's `expect`."""
    selftest = doc(name)["selftest"]
    workload, *args = selftest["workload"]
    with Workload(Path(workload).name, *args) as w:
        params = [f"{k}={_param(v, w.pid)}" for k, v in (selftest.get("params") or {}).items()]
        proc = bpfrun("run", name, *[a for p in params for a in ("--param", p)],
                      "-o", str(tmp_path))
        assert w.returncode is None, f"the workload died: {w.stderr}"
    assert proc.returncode in (0, 1), proc.stderr
    result: dict[str, Any] = json.loads((tmp_path / "result.json").read_text())
    mismatches = compare(expect_of(selftest.get("expect") or {}), RunResult.from_json(result))
    assert not mismatches, "\n".join(mismatches)
    return result, tmp_path


def _param(value: Any, pid: int) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return _PID_TEMPLATE.sub(str(pid), str(value))


def steps_of(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in result["steps"]}


def rows(step: dict[str, Any], agg: str) -> list[dict[str, Any]]:
    rows_: list[dict[str, Any]] = step["aggregations"][agg]["rows"]
    return rows_


def frames(row: dict[str, Any], key: str) -> list[str]:
    return [f.split(" [")[0] for f in row["key"][key]]


def events(step: dict[str, Any], event_id: str) -> list[dict[str, Any]]:
    table = next(e for e in step["events"] if e["id"] == event_id)
    found: list[dict[str, Any]] = table["rows"]
    return found


def check_memleak(result: dict[str, Any], _: Path) -> None:
    step = steps_of(result)["allocations"]
    allocators = [frames(r, "ustack")[1] for r in rows(step, "malloc_bytes")]
    assert allocators[0] == "leaky_alloc"
    freed = {f for r in rows(step, "freed") for f in frames(r, "begin.ustack")}
    assert "balanced_alloc" in freed
    assert not freed & {"leaky_alloc", "leaky_calloc"}, "a leaking function was freed"
    assert "leaky_calloc" in {frames(r, "ustack")[1] for r in rows(step, "calloc_bytes")}
    assert step["captures"]["unfreed"] > 0
    # Outstanding by stack: the leaking function, never the balanced one.
    unfreed = [frames(r, "begin.ustack")[0] for r in rows(step, "outstanding_bytes")]
    assert unfreed[0] == "leaky_alloc" and "balanced_alloc" not in unfreed
    assert step["captures"]["suspect"] == "leaky_alloc [leak]"


def check_profile(result: dict[str, Any], out: Path) -> None:
    step = steps_of(result)["cpu"]
    assert step["captures"]["hot_user_frame"] == "bpfr_hot_function [spin]"
    hot = rows(step, "stacks")[0]
    assert frames(hot, "ustack")[:2] == ["bpfr_hot_function", "bpfr_outer"]
    assert "bpfr_hot_function" in (out / "cpu-stacks.folded").read_text()
    assert step["captures"]["cpu_percent"] >= 25  # a spinning thread, on a shared machine


def check_writes(result: dict[str, Any], _: Path) -> None:
    step = steps_of(result)["writes"]
    by_comm = {r["key"]["comm"]: r["value"]["sum"] for r in rows(step, "bytes")}
    assert by_comm["bpfr_heavy"] > 50 * by_comm["bpfr_light"]
    dominant = finding(result, "writes.dominant")  # a rate, its calls, and its share
    assert re.match(r"bpfr_heavy \(pid \d+\) wrote [\d.]+MiB a second, [\d.]+% of all bytes "
                    r"written, in [\d.]+ writes a second of 64KiB on average", dominant), dominant
    calls = {r["key"]["comm"]: r["value"] for r in rows(step, "calls")}
    assert abs(calls["bpfr_heavy"] - calls["bpfr_light"]) <= 0.2 * calls["bpfr_heavy"]
    paths = steps_of(result)["write_paths"]
    assert "writer_main" in frames(rows(paths, "stacks")[0], "ustack")


def check_opens(result: dict[str, Any], _: Path) -> None:
    step = steps_of(result)["opens"]
    opened = {e["str(args.filename)"] for e in events(step, "first_opens")}
    assert {"/etc/hostname", "/nonexistent/bpfr_missing_file"} <= opened
    failed = rows(step, "failed")[0]["key"]
    assert failed["-args.ret"] == 2  # ENOENT
    ok = {r["key"]["str(begin.args.filename)"] for r in rows(step, "by_file")}
    assert "/nonexistent/bpfr_missing_file" not in ok
    failures = finding(result, "opens.failures")  # the step's total apart from the top row
    assert re.fullmatch(r"\d+ opens failed \([\d.]+ a second, all processes\)\. The most: "
                        r"bpfr_openat \(pid \d+\) opening /nonexistent/bpfr_missing_file, "
                        r"errno 2, [\d.]+ a second", failures), failures


def check_execs(result: dict[str, Any], _: Path) -> None:
    step = steps_of(result)["execs"]
    calls = events(step, "exec_calls")
    assert calls and all(e["comm"] == "bpfr_execer" for e in calls)
    assert {e["str(args.filename)"] for e in calls} == {"/bin/true"}
    # execer.c runs /bin/true bpfr-arg1 bpfr-arg2: the arguments are decoded too.
    assert {(e["argv(args.argv, 1)"], e["argv(args.argv, 2)"]) for e in calls} == {
        ("bpfr-arg1", "bpfr-arg2")}
    started = rows(step, "started")[0]
    assert started["key"] == {"begin.comm": "bpfr_execer", "comm": "true"}
    assert rows(step, "forks")[0]["key"]["args.parent_comm"] == "bpfr_execer"
    # A rate, and the step's total kept apart from the top program's.
    churn = finding(result, "execs.churn")
    assert re.match(r"\d+(\.\d+)? programs were started a second \(limit 20\)\. The most "
                    r"started: true, \d+(\.\d+)? a second, launched by bpfr_execer: ",
                    churn), churn
    assert 50 <= step["captures"]["start_rate"] <= 150  # execer --rate 100


def check_offcpu(result: dict[str, Any], out: Path) -> None:
    offcpu = steps_of(result)["offcpu"]
    waiter = next(r for r in rows(offcpu, "stacks") if "futex_wait" in r["key"]["begin.kstack"])
    assert "waiter_main" in frames(waiter, "begin.ustack")
    assert "futex_wait" in (out / "offcpu-stacks.folded").read_text()
    wakers = steps_of(result)["wakers"]
    top = rows(wakers, "waker_stacks")[0]["key"]
    assert "futex_wake" in top["kstack"]


def check_block_latency(result: dict[str, Any], _: Path) -> None:
    step = steps_of(result)["latency"]
    kinds = {r["key"]["args.rwbs"] for r in rows(step, "by_device")}
    assert any("W" in k for k in kinds) and any("R" in k for k in kinds)
    issuers = {r["key"]["begin.args.comm"]: r["value"] for r in rows(step, "by_process")}
    # I/Os a second: the workload aims at 200 (--rate 200); a busy machine runs it slower.
    assert issuers["bpfr_blockio"]["count"] / step["seconds"] > 50
    assert rows(step, "slowest")
    sizes = rows(steps_of(result)["queue"], "sizes")
    assert any(r["value"]["max"] >= 4096 for r in sizes)
    slow = finding(result, "latency.slow_io")  # rates, the slowest I/O and its issuer
    assert re.search(r"over [\d.]+ I/Os a second\. The slowest: .* on device \d+:\d+, "
                     r"issued by ", slow), slow
    assert re.search(r"I/O issued by \S+: [\d.]+ I/Os a second of ", slow), slow


def check_irq_handler(result: dict[str, Any], _: Path) -> None:
    steps = steps_of(result)
    handlers = rows(steps["handlers"], "by_handler")
    assert all(r["value"]["count"] > 0 for r in handlers)
    busiest = steps["handlers"]["captures"]["busiest"]
    assert busiest == handlers[0]["key"]["begin.args.name"]
    slow = finding(result, "handlers.slow")  # the slow handler, apart from the busiest one
    slow_row = rows(steps["handlers"], "slow_by")[0]["key"]
    assert slow.startswith(f"{slow_row['begin.args.name']} (IRQ {slow_row['args.irq']}) ran "
                           "longer than 1us "), slow
    assert re.search(r"times a second, .* The most handler time in all: .*interrupts a second",
                     slow), slow
    function = steps["function"]
    if not Path("/sys/kernel/tracing/kprobe_events").exists():  # no kprobes: the fallback ran
        assert sorted(function["fallbacks"].values()) == [
            "tracepoint:irq:irq_handler_entry", "tracepoint:irq:irq_handler_exit"]
        assert rows(function, "runtime")[0]["value"]["count"] > 0


def check_tcp_retransmits(result: dict[str, Any], _: Path) -> None:
    step = steps_of(result)["retransmits"]
    first = events(step, "first")
    assert all(e["args.dport"] == 47931 and e["ntop(args.daddr_v6)"] == "127.0.0.1"
               for e in first)
    assert {r["key"]["tcp_state(args.state)"] for r in rows(step, "by_state")} == {"SYN_SENT"}
    message = finding(result, "retransmits.retransmitting")  # one flow's row, one port's row
    assert re.match(r"[\d.]+ TCP retransmits a second \(limit 1\), all connections\. The most: "
                    r"127\.0\.0\.1:\d+ → 127\.0\.0\.1:47931 in state SYN_SENT", message), message


def check_triage(result: dict[str, Any], out: Path) -> None:
    steps = steps_of(result)
    assert steps["runq"]["thresholds"]["contention"]["fired"] is True
    assert any(f["step"] == "runq" for f in result["findings"])
    # The planted hog, found by its own name: a neighbour may rank above it on this machine.
    culprits = {r["key"]["args.prev_comm"] for r in rows(steps["runq"], "slow_by")
                if r["key"]["args.next_comm"] == "bpfr_victim"}
    assert "bpfr_hog" in culprits
    hog = next(r for r in rows(steps["cpu"], "by_process") if r["key"]["comm"] == "bpfr_hog")
    assert hog["value"] * 100 / (49 * steps["cpu"]["seconds"]) >= 50  # % of one CPU
    assert "hog_spin" in (out / "cpu-stacks.folded").read_text()
    if steps["runq"]["captures"]["culprit"] == "bpfr_hog":
        assert "hog_spin" in (out / "culprit_cpu-stacks.folded").read_text()


def check_runq_latency(result: dict[str, Any], _: Path) -> None:
    assert steps_of(result)["runq"]["captures"]["culprit"] == "bpfr_hog"


def finding(result: dict[str, Any], threshold: str) -> str:
    """The message of the finding of `step.threshold`."""
    step, _, name = threshold.partition(".")
    message: str = next(f["message"] for f in result["findings"]
                        if f["step"] == step and f["threshold"] == name)
    return message


def check_syscalls(result: dict[str, Any], _: Path) -> None:
    step = steps_of(result)["syscalls"]
    # The storm: who, how often, and the call.
    storm = finding(result, "syscalls.storm")
    assert re.search(r"bpfr_storm \(pid \d+\) made \d+ system calls a second", storm), storm
    assert "getpid by bpfr_storm" in storm
    assert step["captures"]["storm_rate"] > 100_000
    # The slow call: who, which call, how often, how long each.
    slow = finding(result, "syscalls.slow_call")
    assert re.search(r"bpfr_fsync \(pid \d+\) made [\d.]+ fsync calls a second slower than "
                     r"50us, averaging [\d.]+(ns|us|ms|s) a call", slow), slow
    # Waits are kept apart: the idle thread's futex and poll are waits, never work.
    work = {(r["key"]["comm"], r["key"]["syscall_name(begin.arg1)"]) for r in rows(step, "work")}
    assert not {c for c, _ in work} & {"bpfr_idle"}
    assert not {n for _, n in work} & {"futex", "poll", "clock_nanosleep"}
    waits = {r["key"]["syscall_name(begin.arg1)"] for r in rows(step, "waits")}
    assert {"futex", "poll"} <= waits
    # The follow-up names the loop's code path.
    code = steps_of(result)["storm_code"]
    assert "bpfr_storm" in finding(result, "storm_code.storm_source")
    assert any("storm_main" in frames(r, "ustack") or "bpfr_storm_loop" in frames(r, "ustack")
               for r in rows(code, "stacks"))


CHECKS: dict[str, Callable[[dict[str, Any], Path], None]] = {
    "memleak": check_memleak, "profile": check_profile, "writes": check_writes,
    "opens": check_opens, "execs": check_execs, "offcpu": check_offcpu,
    "block-latency": check_block_latency, "irq-handler": check_irq_handler,
    "tcp-retransmits": check_tcp_retransmits, "triage": check_triage,
    "runq-latency": check_runq_latency, "syscalls": check_syscalls,
}


def test_every_runbook_has_a_real_check() -> None:
    assert set(CHECKS) == set(SHIPPED)


@pytest.mark.bpf
@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", SHIPPED)
def test_runbook_finds_the_planted_problem(name: str, tmp_path: Path) -> None:
    result, out = run_selftest_by_hand(name, tmp_path)
    assert result["status"] in ("clean", "fired"), result.get("error")
    CHECKS[name](result, out)


# --- the user's hosts: host-wide runs, judged on the workloads' own rows ---------------------

def run_host_wide(name: str, tmp_path: Path, *params: str) -> dict[str, Any]:
    proc = bpfrun("run", name, "--duration", "2s", *[a for p in params for a in ("--param", p)],
                  "-o", str(tmp_path))
    assert proc.returncode in (0, 1), proc.stderr
    result: dict[str, Any] = json.loads((tmp_path / "result.json").read_text())
    return result


@pytest.mark.bpf
@pytest.mark.timeout(120)
def test_syscalls_names_a_storm_and_a_slow_call_of_two_processes(tmp_path: Path) -> None:
    """Issue #12.7: one process calls getpid in a loop, another fsyncs after every 100-byte
    write; idle waits (futex, poll, clock_nanosleep) must not win. Other processes of this
    shared machine may fire findings too, so the workloads' own rows are checked."""
    with Workload("sysmix", "--fork", "--seconds", "30") as w:
        result = run_host_wide("syscalls", tmp_path, "slow=50us")
        assert w.returncode is None, f"the workload died: {w.stderr}"
    step = steps_of(result)["syscalls"]
    seconds = step["seconds"]
    procs = {r["key"]["comm"]: r for r in rows(step, "by_process")}
    storm = procs["bpfr_storm"]
    assert storm["key"]["pid"] == w.pid
    assert storm["value"] / seconds > 100_000  # calls a second
    slow = next(r for r in rows(step, "slow_calls") if r["key"]["comm"] == "bpfr_fsync")
    assert slow["key"]["pid"] != w.pid  # the writer is a process of its own
    assert slow["key"]["syscall_name(begin.arg1)"] == "fsync"
    assert slow["value"]["count"] / seconds >= 10  # slow calls a second
    assert slow["value"]["avg"] > 50  # us a call
    work = [r for r in rows(step, "work") if r["key"]["comm"].startswith("bpfr_")]
    assert work and not {r["key"]["syscall_name(begin.arg1)"] for r in work} & {
        "futex", "poll", "clock_nanosleep"}
    if step["captures"].get("storm_comm") == "bpfr_storm":  # unless a neighbour storms harder
        assert "bpfr_storm" in finding(result, "syscalls.storm")


@pytest.mark.bpf
@pytest.mark.timeout(120)
def test_execs_gives_starts_a_second_and_the_launcher_of_a_respawn_loop(tmp_path: Path) -> None:
    """A respawn loop (fork + exec /bin/true as fast as it can): starts a second, and who."""
    with Workload("execer", "--rate", "0", "--seconds", "30") as w:
        result = run_host_wide("execs", tmp_path, "comm=bpfr_execer")
        assert w.returncode is None, f"the workload died: {w.stderr}"
    step = steps_of(result)["execs"]
    rate = step["captures"]["start_rate"]
    assert rate > 50, rate  # a loop with no pause starts hundreds a second
    churn = finding(result, "execs.churn")
    assert churn.startswith(f"{display(rate)} programs were started a second (limit 10)")
    assert "launched by bpfr_execer" in churn and "The most started: true" in churn
    forks = rows(step, "forks")[0]["key"]
    assert (forks["args.parent_pid"], forks["args.parent_comm"]) == (w.pid, "bpfr_execer")
    # The follow-up names the launcher by pid: the process to look at.
    assert steps_of(result)["launchers"]["captures"]["launcher_pid"] == w.pid
    launcher = finding(result, "launchers.launcher")
    assert re.match(rf"bpfr_execer \(pid {w.pid}\) forked and started true [\d.]+ times a "
                    r"second", launcher), launcher


@pytest.mark.bpf
@pytest.mark.timeout(120)
def test_opens_flags_a_file_opened_thousands_of_times_a_second(tmp_path: Path) -> None:
    """A hot loop re-opening one file (a missing cache): who, which file, how often."""
    with Workload("openat_loop", "--rate", "0", "--seconds", "30") as w:
        result = run_host_wide("opens", tmp_path, f"pid={w.pid}")
        assert w.returncode is None, f"the workload died: {w.stderr}"
    hot = finding(result, "opens.hot_file")
    assert re.fullmatch(rf"bpfr_openat \(pid {w.pid}\) opened /etc/hostname \d+ times a second "
                        r"\(limit 1000\): keep it open or cache what it reads", hot), hot
