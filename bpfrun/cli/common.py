"""What every command shares: the option types, the exit-code contract, and `guarded`, which
turns a command body's outcome into an exit code.

Diagnostics and progress go to stderr, the product (C, JSON, the report's path) to stdout.
Exit codes follow the CLI contract:
0 clean · 1 threshold fired · 2 invalid input · 3 machine cannot run it · 4 a step failed ·
5 another run of the same runbook holds its lock (`run` skipped itself; bpfrun.ops.lock).
`run --format nagios` exits with the plugin convention instead (bpfrun.ops.nagios).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer

from bpfrun.errors import (
    EXIT_INVALID,
    EXIT_STEP_FAILED,
    BpfrunError,
    ValidationError,
    shown,
)

ParamOpt = Annotated[list[str] | None, typer.Option("--param", "-p", metavar="NAME=VALUE",
                                                   help="Set a runbook param (repeatable).")]
PolicyOpt = Annotated[str | None, typer.Option(
    "--policy", metavar="FILE",
    help="Policy file (default: /etc/bpfrun/policy.yaml if it exists, else the built-in "
         "policy, which refuses exporting read/write buffers).")]
CgroupOpt = Annotated[str | None, typer.Option(
    "--cgroup", metavar="PATH", help="Only tasks in this cgroup v2 or below it (a path "
    "relative to the unified hierarchy, or absolute).")]
UnitOpt = Annotated[str | None, typer.Option(
    "--unit", metavar="NAME.service", help="Only tasks of this systemd unit.")]
ContainerOpt = Annotated[str | None, typer.Option(
    "--container", metavar="ID", help="Only tasks of this container (docker, containerd, "
    "CRI-O or podman id; a prefix is enough).")]
PodOpt = Annotated[str | None, typer.Option(
    "--pod", metavar="NS/NAME|UID", help="Only tasks of this Kubernetes pod's containers.")]


def target_of(cgroup: str | None, unit: str | None, container: str | None,
              pod: str | None, rb: Any = None, params: dict[str, Any] | None = None) -> Any:
    """The cgroup filter the options (or the runbook's target param) name, or None."""
    from bpfrun.runtime.session import TargetOptions, cgroup_target  # noqa: PLC0415

    return cgroup_target(TargetOptions(cgroup, unit, container, pod), rb, params)


def safe(text: str) -> str:
    """`text` (newlines and tabs kept) with the control characters that could drive the
    terminal escaped: colours, cursor moves, a changed title, bidi overrides."""
    return shown(text, keep="\n\t")


def err(text: str) -> None:
    """A diagnostic on stderr, made safe for the terminal."""
    print(safe(text), file=sys.stderr, flush=True)


def guarded(fn: Callable[[], int]) -> None:
    """Run a command body; BpfrunErrors become messages and exit codes, never tracebacks."""
    try:
        code = fn()
    except ValidationError as e:
        err(e.render())
        err(f"{len(e.diagnostics)} problem(s) found")
        code = EXIT_INVALID
    except BpfrunError as e:
        err(e.render())
        code = e.exit_code
    except KeyboardInterrupt:
        err("interrupted")
        code = 130
    except BrokenPipeError:  # `bpfrun probes | head`: the reader has had enough
        sys.stderr.close()
        code = 0
    except Exception as e:  # a bug of bpfrun's, not the user's: say so, briefly
        err(f"bpfrun: internal error: {type(e).__name__}: {e}\n"
            "  this is a bug in bpfrun; please report it with the runbook and command line")
        code = EXIT_STEP_FAILED
    raise typer.Exit(code)


def load(runbook: str) -> Any:
    """The runbook a command names: a file, or the name of a shipped runbook."""
    from bpfrun.frontend.runbooks import find_runbook, load_runbook  # noqa: PLC0415 fast --help

    return load_runbook(find_runbook(runbook))
