"""`bpfrun run`: one runbook measured on this machine, and its refusals reported to monitoring
(Prometheus, Nagios) as well as on stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

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
)
from bpfrun.errors import BpfrunError


def run(runbook: str, param: ParamOpt = None,
        duration: Annotated[str | None, typer.Option(help="Override every step's duration.")]
        = None,
        out: Annotated[Path | None, typer.Option("-o", "--out", help="Report folder.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="result.json on stdout.")] = False,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress.")] = False,
        formats: Annotated[str, typer.Option(
            "--format", "-f", metavar="LIST",
            help="Reports to write: md,html,json (result.json is always written); or nagios: "
                 "all three, and one plugin status line on stdout, exit 0 OK, 1 WARNING, "
                 "2 CRITICAL, 3 UNKNOWN.")]
        = "md,html,json",
        policy: PolicyOpt = None,
        keep: Annotated[int | None, typer.Option(
            "--keep", metavar="N",
            help="After the run, remove this runbook's oldest complete reports but the newest "
                 "N (default with BPFRUN_SCHEDULED=1: 96).")] = None,
        keep_days: Annotated[str | None, typer.Option(
            "--keep-days", metavar="D",
            help="After the run, remove this runbook's complete reports older than D days.")]
        = None,
        min_free: Annotated[str, typer.Option(
            "--min-free", metavar="SIZE",
            help="Refuse to start (exit 3) when the reports' file system has less free; "
                 "0: no floor.")] = "256MiB",
        prom_textfile: Annotated[Path | None, typer.Option(
            "--prom-textfile", metavar="DIR",
            help="Write bpfrun_<runbook>.prom there for node_exporter's textfile "
                 "collector.")] = None,
        report_mode: Annotated[str, typer.Option(
            "--report-mode", metavar="OCTAL",
            help="Mode of the report's files, e.g. 0640 to share them with the folder's "
                 "group (its folder gets the matching x bits). Default 0600: only you.")]
        = "0600",
        baseline: Annotated[str | None, typer.Option(
            "--baseline", metavar="RUN",
            help="Compare with an earlier run of this runbook (a report folder, a result.json, "
                 "latest or latest~N) and judge the runbook's regression gates.")] = None,
        max_overhead: Annotated[float | None, typer.Option(
            "--max-overhead", metavar="PERCENT",
            help="Stop a step whose BPF programs take more than PERCENT of all CPUs "
                 "(measured each second; default: the policy's max_overhead, else 5; "
                 "0: no limit). A stopped step keeps its data and adds a warning (exit 1).")]
        = None,
        cgroup: CgroupOpt = None, unit: UnitOpt = None, container: ContainerOpt = None,
        pod: PodOpt = None,
        ) -> None:
    """Run a runbook (root): write report.md, report.html and result.json; print the path."""
    def body() -> int:
        from bpfrun.report.writers import render_json  # noqa: PLC0415
        from bpfrun.runtime.progress import Progress  # noqa: PLC0415
        from bpfrun.runtime.session import RunRequest, TargetOptions, run_session  # noqa: PLC0415

        request = RunRequest(
            runbook, param or [], duration, out, _report_formats(formats), policy, keep,
            keep_days, min_free, prom_textfile, report_mode, baseline, max_overhead,
            TargetOptions(cgroup, unit, container, pod))
        outcome = run_session(request, Progress.for_cli(quiet=quiet, json_output=as_json), err)
        result = outcome.result
        if _report_formats(formats) != formats:  # --format nagios
            from bpfrun.ops.nagios import nagios_output  # noqa: PLC0415

            state, line = nagios_output(result)
            print(safe(line))
            return state
        if as_json:
            sys.stdout.write(render_json(result))
        else:
            print(outcome.written.get("md") or outcome.written.get("html")
                  or outcome.written["json"])
        if result.error and not quiet:
            err(f"bpfrun: {result.error}")
        return result.exit_code
    guarded(_run_outcome(body, runbook, formats.strip() == "nagios", prom_textfile))


def _report_formats(formats: str) -> str:
    """`--format nagios` writes every report: the line on stdout is for the check."""
    return "md,html,json" if formats.strip() == "nagios" else formats


def _run_outcome(body: Callable[[], int], runbook: str, nagios: bool,
                 prom: Path | None) -> Callable[[], int]:
    """`body` whose refusals (invalid, machine, already running) still reach monitoring: the
    Prometheus file says the run errored (not for an overlap: the running one will write),
    and a Nagios check gets an UNKNOWN line with exit 3 instead of bpfrun's code."""
    def outcome() -> int:
        from bpfrun.ops.lock import AlreadyRunning  # noqa: PLC0415

        try:
            return body()
        except BpfrunError as e:
            if prom is not None and not isinstance(e, AlreadyRunning):
                from bpfrun.ops.prometheus import write_textfile  # noqa: PLC0415

                write_textfile(prom, _runbook_name(runbook), e.exit_code, None, datetime.now(UTC))
            if not nagios:
                raise
            from bpfrun.ops.nagios import nagios_unknown  # noqa: PLC0415

            err(e.render())
            state, line = nagios_unknown(_runbook_name(runbook), e.render().splitlines()[0])
            print(safe(line))
            return state
    return outcome


def _runbook_name(ref: str) -> str:
    """The runbook's name, or the file's stem when it cannot be loaded."""
    try:
        return str(load(ref).name)
    except BpfrunError:
        return Path(ref).stem or ref
