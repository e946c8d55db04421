"""Child processes of the benchmark: started in their own process group, watched line by line,
stopped politely then firmly, and never left behind (not on an error, not on Ctrl-C).

Every process goes through `Child`. A module-level registry lets `kill_all()` (called from
run.py's signal handlers and at exit) kill every group that is still alive.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

_LIVE: set[Child] = set()
_LIVE_LOCK = threading.Lock()


class ChildError(RuntimeError):
    """A child failed to start, to become ready, or to finish in time."""


@dataclass
class Line:
    t: float  # seconds since the child started
    stream: str  # "out" | "err"
    text: str


@dataclass
class Exit:
    code: int | None  # None: killed by us after a timeout
    maxrss_kib: int  # peak RSS of the process (ru_maxrss from wait4)
    lines: list[Line] = field(default_factory=list)
    cpu_s: float = 0.0  # user + system time of the process and the children it waited for
    wall_s: float = 0.0  # from just before fork to just after it was reaped

    def text(self, stream: str | None = None) -> str:
        return "\n".join(ln.text for ln in self.lines if stream is None or ln.stream == stream)


class Child:
    """One command in its own session; stdout and stderr are read into `lines` as they come."""

    def __init__(self, argv: Sequence[str], cwd: str | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.argv = list(argv)
        self.lines: list[Line] = []
        self._cond = threading.Condition()
        self.t0 = time.monotonic()
        try:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         start_new_session=True, cwd=cwd, env=env)
        except OSError as e:
            raise ChildError(f"cannot start {self.argv[0]}: {e}") from None
        with _LIVE_LOCK:
            _LIVE.add(self)
        self.exit: Exit | None = None
        self._readers = [threading.Thread(target=self._read, args=(s, n), daemon=True)
                         for s, n in ((self.proc.stdout, "out"), (self.proc.stderr, "err"))]
        for r in self._readers:
            r.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self, stream: object, name: str) -> None:
        assert stream is not None
        for raw in stream:  # type: ignore[attr-defined]
            line = Line(time.monotonic() - self.t0, name,
                        raw.decode("utf-8", "replace").rstrip("\n"))
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()

    def wait_line(self, pattern: str, timeout: float) -> Line:
        """The first line (either stream) matching `pattern`; ChildError on exit or timeout."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for ln in self.lines[seen:]:
                    if rx.search(ln.text):
                        return ln
                seen = len(self.lines)
                if self.exited():
                    self._cond.wait(0.2)  # let the readers drain what it printed last
                    if not any(rx.search(ln.text) for ln in self.lines[seen:]):
                        raise ChildError(f"{self.argv[0]} exited before printing "
                                         f"/{pattern}/: {self.tail()}")
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ChildError(f"{self.argv[0]} printed no /{pattern}/ within "
                                     f"{timeout:g}s: {self.tail()}")
                self._cond.wait(min(left, 0.1))

    def exited(self) -> bool:
        """Whether the leader has exited, without reaping it (wait4 must get its rusage)."""
        if self.exit is not None:
            return True
        try:
            return os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) \
                is not None
        except ChildProcessError:
            return True

    def tail(self, n: int = 4) -> str:
        with self._cond:
            text = " | ".join(ln.text for ln in self.lines[-n:] if ln.text.strip())
        return text or "(no output)"

    def status_kib(self, field_name: str) -> int | None:
        """A `kB` field of /proc/PID/status (VmHWM, VmRSS), or None once it is gone."""
        with contextlib.suppress(OSError, ValueError), open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
        return None

    def wait(self, timeout: float) -> Exit:
        """Waits for a normal exit; past `timeout` the group is killed (code None).
        Blocks in wait4 (a timer does the killing) so that wall_s is exact."""
        timed_out = threading.Event()

        def expire() -> None:
            timed_out.set()
            if self.exit is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, expire)
        timer.daemon = True
        timer.start()
        try:
            got = self._reap(0)
        finally:
            timer.cancel()
        assert got is not None
        if timed_out.is_set():
            got.code = None
        return got

    def stop(self, signals: Sequence[signal.Signals] = (signal.SIGINT, signal.SIGTERM),
             grace: float = 10.0) -> Exit:
        """Sends each signal in turn to the leader, waiting up to `grace`s after each; then
        kills the group. Returns the exit (code None when it had to be killed)."""
        for sig in signals:
            if self.exit is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)
            got = self.wait_quiet(grace)
            if got:
                return got
        self.kill()
        assert self.exit is not None
        return self.exit

    def wait_quiet(self, timeout: float) -> Exit | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self._reap(os.WNOHANG)
            if got:
                return got
            time.sleep(0.02)
        return None

    def kill(self) -> None:
        """SIGKILLs the whole group, then reaps the leader (group first: while the leader is
        unreaped its pid, hence the group id, cannot be reused)."""
        if self.exit is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        got = self._reap(0)
        if got:
            got.code = None

    def _reap(self, flags: int) -> Exit | None:
        if self.exit is not None:
            return self.exit
        try:
            pid, status, usage = os.wait4(self.pid, flags)
        except ChildProcessError:
            pid, status, usage = self.pid, 0, None
        if pid == 0:
            return None
        wall = time.monotonic() - self.t0
        # The leader is gone; its group may still hold children (pingpong's pong): kill them.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        self.proc.returncode = os.waitstatus_to_exitcode(status) if usage else -1
        for r in self._readers:
            r.join(2.0)
        with self._cond:
            lines = list(self.lines)
        self.exit = Exit(self.proc.returncode, usage.ru_maxrss if usage else 0, lines,
                         usage.ru_utime + usage.ru_stime if usage else 0.0, wall)
        with _LIVE_LOCK:
            _LIVE.discard(self)
        return self.exit


def run(argv: Sequence[str], timeout: float) -> Exit:
    """Runs a command to completion (killed past `timeout`)."""
    return Child(argv).wait(timeout)


def kill_all() -> None:
    """Kills every child still alive (signal handlers and atexit call this)."""
    with _LIVE_LOCK:
        live = list(_LIVE)
    for child in live:
        child.kill()


def live_pids() -> set[int]:
    with _LIVE_LOCK:
        return {c.pid for c in _LIVE}
