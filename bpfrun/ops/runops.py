"""What `bpfrun run` does around a run for operations: before it, the free-space floor and
the runbook's lock; after it, retention and the Prometheus textfile; and the schedule a
runbook gets from `bpfrun schedule install`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bpfrun.expr.evaluate import EvalError, render_template
from bpfrun.frontend.model import Runbook
from bpfrun.frontend.policy import SCHEDULED_ENV
from bpfrun.ops.lock import RunLock
from bpfrun.ops.prometheus import write_textfile
from bpfrun.ops.retention import (
    DEFAULT_MIN_FREE,
    SCHEDULED_KEEP,
    check_free_space,
    parse_keep,
    parse_min_free,
    prune,
)
from bpfrun.ops.schedule import Schedule, parse_every, random_delay, timeout_for
from bpfrun.report.reportdir import reports_base
from bpfrun.result import RunResult
from bpfrun.units import parse_duration

UNKNOWN_STEP_SECONDS = 60.0  # a duration known only during the run (from an earlier step)


class RunOps:
    """The operations side of one `bpfrun run`: `start()` before anything is attached,
    `finish()` once the reports are written, `failed()` when the run never produced a result.
    """

    def __init__(self, runbook_name: str, out: Path | None, keep: int | None = None,
                 keep_days: str | None = None, min_free: str = DEFAULT_MIN_FREE,
                 prom_dir: Path | None = None) -> None:
        self.runbook = runbook_name
        self.out = out
        self.keep, self.keep_days = parse_keep(keep, keep_days)
        if self.keep is None and self.keep_days is None and os.environ.get(SCHEDULED_ENV) == "1":
            self.keep = SCHEDULED_KEEP  # a timer's reports would otherwise pile up forever
        self.min_free = parse_min_free(min_free)
        self.prom_dir = prom_dir
        self.lock: RunLock | None = None

    def start(self) -> RunOps:
        """Refuse a run below the free-space floor (MachineError, exit 3) or while another run
        of this runbook holds its lock (AlreadyRunning, exit 5); then hold the lock."""
        base = reports_base()
        check_free_space(self.out or base, self.min_free)
        self.lock = RunLock(base, self.runbook).acquire()
        return self

    def finish(self, result: RunResult, folder: Path) -> list[Path]:
        """Prune this runbook's old reports (only in the reports directory: an `-o` folder
        is the user's) and write the metrics; the folders removed."""
        removed: list[Path] = []
        try:
            if self.out is None:
                removed = prune(folder.parent, self.runbook, self.keep, self.keep_days)
            if self.prom_dir is not None:
                write_textfile(self.prom_dir, self.runbook, result.exit_code, result)
        finally:
            self.release()
        return removed

    def failed(self, exit_code: int) -> None:
        """A run that ended before its result (invalid, machine, …): its metrics say so."""
        if self.prom_dir is not None:
            write_textfile(self.prom_dir, self.runbook, exit_code, None, datetime.now(UTC))
        self.release()

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None


def step_seconds(runbook: Runbook, params: Mapping[str, Any]) -> list[float]:
    """Each step's duration in seconds with these params (a guess for one that needs an
    earlier step's results)."""
    out = []
    for step in runbook.steps:
        try:
            text = render_template(step.duration.parts, {"params": dict(params), "steps": {}})
            out.append(parse_duration(text) / 1e9)
        except (EvalError, ValueError, KeyError, TypeError):
            out.append(UNKNOWN_STEP_SECONDS)
    return out


def build_schedule(runbook: Runbook, ref: str, params: Mapping[str, Any],
                   assignments: Sequence[str], every: str, executable: Sequence[str],
                   extra: Sequence[str] = (), writable: Sequence[str] = ()) -> Schedule:
    """The schedule of `runbook` (named `ref` on the command line) every `every`, run by
    `executable` with the `--param` `assignments` as given and `extra` run options."""
    every_s = parse_every(every)
    command = [*executable, "run", ref, "--quiet"]
    for a in assignments:
        command += ["--param", a]
    return Schedule(runbook.name, every_s, (*command, *extra),
                    timeout_for(step_seconds(runbook, params)), random_delay(every_s),
                    writable=tuple(writable))
