"""Find a runbook (a path or a shipped name) and load it through the frontend's stages in
order: YAML with positions → JSON Schema → typed model → checks.

Each stage raises ValidationError with every problem it found; a later stage only runs on
what the earlier ones accepted, so its messages are never noise caused by an earlier error.
"""

from __future__ import annotations

from pathlib import Path

from bpfrun.errors import UsageError, ValidationError
from bpfrun.frontend.check import check_runbook
from bpfrun.frontend.loader import load_file
from bpfrun.frontend.model import Runbook, build_runbook
from bpfrun.frontend.schema import validate_schema
from bpfrun.paths import runbooks_dir


def shipped_runbooks() -> list[Path]:
    return sorted(runbooks_dir().glob("*.yaml"))


def find_runbook(name_or_path: str) -> Path:
    """A path, or the name of a shipped runbook."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    if "/" not in name_or_path:
        shipped = runbooks_dir() / f"{name_or_path}.yaml"
        if shipped.is_file():
            return shipped
    names = ", ".join(p.stem for p in shipped_runbooks())
    raise UsageError(f"no runbook '{name_or_path}': not a file, nor a shipped runbook",
                     f"shipped runbooks: {names} (bpfrun list)")


def load_runbook(path: str | Path) -> Runbook:
    doc = load_file(path)
    problems = validate_schema(doc)
    if problems:
        raise ValidationError(diagnostics=problems, sources={doc.path: doc.text})
    runbook = build_runbook(doc)
    check_runbook(runbook)
    return runbook
