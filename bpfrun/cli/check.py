"""The commands that look at runbooks and the kernel without running anything (no root):
list, validate, compile, explain, probes.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Annotated, Any

import typer

from bpfrun.cli.common import (
    CgroupOpt,
    ContainerOpt,
    ParamOpt,
    PodOpt,
    PolicyOpt,
    UnitOpt,
    err,
    guarded,
    load,
    safe,
    target_of,
)
from bpfrun.errors import EXIT_INVALID, BpfrunError, MachineError, UsageError, ValidationError
from bpfrun.kernel.kernelcache import FIX as CACHE_FIX
from bpfrun.kernel.kernelcache import KernelCache
from bpfrun.kernel.tracefs import default_kernel

# Probes whose C (record layout) or choice among fallbacks depends on reading tracefs.
_KERNEL_KINDS = frozenset({"tracepoint", "rawtracepoint", "kprobe", "kretprobe"})


def list_cmd() -> None:
    """Shipped runbooks: name, title and params."""
    def body() -> int:
        from bpfrun.frontend.runbooks import load_runbook, shipped_runbooks  # noqa: PLC0415

        for path in shipped_runbooks():
            rb = load_runbook(path)
            params = " ".join(f"{p.name}={p.default if p.has_default else '<' + p.type + '>'}"
                              for p in rb.params)
            print(f"{rb.name:<16} {rb.title}")
            if params:
                print(f"{'':<16} params: {params}")
        return 0
    guarded(body)


def validate(paths: Annotated[list[str], typer.Argument(
        help="Runbook files, folders or names of shipped runbooks.")],
        policy: PolicyOpt = None) -> None:
    """Check runbooks (schema, names, types against this kernel when readable, the policy).
    No root."""
    def body() -> int:  # plain strings: typer's Path would stop at the first unreadable one
        from bpfrun.frontend.policy import find_policy  # noqa: PLC0415

        kernel = default_kernel()
        rules = find_policy(policy)
        failed = total = 0
        for p in paths:
            for f in _runbook_files(Path(p)):
                total += 1
                failed += 0 if _validate_file(f, kernel, rules) else 1
        if not kernel.readable() and total:
            err(f"note: kernel checks were skipped: tracefs cannot be read (root only) and "
                f"{KernelCache.default().describe()}; {CACHE_FIX}")
        if failed:
            err(f"{failed} of {total} runbook(s) invalid")
        return EXIT_INVALID if failed else 0
    guarded(body)


def _runbook_files(p: Path) -> list[Path]:
    """The runbooks `p` names: the runbooks of a folder, else [p] whatever it is (a file, a
    shipped runbook's name, nothing): _validate_file says what is wrong with it, and the
    other paths are still checked."""
    if _kind(p) == "folder" and p.suffix not in (".yaml", ".yml"):
        return sorted(p.glob("*.yaml")) + sorted(p.glob("*.yml"))
    return [p]


def _kind(p: Path) -> str:
    """"folder", "missing" or "other"; a path that cannot be looked at (a folder on the way
    is closed to this user) is "other", so that reading it says why."""
    try:
        return "folder" if stat.S_ISDIR(p.stat().st_mode) else "other"
    except FileNotFoundError:
        return "missing" if not p.is_symlink() else "other"
    except OSError:
        return "other"


def _validate_file(f: Path, kernel: Any, policy: Any) -> bool:
    """Check one runbook file through every stage, printing its problems; True when ok."""
    from bpfrun.compile.pipeline import check_against_kernel  # noqa: PLC0415
    from bpfrun.compile.policy_check import check_runbook_policy  # noqa: PLC0415
    from bpfrun.frontend.durations import step_duration_problems  # noqa: PLC0415
    from bpfrun.frontend.params import placeholder_params  # noqa: PLC0415
    from bpfrun.frontend.runbooks import check_file, clean_steps, find_runbook  # noqa: PLC0415

    if _kind(f) == "missing":
        if f.suffix in (".yaml", ".yml") or len(f.parts) > 1:
            err(f"{f}: error: no such file or folder")
            return False
        try:  # meant as a shipped runbook's name: its error says which there are
            f = find_runbook(str(f))
        except UsageError as e:
            err(e.render())
            return False
    try:
        checked = check_file(f)
    except BpfrunError as e:  # invalid YAML, or no runbook text at all
        err(e.render())
        return False
    problems, notes = list(checked.problems), []
    rb = checked.runbook
    if rb is not None:
        params = placeholder_params(rb)  # for params without a default: every check runs
        clean = clean_steps(checked)
        problems += step_duration_problems(rb, params, clean)
        try:
            notes = check_against_kernel(rb, params, kernel, near_misses=True, only=clean)
            if not problems:  # the policy reads compiled facts: only of a sound runbook
                check_runbook_policy(policy, rb, params, kernel)
        except ValidationError as e:
            problems += [d for d in e.diagnostics if d not in problems]
    if problems:
        err(ValidationError(diagnostics=problems, sources=checked.sources).render())
        return False
    print(safe(f"{f}: ok"))
    for n in dict.fromkeys(notes):
        err(f"{f}: note: {n}")
    return True


def compile_cmd(runbook: str, param: ParamOpt = None,
                step: Annotated[str | None, typer.Option(help="Only this step.")] = None,
                policy: PolicyOpt = None, cgroup: CgroupOpt = None, unit: UnitOpt = None,
                container: ContainerOpt = None, pod: PodOpt = None) -> None:
    """Print the BCC C of each step, after what the runbook reads and costs. No root, no BCC
    needed."""
    def body() -> int:
        from bpfrun.compile.cexpr import NullInput  # noqa: PLC0415
        from bpfrun.compile.explain import explain_runbook  # noqa: PLC0415
        from bpfrun.compile.explain_text import c_comment  # noqa: PLC0415
        from bpfrun.compile.pipeline import compile_step, placeholder_values  # noqa: PLC0415
        from bpfrun.compile.policy_check import check_runbook_policy  # noqa: PLC0415
        from bpfrun.frontend.params import parse_assignments, resolve_params  # noqa: PLC0415
        from bpfrun.frontend.policy import find_policy  # noqa: PLC0415

        rb = load(runbook)
        params = resolve_params(rb, parse_assignments(param or []))
        target = target_of(cgroup, unit, container, pod, rb, params)
        kernel = default_kernel()
        if target is not None:
            err(f"note: aimed at {target.label} (cgroup id {target.id})")
        steps = [s for s in rb.steps if step is None or s.id == step]
        if not steps:
            raise UsageError(f"no step '{step}' in {rb.name}",
                             "steps: " + ", ".join(s.id for s in rb.steps))
        expl = explain_runbook(rb, params, kernel, only={s.id for s in steps})
        check_runbook_policy(find_policy(policy), rb, params, kernel, explanation=expl)
        texts, notes, blind = [c_comment(expl)], [], []
        for s in steps:
            try:
                compiled = compile_step(rb, s, params, placeholder_values(rb, s), kernel,
                                        require_probes=False, target=target)
            except NullInput as e:
                texts.append(f"/* step {s.id}: needs {e.name}, known only at run time */\n")
                continue
            notes += [f"note: step {s.id}: {n}" for n in compiled.program.unchecked]
            blind += [f"step {s.id}: {a.requested}" for a in compiled.program.attaches
                      if a.kind in _KERNEL_KINDS and not kernel.readable()]
            texts.append(compiled.c_text)
        if blind:  # its C would lack the records root's has: none rather than C that fails
            raise _blind_compile(list(dict.fromkeys(blind)))
        if not kernel.readable():
            err("note: tracefs is not readable: tracepoint fields and types were not checked")
        for line in notes:
            err(line)
        for text in texts:
            print(text)
        return 0
    guarded(body)


def _blind_compile(probes: list[str]) -> MachineError:
    """`compile` without tracefs or root's snapshot of it, for probes that need one."""
    return MachineError(
        "cannot compile without this kernel's tracepoint formats: tracefs cannot be read (root "
        "only, or not mounted) and "
        f"{KernelCache.default().describe()}; the C of these probes depends on them:\n"
        + "\n".join(f"  {p}" for p in probes), hint=CACHE_FIX)


def explain(runbook: str, param: ParamOpt = None, policy: PolicyOpt = None,
            cgroup: CgroupOpt = None, unit: UnitOpt = None, container: ContainerOpt = None,
            pod: PodOpt = None) -> None:
    """What a runbook attaches to, reads, exports and costs, probe by probe, and whether the
    policy lets it run (its violations are listed; the exit code is still 0). No root."""
    def body() -> int:
        from bpfrun.compile.explain import explain_runbook  # noqa: PLC0415
        from bpfrun.compile.explain_text import text  # noqa: PLC0415
        from bpfrun.compile.policy_check import check_runbook_policy  # noqa: PLC0415
        from bpfrun.frontend.params import (  # noqa: PLC0415
            check_value,
            parse_assignments,
            placeholder_params,
        )
        from bpfrun.frontend.policy import find_policy  # noqa: PLC0415

        rb = load(runbook)
        params = placeholder_params(rb)  # a param without a default is not needed here
        for name, raw in parse_assignments(param or []).items():
            p = rb.param(name)
            try:
                if p is None:
                    raise ValueError(f"no such param in {rb.name}")
                params[name] = check_value(p, raw)
            except ValueError as e:
                raise UsageError(f"param '{name}': {e}") from None
        target = target_of(cgroup, unit, container, pod, rb, params)
        kernel = default_kernel()
        rules = find_policy(policy)
        expl = explain_runbook(rb, params, kernel)
        if target is not None and target.level > 0:
            print(safe(f"Target: {target.label} (cgroup id {target.id}): every probe returns at "
                       "once for tasks outside it, before its `where` (the running task, or "
                       "the thread a probe's `target_task:` names).\n"))
        print(safe(text(expl)))
        try:
            check_runbook_policy(rules, rb, params, kernel, explanation=expl)
            print(f"Policy ({rules.source}): allows it.")
        except ValidationError as e:
            print(f"Policy ({rules.source}): refuses it ({len(e.diagnostics)} violation(s)):")
            print(safe(e.render()))
        return 0
    guarded(body)


def probes(pattern: Annotated[str | None, typer.Argument(help="Glob, e.g. 'sched:*'.")] = None,
           verbose: Annotated[bool, typer.Option("-v", "--verbose",
                                                 help="Fields and types.")] = False,
           binary: Annotated[str | None, typer.Option("--binary", "-b",
                                                      help="List uprobes of this binary.")]
           = None) -> None:
    """Probes this kernel offers (tracepoints, raw tracepoints, kprobes, uprobes)."""
    def body() -> int:
        from bpfrun.kernel.probes import list_probes  # noqa: PLC0415

        for line in list_probes(default_kernel(), pattern, verbose, binary):
            print(line)
        return 0
    guarded(body)
