"""The tracers the benchmark compares: BCC's stock tools, bpftrace scripts, bpfrun runbooks and
the code-generator prototypes (copies of bpfrun's generated C, changed by hand).

A `Tracer` is a command that attaches probes, prints one recognisable line once they are
attached, and runs until it is signalled. `availability()` says what is missing instead of
installing anything.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SCRIPTS = BENCH / "scripts"
PROTO = BENCH / "proto"
BPFRUN = ROOT / ".venv" / "bin" / "bpfrun"
PYTHON = ROOT / ".venv" / "bin" / "python"
BPFRUN_DURATION = "900s"  # longer than any traced phase: the harness stops it, not the timer


@dataclass
class Tracer:
    key: str  # unique, stable: used in RESULTS.md and --only
    label: str  # as shown in the tables
    family: str  # bcc | bpftrace | bpfrun | proto | none
    argv: list[str]
    ready: str | None  # regex of the line printed once every probe is attached (None: fds)
    needs: list[str] = field(default_factory=list)  # executables or files it needs
    out_dir: Path | None = None  # bpfrun's report folder (result.json holds compile time)
    # After the ready line, also wait until the process holds this many fds whose link is
    # this text: for tools that print their banner before they attach (profile-bpfcc).
    ready_fds: tuple[str, int] | None = None
    note: str = ""
    # What the tracer found, for the row's notes: (its output lines, out_dir) -> text.
    describe: Callable[[list[str], Path | None], str] | None = None

    def missing(self) -> str | None:
        """Why this tracer cannot run here, or None."""
        if not self.argv:
            return self.note or "no command"
        for need in self.needs:
            if need.startswith("/"):
                if not Path(need).exists():
                    return f"{need} does not exist"
            elif shutil.which(need) is None:
                return f"{need} is not installed ({install_hint(need)})"
        return None


def install_hint(exe: str) -> str:
    if exe.endswith("-bpfcc"):
        return "apt-get install bpfcc-tools"
    if exe == "bpftrace":
        return "apt-get install bpftrace"
    if exe == "taskset":
        return "apt-get install util-linux"
    return "install it"


def bcc(key: str, tool: str, *args: str, note: str = "") -> Tracer:
    # runqlat and syscount print "Tracing ..." right after attaching. profile prints
    # "Sampling ..." (nothing with -f) before it even compiles: it is attached once it holds
    # one perf event per CPU.
    label = " ".join([tool, *args])
    t = Tracer(key, label, "bcc", [tool, *args], r"^(Tracing|Sampling)", [tool], note=note)
    if tool.startswith("profile"):
        t.ready_fds = ("anon_inode:[perf_event]", os.cpu_count() or 1)
        if "-f" in args:  # folded output: no banner at all
            t.ready = None
            t.describe = _folded_stacks
    return t


def _folded_stacks(lines: list[str], _out: Path | None) -> str:
    """profile -f prints one `frames count` line per stack; a walk that failed shows as
    [Missed User Stack] / [Missed Kernel Stack] (an empty stack, -EFAULT, does not)."""
    stacks = samples = lost = 0
    for line in lines:
        head, _, count = line.rpartition(" ")
        if ";" not in head or not count.isdigit():
            continue
        stacks += 1
        samples += int(count)
        if "[Missed " in head:
            lost += int(count)
    return f"{stacks:,} stacks shown, {lost:,} of {samples:,} samples lost"


def _bpfrun_found(_lines: list[str], out: Path | None) -> str:
    """Distinct stacks in result.json and the samples/events it says were lost."""
    try:
        doc = json.loads((out / "result.json").read_text()) if out else {}
    except (OSError, ValueError):
        return ""
    bits = []
    for step in doc.get("steps", []):
        for agg in (step.get("aggregations") or {}).values():
            if any(k in ("kstack", "ustack") for k in agg.get("keys", [])):
                bits.append(f"{agg.get('total_rows', 0):,} stacks")
        lost = {k: v for k, v in (step.get("lost") or {}).items() if v}
        bits += [f"{v:,} lost ({k})" for k, v in lost.items()]
    return ", ".join(bits)


def bpftrace(key: str, script: str, label: str, note: str = "") -> Tracer:
    # Each script's BEGIN prints "bench: attached"; bpftrace only reads that output once all
    # probes are attached (checked: a syscall loop started on that line is counted in full).
    path = SCRIPTS / script
    return Tracer(key, label, "bpftrace", ["bpftrace", str(path)], r"^bench: attached",
                  ["bpftrace", str(path)], note=note)


def bpfrun(key: str, runbook: str, step: str, label: str, *params: str,
           note: str = "") -> Tracer:
    # Named now, created only if the row runs (measure removes it; run.py cleans up).
    out = Path(tempfile.gettempdir()) / f"bpfrun-bench-{uuid.uuid4().hex[:12]}" / "report"
    # The overhead budget would stop a step on the very storms the bench measures it under.
    argv = [str(BPFRUN), "run", runbook, "--duration", BPFRUN_DURATION, "-o", str(out),
            "--max-overhead", "0"]
    for p in params:
        argv += ["--param", p]
    return Tracer(key, label, "bpfrun", argv, rf"step {step}: attached", [str(BPFRUN)],
                  out_dir=out, note=note, describe=_bpfrun_found)


def proto(key: str, c_file: str, label: str, *attach: str, note: str = "") -> Tracer:
    """A hand-edited copy of generated C, loaded by bench/bccprog.py (no bpfrun around it)."""
    path = PROTO / c_file
    argv = [str(PYTHON if PYTHON.exists() else sys.executable), str(BENCH / "bccprog.py"),
            str(path), *attach]
    return Tracer(key, label, "proto", argv, r"^bench: attached", [str(path)], note=note)


_FN = re.compile(r"^/\* (tracepoint|rawtracepoint):(\S+) \*/\nint (\w+)\(", re.M)


def generated(key: str, label: str, runbook: str, step: str, *params: str) -> Tracer:
    """The C that `bpfrun compile` generates today, loaded by bccprog.py like a prototype:
    the baseline the hand-edited variants are compared with (they were edited from a copy
    that may be older). Attach points come from the comment above each entry function."""
    argv = [str(BPFRUN), "compile", runbook, "--step", step]
    for p in params:
        argv += ["--param", p]
    path = BENCH / "build" / f"{key}.c"
    t = Tracer(key, label, "proto", [], r"^bench: attached", [str(path)])
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        t.note = f"bpfrun compile failed: {e}"
        return t
    if out.returncode != 0:
        t.note = f"bpfrun compile failed: {out.stderr.strip()[-300:]}"
        return t
    attach = [f"{'tp' if kind == 'tracepoint' else 'raw'}:{target}={fn}"
              for kind, target, fn in _FN.findall(out.stdout)]
    if not attach:
        t.note = "no tracepoint entry functions found in the generated C"
        return t
    path.parent.mkdir(exist_ok=True)
    path.write_text(out.stdout)
    t.argv = [str(PYTHON if PYTHON.exists() else sys.executable), str(BENCH / "bccprog.py"),
              str(path), *attach]
    return t


def control(key: str) -> Tracer:
    """A/A control: a "tracer" that attaches nothing. Its ratio is the noise floor."""
    return Tracer(key, "(none: A/A control)", "none",
                  ["sh", "-c", "echo 'bench: attached'; exec sleep 3600"], r"^bench: attached",
                  ["sh", "sleep"])


def runbook_exists(name: str) -> bool:
    return (ROOT / "runbooks" / f"{name}.yaml").is_file()


def profile_params(hz: int = 99) -> list[str]:
    """Params for the profile runbook that make it sample like `profile-bpfcc -F <hz>`."""
    try:
        import yaml  # noqa: PLC0415 (only needed when the runbook exists)

        doc = yaml.safe_load((ROOT / "runbooks" / "profile.yaml").read_text())
        params = doc.get("params") or {}
    except Exception:  # noqa: BLE001 (a broken runbook is reported when bpfrun runs it)
        return []
    out = []
    for name in params:
        if name.lower() in ("hz", "freq", "frequency", "rate", "sample_hz"):
            out.append(f"{name}={hz}")
    return out


def profile_first_step() -> str:
    try:
        import yaml  # noqa: PLC0415

        doc = yaml.safe_load((ROOT / "runbooks" / "profile.yaml").read_text())
        return str(doc["steps"][0]["id"])
    except Exception:  # noqa: BLE001
        return r"\S+"
