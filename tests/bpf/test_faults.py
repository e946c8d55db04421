"""Faults during a run (issue #13, point 5), with real BPF: signals at each stage, SIGKILL,
an output folder that is read-only or full. Each run must end with a whole report or a clear
message and a documented exit code, and leave no probe attached.

The exit codes are README's: 0/1 a report (interrupted runs say so in result.json), 2 the
report could not be written (nothing presented as complete: no result.json), -9 for SIGKILL.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.runs import finish, start_run, wait_for
from helpers.workloads import Workload

UPROBE_EVENTS = Path("/sys/kernel/tracing/uprobe_events")

pytestmark = pytest.mark.bpf


def bcc_uprobes(pid: int) -> list[str]:
    """The uprobe events BCC made for process `pid` (named `..._bcc_<pid>`)."""
    if not UPROBE_EVENTS.exists():
        return []
    return [line for line in UPROBE_EVENTS.read_text().splitlines()
            if re.search(rf"_bcc_{pid}\b", line)]


def bpf_prog_fds(pid: int) -> int:
    """BPF programs process `pid` holds (0 once it is gone: programs die with their holder)."""
    count = 0
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd) == "anon_inode:bpf-prog":
                    count += 1
    return count


@pytest.mark.parametrize(("sig", "stage"), [
    (signal.SIGTERM, "compiling"), (signal.SIGINT, "compiling"),
    (signal.SIGTERM, "attached"), (signal.SIGINT, "attached"),
    (signal.SIGTERM, "done in"), (signal.SIGINT, "done in"),  # while the report is written
])
def test_a_signal_at_each_stage_ends_with_a_whole_interrupted_report(
        tmp_path: Path, sig: signal.Signals, stage: str) -> None:
    duration = "1s" if stage == "done in" else "60s"
    proc = start_run(["syscalls", "--duration", duration, "-o", str(tmp_path)])
    wait_for(proc, f"step syscalls: {stage}")
    proc.send_signal(sig)
    code, _, err = finish(proc, timeout=60)
    assert code in (0, 1), err
    result = json.loads((tmp_path / "result.json").read_text())
    # After the last step the signal may land before or after the result is built.
    assert result["interrupted"] is True or stage == "done in"
    assert result["steps"][0]["status"] in ("ran", "interrupted")
    assert result["steps"][0]["seconds"] < 30
    assert (tmp_path / "report.md").exists() and (tmp_path / "report.html").exists()


def test_sigkill_while_measuring_leaves_no_probe_and_the_next_run_works(tmp_path: Path) -> None:
    with Workload("leak", "--seconds", "60", "--name", "bpfr_leak") as w:
        proc = start_run(["memleak", "--param", f"pid={w.pid}", "--duration", "60s",
                          "-o", str(tmp_path / "killed")])
        wait_for(proc, "step allocations: attached")
        # BCC attaches through the uprobe PMU where the kernel has one (no uprobe_events
        # entry at all) and through uprobe_events otherwise: either way none may stay.
        assert bpf_prog_fds(proc.pid) > 0
        proc.send_signal(signal.SIGKILL)
        code, _, _ = finish(proc, timeout=30)
        assert code == -signal.SIGKILL
        assert not (tmp_path / "killed" / "result.json").exists()
        # BCC's uprobe events belong to the killed process; the kernel drops them with its
        # last reference (the perf event), so none may be left.
        deadline = time.monotonic() + 5
        while bcc_uprobes(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert bcc_uprobes(proc.pid) == []
        again = start_run(["memleak", "--param", f"pid={w.pid}", "--duration", "2s",
                           "-o", str(tmp_path / "again")])
        code, _, err = finish(again)
    assert code in (0, 1), err
    assert json.loads((tmp_path / "again" / "result.json").read_text())["interrupted"] is False
    assert bcc_uprobes(again.pid) == []


@contextlib.contextmanager
def small_tmpfs(where: Path, options: str) -> Iterator[Path]:
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "bpfrun-test", str(where)],
                   check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_full_filesystem_is_a_clear_error_and_no_result_json(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "mnt", "size=64k,mode=0700") as mnt:
        filler = mnt / "filler"
        with contextlib.suppress(OSError), filler.open("wb") as f:
            f.write(b"x" * 60 * 1024)  # leaves a few KiB: the C fits, report.html does not
        early = start_run(["syscalls", "--duration", "1s", "-o", str(mnt / "report")])
        code, _, err = finish(early)
        assert code == 3 and "the run was not started" in err, err  # the --min-free floor
        proc = start_run(["syscalls", "--duration", "1s", "--min-free", "0",
                          "-o", str(mnt / "report")])
        code, _, err = finish(proc)
        assert code == 2, err
        assert "cannot write the report" in err and "No space left" in err
        assert not (mnt / "report" / "result.json").exists()
        leftovers = [p.name for p in (mnt / "report").glob(".*.tmp")] \
            if (mnt / "report").exists() else []
        assert leftovers == []


def test_a_read_only_output_folder_is_a_clear_error(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "ro", "size=64k,ro") as ro:
        proc = start_run(["syscalls", "--duration", "1s", "--min-free", "0",
                          "-o", str(ro / "report")])
        code, _, err = finish(proc)
    assert code == 2, err
    assert "cannot create the report folder" in err and "Read-only file system" in err
    assert "attached" not in err  # refused before anything was loaded


def test_a_workload_that_exits_mid_step_still_gets_its_report(tmp_path: Path) -> None:
    with Workload("openat_loop", "--count", "100", "--rate", "200", "--seconds", "1",
                  "--name", "bpfr_short", wait_signal=True) as w:
        proc = start_run(["syscalls", "--param", f"pid={w.pid}", "--duration", "4s",
                          "-o", str(tmp_path)])
        wait_for(proc, "step syscalls: attached")
        w.start()
        w.wait()
        code, _, err = finish(proc)
    assert code in (0, 1), err
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["steps"][0]["status"] == "ran"
    assert result["interrupted"] is False


def test_a_uprobe_target_replaced_during_the_run_ends_cleanly(tmp_path: Path) -> None:
    from helpers.workloads import build  # noqa: PLC0415

    app = tmp_path / "app"
    app.write_bytes(build("leak").read_bytes())
    app.chmod(0o755)
    rb = tmp_path / "t.yaml"
    rb.write_text("apiVersion: bpfrun/v1\nname: t\ntitle: T\nsteps:\n"
                  "  - id: u\n    duration: 3s\n    probes:\n"
                  f"      - probe: uprobe:{app}:leaky_alloc\n"
                  "        aggregate: [{id: calls, count: true}]\n")
    proc = start_run([str(rb), "-o", str(tmp_path / "out")])
    wait_for(proc, "step u: attached")
    # An upgrade: a new file renamed over the name. The probe stays on the old inode.
    new = tmp_path / "app.new"
    new.write_bytes(build("spin").read_bytes())
    os.replace(new, app)
    code, _, err = finish(proc)
    assert code in (0, 1), err
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert result["steps"][0]["status"] == "ran"
