"""One run per runbook: the flock, what an overlap says, and a killed holder's lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bpfrun.errors import UsageError
from bpfrun.ops.lock import EXIT_ALREADY_RUNNING, AlreadyRunning, RunLock


def test_second_lock_of_the_same_runbook_is_refused_with_exit_5(tmp_path: Path) -> None:
    with RunLock(tmp_path, "triage"), pytest.raises(AlreadyRunning) as e:
        RunLock(tmp_path, "triage").acquire()
    assert e.value.exit_code == EXIT_ALREADY_RUNNING == 5
    assert f"triage is already running (pid {os.getpid()})" in e.value.render()


def test_different_runbooks_lock_side_by_side(tmp_path: Path) -> None:
    with RunLock(tmp_path, "triage"), RunLock(tmp_path, "runq-latency"):
        pass


def test_released_lock_can_be_taken_again(tmp_path: Path) -> None:
    lock = RunLock(tmp_path, "triage").acquire()
    lock.release()
    RunLock(tmp_path, "triage").acquire().release()


def test_a_killed_holders_lock_never_blocks(tmp_path: Path) -> None:
    code = (f"import sys, time; sys.path.insert(0, {str(Path.cwd())!r}); "
            "from pathlib import Path; from bpfrun.ops.lock import RunLock; "
            f"lock = RunLock(Path({str(tmp_path)!r}), 'triage').acquire(); "
            "print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(AlreadyRunning):
            RunLock(tmp_path, "triage").acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (tmp_path / ".triage.lock").exists()  # the file stays; the flock went with it
    deadline = time.monotonic() + 5
    RunLock(tmp_path, "triage").acquire().release()
    assert time.monotonic() < deadline


def test_an_unwritable_lock_folder_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(UsageError):
        RunLock(tmp_path / "file", "triage").acquire()
