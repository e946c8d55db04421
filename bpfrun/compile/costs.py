"""How often a probe runs, by what it is attached to: the cost class `bpfrun explain` gives
each probe (per system call, per context switch, per allocation, per sample...)."""

from __future__ import annotations

from dataclasses import dataclass

from bpfrun.kernel.resolve import ProbeRef


@dataclass(frozen=True)
class Cost:
    """How often a probe runs: `per` says on what ("every system call"); `rate` is one of
    none (user space), bounded (a fixed sampling rate), rare, frequent, very frequent."""

    per: str
    rate: str


def cost_of(ref: ProbeRef) -> Cost:
    """How often a probe fires, by what it is attached to."""
    if ref.kind == "interval":
        return Cost(f"a user-space tick every {ref.parts[1]}{ref.parts[0]}", "none")
    if ref.kind == "profile":
        return Cost(f"sample: {ref.parts[1]} {ref.parts[0]} on every CPU", "bounded")
    if ref.kind == "software":
        return Cost(f"sample: every {ref.parts[1]} {ref.parts[0]} events on every CPU",
                    "bounded")
    if ref.kind in ("uprobe", "uretprobe", "usdt"):
        fn = ref.parts[-1]
        if fn in ALLOCATORS:
            return Cost(f"per {ALLOCATORS[fn]} ({fn} in {ref.parts[0]}, every process "
                        "using it), a trap to the kernel each", "very frequent")
        return Cost(f"per call of {fn} in {ref.parts[0]} (a trap to the kernel each)",
                    "frequent")
    if ref.kind in ("kprobe", "kretprobe"):
        return Cost(f"per call of the kernel function {ref.parts[0]}", "frequent")
    event = ref.parts[-1]
    category = ref.parts[0] if ref.kind == "tracepoint" else ""
    for (cat, prefix), cost in EVENT_COSTS:
        if cat == category and event.startswith(prefix):
            return cost
    if category == "syscalls":
        call = event.removeprefix("sys_enter_").removeprefix("sys_exit_")
        return Cost(f"per {call} system call", "frequent")
    return Cost(f"per {category + ':' if category else ''}{event} event", "frequent")


ALLOCATORS = {"malloc": "allocation", "calloc": "allocation", "realloc": "allocation",
              "free": "free", "aligned_alloc": "allocation", "posix_memalign": "allocation",
              "memalign": "allocation", "valloc": "allocation", "pvalloc": "allocation"}
# (category, event prefix) → cost; category "" is a raw tracepoint's. First match wins.
EVENT_COSTS: tuple[tuple[tuple[str, str], Cost], ...] = (
    (("raw_syscalls", "sys_"), Cost("per system call (every call of every process)",
                                    "very frequent")),
    (("", "sys_enter"), Cost("per system call (every call of every process)", "very frequent")),
    (("", "sys_exit"), Cost("per system call (every call of every process)", "very frequent")),
    (("syscalls", "sys_enter_execve"), Cost("per exec", "rare")),
    (("syscalls", "sys_exit_execve"), Cost("per exec", "rare")),
    (("sched", "sched_switch"), Cost("per context switch", "very frequent")),
    (("sched", "sched_wak"), Cost("per wakeup", "very frequent")),
    (("sched", "sched_process_exec"), Cost("per exec", "rare")),
    (("sched", "sched_process_fork"), Cost("per fork", "rare")),
    (("sched", "sched_process_exit"), Cost("per process exit", "rare")),
    (("block", "block_rq"), Cost("per block I/O request", "frequent")),
    (("irq", "irq_handler"), Cost("per hardware interrupt", "frequent")),
    (("irq", "softirq"), Cost("per softirq", "very frequent")),
    (("tcp", "tcp_retransmit"), Cost("per TCP retransmission", "rare")),
    (("kmem", ""), Cost("per kernel allocation", "very frequent")),
    (("net", ""), Cost("per packet", "very frequent")),
)
