"""Resolution, the pass before lowering: every probe of a step, with its fallbacks, is looked
up on the kernel in one go; lowering then only reads the answers.

All problems come back together and with their positions: names that are not probes (the
runbook is wrong) and probes of which no candidate exists here (this machine cannot run the
step). The caller decides what a missing probe means: `run` stops, while `validate` and
`compile` lower the first candidate as written and note that it cannot run here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bpfrun.compile.cfuncs import probes_needed
from bpfrun.errors import Diagnostic, Loc, MachineError
from bpfrun.frontend.model import Step, Template
from bpfrun.kernel.resolve import ProbeCtx, Resolved, parse_probe, resolve_probe
from bpfrun.kernel.tracefs import Kernel

MISSING_HINT = "add a fallback probe that exists here (bpfrun probes PATTERN)"


@dataclass
class StepProbes:
    """The probes of one step as this kernel offers them."""

    probes: list[Resolved | None] = field(default_factory=list)  # by step.probes; None: bad name
    begin: Resolved | None = None  # the span's, when it has one and its name is good
    end: Resolved | None = None
    problems: list[Diagnostic] = field(default_factory=list)  # names that are not probes
    missing: list[Diagnostic] = field(default_factory=list)  # no candidate exists here
    notes: list[str] = field(default_factory=list)  # what could not be checked
    # Probes the compiler adds for functions the step calls (task_cgroup's sched_switch),
    # and for target_task when the run has a target (the same record).
    added: dict[str, Resolved] = field(default_factory=dict)


def resolve_step(step: Step, kernel: Kernel, substitute: Callable[[Template], str],
                 targeted: bool = False) -> StepProbes:
    """Resolve the span's begin and end, then each probe, in the order lowering uses them.
    `targeted`: the run has a target, so `target_task` needs the record the compiler adds."""
    out = StepProbes()

    def resolve(candidates: tuple[Template, ...], loc: Loc) -> Resolved | None:
        return _resolve(step.id, [substitute(t) for t in candidates], loc, kernel, out)

    if step.span is not None:
        out.begin = resolve(step.span.begin.candidates, step.span.begin.loc)
        out.end = resolve(step.span.end.candidates, step.span.end.loc)
    out.probes = [resolve(p.candidates, p.loc) for p in step.probes]
    for text in probes_needed(step, targeted):
        res = _resolve(step.id, [text], step.loc, kernel, out)
        if res is not None:
            out.added[text] = res
    return out


def _resolve(step_id: str, texts: list[str], loc: Loc, kernel: Kernel,
             out: StepProbes) -> Resolved | None:
    try:
        res, reasons = resolve_probe(texts, kernel)
    except ValueError as e:
        out.problems.append(Diagnostic(str(e), loc))
        return None
    if res is None:
        out.missing.append(Diagnostic(f"step '{step_id}': no usable probe: "
                                      + "; ".join(reasons), loc, MISSING_HINT))
        # Lowered anyway for `compile` (for another machine): the first probe as written.
        ref = parse_probe(texts[0])
        out.notes.append(f"probe {ref.text} cannot run here: {reasons[0]}")
        return Resolved(ref, ProbeCtx(ref.kind, ref.text), None, False, ref.text)
    if not res.checked:
        out.notes.append(f"probe {res.ref.text} (kernel not readable)")
    return res


def unusable(missing: list[Diagnostic]) -> MachineError:
    """The error for probes that no candidate of exists here, naming each with its place."""
    lines = [f"{d.message} (runbook {d.loc})" if d.loc else d.message for d in missing]
    return MachineError("\n".join(lines), MISSING_HINT)
