"""The state lowering one step shares: the step, its constants, the kernel's features, the
Program being built, the diagnostics, fresh names and the probe functions made so far.

Each construct (probe, predicate, aggregation, events, span, stacks) is lowered by functions
that take this context; none of them keeps state of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bpfrun.compile.cexpr import CompileError, Scope, problems_of
from bpfrun.compile.program import Function, Program
from bpfrun.errors import Diagnostics, Loc
from bpfrun.frontend.model import Expr, Step, Template
from bpfrun.kernel.features import Features
from bpfrun.kernel.resolve import Resolved


def function_key(res: Resolved) -> tuple[str, str]:
    """Probes that attach to the same place share one probe function."""
    return res.ref.canonical, res.target or ""


@dataclass
class StepContext:
    step: Step
    consts: dict[str, Any]  # {"params": {...}, "steps": {id: {name: value}}}
    features: Features
    substitute: Callable[[Template], str]  # params and earlier steps' values bound
    diags: Diagnostics = field(default_factory=Diagnostics)
    prog: Program = field(init=False)
    counter: int = 0
    function_names: dict[tuple[str, ...], str] = field(default_factory=dict)
    functions: dict[tuple[str, ...], Function] = field(default_factory=dict)
    entry_stashes: dict[tuple[str, str], str] = field(default_factory=dict)  # → map name
    tp_structs: dict[str, str] = field(default_factory=dict)  # name → declaration
    task_cgroups: bool = False  # some handler calls task_cgroup(): record tasks' cgroups

    def __post_init__(self) -> None:
        self.prog = Program(self.step.id, stop_after=self.step.stop_after,
                            event_buffer="ringbuf" if self.features.ring_buffer else "perf")

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def error(self, message: str, loc: Loc | None, hint: str | None = None) -> None:
        self.diags.error(message, loc, hint)

    def compile_error(self, e: CompileError, expr: Expr) -> None:
        """Each problem of `expr` at its own place (CompileErrors holds several)."""
        for problem in problems_of(e):
            self.error(str(problem), expr.at(problem.node), problem.hint)

    def function_name(self, res: Resolved) -> str:
        """The name of the probe function `res` runs in, reserved on first use: code compiled
        before the function is made may need it (USDT argument readers are per function)."""
        key = function_key(res)
        if key not in self.function_names:
            self.function_names[key] = self.fresh(f"bpfrun_{self.step.id}_probe")
        return self.function_names[key]

    def scope(self, res: Resolved, **kw: Any) -> Scope:
        """Where the expressions of one handler at `res` are compiled."""
        return Scope(res.ctx, self.consts, fresh=self.fresh,
                     function=lambda: self.function_name(res),
                     user_mode_check=self.features.user_mode_check,
                     arch=self.features.arch, **kw)
