"""Reporters: one result document (runbook-language.md §11) in, files for readers out.

`REPORTERS` maps an output format's name to the function rendering a result in it, so the CLI
picks a reporter by name instead of knowing each one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bpfrun.report.flamegraph import fold, fold_aggregation, render_svg, write_folded
from bpfrun.report.markdown import md_escape, render_markdown
from bpfrun.report.writers import render_json, write_atomic, write_report_dir

REPORTERS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "markdown": render_markdown,
    "json": render_json,
}

__all__ = [
    "REPORTERS",
    "fold",
    "fold_aggregation",
    "md_escape",
    "render_json",
    "render_markdown",
    "render_svg",
    "write_atomic",
    "write_folded",
    "write_report_dir",
]
