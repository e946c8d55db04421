"""How much CPU a step's BPF programs take, and the budget that stops a step taking more.

The kernel times every BPF program run while run-time statistics are on (`BPF_ENABLE_STATS`,
held by a file descriptor, so they go off again however bpfrun ends; kernels before 5.8 have
only the `kernel.bpf_stats_enabled` sysctl, set and restored). Each program's `run_time_ns`
and `run_cnt` are read from /proc/self/fdinfo of the fds BCC keeps, which counts this step's
programs only, whatever else runs on the host. The cost is BPF time over elapsed time times
CPUs: the share of the whole machine the probes take, which is what a busy host loses.

Timing is not free: two clock reads around every run of every BPF program on the host, about
75 ns a run here (bench: a system-call storm under syscalls lost 150 ns a call to it, a third
of the tracing cost). So the statistics are on only for a WINDOW at the start of each second
(a tenth of the time); a step is stopped when STRIKES windows in a row were over budget
(about a second into a storm), and the step's total is the windows' sum scaled to the whole
time: an estimate, and result.json says how much of the time was timed.
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
CHECK_EVERY = 1.0  # s between the starts of two timed windows
WINDOW = 0.1  # s timed at the start of each CHECK_EVERY
STRIKES = 2  # windows over budget in a row that stop a step
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
    timed: float | None = None  # seconds the kernel timed, when less than all (an estimate)

    @property
    def cpu_percent(self) -> float:
        if self.seconds <= 0:
            return 0.0
        return 100.0 * self.bpf_ns / (self.seconds * 1e9 * self.cpus)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


class StatsSwitch:
    """Turns the kernel's BPF run-time statistics on and off (the fd of BPF_ENABLE_STATS,
    else the sysctl, restored). Other holders keep them on: the kernel counts holders."""

    def __init__(self) -> None:
        self.fd: int | None = None
        self.sysctl_before: str | None = None

    def on(self) -> bool:
        """On (True), or False when this kernel or this user cannot have them."""
        if self.fd is not None or self.sysctl_before is not None:
            return True
        libc = ctypes.CDLL(None, use_errno=True)
        attr = (ctypes.c_uint32 * 16)()  # union bpf_attr, zeroed; enable_stats.type first
        attr[0] = _BPF_STATS_RUN_TIME
        fd = libc.syscall(_NR_BPF, _BPF_ENABLE_STATS, ctypes.byref(attr), ctypes.sizeof(attr))
        if fd >= 0:
            self.fd = fd
            return True
        try:
            with open(_SYSCTL) as f:
                before = f.read().strip()
            if before != "1":
                with open(_SYSCTL, "w") as f:
                    f.write("1")
        except OSError:
            return False
        self.sysctl_before = before
        return True

    def off(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        elif self.sysctl_before is not None:
            if self.sysctl_before != "1":
                with contextlib.suppress(OSError), open(_SYSCTL, "w") as f:
                    f.write(self.sysctl_before)
            self.sysctl_before = None


@contextlib.contextmanager
def stats_enabled() -> Iterator[bool]:
    """Run-time statistics on for the duration; yields False when they cannot be."""
    switch = StatsSwitch()
    try:
        yield switch.on()
    finally:
        switch.off()


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
    """Measures a step's programs from `start()` on, in timed windows, and says when one
    exceeds the budget (`budget` in percent; None: measure only)."""

    def __init__(self, fds: list[int], budget: float | None, cpus: int | None = None,
                 switch: StatsSwitch | None = None, window: float = WINDOW) -> None:
        self.fds = fds
        self.budget = budget
        self.cpus = cpus or os.cpu_count() or 1
        self.switch = switch or StatsSwitch()
        self.window = window
        self.started = 0.0
        self.opened: tuple[int, int, float] | None = None  # ns, runs, time: a window is open
        self.next_window = 0.0
        self.timed = (0, 0, 0.0)  # ns, runs, seconds of the closed windows
        self.over: Measured | None = None  # the window that broke the budget
        self.strikes = 0  # windows over budget in a row

    def start(self) -> bool:
        """Opens the first window; False when statistics cannot be had (nothing measured)."""
        self.started = self.next_window = time.monotonic()
        return self._open(self.started)

    def _open(self, now: float) -> bool:
        if not self.switch.on():
            return False
        self.opened = (*read_programs(self.fds), now)
        self.next_window = now + CHECK_EVERY
        return True

    def _close(self, now: float) -> Measured:
        assert self.opened is not None
        ns, runs = read_programs(self.fds)
        self.switch.off()
        window = Measured(ns - self.opened[0], runs - self.opened[1], now - self.opened[2],
                          self.cpus)
        self.opened = None
        t = self.timed
        self.timed = (t[0] + window.bpf_ns, t[1] + window.events, t[2] + window.seconds)
        return window

    def check(self) -> bool:
        """True once STRIKES timed windows in a row cost more than the budget (one 0.1 s
        burst, a start-up say, does not stop a step that stays within it)."""
        now = time.monotonic()
        if self.opened is not None and now - self.opened[2] >= self.window:
            window = self._close(now)
            over = bool(self.budget) and window.cpu_percent > (self.budget or 0)
            self.strikes = self.strikes + 1 if over else 0
            if self.over is None and self.strikes >= STRIKES:
                self.over = window
        elif self.opened is None and now >= self.next_window:
            self._open(now)
        return self.over is not None

    def total(self) -> Measured:
        """The whole step's cost, scaled from its timed windows (closes an open one)."""
        now = time.monotonic()
        if self.opened is not None:
            self._close(now)
        ns, runs, timed = self.timed
        elapsed = now - self.started
        scale = elapsed / timed if timed > 0 else 0.0
        return Measured(round(ns * scale), round(runs * scale), elapsed, self.cpus,
                        timed=min(timed, elapsed))

    def close(self) -> None:
        """Statistics off, however the step ended."""
        self.opened = None
        self.switch.off()


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
