"""RESULTS.md: machine, method, one overhead table per section, start-up and memory.

A hand-written analysis between the ANALYSIS markers of an existing RESULTS.md is kept when
the file is regenerated (it says which run it was written for).
"""

from __future__ import annotations

import math
import platform
import re
import statistics
import subprocess
from collections.abc import Iterable
from pathlib import Path

from measure import Row
from plan import SECTION_TITLES

ANALYSIS_START = "<!-- ANALYSIS START: hand-written, kept when the harness regenerates -->"
ANALYSIS_END = "<!-- ANALYSIS END -->"


CLOCKS = {
    "cpu": "Clock: `cpu` — every rate is the workload's own rate divided by its CPU share "
           "(CPU time of the workload and its children / wall time), i.e. throughput per "
           "CPU-second it actually got. On a quiet machine the share is 1 and nothing changes; "
           "when other processes run on the workload's CPU (the development VMs are shared) "
           "it removes their time. Tracing costs stay in: BPF programs run in the traced "
           "task's context (syscall, context switch, timer interrupt) and are charged to it. "
           "Notes show shares below 95%; the *wall-clock ratio* column is the same ratio "
           "from the workloads' uncorrected rates.",
    "wall": "Clock: `wall` — every rate is the workload's own (wall-clock) rate.",
}


def machine_info() -> dict[str, str]:
    info = {"kernel": platform.release(), "cpus": str(_nproc())}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory"] = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    info["bpftrace"] = _version(["bpftrace", "--version"])
    info["bcc"] = _version(["dpkg-query", "-W", "-f", "${Version}", "python3-bpfcc"])
    info["bpfrun"] = _version(["git", "-C", str(Path(__file__).resolve().parent.parent),
                               "describe", "--always", "--dirty"])
    return info


def _nproc() -> int:
    import os  # noqa: PLC0415

    return os.cpu_count() or 0  # not the affinity: run.py pins itself off the workload CPU


def _version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (out.stdout.strip() or out.stderr.strip() or "?").splitlines()[0]
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"


def _num(x: float | None, fmt: str = "{:,.0f}") -> str:
    return "–" if x is None else fmt.format(x)


