"""The commands that compare results: diff (two runs of one runbook) and merge (one runbook's
results from many hosts into a fleet report).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from bpfrun.cli.common import err, guarded


def diff(before: Annotated[str, typer.Argument(
             metavar="BEFORE",
             help="The earlier run: a report folder, a result.json, latest or latest~N.")],
         after: Annotated[str, typer.Argument(metavar="AFTER",
                                              help="The later run, the same way.")],
         out: Annotated[Path | None, typer.Option("-o", "--out", help="Report folder.")] = None,
         as_json: Annotated[bool, typer.Option("--json", help="diff.json on stdout.")] = False,
         formats: Annotated[str, typer.Option(
             "--format", "-f", metavar="LIST",
             help="Reports to write: md,html,json (diff.json is always written).")]
         = "md,html,json") -> None:
    """Compare two runs of one runbook: what changed most, a differential flame graph, which
    thresholds stopped or started firing. Writes report.md, report.html and diff.json."""
    def body() -> int:
        from bpfrun.diff import (  # noqa: PLC0415
            compare_runs,
            folded_stacks,
            load_run,
            render_diff_json,
            resolve_run,
            source_name,
            write_diff,
        )
        from bpfrun.report.reportdir import default_report_dir  # noqa: PLC0415
        from bpfrun.report.writers import parse_formats  # noqa: PLC0415

        chosen = parse_formats(formats)
        paths = [resolve_run(before), resolve_run(after)]
        runs = [load_run(p) for p in paths]
        stacks = (folded_stacks(paths[0], runs[0]), folded_stacks(paths[1], runs[1]))
        compared = compare_runs(runs[0], runs[1], source_name(paths[0]),
                                source_name(paths[1]), stacks)
        for warning in compared.warnings:
            err(f"warning: {warning}")
        folder = out or default_report_dir(f"diff-{compared.runbook}")
        written = write_diff(folder, compared, chosen)
        if as_json:
            sys.stdout.write(render_diff_json(compared))
        else:
            print(written.get("md") or written.get("html") or written["json"])
        return 0
    guarded(body)


def merge(results: Annotated[list[str], typer.Argument(
              metavar="RESULT...",
              help="result.json files, report folders, or folders of them (Ansible's fetch "
                   "tree results/<host>/result.json).")],
          out: Annotated[Path | None, typer.Option("-o", "--out", help="Report folder.")]
          = None,
          inventory: Annotated[Path | None, typer.Option(
              "--inventory", "-i", metavar="FILE",
              help="The hosts expected: one per line, or an Ansible INI inventory.")] = None,
          min_coverage: Annotated[float, typer.Option(
              "--min-coverage", min=0.0, max=1.0,
              help="Exit 3 when fewer of the expected hosts ran (0-1).")] = 1.0,
          formats: Annotated[str, typer.Option(
              "--format", "-f", metavar="LIST",
              help="Reports to write: md,html,json (result.json is always written).")]
          = "md,html,json") -> None:
    """Merge one runbook's results from many hosts into one fleet report: coverage, hosts worst
    first, merged counts, histograms and flame graphs, outlier hosts. Exits with the worst
    host's code, or 3 when coverage is below --min-coverage."""
    def body() -> int:
        from bpfrun.fleet import (  # noqa: PLC0415
            load_hosts,
            merge_hosts,
            read_inventory,
            write_fleet,
        )
        from bpfrun.report.reportdir import default_report_dir  # noqa: PLC0415
        from bpfrun.report.writers import parse_formats  # noqa: PLC0415

        chosen = parse_formats(formats)
        expected = read_inventory(inventory) if inventory is not None else None
        fleet = merge_hosts(load_hosts(results), expected, min_coverage)
        folder = out or default_report_dir(f"fleet-{fleet.result.runbook.name}")
        written = write_fleet(folder, fleet, chosen)
        print(written.get("md") or written.get("html") or written["json"])
        return fleet.result.exit_code
    guarded(body)
