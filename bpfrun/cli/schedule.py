"""`bpfrun schedule`: run runbooks on a timer, as systemd units or a cron line (install,
list, remove).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from bpfrun.cli.common import ParamOpt, err, guarded, load, safe
from bpfrun.errors import UsageError

schedule_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                           help="Run runbooks on a timer: systemd units, or a cron line.")
RootOpt = Annotated[Path | None, typer.Option(
    "--root", metavar="DIR", help="Units folder (default /etc/systemd/system).")]


@schedule_app.command("install")
def schedule_install(runbook: str, every: Annotated[str, typer.Option(
                         "--every", metavar="PERIOD", help="e.g. 5m, 15m, 1h, 24h.")],
                     param: ParamOpt = None, root: RootOpt = None,
                     keep: Annotated[int | None, typer.Option("--keep", metavar="N")] = None,
                     prom_textfile: Annotated[Path | None, typer.Option(
                         "--prom-textfile", metavar="DIR")] = None,
                     init: Annotated[str, typer.Option(
                         "--init", metavar="auto|systemd|cron",
                         help="auto: systemd units when systemd runs, else the cron line.")]
                     = "auto") -> None:
    """Write a systemd service and timer running RUNBOOK every PERIOD (scheduled: quiet,
    BPFRUN_SCHEDULED=1, low priority, hardened), or print the /etc/cron.d line."""
    def body() -> int:
        from bpfrun.frontend.params import parse_assignments, resolve_params  # noqa: PLC0415
        from bpfrun.ops import schedule as sched  # noqa: PLC0415
        from bpfrun.ops.runops import build_schedule  # noqa: PLC0415

        if init not in ("auto", "systemd", "cron"):
            raise UsageError(f"--init {init!r}: one of auto, systemd, cron")
        rb = load(runbook)
        params = resolve_params(rb, parse_assignments(param or []))  # a bad one exits 2 now
        is_file = Path(runbook).suffix in (".yaml", ".yml") or "/" in runbook
        ref = str(Path(runbook).resolve()) if is_file else runbook  # a timer has no cwd
        prom = [str(prom_textfile.resolve())] if prom_textfile else []
        extra = [*(["--keep", str(keep)] if keep else []),
                 *(["--prom-textfile", *prom] if prom else [])]
        s = build_schedule(rb, ref, params, param or [], every, _bpfrun_command(), extra,
                           prom)
        if init == "cron" or (init == "auto" and not sched.systemd_running()):
            err("systemd is not running here: add this line to /etc/cron.d/bpfrun")
            print(sched.cron_line(s))
            return 0
        for path in sched.install(s, root or sched.DEFAULT_UNIT_ROOT):
            print(path)
        err(f"enable it: systemctl daemon-reload && systemctl enable --now {s.unit}.timer")
        return 0
    guarded(body)


@schedule_app.command("list")
def schedule_list(root: RootOpt = None) -> None:
    """The schedules bpfrun installed: runbook, calendar, command."""
    def body() -> int:
        from bpfrun.ops import schedule as sched  # noqa: PLC0415

        for s in sched.listing(root or sched.DEFAULT_UNIT_ROOT):
            print(safe(f"{s.runbook:<16} {s.calendar:<22} {s.command}"))
        return 0
    guarded(body)


@schedule_app.command("remove")
def schedule_remove(runbook: str, root: RootOpt = None) -> None:
    """Delete a runbook's service and timer (disable the timer first)."""
    def body() -> int:
        from bpfrun.ops import schedule as sched  # noqa: PLC0415

        for path in sched.remove(runbook, root or sched.DEFAULT_UNIT_ROOT):
            print(path)
        err(f"then: systemctl disable --now {sched.unit_name(runbook)}.timer; "
            "systemctl daemon-reload")
        return 0
    guarded(body)


def _bpfrun_command() -> list[str]:
    """How a timer starts this bpfrun: its script when run as one, else this Python."""
    import shutil  # noqa: PLC0415

    script = Path(sys.argv[0])
    if script.name == "bpfrun" and script.exists():
        return [str(script.resolve())]
    found = shutil.which("bpfrun")
    return [found] if found else [sys.executable, "-m", "bpfrun"]
