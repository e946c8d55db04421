"""One benchmark row: a workload run untraced (before), traced, untraced again (after).

Throughput is the workload's own rate (round trips/s, calls/s, loops/s). The reference is the
mean of the before and after medians, so drift during the row shows (and is reported) instead
of silently skewing the ratio. While the tracer runs, its start-up time, peak RSS and BPF map
memory are read; processes that load BPF programs but are not ours are noted as noise.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import progstats
from procs import Child, ChildError, live_pids, run
from tracers import Tracer

SETTLE = 0.5  # seconds between "attached" and the first traced repetition
READY_TIMEOUT = 180.0  # compiling with BCC takes seconds; a loaded machine, more
NOISY_DRIFT = 0.10  # before and after medians further apart than this: the row is noisy


@dataclass
class Workload:
    key: str
    label: str
    argv: list[str]  # the command, without taskset
    unit: str  # what the rate counts, per second
    timeout: float
    rate: Callable[[dict[str, str]], float]
    events_per_op: float | None = None  # BPF events a traced op triggers (for ns/event)
    ops_field: str = "calls"  # the totals field counting ops


@dataclass
class Row:
    section: str
    workload: Workload
    tracer: Tracer | None
    compare_to: str | None = None  # key of the tracer this one is compared with
    before: list[float] = field(default_factory=list)
    traced: list[float] = field(default_factory=list)
    after: list[float] = field(default_factory=list)
    startup_s: float | None = None
    hwm_kib: int | None = None  # VmHWM just before the stop signal
    maxrss_kib: int | None = None  # ru_maxrss at exit (includes reading maps, reports)
    map_kib: int | None = None  # memlock of the BPF maps the tracer holds
    compile_s: float | None = None  # bpfrun: result.json compile_seconds
    stop_s: float | None = None  # stop signal → exit: reading maps, symbolizing, reporting
    skipped: str | None = None
    error: str | None = None
    noise: list[str] = field(default_factory=list)
    detail: str = ""  # what the tracer reported (entries, active keys)
    shares: list[float] = field(default_factory=list)  # CPU share of every workload run
    discarded: int = 0  # repetitions run again because another BPF user overlapped them
    progs: list[progstats.Prog] = field(default_factory=list)  # cost per program (stats run)
    ops_in_stats_run: float | None = None
    walls: dict[str, list[float]] = field(  # the workload's own rates (clock "wall")
        default_factory=lambda: {"before": [], "traced": [], "after": []})

    def fresh(self) -> Row:
        """The same row, not measured yet."""
        return Row(self.section, self.workload, self.tracer, self.compare_to)

    @property
    def ref(self) -> float | None:
        if not self.before or not self.after:
            return None
        return (statistics.median(self.before) + statistics.median(self.after)) / 2

    @property
    def ratio(self) -> float | None:
        ref = self.ref
        if ref is None or not self.traced or ref <= 0:
            return None
        return statistics.median(self.traced) / ref

    @property
    def wall_ratio(self) -> float | None:
        w = self.walls
        if not (w["before"] and w["after"] and w["traced"]):
            return None
        ref = (statistics.median(w["before"]) + statistics.median(w["after"])) / 2
        return statistics.median(w["traced"]) / ref if ref > 0 else None

    @property
    def bpf_ns_per_op(self) -> float | None:
        """Time inside the tracer's BPF programs per workload op (kernel run-time stats)."""
        if not self.progs or not self.ops_in_stats_run:
            return None
        return sum(p.run_ns for p in self.progs) / self.ops_in_stats_run

    @property
    def drift(self) -> float | None:
        """|before - after| / reference: how much the machine changed during the row."""
        ref = self.ref
        if ref is None or ref <= 0:
            return None
        return abs(statistics.median(self.before) - statistics.median(self.after)) / ref

    @property
    def noisy(self) -> bool:
        drift = self.drift
        return bool(self.noise) or (drift is not None and drift > NOISY_DRIFT)

    @property
    def added_ns(self) -> float | None:
        """Extra nanoseconds per workload op under tracing."""
        ref = self.ref
        if ref is None or not self.traced or ref <= 0:
            return None
        return 1e9 / statistics.median(self.traced) - 1e9 / ref


def rate_field(name: str = "rate") -> Callable[[dict[str, str]], float]:
    return lambda totals: float(totals[name])


def per_second(name: str, seconds: float) -> Callable[[dict[str, str]], float]:
    return lambda totals: float(totals[name]) / seconds


