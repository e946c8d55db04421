"""Retention of a runbook's report folders, and the free-space floor under new ones.

A run every 15 minutes leaves ~35,000 folders a year; `prune` removes the oldest complete
folders of one runbook past `keep` (a count) or `keep_days` (an age). A folder is complete
when it holds result.json, which the writers put last; one without it may still be being
written and is never touched, nor is the one `latest` points at. Folders are recognised by
the name `default_report_dir` gives them, `<runbook>-<YYYYmmddTHHMMSSZ>[-N]`, so other files
in the reports directory (other runbooks', a user's) are left alone.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bpfrun.errors import MachineError, UsageError
from bpfrun.report.reportdir import LATEST
from bpfrun.units import format_size, parse_size

RESULT_FILE = "result.json"
SCHEDULED_KEEP = 96  # a day of runs every 15 minutes
DEFAULT_MIN_FREE = "256MiB"


@dataclass(frozen=True)
class ReportFolder:
    path: Path
    started: datetime
    serial: int  # the -N suffix of runs that started in the same second; 1 without one

    @property
    def complete(self) -> bool:
        return (self.path / RESULT_FILE).is_file()


def report_folders(base: Path, runbook_name: str) -> list[ReportFolder]:
    """This runbook's report folders in `base`, oldest first."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", runbook_name).lstrip(".") or "run"
    pattern = re.compile(rf"{re.escape(name)}-(\d{{8}}T\d{{6}}Z)(?:-(\d+))?")
    found = []
    try:
        entries = list(base.iterdir())
    except FileNotFoundError:
        return []
    for entry in entries:
        m = pattern.fullmatch(entry.name)
        if m is None or entry.is_symlink() or not entry.is_dir():
            continue
        started = datetime.strptime(m.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        found.append(ReportFolder(entry, started, int(m.group(2) or 1)))
    return sorted(found, key=lambda f: (f.started, f.serial))


def to_prune(base: Path, runbook_name: str, keep: int | None = None,
             keep_days: float | None = None, now: datetime | None = None) -> list[Path]:
    """The complete folders past the newest `keep` or older than `keep_days`, oldest first,
    never the one `latest` points at."""
    if keep is None and keep_days is None:
        return []
    complete = [f for f in report_folders(base, runbook_name) if f.complete]
    latest = _latest_target(base)
    doomed: list[Path] = []
    cutoff = None
    if keep_days is not None:
        cutoff = (now or datetime.now(UTC)) - timedelta(days=keep_days)
    for i, folder in enumerate(complete):
        newer = len(complete) - 1 - i
        too_many = keep is not None and newer >= keep
        too_old = cutoff is not None and folder.started < cutoff
        if (too_many or too_old) and folder.path.resolve() != latest:
            doomed.append(folder.path)
    return doomed


def prune(base: Path, runbook_name: str, keep: int | None = None,
          keep_days: float | None = None, now: datetime | None = None) -> list[Path]:
    """Remove what `to_prune` names; returns the folders removed (one that vanished
    meanwhile, or cannot be removed, is skipped: pruning never fails a run)."""
    removed = []
    for path in to_prune(base, runbook_name, keep, keep_days, now):
        try:
            shutil.rmtree(path)
        except OSError:
            continue
        removed.append(path)
    return removed


def _latest_target(base: Path) -> Path | None:
    link = base / LATEST
    try:
        return link.resolve(strict=True) if link.is_symlink() else None
    except OSError:
        return None


def parse_keep(keep: int | None, keep_days: str | None) -> tuple[int | None, float | None]:
    """`--keep N` and `--keep-days D` checked: N ≥ 1 (the run just made is kept), D > 0."""
    if keep is not None and keep < 1:
        raise UsageError(f"--keep {keep}: keep at least 1 report (the newest)")
    days = None
    if keep_days is not None:
        try:
            days = float(keep_days)
        except ValueError:
            days = -1.0
        if not days > 0 or days == float("inf"):
            raise UsageError(f"--keep-days {keep_days!r}: give a number of days above 0, "
                             "e.g. 7 or 0.5")
    return keep, days


def parse_min_free(text: str) -> int:
    if text.strip() == "0":
        return 0
    try:
        return parse_size(text)
    except ValueError as e:
        raise UsageError(f"--min-free {text!r}: {e}", hint="a size such as 512MiB or 1GiB, "
                         "0 for no floor") from None


def free_bytes(path: Path) -> int:
    """Free bytes for an unprivileged writer on the file system `path` is (or will be) on."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    st = os.statvfs(probe)
    return st.f_bavail * st.f_frsize


def check_free_space(folder: Path, min_free: int) -> None:
    """MachineError (exit 3) when the reports' file system has less than `min_free` free:
    a scheduled run must not be what fills the disk."""
    if min_free <= 0:
        return
    free = free_bytes(folder)
    if free < min_free:
        raise MachineError(
            f"only {format_size(free)} free where the reports go ({folder}), below the "
            f"{format_size(min_free)} floor: the run was not started",
            hint="free some space, prune old reports (--keep N), or lower the floor "
                 "(--min-free SIZE, 0 for none)")
