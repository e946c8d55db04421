"""Who caused a wakeup: the waking task, or a timer or interrupt that only ran on top of it.

`sched_waking` fires in the context of whatever calls try_to_wake_up(): a task releasing a
lock or writing to a pipe — the real waker — or a timer or device interrupt, which runs on
top of any task (often the idle task, `swapper/N`) that has nothing to do with the wakeup.
BPF programs at tracepoints cannot read the record's `common_flags` (the kernel puts the
registers' address there), so the context is read from the waker's kernel stack instead: a
timer callback (`hrtimer_wakeup`, the timer wheel's `call_timer_fn`) makes it "timer", an
interrupt or softirq frame "interrupt", anything else the task named by `comm`.

    waker(kstack, comm)   "timer", "interrupt" or comm
    wakers(agg)           the rows of an aggregation keyed by `comm` and `kstack` (and maybe
                          `pid`), grouped by waker, largest first: [{waker, pid, value}, ...]
    task_wakers(agg)      the same, tasks only (no timers or interrupts)
"""

from __future__ import annotations

from typing import Any

from bpfrun.expr.frames import FrameError, add_values

TIMER = "timer"
INTERRUPT = "interrupt"
TIMER_FRAMES = frozenset({
    "hrtimer_wakeup", "__hrtimer_run_queues", "hrtimer_interrupt", "hrtimer_run_softirq",
    "process_timeout", "call_timer_fn", "__run_timers", "run_timer_softirq", "run_timer_base",
    "it_real_fn", "posix_timer_fn", "alarmtimer_fired", "tick_nohz_handler",
    "tick_sched_timer"})
INTERRUPT_FRAMES = frozenset({
    "handle_softirqs", "__do_softirq", "do_softirq", "irq_exit_rcu", "__irq_exit_rcu",
    "handle_irq_event", "handle_irq_event_percpu", "__handle_irq_event_percpu",
    "common_interrupt", "asm_common_interrupt", "handle_edge_irq", "handle_fasteoi_irq"})
INTERRUPT_PREFIXES = ("sysvec_", "asm_sysvec_", "__sysvec_")


def _function(name: Any) -> str:
    """A kernel frame's function: `hrtimer_wakeup+0x1d` or `hrtimer_wakeup` → hrtimer_wakeup."""
    return str(name).split("+0x", 1)[0].split(" ", 1)[0]


def waker(kstack: Any, comm: Any) -> str:
    functions = [_function(f) for f in kstack or ()]
    if any(f in TIMER_FRAMES for f in functions):
        return TIMER
    if any(f in INTERRUPT_FRAMES or f.startswith(INTERRUPT_PREFIXES) for f in functions):
        return INTERRUPT
    return str(comm)


def wakers(rows: list[Any], *, tasks_only: bool = False) -> list[dict[str, Any]]:
    groups: dict[tuple[str, Any], dict[str, Any]] = {}
    for row in rows:
        key = getattr(row, "key", {})
        if "comm" not in key or "kstack" not in key:
            raise FrameError("takes an aggregation keyed by comm and kstack (the waker's)")
        who = waker(key["kstack"], key["comm"])
        if tasks_only and who in (TIMER, INTERRUPT):
            continue
        pid = key.get("pid") if who not in (TIMER, INTERRUPT) else None
        group = groups.setdefault((who, pid), {"waker": who, "pid": pid, "value": None})
        group["value"] = row.value if group["value"] is None else \
            add_values(group["value"], row.value)
    return sorted(groups.values(), key=lambda g: -_weight(g["value"]))


def _weight(value: Any) -> float:
    for unit in ("ns", "bytes"):
        if hasattr(value, unit):
            return float(getattr(value, unit))
    return float(value or 0)
