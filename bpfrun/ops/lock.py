"""One run of a runbook at a time: an flock on `<reports dir>/.<runbook>.lock`.

An overlapping run of the same runbook (a slow timer run, a manual run during an incident)
stops at once with `AlreadyRunning`, exit code 5: 0–4 are the run contract's (clean, fired,
invalid, machine, step failed), and an overlap is none of them — a timer or a monitoring
check can tell "skipped, another run holds the lock" from a real failure. Different runbooks
lock different files and run side by side. The lock is the kernel's (flock), tied to the
open file: a killed run's lock goes with its process, so a stale file never blocks the next.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from pathlib import Path
from types import TracebackType

from bpfrun.errors import BpfrunError, UsageError

EXIT_ALREADY_RUNNING = 5


class AlreadyRunning(BpfrunError):
    """Another process holds this runbook's lock."""

    exit_code = EXIT_ALREADY_RUNNING


def lock_path(base: Path, runbook_name: str) -> Path:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", runbook_name).lstrip(".") or "run"
    return base / f".{name}.lock"


class RunLock:
    """The lock of one runbook, held from `acquire()` until `release()` or the process ends."""

    def __init__(self, base: Path, runbook_name: str) -> None:
        self.path = lock_path(base, runbook_name)
        self.runbook = runbook_name
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock without waiting; AlreadyRunning when another run holds it."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise UsageError(f"cannot open the run lock {self.path}: {e.strerror or e}",
                             hint="set BPFRUN_REPORTS_DIR to a writable directory") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f" (pid {holder})" if holder else ""
            raise AlreadyRunning(
                f"{self.runbook} is already running{who}: this run was skipped",
                hint=f"one run of a runbook at a time (lock {self.path}); exit code "
                     f"{EXIT_ALREADY_RUNNING}") from None
        except BaseException:
            os.close(fd)
            raise
        # The pid is for the message only: the flock, not the file's text, is the lock.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
