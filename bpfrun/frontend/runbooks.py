"""Find a runbook (a path or a shipped name) and load it through the frontend's stages in
order: YAML with positions → JSON Schema → typed model → checks.

Every problem of a file is reported in one pass: YAML strictness findings do not stop the
schema check, and after schema errors the model is built and checked from what the schema
accepted (prune.py), so a later stage's messages are about valid parts, not noise caused by
an earlier error. Only invalid YAML, or a document with nothing valid left, stops early.
"""

from __future__ import annotations

import stat
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path

from bpfrun.errors import Diagnostic, UsageError, ValidationError
from bpfrun.frontend.check import check_runbook, reference_places
from bpfrun.frontend.loader import Document, load_file
from bpfrun.frontend.model import Runbook, build_runbook
from bpfrun.frontend.prune import prune_invalid
from bpfrun.frontend.schema import validate_schema
from bpfrun.paths import runbooks_dir


def shipped_runbooks() -> list[Path]:
    return sorted(runbooks_dir().glob("*.yaml"))


def find_runbook(name_or_path: str) -> Path:
    """A path, or the name of a shipped runbook."""
    path = Path(name_or_path)
    try:
        is_dir = stat.S_ISDIR(path.stat().st_mode)
    except FileNotFoundError:
        is_dir = None  # nothing there
    except OSError:
        return path  # there but closed to this user: reading it says why
    if is_dir is False or (is_dir and ("/" in name_or_path or path.suffix in (".yaml", ".yml"))):
        return path  # a file, pipe or device, or a folder named as a runbook: load_file says
    if "/" not in name_or_path:
        shipped = runbooks_dir() / f"{name_or_path}.yaml"
        if shipped.is_file():
            return shipped
    names = ", ".join(p.stem for p in shipped_runbooks())
    raise UsageError(f"no runbook '{name_or_path}': not a file, nor a shipped runbook",
                     f"shipped runbooks: {names} (bpfrun list)")


def load_runbook(path: str | Path) -> Runbook:
    """The checked runbook; raises ValidationError listing every problem of every stage."""
    checked = check_file(path)
    if checked.problems or checked.runbook is None:
        raise ValidationError(diagnostics=checked.problems, sources=checked.sources)
    return checked.runbook


@dataclass
class Checked:
    """A runbook file after the frontend: the runbook as far as it could be built (from the
    valid parts alone when there are problems) and every problem found."""

    runbook: Runbook | None
    problems: list[Diagnostic]
    sources: dict[str, str]
    names_ok: bool = False  # the model was built and its names checked without a problem


def check_file(path: str | Path) -> Checked:
    """Every stage on one file. Raises ValidationError only for invalid YAML, and
    UnreadableRunbook for a file that is no text."""
    doc = load_file(path, keep_findings=True)
    problems = list(doc.findings) + validate_schema(doc)
    usable: Document | None = doc
    if problems:
        pruned = prune_invalid(doc)
        usable = pruned[0] if pruned else None
    runbook, names_ok = None, False
    if usable is not None:
        try:
            runbook = build_runbook(usable)
            check_runbook(runbook)
            names_ok = True
        except ValidationError as e:
            problems += e.diagnostics
    return Checked(runbook, _distinct(problems), {doc.path: doc.text}, names_ok)


class CleanSteps(set[str]):
    """Ids of steps that later checks can take; `reported` holds, by step id, the places of
    the params./steps. names found wrong in its kernel expressions: lowering meets them
    again, and must not report them twice."""

    def __init__(self) -> None:
        super().__init__()
        self.reported: dict[str, frozenset[tuple[int, int]]] = {}


def clean_steps(checked: Checked) -> CleanSteps:
    """Ids of the steps of `checked.runbook` with no problem inside them but wrong names in
    kernel expressions: those that later checks (types against the kernel) can take without
    tripping over a known problem — so that every problem of an expression is reported."""
    clean = CleanSteps()
    rb = checked.runbook
    if rb is None:
        return clean
    starts = [s.loc.line for s in rb.steps]
    inside: dict[int, list[tuple[int, int]]] = {}  # step index → places of its problems
    for d in checked.problems:
        if d.loc is not None and (i := bisect_right(starts, d.loc.line) - 1) >= 0:
            inside.setdefault(i, []).append((d.loc.line, d.loc.col))
    for i, step in enumerate(rb.steps):
        places = inside.get(i, [])
        names = reference_places(step) if places else set()
        if all(p in names for p in places):
            clean.add(step.id)
            if places:
                clean.reported[step.id] = frozenset(places)
    return clean


def _distinct(problems: list[Diagnostic]) -> list[Diagnostic]:
    """In stage order; one diagnostic per place and message (stages can agree)."""
    seen: dict[tuple[object, ...], Diagnostic] = {}
    for d in problems:
        where = (d.loc.line, d.loc.col) if d.loc else (0, 0)
        seen.setdefault((*where, d.message), d)
    return list(seen.values())
