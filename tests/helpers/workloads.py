"""Build and run the C workload programs in tests/workloads (the loads real-BPF tests trace).

`build(name)` compiles tests/workloads/<name>.c into tests/workloads/build/<name> when the
binary is missing or stale; `build(name, opt="O2", frame_pointers=False)` builds a variant
(tests/workloads/build/<name>-O2-nofp) for tests about optimised code and stack walking.
`Workload` runs one in its own process group and guarantees that no process of that group
outlives it.

Start protocol (see workload.h): a workload installs its SIGUSR1 handler only once it and its
threads are fully set up, so "SIGUSR1 is caught" in /proc/PID/status means "ready". The
constructor waits for that, hence thread names can be checked and SIGUSR1 sent right away.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import signal
import subprocess
import tempfile
import time
import weakref
from pathlib import Path
from types import TracebackType
from typing import IO

from bpfrun.errors import UsageError
from bpfrun.runtime.selftest import CFLAGS as SELFTEST_CFLAGS
from bpfrun.runtime.selftest import build_workload

WORKLOAD_DIR = Path(__file__).resolve().parent.parent / "workloads"
BUILD_DIR = WORKLOAD_DIR / "build"
WORKLOADS = (
    "openat_loop",
    "runq_contention",
    "writer",
    "spin",
    "leak",
    "execer",
    "syscall_loop",
    "pingpong",
    "usdt_app",
    "lockwait",
    "blockio",
    "tcp_retrans",
    "stacks",
    "memleak_main",
    "prodcons",
    "oncpu",
    "sized_writes",
    "sysmix",
)
# -O0 -fno-builtin: at -O1 GCC deletes mallocs whose memory does not escape; frame pointers
# make user stacks walkable by BPF.
CFLAGS = SELFTEST_CFLAGS  # one set of flags for tests and `bpfrun test`
OPT_LEVELS = ("O0", "O1", "O2", "O3", "Os")
# (opt, frame_pointers) of the four builds the symbolizer and stack tests compare.
VARIANTS = (("O0", True), ("O0", False), ("O2", True), ("O2", False))
_SIGUSR1_BIT = 1 << (signal.SIGUSR1 - 1)
_POLL = 0.01

Arg = str | int | float | os.PathLike[str]
"""A command-line argument; converted with str()."""


class WorkloadError(RuntimeError):
    """A workload could not be built, started, or did not end with its totals line."""


class BuildError(WorkloadError):
    """Compiling a workload failed; the message holds the gcc command and its output."""


def build(name: str, *, opt: str = "O0", frame_pointers: bool = True) -> Path:
    """Compiles tests/workloads/<name>.c if needed and returns the binary's path.

    The default build is `CFLAGS` (-O0 with frame pointers, as `bpfrun test` builds it);
    another `opt` level ("O2", ...) or frame_pointers=False gives a variant binary named
    <name>-<opt>[-nofp], always with -g. Safe to call from several tests or processes at
    once: compilation is serialised by a file lock and the binary appears atomically.
    """
    source = WORKLOAD_DIR / f"{name}.c"
    if not source.is_file():
        known = ", ".join(sorted(p.stem for p in WORKLOAD_DIR.glob("*.c")))
        raise BuildError(f"no workload named {name!r}: {source} does not exist (known: {known})")
    if opt not in OPT_LEVELS:
        raise BuildError(f"unknown optimisation level {opt!r} (known: {', '.join(OPT_LEVELS)})")
    if opt == "O0" and frame_pointers:
        try:  # the same build as `bpfrun test` uses for runbook self-tests
            return build_workload(source)
        except UsageError as exc:
            raise BuildError(exc.message) from None
    suffix = f"-{opt}" + ("" if frame_pointers else "-nofp")
    flags = variant_cflags(opt, frame_pointers)
    return _build_variant(source, BUILD_DIR / f"{name}{suffix}", flags)


def variant_cflags(opt: str, frame_pointers: bool) -> tuple[str, ...]:
    """CFLAGS with the optimisation level and the frame-pointer choice swapped in."""
    swap = {"-O0": f"-{opt}"}
    if not frame_pointers:
        swap["-fno-omit-frame-pointer"] = "-fomit-frame-pointer"
    return tuple(swap.get(flag, flag) for flag in CFLAGS)


def _build_variant(source: Path, binary: Path, flags: tuple[str, ...]) -> Path:
    """Like bpfrun's build_workload, with other flags; shares its lock file."""
    binary.parent.mkdir(parents=True, exist_ok=True)
    ignore = binary.parent / ".gitignore"  # generated: keep it out of git
    if not ignore.exists():
        ignore.write_text("*\n")
    with open(binary.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        inputs = [source, *source.parent.glob("*.h")]
        if binary.exists() and all(
            binary.stat().st_mtime_ns >= p.stat().st_mtime_ns for p in inputs
        ):
            return binary
        tmp = binary.with_name(f".{binary.name}.{os.getpid()}.tmp")
        cmd = [os.environ.get("CC", "gcc"), *flags, "-o", str(tmp), str(source)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        except FileNotFoundError:
            raise BuildError(f"cannot compile {source}: {cmd[0]} not found") from None
        if proc.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise BuildError(f"compiling {source} failed (exit {proc.returncode}):\n"
                             f"$ {shlex.join(cmd)}\n{proc.stderr}{proc.stdout}".rstrip())
        os.replace(tmp, binary)
    return binary


def build_all() -> dict[str, Path]:
    """Builds every known workload; returns name -> binary."""
    return {name: build(name) for name in WORKLOADS}


def parse_totals(stdout: str) -> dict[str, str]:
    """Parses the last line made only of key=value words (a workload's final totals)."""
    for line in reversed(stdout.splitlines()):
        words = line.split()
        if words and all("=" in w and not w.startswith("=") for w in words):
            return dict(w.split("=", 1) for w in words)
    raise WorkloadError(f"no key=value totals line in the output: {stdout!r}")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILLs the whole group, then reaps the leader.

    Only while the leader is unreaped (running or zombie) is its pid, hence the group id,
    guaranteed not to be reused; so the group is always killed before the leader is reaped.
    """
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    # SIGKILL is delivered, not done: on a busy machine a member can still be running a
    # moment later. The leader stays unreaped (a zombie) meanwhile, so the group id is ours.
    deadline = time.monotonic() + 5.0
    while _live_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.wait()


def _live_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group `pgid`."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, IndexError):
            # Fields after the parenthesised comm: state ppid pgrp ...
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                pids.append(int(entry.name))
    return sorted(pids)


class Workload:
    """One running workload process, in its own process group.

    `Workload(name, *args, wait_signal=False)` builds and starts it and returns once it is
    ready (`opt=` and `frame_pointers=` pick a variant build, as for `build`). Use it as a
    context manager: leaving the block kills the group whatever happened.
    """

    def __init__(
        self,
        name: str,
        *args: Arg,
        wait_signal: bool = False,
        ready_timeout: float = 10.0,
        opt: str = "O0",
        frame_pointers: bool = True,
    ) -> None:
        self.name = name
        self.binary = build(name, opt=opt, frame_pointers=frame_pointers)
        self.argv = [str(self.binary), *(str(a) for a in args)]
        if wait_signal:
            self.argv.append("--wait-signal")
        self.wait_signal = wait_signal
        self.totals: dict[str, str] | None = None
        # Files, not pipes: a child that prints a lot (e.g. --exec /bin/echo) can never block.
        # They live as long as this object (closed and deleted when it is collected).
        self._stdout: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        self._proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._stdout,
            stderr=self._stderr,
            process_group=0,
        )
        # Safety net for workloads created outside a with block: killed when collected or at
        # interpreter exit.
        self._finalizer = weakref.finalize(self, _kill_group, self._proc)
        try:
            self._wait_ready(ready_timeout)
        except BaseException:
            self.kill()
            raise

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    @property
    def stderr(self) -> str:
        """What the workload wrote to stderr so far."""
        return _read_all(self._stderr)

    def __enter__(self) -> Workload:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()

    def start(self) -> None:
        """Lets a workload started with wait_signal=True begin its work (sends SIGUSR1)."""
        if self._exited():
            raise WorkloadError(f"{self.name} has already exited")
        os.kill(self.pid, signal.SIGUSR1)

    def thread_names(self) -> dict[int, str]:
        """tid -> thread name (comm) of the workload's main process."""
        names: dict[int, str] = {}
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                names[int(task.name)] = (task / "comm").read_text().strip()
        return names

    def group_pids(self) -> list[int]:
        """Live (non-zombie) processes of the workload's process group, leader included."""
        return _live_members(self.pid)

    def stop(self, timeout: float = 5.0) -> dict[str, str]:
        """Sends SIGTERM, waits for the totals line and returns it (also kept in .totals)."""
        if not self._exited():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
        return self._collect(timeout, "after SIGTERM")

    def wait(self, timeout: float = 30.0) -> dict[str, str]:
        """Waits for the workload to end on its own (its --seconds ran out); returns totals."""
        return self._collect(timeout, "on its own")

    def kill(self) -> None:
        """Kills the whole process group at once; safe to call more than once."""
        _kill_group(self._proc)
        self._finalizer.detach()

    def _collect(self, timeout: float, how: str) -> dict[str, str]:
        if self.totals is not None:
            return self.totals
        deadline = time.monotonic() + timeout
        while not self._exited():
            if time.monotonic() > deadline:
                self.kill()
                raise WorkloadError(
                    f"{self.name} (pid {self.pid}) did not exit within "
                    f"{timeout}s {how}; killed its group. {self._describe()}"
                )
            time.sleep(_POLL)
        self.kill()  # the leader has exited: remove anything left in its group, then reap
        if self._proc.returncode != 0:
            raise WorkloadError(f"{self.name} failed. {self._describe()}")
        self.totals = parse_totals(_read_all(self._stdout))
        return self.totals

    def _exited(self) -> bool:
        """True once the leader has exited."""
        return self._proc.returncode is not None or self._exit_info() is not None

    def _exit_info(self) -> tuple[int, int] | None:
        """(si_code, si_status) of the exited leader, without reaping it: WNOWAIT leaves it a
        zombie, so its pid and group id cannot be reused while we still signal the group."""
        rc = self._proc.returncode
        if rc is not None:  # already reaped
            return (os.CLD_EXITED, rc) if rc >= 0 else (os.CLD_KILLED, -rc)
        flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
        info = os.waitid(os.P_PID, self.pid, flags)
        return None if info is None else (info.si_code, info.si_status)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self._is_ready():
            if self._exited():
                if self._exit_info() == (os.CLD_EXITED, 0):
                    return  # already done (a short --count run): its totals are waiting
                self.kill()
                raise WorkloadError(f"{self.name} exited before it was ready. {self._describe()}")
            if time.monotonic() > deadline:
                raise WorkloadError(f"{self.name} not ready after {timeout}s. {self._describe()}")
            time.sleep(_POLL)

    def _is_ready(self) -> bool:
        try:
            # Before exec the child is still a copy of Python: check the binary too.
            if os.readlink(f"/proc/{self.pid}/exe") != str(self.binary):
                return False
            status = Path(f"/proc/{self.pid}/status").read_text()
        except (FileNotFoundError, ProcessLookupError):
            return False
        for line in status.splitlines():
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) & _SIGUSR1_BIT)
        return False

    def _describe(self) -> str:
        return (
            f"command: {shlex.join(self.argv)}; exit status: {self._proc.returncode}; "
            f"stdout: {_read_all(self._stdout)!r}; stderr: {_read_all(self._stderr)!r}"
        )


def _read_all(f: IO[bytes]) -> str:
    f.seek(0)
    return f.read().decode(errors="replace")


def run(name: str, *args: Arg, timeout: float = 30.0, opt: str = "O0",
        frame_pointers: bool = True) -> dict[str, str]:
    """Runs a workload to its natural end (pass --seconds or a count) and returns its totals."""
    with Workload(name, *args, opt=opt, frame_pointers=frame_pointers) as workload:
        return workload.wait(timeout)


if __name__ == "__main__":
    for built in build_all().values():
        print(built)
