"""What the benchmark measures: its sections, their workloads and the tracers compared.

Each row is one (workload, tracer) pair; `compare_to` names the BCC row a bpfrun (or
prototype) row is judged against. Rows whose tools are missing are kept, marked skipped with
the reason, so RESULTS.md always shows what was not measured and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tracers as tr
from measure import Row, Workload, per_second, rate_field

SECTIONS = ("sched", "syscalls", "sampling", "stacks", "keys", "rate", "proto", "compile")
SECTION_TITLES = {
    "sched": "Scheduler: pipe ping-pong round trips/s (2 wakeups + 2 switches per round trip)",
    "syscalls": "System calls: getppid() calls/s in a tight loop (sys_enter + sys_exit per call)",
    "sampling": "Sampling: CPU-bound spin loops/s under a 99 Hz and a 999 Hz profiler",
    "stacks": "Scale, distinct stacks: a 999 Hz profiler on N distinct 28-frame user stacks",
    "keys": "Scale, distinct keys: N processes with distinct names making syscalls",
    "rate": "Scale, events/s: one process, W iterations of user work between syscalls",
    "proto": "Code-generator prototypes: hand-edited copies of bpfrun's generated C",
}
# Steps whose generated C the `compile` section times, with and without its #includes.
COMPILE_STEPS = (("runq-latency", "runq"), ("syscalls", "syscalls"), ("profile", "cpu"))
KEY_COUNTS = (1, 100, 1000)
STACK_COUNTS = (1, 64, 4096)
WORK_LEVELS = (0, 100, 1000)


@dataclass
class Binaries:
    pingpong: Path
    syscall_loop: Path
    spin: Path
    keys: Path
    stacks: Path


def workloads(b: Binaries, quick: bool) -> dict[str, Workload]:
    rt = 100_000 if quick else 200_000
    secs = 0.5
    spin_secs = 1.0
    w = {
        "pingpong": Workload("pingpong", f"pingpong --round-trips {rt}",
                             [str(b.pingpong), "--round-trips", str(rt)], "round trips/s",
                             60.0, rate_field(), events_per_op=4, ops_field="round_trips"),
        "syscall_loop": Workload("syscall_loop", f"syscall_loop --seconds {secs}",
                                 [str(b.syscall_loop), "--seconds", str(secs)], "calls/s",
                                 30.0, rate_field(), events_per_op=2),
        "spin": Workload("spin", f"spin --seconds {spin_secs:g}",
                         [str(b.spin), "--seconds", str(spin_secs)], "loops/s", 30.0,
                         per_second("loops", spin_secs), ops_field="loops"),
    }
    for n in STACK_COUNTS:
        w[f"stacks{n}"] = Workload(
            f"stacks{n}", f"stacks --stacks {n}",
            [str(b.stacks), "--stacks", str(n), "--seconds", str(spin_secs)], "units/s", 30.0,
            per_second("units", spin_secs), ops_field="units")
    for n in KEY_COUNTS:
        w[f"keys{n}"] = Workload(
            f"keys{n}", f"keys --procs {n} --burst 250",
            [str(b.keys), "--procs", str(n), "--burst", "250", "--seconds", str(secs)],
            "calls/s", 60.0, rate_field(), events_per_op=2)
    for work in WORK_LEVELS:
        w[f"work{work}"] = Workload(
            f"work{work}", f"keys --work {work}",
            [str(b.keys), "--work", str(work), "--seconds", str(secs)], "calls/s", 30.0,
            rate_field(), events_per_op=2)
    return w


def _runq_protos() -> list[tr.Tracer]:
    tp = ["tp:sched:sched_switch=bpfrun_runq_probe1", "tp:sched:sched_wakeup=bpfrun_runq_probe2"]
    raw = ["raw:sched_switch=bpfrun_runq_probe1", "raw:sched_wakeup=bpfrun_runq_probe2"]
    return [
        tr.proto("proto-runq-v0", "runq_v0_hash.c", "runq v0: hist + stats in per-CPU hashes",
                 *tp),
        tr.generated("proto-runq-now", "runq as generated now (bpfrun compile)",
                     "runq-latency", "runq", "threshold=10s"),
        tr.proto("proto-runq-array1", "runq_array.c", "runq: hist + stats in 1 array entry", *tp),
        tr.proto("proto-runq-raw", "runq_raw_array.c",
                 "runq: raw tracepoints + 1 array entry", *raw),
    ]


def _sys_protos() -> list[tr.Tracer]:
    tp = ["tp:raw_syscalls:sys_exit=bpfrun_syscalls_probe2",
          "tp:raw_syscalls:sys_enter=bpfrun_syscalls_probe3"]
    return [
        tr.proto("proto-sys-v0", "syscalls_v0_hash.c", "syscalls v0: hist + stats in hashes",
                 *tp),
        tr.generated("proto-sys-now", "syscalls as generated now (bpfrun compile)",
                     "syscalls", "syscalls"),
    ]


def rows(w: dict[str, Workload], sections: tuple[str, ...]) -> list[Row]:
    out: list[Row] = []

    def add(section: str, wl: str, tracer: tr.Tracer | None, compare: str | None = None,
            skipped: str | None = None) -> None:
        if section not in sections:
            return
        row = Row(section, w[wl], tracer, compare_to=compare)
        row.skipped = skipped or (tracer.missing() if tracer else None)
        out.append(row)

    add("sched", "pingpong", tr.control("none-sched"))
    add("sched", "pingpong", tr.bcc("bcc-runqlat", "runqlat-bpfcc"))
    add("sched", "pingpong", tr.bpftrace("bt-runqlat", "runqlat.bt", "bpftrace runqlat.bt"))
    add("sched", "pingpong", tr.bpfrun("bpfrun-runq", "runq-latency", "runq",
                                       "bpfrun runq-latency (step runq)", "threshold=10s"),
        "bcc-runqlat")

    add("syscalls", "syscall_loop", tr.control("none-syscalls"))
    add("syscalls", "syscall_loop", tr.bcc("bcc-syscount", "syscount-bpfcc"))
    add("syscalls", "syscall_loop", tr.bcc("bcc-syscount-L", "syscount-bpfcc", "-L"))
    add("syscalls", "syscall_loop", tr.bpftrace("bt-syscount", "syscount.bt",
                                                "bpftrace @[comm]=count()"))
    add("syscalls", "syscall_loop", tr.bpftrace("bt-syslat", "syslat.bt",
                                                "bpftrace latency hist + count"))
    add("syscalls", "syscall_loop", tr.bpfrun("bpfrun-syscalls", "syscalls", "syscalls",
                                              "bpfrun syscalls"), "bcc-syscount-L")

    # 99 Hz is what the issue compares; at 99 Hz both profilers cost less than the noise, so
    # 999 Hz rows follow, where the per-sample cost shows in the ratio.
    for hz, suffix in ((99, ""), (999, "-999")):
        add("sampling", "spin", tr.bcc(f"bcc-profile{suffix}", "profile-bpfcc", "-F", str(hz)))
        if tr.runbook_exists("profile"):
            params = tr.profile_params(hz)
            add("sampling", "spin", tr.bpfrun(f"bpfrun-profile{suffix}", "profile",
                                              tr.profile_first_step(),
                                              "bpfrun profile " + " ".join(params), *params),
                f"bcc-profile{suffix}")
        else:
            add("sampling", "spin", None, skipped="runbooks/profile.yaml does not exist: "
                "bpfrun profile not measured")

    # Many distinct stacks: more stack-map and count-map keys per sample, and more frames to
    # symbolize at the end (stop → exit); the notes say how many stacks were lost.
    for n in STACK_COUNTS:
        bk = f"bcc-profile-stacks{n}"
        add("stacks", f"stacks{n}", tr.bcc(bk, "profile-bpfcc", "-F", "999", "-f"))
        if tr.runbook_exists("profile"):
            params = tr.profile_params(999)
            add("stacks", f"stacks{n}", tr.bpfrun(f"bpfrun-profile-stacks{n}", "profile",
                                                  tr.profile_first_step(),
                                                  "bpfrun profile " + " ".join(params), *params),
                bk)
    for n in KEY_COUNTS:
        bk = f"bcc-syscount-LP-{n}"
        add("keys", f"keys{n}", tr.bcc(bk, "syscount-bpfcc", "-L", "-P"))
        add("keys", f"keys{n}", tr.bpfrun(f"bpfrun-syscalls-keys{n}", "syscalls", "syscalls",
                                          "bpfrun syscalls"), bk)
    for work in WORK_LEVELS:
        bk = f"bcc-syscount-L-w{work}"
        add("rate", f"work{work}", tr.bcc(bk, "syscount-bpfcc", "-L"))
        add("rate", f"work{work}", tr.bpfrun(f"bpfrun-syscalls-w{work}", "syscalls",
                                             "syscalls", "bpfrun syscalls"), bk)

    # Prototypes are compared with BCC too; the "copy" rows check that the tiny loader
    # measures the same program as bpfrun itself.
    add("proto", "pingpong", tr.bcc("bcc-runqlat-p", "runqlat-bpfcc"))
    for t in _runq_protos():
        add("proto", "pingpong", t, "bcc-runqlat-p")
    add("proto", "syscall_loop", tr.bcc("bcc-syscount-L-p", "syscount-bpfcc", "-L"))
    for t in _sys_protos():
        add("proto", "syscall_loop", t, "bcc-syscount-L-p")
    return out
