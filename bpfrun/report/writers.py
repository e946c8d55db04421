"""Writing a run's output directory: result.json, report.md, generated C, folded stacks, SVGs.

Every file is written atomically (temp file in the same directory, fsync, rename), so a reader
or a cron job never sees half a report, even when the run is killed while writing. result.json
is written last: when it is there, everything it names is there too.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

from bpfrun.errors import UsageError
from bpfrun.report.flamegraph import (
    fold_aggregation,
    folded_text,
    is_stack_aggregation,
    render_svg,
    stack_files,
)
from bpfrun.report.document import program_file
from bpfrun.report.markdown import render_markdown


def write_atomic(path: str | PathLike[str], data: str | bytes) -> None:
    """Replace `path` with `data` in one step; on failure the old file (if any) is untouched."""
    target = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; reports are meant to be shared
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not every filesystem allows it, and that is no error.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def render_json(result: Mapping[str, Any]) -> str:
    """result.json's text: the documented key order kept (no sort_keys), UTF-8 as is."""
    return json.dumps(result, indent=2, ensure_ascii=False) + "\n"


def write_report_dir(
    out_dir: str | PathLike[str],
    result: dict[str, Any],
    programs: Mapping[str, str],
    folded: Mapping[str, dict[str, int]],
) -> Path:
    """Write the whole output of a run into `out_dir` and return the path of report.md.

    `programs` maps step id → generated C. `folded` maps "<step>.<agg>" (or the folded file's
    name) → folded stacks; a stack aggregation missing from it is folded from the rows the
    result kept, so a flame graph is never silently absent.
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        steps = result.get("steps") or []
        for step in steps:
            step_id = str(step.get("id"))
            for agg_id, agg in (step.get("aggregations") or {}).items():
                if not is_stack_aggregation(agg):
                    continue
                folded_name, svg_name = stack_files(step_id, agg_id, agg)
                stacks = folded.get(f"{step_id}.{agg_id}")
                if stacks is None:
                    stacks = folded.get(folded_name)
                if stacks is None:
                    stacks = fold_aggregation(agg)
                write_atomic(out / folded_name, folded_text(stacks))
                title = f"{step.get('title') or step_id}: {agg_id}"
                write_atomic(out / svg_name, render_svg(stacks, title, _svg_unit(agg)))
        by_id = {str(s.get("id")): s for s in steps}
        for step_id, text in programs.items():
            write_atomic(out / program_file(by_id.get(step_id, {"id": step_id})), text)
        report = out / "report.md"
        write_atomic(report, render_markdown(result, programs))
        write_atomic(out / "result.json", render_json(result))
    except OSError as e:
        raise UsageError(f"cannot write the report to {out}: {e.strerror or e}",
                         hint="choose a writable directory with -o DIR") from e
    return report


def _svg_unit(agg: Mapping[str, Any]) -> str:
    if agg.get("unit"):
        return str(agg["unit"])
    return "samples" if agg.get("kind") == "count" else ""
