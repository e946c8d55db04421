"""waker, wakers, task_wakers: a wakeup is counted against what caused it — the task that
released a lock, or the timer or interrupt that only ran on top of some task."""

from __future__ import annotations

from typing import Any

import pytest

from bpfrun.compile.program import AggPlan, KeyField
from bpfrun.expr.evaluate import EvalError, Evaluator
from bpfrun.expr.parser import parse
from bpfrun.runtime.collect import AggView, Row
from bpfrun.units import Duration

MS = 1_000_000
TIMER = ["try_to_wake_up", "hrtimer_wakeup", "__hrtimer_run_queues", "hrtimer_interrupt",
         "__sysvec_apic_timer_interrupt", "sysvec_apic_timer_interrupt"]
FUTEX = ["try_to_wake_up", "wake_up_q", "futex_wake", "do_futex", "__x64_sys_futex",
         "do_syscall_64"]
NET = ["try_to_wake_up", "__wake_up_common", "sock_def_readable", "net_rx_action",
       "handle_softirqs", "irq_exit_rcu", "common_interrupt"]


def by_waker(*rows: tuple[str, int, list[str], int]) -> AggView:
    keys = [KeyField("k0", "comm", "str", "str", 16), KeyField("k1", "pid", "int", "int"),
            KeyField("k2", "kstack", "stack", "stack")]
    plan = AggPlan("by_waker", "sum", "agg", None, keys, "duration", "ms", MS, 10, None)
    return AggView(plan, [Row({"comm": c, "pid": p, "kstack": k}, Duration(v * MS))
                          for c, p, k, v in rows])


def ev(text: str, **names: Any) -> Any:
    return Evaluator(names).eval(parse(text))


def test_the_waker_is_the_task_unless_a_timer_or_interrupt_ran_on_top_of_it() -> None:
    assert ev('waker(k, "swapper/1")', k=TIMER) == "timer"
    assert ev('waker(k, "bpfr_consumer")', k=FUTEX) == "bpfr_consumer"
    assert ev('waker(k, "bash")', k=NET) == "interrupt"
    assert ev('waker(k, "kworker/0:1")', k=["try_to_wake_up", "call_timer_fn+0x2a"]) == "timer"
    assert ev('waker(k, "x")', k=[]) == "x"  # no kernel stack: the task


def test_wakers_group_timer_wakeups_whatever_task_they_interrupted() -> None:
    agg = by_waker(("swapper/1", 0, TIMER, 1900), ("bpfr_consumer", 41, FUTEX, 600),
                   ("swapper/0", 0, TIMER, 400), ("bpfr_producer", 41, TIMER, 50))
    assert ev("wakers(w)", w=agg) == [
        {"waker": "timer", "pid": None, "value": Duration(2350 * MS)},
        {"waker": "bpfr_consumer", "pid": 41, "value": Duration(600 * MS)}]
    assert ev("task_wakers(w)[0].waker", w=agg) == "bpfr_consumer"
    assert ev("len(task_wakers(w))", w=by_waker(("swapper/0", 0, TIMER, 5))) == 0


def test_wakers_need_the_wakers_comm_and_kernel_stack() -> None:
    plan = AggPlan("a", "sum", "agg", None, [KeyField("k0", "comm", "str", "str", 16)],
                   "int", None, 1, 10, None)
    with pytest.raises(EvalError, match="keyed by comm and kstack"):
        ev("wakers(a)", a=AggView(plan, [Row({"comm": "x"}, 1)]))
