"""What a step's own BPF programs cost while it runs, and the budget that stops it early.

The kernel times every BPF program run while run-time statistics are on (`BPF_ENABLE_STATS`,
held by a file descriptor, so they go off again however bpfrun ends; kernels before 5.8 have
only the `kernel.bpf_stats_enabled` sysctl, set and restored). Each program's `run_time_ns`
and `run_cnt` are read from /proc/self/fdinfo of the fds BCC keeps, which counts this step's
programs only, whatever else runs on the host. The cost is BPF time over elapsed time times
CPUs: the share of the whole machine the probes take, which is what a busy host loses.

Checks happen once a second (after the first second, then each next one), on that second's
numbers: reading a few fdinfo files costs microseconds, so the check itself is cheap.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from bpfrun.errors import UsageError

DEFAULT_BUDGET = 5.0  # % of the machine's CPU time
CHECK_EVERY = 1.0  # s
_NR_BPF = 321  # x86-64
_BPF_ENABLE_STATS = 32
_BPF_STATS_RUN_TIME = 0
_SYSCTL = "/proc/sys/kernel/bpf_stats_enabled"


@dataclass(frozen=True)
class Measured:
    """A step's BPF cost: nanoseconds in its programs, their runs, over `seconds`."""

    bpf_ns: int
    events: int
    seconds: float
    cpus: int

    @property
    def cpu_percent(self) -> float:
        if self.seconds <= 0:
            return 0.0
        return 100.0 * self.bpf_ns / (self.seconds * 1e9 * self.cpus)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


@contextlib.contextmanager
def stats_enabled() -> Iterator[bool]:
    """Run-time statistics on for the duration; yields False when they cannot be."""
    libc = ctypes.CDLL(None, use_errno=True)
    attr = (ctypes.c_uint32 * 16)()  # union bpf_attr, zeroed; enable_stats.type first
    attr[0] = _BPF_STATS_RUN_TIME
    fd = libc.syscall(_NR_BPF, _BPF_ENABLE_STATS, ctypes.byref(attr), ctypes.sizeof(attr))
    if fd >= 0:
        try:
            yield True
        finally:
            os.close(fd)
        return
    with _sysctl_on() as on:
        yield on


@contextlib.contextmanager
def _sysctl_on() -> Iterator[bool]:
    try:
        with open(_SYSCTL) as f:
            before = f.read().strip()
        if before != "1":
            with open(_SYSCTL, "w") as f:
                f.write("1")
    except OSError:
        yield False
        return
    try:
        yield True
    finally:
        if before != "1":
            with contextlib.suppress(OSError), open(_SYSCTL, "w") as f:
                f.write(before)


def read_programs(fds: Iterable[int]) -> tuple[int, int]:
    """Summed run_time_ns and run_cnt of the programs behind `fds`."""
    ns = runs = 0
    for fd in fds:
        try:
            with open(f"/proc/self/fdinfo/{fd}") as f:
                info = dict(line.split(":", 1) for line in f if ":" in line)
            ns += int(info.get("run_time_ns", 0))
            runs += int(info.get("run_cnt", 0))
        except (OSError, ValueError):
            continue
    return ns, runs


class OverheadMeter:
    """Measures a step's programs from `start()` on and says when they exceed the budget
    (`budget` in percent; None: measure only)."""

    def __init__(self, fds: list[int], budget: float | None, cpus: int | None = None) -> None:
        self.fds = fds
        self.budget = budget
        self.cpus = cpus or os.cpu_count() or 1
        self.first = (0, 0, 0.0)  # ns, runs, time at start
        self.last = self.first
        self.next_check = 0.0
        self.over: Measured | None = None  # the second that broke the budget

    def start(self) -> None:
        now = time.monotonic()
        self.first = self.last = (*read_programs(self.fds), now)
        self.next_check = now + CHECK_EVERY

    def check(self) -> bool:
        """True once the last second's cost exceeded the budget; reads only once a second."""
        now = time.monotonic()
        if now < self.next_check:
            return self.over is not None
        ns, runs = read_programs(self.fds)
        second = Measured(ns - self.last[0], runs - self.last[1], now - self.last[2], self.cpus)
        self.last, self.next_check = (ns, runs, now), now + CHECK_EVERY
        if self.budget and self.over is None and second.cpu_percent > self.budget:
            self.over = second
        return self.over is not None

    def total(self) -> Measured:
        ns, runs = read_programs(self.fds)
        return Measured(ns - self.first[0], runs - self.first[1],
                        time.monotonic() - self.first[2], self.cpus)


def budget_message(step_id: str, measured: Measured, over: Measured, budget: float,
                   seconds: float) -> str:
    """The finding of a step the budget stopped: why, what it has, how to narrow it."""
    return (f"step '{step_id}' stopped after {seconds:.1f} s: its BPF programs took "
            f"{over.cpu_percent:.1f} % of the CPUs ({over.rate:,.0f} probe hits/s), over the "
            f"{budget:g} % budget; its results cover those {seconds:.1f} s "
            f"({measured.events:,} hits). Narrow it with a pid or comm in its where, "
            f"sample: 1/N on its busiest probe, or raise --max-overhead (0: no limit)")


def run_budget(option: float | None, policy_max: float | None, rule: str) -> float | None:
    """The budget a run gets (percent; None: no limit): `--max-overhead`, else the policy's
    `max_overhead`, else the default. A policy's limit is a ceiling the option may not lift;
    `rule` names it in the refusal (UsageError, exit 2)."""
    if option is not None and not 0 <= option <= 100:
        raise UsageError(f"--max-overhead: {option:g} is not a percentage between 0 and 100")
    limit = DEFAULT_BUDGET if policy_max is None else policy_max
    if option is None:
        return limit or None
    if policy_max and (option == 0 or option > policy_max):
        raise UsageError(f"{rule}: --max-overhead {option:g} is above its {policy_max:g} %",
                         f"pass --max-overhead {policy_max:g} or less")
    return option or None
