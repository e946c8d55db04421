"""`bpfrun run` as a child process in real-BPF tests: started, its progress read until a line
says what the test waits for (usually that the probes are attached), then finished."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from helpers.paths import REPO

BPFRUN = [sys.executable, "-m", "bpfrun"]


def start_run(args: list[str | Path]) -> subprocess.Popen[str]:
    return subprocess.Popen([*BPFRUN, "run", *map(str, args)], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for(proc: subprocess.Popen[str], text: str = ": attached", timeout: float = 90
             ) -> list[str]:
    """Read bpfrun's progress until a line holds `text`; the lines read. Kills bpfrun and
    fails with what it printed when no such line comes."""
    assert proc.stderr is not None
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if text in line:
            return seen
    proc.kill()
    raise AssertionError(f"never saw {text!r}:\n" + "".join(seen))


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    """bpfrun's exit code, stdout and the rest of its stderr (killed after `timeout`)."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.returncode, out, err