def parse_totals(text: str) -> dict[str, str]:
    for line in reversed(text.splitlines()):
        words = line.split()
        if words and all("=" in w and not w.startswith("=") for w in words):
            return dict(w.split("=", 1) for w in words)
    raise ChildError(f"no key=value totals line in {text!r}")


@dataclass
class Settings:
    reps: int
    cpu: int  # the workload's CPU
    tracer_cpus: str | None  # taskset list for tracers (None: no pinning)
    clock: str = "cpu"  # "cpu": rate per CPU-second the workload got; "wall": as printed
    quiet_wait: float = 0.0


def run_workload(w: Workload, s: Settings) -> tuple[float, dict[str, str], float, float]:
    """(rate, totals, share, wall rate): share is the fraction of its lifetime the workload
    was on a CPU.

    A pinned CPU-bound workload has a share of 1 on a quiet machine; another process on its
    CPU lowers it, and the rate with it. With clock "cpu" the rate is divided by the share:
    throughput per CPU-second the workload actually got. Tracing costs stay in: BPF programs
    run in the traced task's context and are charged to it.
    """
    ex = run(["taskset", "-c", str(s.cpu), *w.argv], w.timeout)
    if ex.code != 0:
        why = "timed out" if ex.code is None else f"exit {ex.code}"
        raise ChildError(f"workload {w.key} {why}: {ex.text()[-300:]}")
    totals = parse_totals(ex.text("out"))
    share = min(ex.cpu_s / ex.wall_s, 1.0) if ex.wall_s > 0 and ex.cpu_s > 0 else 1.0
    wall = rate = w.rate(totals)
    if s.clock == "cpu":
        rate /= share
    return rate, totals, share, wall


def bpf_map_kib(pid: int) -> int | None:
    """Sum of `memlock` over the BPF maps a process holds (the kernel's charge for them)."""
    total = 0
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:bpf-map":
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                for line in f:
                    if line.startswith("memlock:"):
                        total += int(line.split()[1])
    return total // 1024


def foreign_bpf() -> list[str]:
    """`comm(pid)` of processes outside this benchmark that hold loaded BPF programs: other
    tracers running at the same time make every number of the row suspect."""
    ours = live_pids() | {os.getpid()}
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in ours or entry == "1":
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                session = int(f.read().rsplit(")", 1)[1].split()[3])
            if session in ours:
                continue
            fds = os.listdir(f"/proc/{entry}/fd")
            if any(os.readlink(f"/proc/{entry}/fd/{fd}") == "anon_inode:bpf-prog"
                   for fd in fds):
                with open(f"/proc/{entry}/comm") as f:
                    found.append(f"{f.read().strip()}({entry})")
        except (OSError, ValueError, IndexError):
            continue
    return found


def wait_quiet(limit: float) -> list[str]:
    """Waits (up to `limit` s) until no other process holds BPF programs; returns who still
    does. Other test suites tracing the scheduler would slow the untraced runs too."""
    deadline = time.monotonic() + limit
    while (found := foreign_bpf()) and time.monotonic() < deadline:
        time.sleep(0.5)
    return found


class _Phase:
    """Runs the repetitions of a row, keeping only those no other BPF user overlapped.

    Other sessions' tests load BPF programs for seconds at a time (on the same tracepoints:
    raw_syscalls, sched); a repetition during which one was loaded measures them too. Such a
    repetition is run again after waiting for quiet, until the row's wait allowance is used
    up; after that repetitions are kept as they are and the row lists who was there.
    """

    def __init__(self, row: Row, s: Settings) -> None:
        self.row, self.s = row, s
        self.deadline = time.monotonic() + s.quiet_wait
        self.noise: set[str] = set()
        self.discarded = 0

    def rep(self, phase: str) -> dict[str, str]:
        while True:
            pre = wait_quiet(max(0.0, self.deadline - time.monotonic()))
            rate, totals, share, wall = run_workload(self.row.workload, self.s)
            post = foreign_bpf()
            if (pre or post) and time.monotonic() < self.deadline:
                self.discarded += 1
                continue
            self.noise.update(pre + post)
            break
        getattr(self.row, phase).append(rate)
        self.row.walls[phase].append(wall)
        self.row.shares.append(share)
        return totals


def measure(row: Row, s: Settings, log: Callable[[str], None]) -> Row:
    """Fills `row` in place (and returns it); never raises for a failing tracer or workload."""
    ph = _Phase(row, s)
    try:
        for _ in range(s.reps):
            ph.rep("before")
        if row.tracer is not None:
            _traced(row, row.tracer, ph)
        for _ in range(s.reps):
            ph.rep("after")
    except ChildError as e:
        row.error = str(e)
    row.noise = sorted(ph.noise)
    row.discarded = ph.discarded
    log(_summary(row))
    return row


