"""Writing a comparison's folder: report.md, report.html, diff.json and the differential
flame graphs (with their folded stacks), each atomically and private, as a run's report.
diff.json is written last, so when it is there everything it names is there too."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from bpfrun.diff.document import diff_document
from bpfrun.diff.model import RunDiff
from bpfrun.errors import UsageError
from bpfrun.report.blocks import flame_graphs
from bpfrun.report.flamegraph import folded_text, render_svg
from bpfrun.report.html import html_text
from bpfrun.report.markdown import markdown_text
from bpfrun.report.reportdir import PRIVATE, make_folder
from bpfrun.report.writers import DEFAULT_FORMATS, parse_formats, write_atomic

DIFF_JSON = "diff.json"


def render_diff_json(diff: RunDiff) -> str:
    return json.dumps(diff.to_json(), indent=2, ensure_ascii=False) + "\n"


def write_diff(out_dir: Path, diff: RunDiff, formats: Iterable[str] = DEFAULT_FORMATS,
               mode: int = PRIVATE) -> dict[str, Path]:
    """The comparison's files in `out_dir`; returns format → path (json: diff.json)."""
    chosen = parse_formats(formats)
    doc = diff_document(diff)
    files = {"md": ("report.md", lambda: markdown_text(doc)),
             "html": ("report.html", lambda: html_text(doc)),
             "json": (DIFF_JSON, lambda: render_diff_json(diff))}
    written: dict[str, Path] = {}
    try:
        make_folder(out_dir, mode)
        for graph in flame_graphs(doc.blocks):
            write_atomic(out_dir / graph.folded, folded_text(graph.stacks), mode=mode)
            write_atomic(out_dir / graph.svg, render_svg(
                graph.stacks, graph.title, graph.unit, baseline=graph.baseline,
                reverse=graph.reverse), mode=mode)
        for name, (file, render) in files.items():
            if name in chosen:
                written[name] = out_dir / file
                write_atomic(written[name], render(), mode=mode)
    except OSError as e:
        raise UsageError(f"cannot write the comparison to {out_dir}: {e.strerror or e}",
                         hint="choose a writable directory with -o DIR") from e
    return written
