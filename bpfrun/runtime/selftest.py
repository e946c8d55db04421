"""`bpfrun test`: run a runbook against the workload its `selftest:` names and check `expect`.

The workload starts first (built from tests/workloads/NAME.c when that is what it names), in
its own process group so that nothing it spawned outlives the test; the investigation then
runs in-process exactly as `bpfrun run` would (aimed at the cgroup its target param names,
if any), and its result is compared with the typed `expect` of the runbook's Selftest
(bpfrun.runtime.expectations), whose static problems the frontend already reported when the
runbook was loaded.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from bpfrun.compile.pipeline import check_against_kernel
from bpfrun.errors import EXIT_INVALID, EXIT_MACHINE, UsageError
from bpfrun.frontend.model import Runbook
from bpfrun.frontend.params import resolve_params
from bpfrun.frontend.runbooks import find_runbook, load_runbook
from bpfrun.frontend.selftest import Selftest
from bpfrun.kernel.tracefs import default_kernel
from bpfrun.report.writers import write_report_dir
from bpfrun.result import RunResult
from bpfrun.runtime.doctor import require_runnable
from bpfrun.runtime.expectations import compare
from bpfrun.runtime.investigate import Investigation
from bpfrun.runtime.progress import Progress
from bpfrun.runtime.session import TargetOptions, cgroup_target
from bpfrun.units import parse_duration

# Same flags as tests/helpers/workloads.py (product code must not import from tests/):
# -O0 -fno-builtin keep every malloc; frame pointers make user stacks walkable by BPF.
CFLAGS = ("-std=c11", "-O0", "-g", "-fno-omit-frame-pointer", "-fno-builtin", "-pthread",
          "-Wall", "-Wextra")
START_WAIT = 0.3  # seconds a workload gets before the first step compiles
READY_WAIT = 5.0  # built workloads announce readiness (SIGUSR1 caught); wait at most this
_SIGUSR1_BIT = 1 << (signal.SIGUSR1 - 1)


@dataclass
class SelftestResult:
    runbook: str
    ok: bool
    mismatches: list[str] = field(default_factory=list)
    report: Path | None = None
    skipped: str | None = None  # why nothing was run, e.g. "no selftest"; not a failure
    seconds: float = 0.0
    note: str | None = None  # the selftest's own note, e.g. what this machine cannot exercise


def collect(paths: Sequence[str | Path]) -> list[Path]:
    """Runbook files, in order, from files, folders (their *.yaml / *.yml) and shipped names."""
    files: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            files += sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml"))
        else:
            files.append(find_runbook(str(p)))
    unique = {f.resolve(): f for f in reversed(files)}  # a runbook named twice runs once
    return [f for f in files if unique[f.resolve()] is f]


def default_root(runbook_path: Path) -> Path:
    """The repository a runbook belongs to: the folder holding its `runbooks/` folder, when
    that looks like a checkout (has tests/); otherwise the current directory."""
    folder = runbook_path.resolve().parent
    if folder.name == "runbooks" and (folder.parent / "tests").is_dir():
        return folder.parent
    return Path.cwd()


# --- workloads ------------------------------------------------------------------------------

def resolve_workload(argv: Sequence[str], root: Path) -> list[str]:
    """argv with argv[0] made runnable: a path relative to the repository root, compiled from
    NAME.c beside it (into build/NAME) when only the source exists; a bare name is left to
    PATH. Raises UsageError when a build fails."""
    argv = [str(a) for a in argv]
    first = argv[0]
    if "/" not in first:
        return argv
    target = Path(first) if Path(first).is_absolute() else root / first
    source = target.with_name(target.name + ".c")
    if not target.exists() and source.is_file():
        return [str(build_workload(source)), *argv[1:]]
    return [str(target), *argv[1:]]


def build_workload(source: Path) -> Path:
    """Compile DIR/NAME.c into DIR/build/NAME unless that is newer than it and DIR/*.h.

    Serialised with the test helpers' lock file; the binary appears atomically."""
    build_dir = source.parent / "build"
    binary = build_dir / source.stem
    build_dir.mkdir(parents=True, exist_ok=True)
    ignore = build_dir / ".gitignore"  # generated: keep it out of git
    if not ignore.exists():
        ignore.write_text("*\n")
    with open(build_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _up_to_date(binary, [source, *source.parent.glob("*.h")]):
            return binary
        tmp = build_dir / f".{binary.name}.{os.getpid()}.tmp"
        cmd = [os.environ.get("CC", "gcc"), *CFLAGS, "-o", str(tmp), str(source)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        except FileNotFoundError:
            raise UsageError(f"cannot compile {source}: {cmd[0]} not found",
                             "install a C compiler (apt install gcc)") from None
        if proc.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise UsageError(f"compiling {source} failed (exit {proc.returncode}):\n"
                             f"$ {shlex.join(cmd)}\n{proc.stderr}{proc.stdout}".rstrip())
        os.replace(tmp, binary)
    return binary


def _up_to_date(binary: Path, inputs: list[Path]) -> bool:
    try:
        built = binary.stat().st_mtime_ns
    except FileNotFoundError:
        return False
    return all(built >= p.stat().st_mtime_ns for p in inputs)


class _Workload:
    """A started workload in its own process group; kill() removes the whole group."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        self.argv = argv
        self.status: int | None = None  # exit status once it ended on its own
        # A file, not a pipe: a chatty workload can never block on a full pipe.
        self._output: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed in kill)
        self.proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL,
                                     stdout=self._output, stderr=subprocess.STDOUT,
                                     process_group=0)

    def wait_started(self, wait_ready: bool) -> None:
        start = time.monotonic()
        while self.exited() is None:
            elapsed = time.monotonic() - start
            if elapsed >= READY_WAIT or (elapsed >= START_WAIT
                                         and (not wait_ready or self._ready())):
                return
            time.sleep(0.01)

    def _ready(self) -> bool:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) & _SIGUSR1_BIT)
        return False

    def exited(self) -> int | None:
        """The exit status once the leader has ended, without reaping it: while it is a zombie
        its pid, hence its group id, cannot be reused, so killing the group stays safe."""
        if self.status is None and self.proc.returncode is None:
            info = os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            if info is not None:
                code = info.si_status
                self.status = code if info.si_code == os.CLD_EXITED else -code
        return self.status

    def kill(self) -> None:
        self.exited()
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._output.close()

    def failure(self, when: str, limit: int = 400) -> str:
        self._output.seek(0)
        text = self._output.read().decode(errors="replace").strip()
        text = ("…" + text[-limit:]) if len(text) > limit else text
        return (f"workload `{shlex.join(self.argv)}` exited with status {self.status} {when}"
                + (f": {text}" if text else ""))


# --- running --------------------------------------------------------------------------------

@dataclass
class _Run:
    """What running the steps against a started workload gave."""

    mismatches: list[str]
    result: RunResult | None = None  # None: the steps never ran
    programs: dict[str, str] = field(default_factory=dict)  # step id → its C


def run_selftest(path: Path, out_dir: Path | None = None,
                 progress: Progress | None = None, root: Path | None = None
                 ) -> SelftestResult:
    """Run one runbook's self-test and write its report (to `out_dir`/<name>, or a new
    temporary folder). `root` is what workload paths are relative to (default_root).

    Raises ValidationError/UsageError for an invalid runbook or selftest (exit 2) and
    MachineError when this machine cannot run BPF (exit 3); every other problem, a workload
    that cannot be built or started included, is a failed result."""
    began = time.monotonic()
    rb = load_runbook(path)  # the selftest's own problems are among the runbook's
    if rb.selftest is None:
        return SelftestResult(rb.name, True, skipped="no selftest")
    selftest = rb.selftest
    resolve_params(rb, selftest.param_values(1))  # bad values: exit 2 before any work
    require_runnable()

    def outcome(mismatches: list[str], report: Path | None = None) -> SelftestResult:
        return SelftestResult(rb.name, not mismatches, mismatches, report, None,
                              time.monotonic() - began, selftest.note)

    root = (root or default_root(Path(path))).resolve()
    try:
        argv = resolve_workload(selftest.workload.argv, root)
    except UsageError as e:
        return outcome([f"workload: {e.message}"])
    progress = progress or Progress(quiet=True)
    progress.note(f"{rb.name}: starting workload {shlex.join(argv)}")
    try:
        workload = _Workload(argv, root)
    except OSError as e:
        return outcome([f"cannot start workload `{shlex.join(argv)}`: {e.strerror or e}"])
    try:
        run = _run_steps(rb, selftest, workload, progress)
    finally:
        workload.kill()
    if run.result is None:
        return outcome(run.mismatches)
    folder = out_dir / rb.name if out_dir else Path(
        tempfile.mkdtemp(prefix=f"bpfrun-test-{rb.name}-"))
    return outcome(run.mismatches, write_report_dir(folder, run.result, run.programs, {}))


def _run_steps(rb: Runbook, selftest: Selftest, workload: _Workload, progress: Progress
               ) -> _Run:
    """Once the workload is ready, run the steps as `bpfrun run` would (stopped early when
    the selftest's timeout passes) and compare the result with `expect`."""
    timeout = selftest.timeout
    stop, timed_out = threading.Event(), threading.Event()

    def give_up() -> None:
        timed_out.set()
        stop.set()

    timer = threading.Timer(parse_duration(timeout.text) / 1e9 if timeout else 0.0, give_up)
    timer.daemon = True
    try:
        workload.wait_started(wait_ready=_from_source(Path(workload.argv[0])))
        if workload.exited() not in (None, 0):
            return _Run([workload.failure("before the steps ran")])
        params = resolve_params(rb, selftest.param_values(workload.proc.pid))
        target = cgroup_target(TargetOptions(), rb, params)  # missing: exit 2, as run does
        kernel = default_kernel()
        check_against_kernel(rb, params, kernel)
        if timeout:
            timer.start()
        inv = Investigation(rb, params, kernel, None, stop, progress, target=target)
        result = inv.run()
    finally:
        timer.cancel()
    mismatches = compare(selftest.expect, result)
    if timeout and timed_out.is_set():
        mismatches.insert(0, f"timed out after {timeout.text}: the steps were stopped early")
    if workload.exited() not in (None, 0):
        mismatches.append(workload.failure("while the steps ran"))
    return _Run(mismatches, result, inv.programs)


def _from_source(binary: Path) -> bool:
    """Built from tests/workloads/NAME.c: it says when it is ready (workload.h protocol)."""
    return binary.parent.name == "build" and (binary.parent.parent / f"{binary.name}.c").is_file()


# --- output ---------------------------------------------------------------------------------

def render_result(res: SelftestResult) -> str:
    """`PASS name (12.3s)`, or `FAIL name` with its mismatches and the report's path."""
    if res.skipped:
        return f"SKIP {res.runbook} ({res.skipped})"
    lines = [f"PASS {res.runbook} ({res.seconds:.1f}s)" if res.ok else f"FAIL {res.runbook}"]
    if res.note:
        lines.append(f"  note: {' '.join(res.note.split())}")
    lines += [f"  {m}" for m in res.mismatches]
    if res.report and not res.ok:
        lines.append(f"  report: {res.report}")
    return "\n".join(lines)


def summary(results: Sequence[SelftestResult], invalid: int = 0) -> str:
    """`N passed, M failed`, then `, K skipped` and `, I invalid` when there are any."""
    passed = sum(1 for r in results if r.ok and not r.skipped)
    failed = sum(1 for r in results if not r.ok)
    skipped = sum(1 for r in results if r.skipped)
    text = f"{passed} passed, {failed} failed"
    text += f", {skipped} skipped" if skipped else ""
    return text + (f", {invalid} invalid" if invalid else "")


def exit_code(results: Sequence[SelftestResult], invalid: int = 0, machine: bool = False) -> int:
    if machine:
        return EXIT_MACHINE
    if invalid:
        return EXIT_INVALID
    return 1 if any(not r.ok for r in results) else 0


__all__ = ["SelftestResult", "collect", "compare", "default_root",
           "exit_code", "render_result", "resolve_workload", "run_selftest", "summary"]