def _traced(row: Row, t: Tracer, ph: _Phase) -> None:
    s = ph.s
    argv = ["taskset", "-c", s.tracer_cpus, *t.argv] if s.tracer_cpus else list(t.argv)
    if t.out_dir is not None:
        shutil.rmtree(t.out_dir, ignore_errors=True)  # a retried row starts afresh
        t.out_dir.parent.mkdir(parents=True, exist_ok=True)
    child = Child(argv)
    try:
        if t.ready is not None:
            row.startup_s = child.wait_line(t.ready, READY_TIMEOUT).t
        if t.ready_fds:
            row.startup_s = _wait_fds(child, *t.ready_fds)
        time.sleep(SETTLE)
        for _ in range(s.reps):
            totals = ph.rep("traced")
            if "active" in totals:
                row.detail = f"{totals['active']} key(s) active"
        if child.exited():
            raise ChildError(f"{t.label} exited while the workload ran: {child.tail()}")
        _program_cost(row, child, s)
        row.hwm_kib = child.status_kib("VmHWM")
        row.map_kib = bpf_map_kib(child.pid)
    finally:
        t_stop = time.monotonic()
        ex = child.stop(grace=30.0)
        row.stop_s = time.monotonic() - t_stop if ex.code is not None else None
        row.maxrss_kib = ex.maxrss_kib or None
    notes = [ln.text[len("bench: "):] for ln in ex.lines if ln.text.startswith("bench: entries")]
    notes = notes[-1:]
    if t.describe is not None:
        notes.append(t.describe([ln.text for ln in ex.lines], t.out_dir))
    row.detail = "; ".join(n for n in [row.detail, *notes] if n)
    if t.out_dir is not None:
        row.compile_s = _compile_seconds(t.out_dir)


def _wait_fds(child: Child, link: str, count: int) -> float:
    """Seconds from the child's start until it holds `count` fds linking to `link`."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        n = 0
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{child.pid}/fd"):
                with contextlib.suppress(OSError):
                    n += os.readlink(f"/proc/{child.pid}/fd/{fd}") == link
        if n >= count:
            return time.monotonic() - child.t0
        if child.exited():
            break
        time.sleep(0.01)
    raise ChildError(f"{child.argv[0]} never held {count} {link} fd(s): {child.tail()}")


def _program_cost(row: Row, child: Child, s: Settings) -> None:
    """One extra (unmeasured) run with the kernel timing every BPF program run. Time the
    workload spent preempted inside a program would count too, so the run is repeated (up
    to 3 times) until the workload had its CPU to itself."""
    if not progstats.programs(child.pid):
        return
    with progstats.stats_enabled() as ok:
        if not ok:
            return
        for _ in range(3):
            wait_quiet(min(s.quiet_wait, 5.0))
            before = progstats.programs(child.pid)
            _, totals, share, _ = run_workload(row.workload, s)
            after = progstats.programs(child.pid)
            if share >= 0.95:
                break
    row.progs = progstats.delta(before, after)
    with contextlib.suppress(KeyError, ValueError):
        row.ops_in_stats_run = float(totals[row.workload.ops_field])


def _compile_seconds(out: Path) -> float | None:
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError, IndexError):
        doc = json.loads((out / "result.json").read_text())
        steps = doc["steps"]
        ran = [s for s in steps if s.get("compile_seconds") is not None]
        return float(ran[0]["compile_seconds"])
    return None


def _summary(row: Row) -> str:
    name = row.tracer.label if row.tracer else "untraced"
    if row.error:
        return f"  {row.workload.key:<14} {name:<40} ERROR {row.error[:200]}"
    ratio = row.ratio
    bits = [f"  {row.workload.key:<14} {name:<40}"]
    if row.ref:
        bits.append(f"ref {row.ref:,.0f}/s")
    if ratio is not None:
        bits.append(f"ratio {ratio:.3f}")
    if row.drift is not None:
        bits.append(f"drift {row.drift:.1%}")
    if row.startup_s is not None:
        bits.append(f"start {row.startup_s:.2f}s")
    if row.bpf_ns_per_op is not None:
        bits.append(f"bpf {row.bpf_ns_per_op:.0f}ns/op")
    if row.shares and min(row.shares) < 0.95:
        bits.append(f"min CPU share {min(row.shares):.0%}")
    if row.discarded:
        bits.append(f"{row.discarded} rep(s) redone")
    if row.noise:
        bits.append("noise: " + ",".join(row.noise))
    return " ".join(bits)
