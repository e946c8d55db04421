"""`bpfrun test`: run runbooks' self-tests (a workload, a run, the `expect` checks) and sum
them up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from bpfrun.cli.common import PolicyOpt, err, guarded
from bpfrun.errors import UsageError, ValidationError
from bpfrun.kernel.tracefs import default_kernel


def test_cmd(runbooks: Annotated[list[str], typer.Argument(
                 help="Runbook files, folders of runbooks, or shipped runbook names.")],
             out: Annotated[Path | None, typer.Option(
                 "-o", "--out", help="Keep each report in DIR/<runbook name>.")] = None,
             quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress.")] = False,
             policy: PolicyOpt = None) -> None:
    """Run runbooks' self-tests (root): start each workload, run, check `expect`."""
    def body() -> int:
        from bpfrun.frontend.policy import find_policy  # noqa: PLC0415
        from bpfrun.runtime.progress import Progress  # noqa: PLC0415
        from bpfrun.runtime.selftest import (  # noqa: PLC0415
            collect,
            exit_code,
            render_result,
            run_selftest,
            summary,
        )

        progress = Progress(quiet=quiet)
        rules = find_policy(policy)
        results, invalid = [], 0
        for path in collect(runbooks):
            try:
                _check_policy(path, rules)
                res = run_selftest(path, out, progress)
            except (ValidationError, UsageError) as e:  # MachineError: exit 3 at once
                err(e.render())
                print(f"INVALID {path}", flush=True)
                invalid += 1
                continue
            print(render_result(res), flush=True)
            results.append(res)
        print(summary(results, invalid))
        return exit_code(results, invalid)
    guarded(body)


def _check_policy(path: Path, policy: Any) -> None:
    """The policy on one runbook, with its params' defaults (placeholders where none)."""
    from bpfrun.compile.policy_check import check_runbook_policy  # noqa: PLC0415
    from bpfrun.frontend.params import placeholder_params  # noqa: PLC0415
    from bpfrun.frontend.runbooks import load_runbook  # noqa: PLC0415

    rb = load_runbook(path)
    check_runbook_policy(policy, rb, placeholder_params(rb), default_kernel())
