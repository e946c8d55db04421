"""The command line: parse options, call the library, map outcomes to exit codes.

Thin on purpose: every decision lives in the library. This package builds the `app`, one
module per command group; common.py holds what they share and states the exit-code contract.
Commands are registered here, in the order `bpfrun --help` lists them.
"""

from __future__ import annotations

import sys

import typer

from bpfrun.cli import check, compare, doctor, k8s, run, schedule, selftest

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  pretty_exceptions_enable=False,
                  help="Declarative eBPF investigations: YAML runbooks compiled to BCC programs.")

app.command("list")(check.list_cmd)
app.command()(check.validate)
app.command("compile")(check.compile_cmd)
app.command()(check.explain)
app.command()(run.run)
app.command()(compare.diff)
app.command()(compare.merge)
app.add_typer(k8s.k8s_app, name="k8s")
app.command("test")(selftest.test_cmd)
app.command()(doctor.doctor)
app.command()(check.probes)
app.add_typer(schedule.schedule_app, name="schedule")
app.command()(doctor.version)


def main() -> None:
    """The `bpfrun` console script and `python -m bpfrun`."""
    try:
        app()
    except BrokenPipeError:  # `bpfrun compile x | head`
        sys.stderr.close()


__all__ = ["app", "main"]
