"""Reporters: the result of a run (`bpfrun.result.RunResult`) in, files for readers out.

`document` decides what a report says, once; `markdown` and `html` render it; `writers`
writes a run's folder (`REPORTERS` maps a format's name to its file and renderer);
`reportdir` says where that folder goes by default; `flamegraph` draws stack aggregations;
`numbers` writes measured values for a reader.
"""

from __future__ import annotations

from bpfrun.report.document import build_document
from bpfrun.report.flamegraph import fold, fold_aggregation, render_svg
from bpfrun.report.html import html_text, render_html
from bpfrun.report.markdown import markdown_text, md_escape, render_markdown
from bpfrun.report.reportdir import default_report_dir, link_latest, reports_base
from bpfrun.report.writers import (
    DEFAULT_FORMATS,
    REPORTERS,
    parse_formats,
    render_json,
    write_atomic,
    write_folded,
    write_outputs,
    write_report_dir,
)

__all__ = [
    "DEFAULT_FORMATS",
    "REPORTERS",
    "build_document",
    "default_report_dir",
    "fold",
    "fold_aggregation",
    "html_text",
    "link_latest",
    "markdown_text",
    "md_escape",
    "parse_formats",
    "render_html",
    "render_json",
    "render_markdown",
    "render_svg",
    "reports_base",
    "write_atomic",
    "write_folded",
    "write_outputs",
    "write_report_dir",
]
