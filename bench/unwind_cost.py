"""Cost per event of user stacks through libc (issue #12.3): the plain frame-pointer walk
(bpf_get_stack, what bpfrun did before) against bpfrun_unwind_user (what it does now), in
nanoseconds inside the BPF program per stack taken, from the kernel's run-time statistics.

    unwind_cost.py [--reps N] [--seconds S] [--out PATH|-]

Each row runs bench/unwind_proto.py's three programs paired on one tracepoint for one
workload: `plain`, `unwound`, and `none` (the part every program pays — the pid filter, on
every event of every process — which is subtracted). The attach order is swapped between
repetitions (the first program attached runs first and meets colder caches); medians.
Writes bench/RESULTS-unwind.md unless --out says otherwise. Root, BCC, tracefs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import unwind_proto  # noqa: E402  (sets up the paths to bpfrun and tests/helpers)
from helpers.workloads import Workload  # noqa: E402

# (workload and its arguments, probe, what the stack looks like there)
SCENARIOS = (
    (("syscall_loop",), "tp:raw_syscalls:sys_enter",
     "getppid() in a loop: 1 libc frame (the syscall wrapper), 3 frames in all"),
    (("prodcons", "--sleep-ms", "2", "--wait-ms", "1"), "tp:sched:sched_switch",
     "threads blocking in usleep, pthread_mutex_lock, pthread_cond_timedwait: 2-4 libc "
     "frames, 4-6 in all"),
    (("oncpu",), "hz:999",
     "CPU samples of a thread spinning on clock_gettime: mostly vDSO + libc frames, 4-5 in "
     "all"),
)


def one_row(workload: tuple[str, ...], probe: str, reps: int,
            seconds: float) -> dict[str, float]:
    walks: dict[str, list[float]] = {"plain": [], "unwound": []}
    stacks = 0
    name, *wargs = workload
    with Workload(name, *wargs, "--seconds", str(reps * (seconds + 5) + 30), opt="O2") as w:
        for rep in range(reps):
            order = unwind_proto.PROGRAMS if rep % 2 == 0 else ("unwound", "plain", "none")
            b = unwind_proto.load(w.pid, probe, order)
            try:
                costs = unwind_proto.measure(b, seconds)
            finally:
                b.cleanup()
            base = costs["none"][0]
            for name in walks:
                walks[name].append(costs[name][0] - base)
            stacks += costs["plain"][1]
    plain, unwound = (statistics.median(walks[n]) for n in ("plain", "unwound"))
    return {"plain": plain, "unwound": unwound, "stacks": stacks}


def table(rows: list[tuple[tuple[str, ...], str, str, dict[str, float]]], reps: int) -> str:
    out = ["| Workload | Probe | Stack | plain walk (before), ns/stack | "
           "unwound (after), ns/stack | added ns/stack | stacks measured |",
           "|---|---|---|--:|--:|--:|--:|"]
    for workload, probe, what, r in rows:
        out.append(f"| {' '.join(workload)} (-O2) | {probe} | {what} | {r['plain']:,.0f} | "
                   f"{r['unwound']:,.0f} | {r['unwound'] - r['plain']:+,.0f} | "
                   f"{int(r['stacks']):,} |")
    return "\n".join(out) + f"\n\nMedians of {reps} paired runs (attach order swapped).\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--out", default=str(HERE / "RESULTS-unwind.md"))
    args = ap.parse_args()
    rows = [(w, p, what, one_row(w, p, args.reps, args.seconds)) for w, p, what in SCENARIOS]
    text = ("# User stacks through libc: cost per stack (bench/unwind_cost.py)\n\n"
            f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: nanoseconds "
            "inside the BPF program per stack taken, the pid filter's share subtracted.\n\n"
            + table(rows, args.reps))
    if args.out == "-":
        print(text, end="")
    else:
        Path(args.out).write_text(text)
        print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
