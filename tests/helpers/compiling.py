"""A runbook's text compiled through the real pipeline (load → check → lower → emit) against
the tracepoint formats recorded from this kernel (tests/fixtures/tracefs): no root, no BCC.

The text is written to `path` (relative names resolve in the test's working folder, so
diagnostics name the file as given); params take their defaults unless `params` sets them,
and earlier steps' values are placeholders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bpfrun.compile.pipeline import Compiled, compile_step, placeholder_values
from bpfrun.compile.program import CgroupFilter
from bpfrun.frontend.model import Runbook, Step
from bpfrun.frontend.params import resolve_params
from bpfrun.frontend.runbooks import load_runbook
from bpfrun.kernel.tracefs import FakeKernel, Kernel
from helpers.paths import FIXTURES

KERNEL = FakeKernel(FIXTURES / "tracefs")
HEAD = "apiVersion: bpfrun/v1\nname: t\ntitle: T\n"


def load(text: str, path: str | Path = "t.yaml", params: dict[str, str] | None = None
         ) -> tuple[Runbook, dict[str, Any]]:
    """The runbook `text`, written to `path` and loaded, with its params resolved."""
    Path(path).write_text(text)
    rb = load_runbook(str(path))
    return rb, resolve_params(rb, params or {})


def compile_one(rb: Runbook, step: Step, params: dict[str, Any], kernel: Kernel = KERNEL,
                target: CgroupFilter | None = None) -> Compiled:
    """One step of a loaded runbook, compiled (raises ValidationError with its problems)."""
    return compile_step(rb, step, params, placeholder_values(rb, step), kernel, target=target)


def compile_first(text: str, path: str | Path = "t.yaml", kernel: Kernel = KERNEL,
                  params: dict[str, str] | None = None, target: CgroupFilter | None = None
                  ) -> Compiled:
    """The first step of the runbook `text`, compiled."""
    rb, values = load(text, path, params)
    return compile_one(rb, rb.steps[0], values, kernel, target)