def _med(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def _by_key(rows: Iterable[Row]) -> dict[str, Row]:
    return {r.tracer.key: r for r in rows if r.tracer is not None}


def vs_bcc(row: Row, index: dict[str, Row]) -> float | None:
    other = index.get(row.compare_to or "")
    if other is None or row.ratio is None or other.ratio is None or other.ratio <= 0:
        return None
    return row.ratio / other.ratio


def ratio_noise(row: Row) -> float | None:
    """A rough relative uncertainty of a row's traced/untraced ratio: the larger of the
    before/after drift and the spread of the traced repetitions. (Half of it was too little:
    the same comparison read 0.86x ±0.06 in one run and 1.12x in the next.)"""
    if not row.traced or row.ref is None or row.drift is None:
        return None
    med = statistics.median(row.traced)
    spread = (max(row.traced) - min(row.traced)) / med if med > 0 else 0.0
    return max(row.drift, spread)


def vs_bcc_noise(row: Row, index: dict[str, Row]) -> float | None:
    """The uncertainty of vs_bcc (the two rows' added in quadrature), in the same units."""
    cmp_ = vs_bcc(row, index)
    other = index.get(row.compare_to or "")
    a, b = ratio_noise(row), ratio_noise(other) if other else None
    if cmp_ is None or a is None or b is None:
        return None
    return cmp_ * math.hypot(a, b)


def overhead_table(rows: list[Row], index: dict[str, Row]) -> list[str]:
    out = ["| Workload | Tracer | untraced before | untraced after | traced | traced / untraced "
           "| added ns per op | of which in BPF programs | bpfrun / BCC ratio | wall-clock ratio "
           "| notes |",
           "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|"]
    for r in rows:
        name = r.tracer.label if r.tracer else "–"
        if r.skipped:
            out.append(f"| {r.workload.label} | {name} | | | | skipped | | | | | {r.skipped} |")
            continue
        if r.error:
            out.append(f"| {r.workload.label} | {name} | | | | error | | | | | "
                       f"{_cell(r.error[:300])} |")
            continue
        notes = []
        if r.drift is not None and r.drift > 0.10:
            notes.append(f"before/after differ by {r.drift:.0%}: noisy")
        if r.shares and min(r.shares) < 0.95:
            notes.append(f"CPU share down to {min(r.shares):.0%}")
        if r.noise:
            notes.append("other BPF users: " + ", ".join(r.noise))
        if r.discarded:
            notes.append(f"{r.discarded} rep(s) overlapped by other BPF users, redone")
        if r.detail:
            notes.append(_cell(r.detail))
        ratio = r.ratio
        cmp_ = vs_bcc(r, index)
        band = vs_bcc_noise(r, index)
        cmp_text = "" if cmp_ is None else f"**{cmp_:.2f}×**"
        if cmp_ is not None and band is not None:
            cmp_text += f" ±{band:.2f}"
            if abs(cmp_ - 1) <= band:
                notes.append("bpfrun vs BCC within noise")
        ns = r.added_ns
        ns_text = _num(ns, "{:,.0f}")
        if ns is not None and r.workload.events_per_op:
            ns_text += f" ({ns / r.workload.events_per_op:,.0f}/event)"
        out.append(
            f"| {r.workload.label} | {name} | {_num(_med(r.before))} | {_num(_med(r.after))} "
            f"| {_num(_med(r.traced))} | {_num(ratio, '{:.3f}')} | {ns_text} "
            f"| {_num(r.bpf_ns_per_op, '{:,.0f}')} | {cmp_text} "
            f"| {_num(r.wall_ratio, '{:.3f}')} | {'; '.join(notes)} |")
    return out


def programs_table(rows: list[Row]) -> list[str]:
    out = ["| Workload | Tracer | program | verified insns | runs per op | ns per run "
           "| ns per op |", "|---|---|---|--:|--:|--:|--:|"]
    for r in rows:
        if r.tracer is None or not r.progs or not r.ops_in_stats_run:
            continue
        for p in r.progs:
            out.append(f"| {r.workload.label} | {r.tracer.label} | {p.kind} #{p.prog_id} "
                       f"| {_num(p.insns, '{:,}')} | {p.runs / r.ops_in_stats_run:.2f} "
                       f"| {p.run_ns / p.runs:,.0f} | {p.run_ns / r.ops_in_stats_run:,.0f} |")
    return out


def startup_table(rows: list[Row]) -> list[str]:
    out = ["| Tracer | Workload | start → attached (s) | bpfrun compile (s) | VmHWM before stop "
           "(MiB) | peak RSS at exit (MiB) | BPF maps (KiB) | stop → exit (s) |",
           "|---|---|--:|--:|--:|--:|--:|--:|"]
    for r in rows:
        if r.tracer is None or r.skipped or r.startup_s is None:
            continue
        out.append(f"| {r.tracer.label} | {r.workload.label} | {r.startup_s:.2f} "
                   f"| {_num(r.compile_s, '{:.2f}')} "
                   f"| {_num(r.hwm_kib / 1024 if r.hwm_kib else None, '{:.1f}')} "
                   f"| {_num(r.maxrss_kib / 1024 if r.maxrss_kib else None, '{:.1f}')} "
                   f"| {_num(r.map_kib, '{:,}')} | {_num(r.stop_s, '{:.2f}')} |")
    return out


def startup_summary(rows: list[Row]) -> list[str]:
    """Median start-up per tracer family and tool, over every row it ran in."""
    groups: dict[str, list[float]] = {}
    for r in rows:
        if r.tracer is not None and r.startup_s is not None:
            name = r.tracer.label.split(" (")[0]
            groups.setdefault(name, []).append(r.startup_s)
    out = ["| Tracer | runs | median start → attached (s) | min | max |", "|---|--:|--:|--:|--:|"]
    for name, xs in sorted(groups.items(), key=lambda kv: statistics.median(kv[1])):
        out.append(f"| {name} | {len(xs)} | {statistics.median(xs):.2f} | {min(xs):.2f} "
                   f"| {max(xs):.2f} |")
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def compile_table(compiles: list[tuple[str, str, float | None]]) -> list[str]:
    out = ["Time BCC takes to compile (`BPF(text=...)`; loading and attaching come after) "
           "the C `bpfrun compile` generates for each step, median of 3, as generated and "
           "with #include lines removed (– : that variant did not compile).", "",
           "| Step | C variant | compile (s) |", "|---|---|--:|"]
    for step, name, secs in compiles:
        out.append(f"| {step} | {name} | {_num(secs, '{:.2f}')} |")
    return out


def render(rows: list[Row], meta: dict[str, str], missing: list[str],
           compiles: list[tuple[str, str, float | None]], previous: str | None) -> str:
    index = _by_key(rows)
    m = machine_info()
    lines = [
        "# bpfrun benchmark results",
        "",
        f"Generated by `{meta['command']}` on {meta['date']} in {meta['elapsed']} "
        f"({meta['reps']} repetitions per measurement). Regenerate with `make bench` "
        "(full) or `.venv/bin/python bench/run.py --quick`; see bench/README.md.",
        "",
        f"Machine: kernel `{m['kernel']}`, {m['cpus']} CPUs ({m.get('cpu', '?')}), "
        f"{m.get('memory', '?')} RAM; BCC {m['bcc']}; {m['bpftrace']}; bpfrun at "
        f"`{m['bpfrun']}`. Workloads pinned to CPU {meta['cpu']}, tracers to CPUs "
        f"{meta['tracer_cpus']}.",
        "",
        "Method: each row runs the workload untraced N times (before), starts the tracer and "
        "waits for its attached line, runs the workload N times traced, stops the tracer and "
        "runs it N times untraced again (after). Columns are medians; *traced / untraced* "
        "divides the traced median by the mean of the before and after medians (1.000 = no "
        "overhead, higher is better); *added ns per op* is 1/traced − 1/untraced, *of which in BPF "
        "programs* the part spent inside the tracer's programs (see below); *bpfrun / "
        "BCC ratio* divides this row's traced/untraced by the BCC row it is compared with "
        "(≥ 1.00× means bpfrun costs no more than BCC); the ± after it is a rough noise band "
        "(the larger of each row's before/after drift and the spread of its traced runs, "
        "the two rows added in quadrature), and rows whose difference from 1.00× lies inside "
        "it say so. Rows whose before and after differ by over 10% are marked noisy; other "
        "processes holding BPF programs are listed.",
        "",
        CLOCKS[meta["clock"]],
        "",
    ]
    if missing:
        lines += ["Not measured here: " + "; ".join(missing) + ".", ""]
    lines += ["## Overhead", ""]
    for section, title in SECTION_TITLES.items():
        sec = [r for r in rows if r.section == section]
        if not sec:
            continue
        lines += [f"### {title}", "", *overhead_table(sec, index), ""]
    lines += ["## Time inside the BPF programs", "",
              "After the traced runs, one more (unmeasured) run with the kernel's BPF run-time "
              "statistics on (`BPF_ENABLE_STATS`): time spent inside each program of the "
              "tracer, per run and per workload op. Unlike the ratios this is immune to other "
              "processes; it leaves out the cost around the program (building a tracepoint's "
              "record, the syscall tracing slow path, perf-event interrupts).", "",
              *programs_table(rows), ""]
    lines += ["## Start-up and memory", "", *startup_summary(rows), "",
              *startup_table(rows), ""]
    if compiles:
        lines += [*compile_table(compiles), ""]
    lines += [ANALYSIS_START, previous.strip() if previous else
              "_No analysis written for this machine yet._", ANALYSIS_END, ""]
    return "\n".join(lines)


def previous_analysis(path: Path) -> str | None:
    try:
        text = path.read_text()
    except OSError:
        return None
    m = re.search(re.escape(ANALYSIS_START) + r"\n(.*?)" + re.escape(ANALYSIS_END), text,
                  re.S)
    return m.group(1) if m else None
