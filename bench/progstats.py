"""What a tracer's BPF programs themselves cost: the kernel's per-program run-time statistics.

`bpf(BPF_ENABLE_STATS, BPF_STATS_RUN_TIME)` returns a file descriptor; while any such fd is
open, the kernel times every BPF program run and adds to `run_time_ns` / `run_cnt` in the
program's fdinfo. Reading those for the tracer's programs, before and after one extra
workload run, gives nanoseconds per program run, unaffected by other processes. It excludes
what happens around the program (building a tracepoint's record, the syscall slow path), so
it complements the throughput ratio instead of replacing it. Timing adds a little to every
run, so statistics are only on for that extra run, never during the measured ones.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterator
from dataclasses import dataclass

_NR_BPF = 321  # x86-64
_BPF_ENABLE_STATS = 32
_BPF_STATS_RUN_TIME = 0
_PROG_TYPES = {5: "tracepoint", 7: "perf_event", 17: "raw_tracepoint", 2: "kprobe",
               26: "tracing"}


@dataclass
class Prog:
    prog_id: int
    kind: str
    insns: int | None  # instructions the verifier processed
    run_ns: int
    runs: int


@contextlib.contextmanager
def stats_enabled() -> Iterator[bool]:
    """Turns run-time statistics on for the duration (yields False when it cannot)."""
    libc = ctypes.CDLL(None, use_errno=True)
    attr = (ctypes.c_uint32 * 16)()  # union bpf_attr, zeroed; enable_stats.type first
    attr[0] = _BPF_STATS_RUN_TIME
    fd = libc.syscall(_NR_BPF, _BPF_ENABLE_STATS, ctypes.byref(attr), ctypes.sizeof(attr))
    if fd < 0:
        yield False
        return
    try:
        yield True
    finally:
        os.close(fd)


def programs(pid: int) -> dict[int, Prog]:
    """The BPF programs process `pid` holds, by program id."""
    out: dict[int, Prog] = {}
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return out
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:bpf-prog":
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                info = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        try:
            pid_ = int(info["prog_id"])
            out[pid_] = Prog(pid_, _PROG_TYPES.get(int(info["prog_type"]), info["prog_type"]),
                             int(info["verified_insns"]) if "verified_insns" in info else None,
                             int(info.get("run_time_ns", 0)), int(info.get("run_cnt", 0)))
        except (KeyError, ValueError):
            continue
    return out


def delta(before: dict[int, Prog], after: dict[int, Prog]) -> list[Prog]:
    """Per program: run time and runs between two readings (programs that ran only)."""
    out = []
    for pid_, a in after.items():
        b = before.get(pid_)
        runs = a.runs - (b.runs if b else 0)
        if runs > 0:
            out.append(Prog(pid_, a.kind, a.insns, a.run_ns - (b.run_ns if b else 0), runs))
    return sorted(out, key=lambda p: -p.run_ns)
