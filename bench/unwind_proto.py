"""Prototype of user-stack unwinding through libc by its .eh_frame rules (issue #12.3), and
its cost per event against a plain frame-pointer walk (bpf_get_stack).

    unwind_proto.py [--pid PID | --workload NAME] [--seconds S]
                    [--probe tp:CATEGORY:EVENT | hz:FREQUENCY]

Without --pid it starts a tests/workloads program (-O2, frame pointers; prodcons unless
--workload says otherwise). Three programs are
attached at once to the same tracepoint, for the target process only: `plain` takes the
stack with bpf_get_stack(BPF_F_USER_STACK), `unwound` with bpfrun_unwind_user()
(bpfrun/compile/templates/unwind.c.j2, the generator's own code). Both then hash the stack
and count it, as bpfrun's programs do; `none` stops before taking a stack (its cost, paid
on every event of every process, is subtracted by bench/unwind_cost.py). Prints each
program's distinct stacks (symbolized by BCC) and the nanoseconds per stack of each, from
the kernel's BPF run-time statistics (bench/progstats.py) — paired, so all see the same
events on the same machine state.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "bench")]

import progstats  # noqa: E402

from bpfrun.compile.program import Program  # noqa: E402
from bpfrun.runtime.unwind_tables import UnwindTables  # noqa: E402

PROGRAM = r"""
#include <uapi/linux/ptrace.h>
#define BPFRUN_STACK_DEPTH 127
struct bpfrun_stack { u64 ip[BPFRUN_STACK_DEPTH]; };
BPF_PERCPU_ARRAY(buf_map, struct bpfrun_stack, 1);
UNWIND_C
BPF_HASH(stacks, u64, struct bpfrun_stack, 1024);
BPF_HASH(counts_plain, u64, u64, 1024);
BPF_HASH(counts_unwound, u64, u64, 1024);

static __always_inline u64 stack_hash(struct bpfrun_stack *buf, long len) {
    u64 h = 0x9e3779b97f4a7c15ULL ^ (u64)len;
#pragma clang loop unroll(disable)
    for (u32 i = 0; i < BPFRUN_STACK_DEPTH; i++) {
        if ((long)i * 8 >= len) break;
        u64 k = buf->ip[i] * 0x87c37b91114253d5ULL;
        k = ((k << 31) | (k >> 33)) * 0x4cf5ad432745937fULL;
        h ^= k;
        h = ((h << 27) | (h >> 37)) * 5 + 0x52dce729;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

static __always_inline int count_stack(void *ctx, int unwind) {
    if ((bpf_get_current_pid_tgid() >> 32) != TARGET) return 0;
    u32 zero = 0;
    struct bpfrun_stack *buf = buf_map.lookup(&zero);
    if (!buf) return 0;
    if (unwind == 2) return 0;  /* `none`: what every program pays besides the stack */
    long len = unwind ? bpfrun_unwind_user(ctx, buf)
                      : bpf_get_stack(ctx, buf, sizeof(*buf), BPF_F_USER_STACK);
    if (len <= 0) return 0;
    u64 h = stack_hash(buf, len);
    if (!stacks.lookup(&h)) stacks.insert(&h, buf);
    if (unwind) counts_unwound.increment(h); else counts_plain.increment(h);
    return 0;
}
int plain(void *ctx) { return count_stack(ctx, 0); }
int unwound(void *ctx) { return count_stack(ctx, 1); }
int none(void *ctx) { return count_stack(ctx, 2); }
"""


PROGRAMS = ("plain", "unwound", "none")


def load(pid: int, probe: str, order: tuple[str, ...] = PROGRAMS):  # noqa: ANN201 (BCC)
    """Compiles, fills the unwind maps for `pid` and attaches the programs in `order` (the
    first attached runs first on each event: the bench swaps them to cancel that out)."""
    from bcc import BPF

    unwind_c = (REPO / "bpfrun/compile/templates/unwind.c.j2").read_text()
    text = PROGRAM.replace("UNWIND_C", unwind_c).replace("TARGET", str(pid))
    b = BPF(text=text.encode(), cflags=["-Wno-unused-value"])
    prog = Program("proto")
    prog.unwind_user = True
    tables = UnwindTables.load(b, prog)  # what bpfrun's runner does
    if tables is None:
        raise SystemExit("no unwind table could be loaded")
    tables.add(pid)
    kind, _, target = probe.partition(":")
    for fn in order:
        if kind == "tp":
            b.attach_tracepoint(tp=target, fn_name=fn)
        elif kind == "hz":  # perf samples, as bpfrun's profile:hz:N
            from bcc import PerfSWConfig, PerfType
            b.attach_perf_event(ev_type=PerfType.SOFTWARE, ev_config=PerfSWConfig.CPU_CLOCK,
                                fn_name=fn, sample_freq=int(target))
        else:
            b.attach_raw_tracepoint(tp=target, fn_name=fn)
    return b


def prog_ids(b) -> dict[str, int]:  # noqa: ANN001
    """Program name -> kernel program id (what progstats reports by)."""
    out = {}
    for name in PROGRAMS:
        with open(f"/proc/self/fdinfo/{b.funcs[name.encode()].fd}") as f:
            info = dict(line.split(":", 1) for line in f if ":" in line)
        out[name] = int(info["prog_id"])
    return out


def measure(b, seconds: float) -> dict[str, tuple[float, int, int | None]]:  # noqa: ANN001
    """Program name -> (ns per stack taken, stacks taken, instructions verified), from the
    kernel's run-time statistics over `seconds`."""
    me = os.getpid()
    with progstats.stats_enabled():
        before = progstats.programs(me)
        time.sleep(seconds)
        after = progstats.programs(me)
    stacks = sum(v.value for v in b["counts_plain"].values())
    by_id = {p.prog_id: p for p in progstats.delta(before, after)}
    out = {}
    for name, prog_id in prog_ids(b).items():
        p = by_id.get(prog_id)
        if p is not None:
            out[name] = (p.run_ns / max(stacks, 1), stacks, p.insns)
    return out


def show(b, pid: int, counts: str) -> None:  # noqa: ANN001
    print(f"--- {counts}")
    top = int(os.environ.get("TOP", "6"))
    for k, v in sorted(b[counts].items(), key=lambda kv: -kv[1].value)[:top]:
        ips = [ip for ip in b["stacks"][k].ip if ip][:12]
        names = [b.sym(ip, pid, show_module=True).decode() for ip in ips]
        print(f"{v.value:8d}  " + " <- ".join(names))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pid", type=int)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--probe", default="tp:sched:sched_switch")
    ap.add_argument("--workload", default="prodcons", help="tests/workloads program to start")
    args = ap.parse_args()
    workload = None
    if args.pid is None:
        from helpers.workloads import Workload
        workload = Workload(args.workload, "--seconds", "60", opt="O2", frame_pointers=True)
        args.pid = workload.pid
    try:
        b = load(args.pid, args.probe)
        costs = measure(b, args.seconds)
        show(b, args.pid, "counts_plain")
        show(b, args.pid, "counts_unwound")
        for name, (ns, stacks, insns) in costs.items():
            print(f"{name}: {ns:.0f} ns per stack taken ({stacks} stacks; "
                  f"{insns} instructions verified)")
    finally:
        if workload is not None:
            workload.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
