"""Writing a run's output directory: report.md, report.html, result.json, C, stacks, SVGs.

`REPORTERS` maps an output format's name (md, html, json) to the file it writes and how it is
rendered, so the CLI picks formats by name. The generated C, folded stacks and flame-graph
SVGs are written whatever the formats, because result.json names them.

Every file is written atomically (temp file in the same directory, fsync, rename), so a reader
or a cron job never sees half a report, even when the run is killed while writing. result.json
is always written, and last: when it is there, everything it names is there too.

Reports are private by default: files 0600 and a folder created here 0700, because they hold
command lines, paths and whatever a runbook read. `mode` (`run --report-mode 0640`) shares
them; a folder that already exists keeps its mode.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bpfrun.errors import UsageError
from bpfrun.report.blocks import Block, Document, flame_graphs
from bpfrun.report.document import build_document, program_file
from bpfrun.report.flamegraph import folded_text, render_svg
from bpfrun.report.html import html_text
from bpfrun.report.markdown import markdown_text
from bpfrun.report.reportdir import PRIVATE, link_latest, make_folder
from bpfrun.result import RunResult, as_run_result

if TYPE_CHECKING:
    from bpfrun.compile.explain import Explanation


def parse_mode(text: str) -> int:
    """`--report-mode 0640` → 0o640: read and write bits only (no x, no setuid), and the
    owner must keep reading and writing them."""
    try:
        mode = int(text, 8)
    except ValueError:
        mode = -1
    if mode < 0 or mode & ~0o666 or mode & 0o600 != 0o600:
        raise UsageError(f"--report-mode: {text!r} is not a file mode such as 0600 or 0640",
                         hint="octal read/write bits, the owner's included: 0600 (only you), "
                              "0640 (your group too), 0644 (everyone)")
    return mode


def write_atomic(path: str | PathLike[str], data: str | bytes, mode: int = PRIVATE) -> None:
    """Replace `path` with `data` in one step; on failure the old file (if any) is untouched.
    The file has `mode` from its first byte on (its temporary file too)."""
    target = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # whatever the umask: a wider umask must not share a report
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)


def write_folded(folded: dict[str, int], path: str | PathLike[str]) -> None:
    write_atomic(path, folded_text(folded))


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


def render_json(result: RunResult) -> str:
    """result.json's text: the documented key order kept (no sort_keys), UTF-8 as is."""
    return json.dumps(result.to_json(), indent=2, ensure_ascii=False) + "\n"


@dataclass(frozen=True)
class RunReport:
    """What every reporter reads: the result of the run and the report built from it."""

    result: RunResult
    document: Document
    mode: int = PRIVATE


@dataclass(frozen=True)
class Reporter:
    file: str
    render: Callable[[RunReport], str]

    def write(self, out_dir: Path, report: RunReport) -> Path:
        path = out_dir / self.file
        write_atomic(path, self.render(report), mode=report.mode)
        return path


# In writing order: result.json last (see the module docstring).
REPORTERS: dict[str, Reporter] = {
    "md": Reporter("report.md", lambda r: markdown_text(r.document)),
    "html": Reporter("report.html", lambda r: html_text(r.document)),
    "json": Reporter("result.json", lambda r: render_json(r.result)),
}
DEFAULT_FORMATS = frozenset(REPORTERS)


def parse_formats(text: str | Iterable[str]) -> frozenset[str]:
    """`--format md,html` → the formats to write; json is always among them (cron reads it)."""
    words = text.split(",") if isinstance(text, str) else list(text)
    names = {w.strip().lower() for w in words if w.strip()}
    unknown = sorted(names - set(REPORTERS))
    if unknown:
        raise UsageError(f"--format: unknown format {', '.join(repr(u) for u in unknown)}",
                         hint=f"choose among {', '.join(REPORTERS)}, comma-separated "
                              "(result.json is always written)")
    return frozenset(names or DEFAULT_FORMATS) | {"json"}


def write_outputs(
    out_dir: str | PathLike[str],
    result: RunResult | Mapping[str, Any],
    programs: Mapping[str, str],
    folded: Mapping[str, Mapping[str, int]],
    formats: Iterable[str] = DEFAULT_FORMATS,
    *,
    latest: bool = False,
    explanation: Explanation | None = None,
    mode: int = PRIVATE,
    appendix: Sequence[Block] = (),
) -> dict[str, Path]:
    """Write the output of a run into `out_dir`; returns format → path of the file written.

    `result` is the run's RunResult (or a result.json document, read and checked first).
    `programs` maps step id → generated C. `folded` maps "<step>.<agg>" (or the folded file's
    name) → folded stacks; a stack aggregation missing from it is folded from the rows the
    result kept, so a flame graph is never silently absent. `latest=True` (for the default
    reports directory) points `<parent>/latest` at `out_dir` once everything is written.
    `explanation` (what the runbook reads and costs) opens the report; `mode` is the files'
    (a folder made here gets folder_mode(mode)); `appendix` ends the report (the comparison
    with a baseline run, bpfrun.diff).
    """
    chosen = parse_formats(formats)
    out = Path(out_dir)
    run = as_run_result(result)
    document = build_document(run, programs, folded, explanation)
    if appendix:
        document = replace(document, blocks=document.blocks + tuple(appendix))
    report = RunReport(run, document, mode)
    written: dict[str, Path] = {}
    try:
        make_folder(out, mode)
        for graph in flame_graphs(report.document.blocks):
            write_atomic(out / graph.folded, folded_text(graph.stacks), mode=mode)
            write_atomic(out / graph.svg, render_svg(graph.stacks, graph.title, graph.unit,
                                                     baseline=graph.baseline,
                                                     reverse=graph.reverse), mode=mode)
        for step_id, text in programs.items():
            step = run.step(step_id)
            write_atomic(out / program_file(step_id, step.program if step else None), text,
                         mode=mode)
        for name, reporter in REPORTERS.items():
            if name in chosen:
                written[name] = reporter.write(out, report)
    except OSError as e:
        raise UsageError(f"cannot write the report to {out}: {e.strerror or e}",
                         hint="choose a writable directory with -o DIR") from e
    if latest:
        link_latest(out)
    return written


def write_report_dir(
    out_dir: str | PathLike[str],
    result: RunResult | Mapping[str, Any],
    programs: Mapping[str, str],
    folded: Mapping[str, Mapping[str, int]],
) -> Path:
    """Every format into `out_dir`; returns the path of report.md."""
    return write_outputs(out_dir, result, programs, folded)["md"]
