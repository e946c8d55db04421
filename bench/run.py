"""Benchmark harness (issue 7): what bpfrun's generated programs cost, measured against BCC's
stock tools and bpftrace on the same workloads, in one run.

    .venv/bin/python bench/run.py [--quick] [--reps N] [--only SECTION,...] [--out PATH]

Needs root, tracefs, taskset and gcc; BCC's tools (bpfcc-tools) and bpftrace are optional:
their rows are skipped with the reason. Installs nothing. Writes bench/RESULTS.md (unless
--out -) and prints it. Every child runs in its own process group with a timeout and is
killed on any exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT / "tests"))

import plan  # noqa: E402
import procs  # noqa: E402
import results  # noqa: E402
from measure import Row, Settings, measure  # noqa: E402

BUILD = BENCH / "build"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def preflight() -> list[str]:
    """Problems that stop the whole benchmark (empty: go)."""
    problems = []
    if os.geteuid() != 0:
        problems.append("run as root (loading BPF programs needs it)")
    if not Path("/sys/kernel/tracing/events").is_dir():
        problems.append("tracefs is not mounted: mount -t tracefs nodev /sys/kernel/tracing")
    for exe, hint in (("taskset", "apt-get install util-linux"), ("gcc", "apt-get install gcc")):
        if shutil.which(exe) is None:
            problems.append(f"{exe} is not installed ({hint})")
    if not (ROOT / ".venv" / "bin" / "bpfrun").exists():
        problems.append("no .venv/bin/bpfrun: run `make setup` first")
    return problems


def optional_missing() -> list[str]:
    """Optional tools that are absent: their rows are skipped, and RESULTS.md says so."""
    missing = []
    tools = ("runqlat-bpfcc", "syscount-bpfcc", "profile-bpfcc")
    absent = [t for t in tools if shutil.which(t) is None]
    if absent:
        missing.append(f"{', '.join(absent)} (apt-get install bpfcc-tools)")
    if shutil.which("bpftrace") is None:
        missing.append("bpftrace (apt-get install bpftrace)")
    py = ROOT / ".venv" / "bin" / "python"
    ok = subprocess.run([str(py), "-c", "import bcc"], capture_output=True, timeout=60)
    if ok.returncode != 0:
        missing.append("BCC's Python module for the prototypes (apt-get install python3-bpfcc)")
    return missing


def build_binaries() -> plan.Binaries:
    from helpers.workloads import build  # noqa: PLC0415 (tests/ is on sys.path above)

    BUILD.mkdir(exist_ok=True)
    (BUILD / ".gitignore").write_text("*\n")
    return plan.Binaries(build("pingpong"), build("syscall_loop"), build("spin"),
                         _build_own("keys"), build("stacks"))


def _build_own(name: str) -> Path:
    """bench/workloads/<name>.c → bench/build/<name>, when missing or stale."""
    src = BENCH / "workloads" / f"{name}.c"
    exe = BUILD / name
    deps = [src, ROOT / "tests" / "workloads" / "workload.h"]
    if not exe.exists() or any(d.stat().st_mtime > exe.stat().st_mtime for d in deps):
        cmd = ["gcc", "-std=c11", "-O0", "-g", "-fno-omit-frame-pointer", "-fno-builtin",
               "-pthread", "-Wall", "-Wextra", f"-I{ROOT / 'tests' / 'workloads'}",
               "-o", str(exe), str(src)]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise SystemExit(f"bench: compiling {src} failed:\n{out.stderr}")
    return exe


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="2 repetitions and shorter ping-pong runs (about 5 minutes)")
    p.add_argument("--reps", type=int, default=None,
                   help="repetitions per measurement (default 5, or 2 with --quick)")
    p.add_argument("--only", default=",".join(plan.SECTIONS),
                   help=f"comma-separated sections (default all: {','.join(plan.SECTIONS)})")
    p.add_argument("--retries", type=int, default=1,
                   help="measure a noisy row again up to this many times (default 1)")
    p.add_argument("--quiet-wait", type=float, default=30.0,
                   help="seconds a row may spend waiting for other processes' BPF programs "
                        "to go away (repetitions they overlap are run again); default 30")
    p.add_argument("--budget", type=float, default=None,
                   help="minutes the run should take at most; waiting and retrying stop "
                        "when the rows left need the rest (default 13, or 4.5 with --quick)")
    p.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                   help="cpu (default): throughput per CPU-second the workload got, immune "
                        "to other processes sharing its CPU; wall: the workload's own rate")
    p.add_argument("--out", default=str(BENCH / "RESULTS.md"),
                   help="where to write the Markdown ('-': print only)")
    args = p.parse_args(argv)
    args.reps = args.reps or (2 if args.quick else 5)
    args.budget = args.budget or (4.5 if args.quick else 13.0)
    args.sections = tuple(s.strip() for s in args.only.split(",") if s.strip())
    unknown = set(args.sections) - set(plan.SECTIONS)
    if unknown:
        p.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    if args.reps < 1:
        p.error("--reps must be at least 1")
    return args


def compile_times(reps: int, tracer_cpus: str | None) -> list[tuple[str, str, float | None]]:
    """(step, variant, seconds): BCC compile+load time of each step's generated C as is and
    without any #include (the floor: what clang spends on the program itself)."""
    bpfrun = ROOT / ".venv" / "bin" / "bpfrun"
    files: list[tuple[str, str, Path]] = []
    for runbook, step in plan.COMPILE_STEPS:
        if not (ROOT / "runbooks" / f"{runbook}.yaml").is_file():
            continue
        out = subprocess.run([str(bpfrun), "compile", runbook, "--step", step],
                             capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            log(f"bench: bpfrun compile {runbook} --step {step} failed: {out.stderr[-200:]}")
            continue
        text = out.stdout
        variants = {"as generated": text,
                    "without any #include": "\n".join(
                        ln for ln in text.splitlines() if not ln.startswith("#include"))}
        for name, body in variants.items():
            path = BUILD / f"compile-{step}-{len(files)}.c"
            path.write_text(body)
            files.append((f"{runbook} / {step}", name, path))
    if not files:
        return []
    argv = [str(ROOT / ".venv" / "bin" / "python"), str(BENCH / "compiletime.py"), str(reps),
            *(str(f[2]) for f in files)]
    if tracer_cpus:
        argv = ["taskset", "-c", tracer_cpus, *argv]
    ex = procs.run(argv, 60.0 + 10.0 * reps * len(files))
    got = {}
    for line in ex.text("out").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "compile":
            got[parts[1]] = float(parts[2])
    return [(step, name, got.get(str(path))) for step, name, path in files]


def _better(a: Row, b: Row) -> bool:
    """Whether measurement a of a row is more trustworthy than b."""
    if a.error or a.ratio is None:
        return False
    if b.error or b.ratio is None:
        return True
    return (len(a.noise), a.drift or 0.0) < (len(b.noise), b.drift or 0.0)


def _raise_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    problems = preflight()
    if problems:
        for p in problems:
            log(f"bench: cannot run: {p}")
        return 2
    # SIGINT too: started in the background of a script, Python would inherit it ignored.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_interrupt)
    atexit.register(procs.kill_all)
    missing = optional_missing()
    for m in missing:
        log(f"bench: missing, rows skipped: {m}")
    ncpu = len(os.sched_getaffinity(0))
    cpu = max(os.sched_getaffinity(0))
    others = sorted(os.sched_getaffinity(0) - {cpu})
    tracer_cpus = ",".join(map(str, others)) if others else None
    if others:
        os.sched_setaffinity(0, others)  # the harness's own threads stay off the workload CPU
    rows = plan.rows(plan.workloads(build_binaries(), args.quick), args.sections)
    if "BCC's Python module" in " ".join(missing):
        for r in rows:
            if r.tracer is not None and r.tracer.family == "proto":
                r.skipped = "BCC's Python module is missing (apt-get install python3-bpfcc)"
    todo = [r for r in rows if not r.skipped]
    log(f"bench: {len(todo)} rows ({len(rows) - len(todo)} skipped), {args.reps} repetitions, "
        f"workload on CPU {cpu} of {ncpu}; tracers on {tracer_cpus or 'the same CPU'}")
    settings = Settings(args.reps, cpu, tracer_cpus, args.clock)
    t0 = time.monotonic()
    budget = args.budget * 60
    current = ""
    try:
        for done, r in enumerate(todo):
            if r.section != current:
                current = r.section
                log(f"== {plan.SECTION_TITLES[current]}")
            # Waiting for a quiet machine and measuring noisy rows again use only the time
            # the budget has to spare after the rows still to come (at the average so far).
            elapsed = time.monotonic() - t0
            per_row = elapsed / done if done else 15.0
            spare = budget - elapsed - per_row * (len(todo) - done)
            settings.quiet_wait = min(args.quiet_wait, max(spare, 0))
            measure(r, settings, log)
            for _ in range(args.retries):
                spare = budget - (time.monotonic() - t0) - per_row * (len(todo) - done)
                if not r.noisy or r.error or spare < per_row:
                    break
                log("    noisy (other BPF users, or before/after apart): measuring again")
                settings.quiet_wait = min(args.quiet_wait, spare - per_row)
                again = measure(r.fresh(), settings, log)
                if _better(again, r):
                    rows[next(i for i, x in enumerate(rows) if x is r)] = again
                    r = again
        compiles = []
        if "compile" in args.sections:
            log("== Compile time of the generated C (BCC)")
            compiles = compile_times(3, tracer_cpus)
            for step, name, secs in compiles:
                log(f"  {step:<24} {name:<28} {secs if secs is not None else 'failed'}")
    except KeyboardInterrupt:
        procs.kill_all()
        log("bench: interrupted; every child was killed; RESULTS.md left as it was")
        return 130
    finally:
        procs.kill_all()
        for r in rows:
            if r.tracer is not None and r.tracer.out_dir is not None:
                shutil.rmtree(r.tracer.out_dir.parent, ignore_errors=True)
    elapsed = time.monotonic() - t0
    meta = {
        "command": ("make bench" if os.environ.get("MAKELEVEL") and not argv
                    else " ".join([".venv/bin/python bench/run.py", *argv])),
        "date": datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "elapsed": f"{elapsed / 60:.1f} min",
        "reps": str(args.reps),
        "cpu": str(cpu),
        "tracer_cpus": tracer_cpus or "(same)",
        "clock": args.clock,
    }
    out = None if args.out == "-" else Path(args.out)
    text = results.render(rows, meta, missing, compiles,
                          results.previous_analysis(out) if out else None)
    print(text)
    if out is not None:
        out.write_text(text)
        log(f"bench: wrote {out} in {elapsed / 60:.1f} min")
    return 0 if all(r.error is None for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
