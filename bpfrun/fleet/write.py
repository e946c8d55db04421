"""Writing a fleet report's folder: report.md and report.html (coverage, hosts and outliers
first, then the merged steps as a run's report shows them, with one fleet flame graph per
stack aggregation) and result.json, last, each atomically and private like a run's report."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from bpfrun.errors import UsageError
from bpfrun.fleet.document import fleet_blocks
from bpfrun.fleet.merge import Fleet
from bpfrun.report.blocks import Document, Table, flame_graphs
from bpfrun.report.document import build_document
from bpfrun.report.flamegraph import folded_text, render_svg
from bpfrun.report.reportdir import PRIVATE, make_folder
from bpfrun.report.writers import (
    DEFAULT_FORMATS,
    REPORTERS,
    RunReport,
    parse_formats,
    write_atomic,
)


def fleet_document(fleet: Fleet) -> Document:
    """The run's report of the merged result, the fleet's sections after its header."""
    doc = build_document(fleet.result, {}, fleet.stacks)
    blocks = list(doc.blocks)
    at = next((i + 1 for i, b in enumerate(blocks) if isinstance(b, Table)), 0)
    blocks[at:at] = fleet_blocks(fleet.result.hosts or {})
    return replace(doc, title=f"{doc.title} — fleet", blocks=tuple(blocks))


def write_fleet(out_dir: Path, fleet: Fleet, formats: Iterable[str] = DEFAULT_FORMATS,
                mode: int = PRIVATE) -> dict[str, Path]:
    """The fleet report's files in `out_dir`; returns format → path (json: result.json)."""
    chosen = parse_formats(formats)
    report = RunReport(fleet.result, fleet_document(fleet), mode)
    written: dict[str, Path] = {}
    try:
        make_folder(out_dir, mode)
        for graph in flame_graphs(report.document.blocks):
            write_atomic(out_dir / graph.folded, folded_text(graph.stacks), mode=mode)
            write_atomic(out_dir / graph.svg, render_svg(graph.stacks, graph.title,
                                                         graph.unit), mode=mode)
        for name, reporter in REPORTERS.items():
            if name in chosen:
                written[name] = reporter.write(out_dir, report)
    except OSError as e:
        raise UsageError(f"cannot write the fleet report to {out_dir}: {e.strerror or e}",
                         hint="choose a writable directory with -o DIR") from e
    return written
