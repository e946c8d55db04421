"""report.md from recorded results (read with RunResult.from_json), and the output directory's
writers (no BPF)."""

from __future__ import annotations

import copy
import json
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from helpers.paths import FIXTURES

from bpfrun.errors import UsageError
from bpfrun.report.markdown import fenced, md_code, md_escape, render_markdown
from bpfrun.report.writers import write_atomic, write_report_dir
from bpfrun.result import Host, RunbookInfo, RunResult, SeriesPoint, StepResult

RESULTS = FIXTURES / "results"


def doc(name: str) -> dict[str, Any]:
    """A recorded result.json document, to change before it is read."""
    data: dict[str, Any] = json.loads((RESULTS / f"{name}.json").read_text())
    return data


def load(name: str) -> RunResult:
    return RunResult.from_json(doc(name))


def section(md: str, heading: str) -> str:
    """From `heading` up to the next heading of the same or a higher level."""
    level = heading.split(" ")[0]
    start = md.index(heading + "\n")
    body = start + len(heading) + 1
    end = re.search(rf"^#{{1,{len(level)}}} ", md[body:], re.M)
    return md[start: body + end.start()] if end else md[start:]


def unescaped_pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line))


@pytest.fixture
def fired() -> str:
    return render_markdown(load("runq_fired"), {"runq": "/* runq */\nint x;\n"})


@pytest.fixture
def clean() -> str:
    return render_markdown(load("files_clean"))


@pytest.fixture
def failed() -> str:
    return render_markdown(load("disk_failed"))


def test_header_names_the_run(fired: str, clean: str) -> None:
    assert fired.startswith("# CPU run-queue latency\n")
    header = fired[: fired.index("## Findings")]
    assert "| Runbook | runq-latency (runbooks/runq-latency.yaml) |" in header
    assert "| Host | ci-runner-7 |" in header and "| Kernel | 6.18.44-fc-v657 |" in header
    assert "| Duration | 14.6s |" in header
    assert "| Status | **fired** (exit code 1) |" in header
    assert "`threshold` = 1ms" in header and "| bpfrun | 0.1.0 |" in header
    assert '`comm` = ""' in clean  # an empty param is visible, not a blank


def test_findings_come_before_the_steps(fired: str, failed: str) -> None:
    for md in (fired, failed):
        assert md.index("## Findings") < md.index("## Step ")
    findings = section(fired, "## Findings")
    assert "- **WARNING** `runq.slow`: p99 run-queue latency is 8.19ms (limit 1ms)" in findings
    assert "`runq.culprit` = hog\\_thread" in findings  # captures of the step that fired
    assert "No threshold fired." not in findings


def test_findings_are_ordered_by_severity_and_a_failed_run_says_so(failed: str) -> None:
    findings = section(failed, "## Findings")
    assert "**Run failed:**" in findings
    assert "> step who failed: cannot attach uprobe:/usr/sbin/mysqld:do\\_command" in findings
    order = [findings.index(f"**{s}**") for s in ("CRITICAL", "WARNING", "INFO")]
    assert order == sorted(order)


def test_interrupted_run_is_not_called_failed() -> None:
    result = replace(load("runq_fired"), error="interrupted (SIGINT) during step offcpu")
    md = render_markdown(result)
    assert "**Run interrupted:**" in section(md, "## Findings")


def test_clean_run_says_no_threshold_fired_and_names_undecided_ones(clean: str) -> None:
    findings = section(clean, "## Findings")
    assert "No threshold fired." in findings
    assert "No data to decide: `writes.slow_fsync`." in findings


def test_skipped_step_shows_its_reason(clean: str) -> None:
    step = section(clean, "## Step fsync\\_stacks: Where fsync is called from")
    assert "**Status:** skipped.\n\n> steps.writes.heavy is false" in step


def test_failed_step_quotes_every_line_of_its_reason(failed: str) -> None:
    step = section(failed, "## Step who: Which queries wait")
    assert "**Status:** failed." in step
    assert "> cannot attach uprobe:/usr/sbin/mysqld:do\\_command: no such symbol  \n" \
           "> the binary is stripped" in step


def test_hist_is_drawn_with_bars_and_bucket_bound_percentiles(fired: str) -> None:
    dist = section(fired, "### dist: log2 histogram, in us")
    block = dist.split("```\n")[1]
    lines = block.strip().splitlines()
    assert len(lines) == 11  # the empty buckets between 128 and 1024 are not drawn
    bars = {line.split("│")[0].strip(): line.split("│")[1] for line in lines}
    assert bars["[8, 16) us"] == "█" * 40 + " 498"  # the tallest bucket fills the width
    assert bars["[4, 8) us"] == "█" * 13 + " 160"  # 160/498 of it
    assert bars["[8192, 16384) us"] == "█ 5"  # a non-empty bucket is never invisible
    assert all(len(bar.split(" ")[0]) <= 40 for bar in bars.values())
    assert len({line.index("│") for line in lines}) == 1  # aligned
    assert "count 900, min 1.2us, avg 49us, max 10ms" in dist
    assert "p50 ≤ 16us, p90 ≤ 32us, p99 ≤ 8.19ms" in dist


def test_keyed_hist_draws_one_histogram_per_key(failed: str) -> None:
    dist = section(failed, "### dist: linear histogram by `args.dev`, in ms")
    assert "`args.dev` = 271581184:" in dist and "`args.dev` = 8388608:" in dist
    assert "[40, 45) ms │" in dist and "p99 ≤ 45ms" in dist
    assert dist.count("```") == 4


def test_no_data_is_said_and_never_called_ok(clean: str) -> None:
    step = section(clean, "## Step writes: Writes per command")
    assert "### fsync\\_dist: log2 histogram, in us\n\nno data" in step
    assert "| slow\\_fsync | no data | critical |" in step
    assert "| heavy | not fired | warning |" in step
    assert "`fsync_p99` = no data" in step
    assert " ok " not in clean.lower()


def test_tables_are_truncated_to_top_with_a_count_of_the_rest(clean: str) -> None:
    calls = section(clean, "### calls: count by `comm`")
    rows = [line for line in calls.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + 5  # header + top 5
    assert "… and 52 more rows" in calls
    assert "more rows" not in section(clean, "### bytes: sum by `comm`, in bytes")


def test_tables_without_top_stop_at_twenty_rows() -> None:
    result = doc("files_clean")
    agg = result["steps"][0]["aggregations"]["calls"]
    agg["top"] = None
    agg["rows"] = [{"key": {"comm": f"task{i:02d}"}, "value": 100 - i} for i in range(30)]
    agg["total_rows"] = 30
    calls = section(render_markdown(RunResult.from_json(result)), "### calls: count by `comm`")
    assert "| task19 | 81 |" in calls and "task20" not in calls
    assert "… and 10 more rows" in calls


def test_values_in_duration_and_size_units_are_readable(clean: str) -> None:
    assert "| postgres | 70MiB |" in clean
    assert "| postgres | 18234 | 91.2ms | 800ns | 5us | 412us |" in clean
    assert "count: 33488" in clean  # a count without keys is one value, not a table


def test_stack_aggregation_lists_top_stacks_and_links_the_graph(fired: str) -> None:
    stacks = section(fired, "### stacks: sum by `begin.kstack`, `begin.ustack`, in ns")
    assert "#1  2.35s (61.2%)" in stacks
    first = stacks[stacks.index("#1"): stacks.index("#2")]
    kernel = first.split("begin.kstack:\n")[1].split("begin.ustack:")[0].split("\n")
    frames = [f.strip() for f in kernel if f.strip()]
    assert frames[0] == "__schedule_[k]"  # innermost first
    assert len(frames) == 8 + 1 and frames[-1] == "… 1 more frame"
    assert "[offcpu-stacks.svg](offcpu-stacks.svg)" in stacks
    assert "[offcpu-stacks.folded](offcpu-stacks.folded)" in stacks


def test_events_are_a_table_of_the_first_rows_with_counts_of_the_rest(clean: str) -> None:
    events = section(clean, "### Events from `tracepoint:syscalls:sys_enter_openat`")
    rows = [line for line in events.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 20
    assert "3 more rows not shown" in events
    assert "480 events dropped past the limit." in events


def test_lost_line_only_when_something_was_lost(fired: str, clean: str) -> None:
    runq = section(fired, "## Step runq: Run-queue latency")
    assert "**Lost:** 3 unpaired begins." in runq
    offcpu = section(fired, "## Step offcpu: Where the delayed task waits")
    assert "**Lost:** 2 stacks lost, 11 unpaired begins." in offcpu
    assert "raise the `size:` of the aggregation keyed by stacks" in offcpu
    assert "**Lost:**" not in clean


def test_probes_fallbacks_and_predicates_are_reported(clean: str) -> None:
    step = section(clean, "## Step writes: Writes per command")
    assert "**Probes:** `tracepoint:syscalls:sys_enter_write`" in step
    assert "`kprobe:vfs_write` is not available here; used " \
           "`tracepoint:syscalls:sys_enter_write`" in step
    assert '- `tracepoint:syscalls:sys_enter_write`: `comm != "bpfrun"`' in step


def test_generated_c_is_folded_away_in_details(fired: str) -> None:
    runq = section(fired, "## Step runq: Run-queue latency")
    assert "<details><summary>Generated C</summary>\n\n```c\n/* runq */\nint x;\n```\n\n" \
           "</details>" in runq
    assert "<details>" not in section(fired, "## Step offcpu: Where the delayed task waits")


def test_md_escape_neutralizes_markup_and_html() -> None:
    assert md_escape("a|b<script>") == "a\\|b&lt;script&gt;"
    assert md_escape("x`y*z_w[1]~&") == "x\\`y\\*z\\_w\\[1\\]\\~&amp;"
    assert md_escape("line\nbreak\x07") == "line\\nbreak\\x07"
    assert md_escape("back\\slash") == "back\\\\slash"


def test_md_code_and_fenced_cannot_be_closed_by_their_content() -> None:
    assert md_code("a`b") == "``a`b``"
    assert md_code("`x`") == "`` `x` ``"
    assert md_code("a || b", table=True) == "`a \\|\\| b`"
    block = fenced("before\n```\nafter")
    assert block.startswith("````\n") and block.endswith("\n````")


def test_kernel_strings_are_escaped_everywhere(clean: str) -> None:
    assert "<script" not in clean
    assert "a\\|b&lt;script&gt;" in clean
    # A file name with a backtick, a newline and a pipe stays inside one table cell.
    line = next(x for x in clean.splitlines() if "/tmp/evil" in x)
    assert line == "| 4142 | cron | /tmp/evil\\`name\\n\\| x |"
    tables = [block.splitlines() for block in clean.split("\n\n") if block.startswith("|")]
    assert len(tables) >= 5
    for header, *rows in tables:  # every row has as many cells as its header
        assert all(unescaped_pipes(row) == unescaped_pipes(header) for row in rows), header


def test_hostile_names_in_stacks_and_generated_c_stay_inside_their_blocks() -> None:
    result = doc("runq_fired")
    rows = result["steps"][1]["aggregations"]["stacks"]["rows"]
    rows[0]["key"]["begin.ustack"][0] = "```\n# pwned <img src=x>"
    md = render_markdown(RunResult.from_json(result), {"offcpu": 'char *s = "```";\n'})
    stacks = section(md, "### stacks: sum by `begin.kstack`, `begin.ustack`, in ns")
    assert "\n# pwned" not in md and "````\n#1" in stacks
    assert "````c\n" in md


def test_output_is_deterministic_and_leaves_the_input_alone() -> None:
    result = load("disk_failed")
    before = copy.deepcopy(result)
    assert render_markdown(result) == render_markdown(copy.deepcopy(result))
    assert result == before


def test_write_report_dir_writes_every_file_atomically(tmp_path: Path) -> None:
    document = doc("runq_fired")
    result = RunResult.from_json(document)
    folded = {"offcpu.stacks": {"clone3;start_thread;main;__schedule_[k]": 42}}
    programs = {"runq": "/* runq */\n", "offcpu": "/* offcpu */\n"}
    report = write_report_dir(tmp_path / "out", result, programs, folded)
    out = tmp_path / "out"
    assert report == out / "report.md"
    assert sorted(p.name for p in out.iterdir()) == [
        "offcpu-stacks.folded", "offcpu-stacks.svg", "offcpu.c", "report.html", "report.md",
        "result.json", "runq.c"]
    assert report.read_text() == render_markdown(result, programs)
    written = json.loads((out / "result.json").read_text())
    assert written == document and list(written) == list(document)  # documented order kept
    assert (out / "result.json").read_text().startswith('{\n  "runbook": {\n')
    assert (out / "offcpu-stacks.folded").read_text() == \
        "clone3;start_thread;main;__schedule_[k] 42\n"
    ET.fromstring((out / "offcpu-stacks.svg").read_text())
    assert (out / "runq.c").read_text() == "/* runq */\n"
    # private by default (issue #18.5): reports hold command lines, paths, what was read
    assert oct((out / "report.md").stat().st_mode & 0o777) == oct(0o600)


def test_write_report_dir_folds_stacks_from_the_result_when_not_given(tmp_path: Path) -> None:
    write_report_dir(tmp_path, load("disk_failed"), {}, {})
    lines = (tmp_path / "cpu-samples.folded").read_text().splitlines()
    assert len(lines) == 4 and all(re.fullmatch(r"\S.* \d+", x) for x in lines)
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".") or p.endswith(".tmp")]


def test_write_report_dir_reports_an_unwritable_place(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UsageError, match="cannot write the report"):
        write_report_dir(blocker, load("files_clean"), {}, {})


def test_write_atomic_replaces_and_cleans_up_after_a_failure(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "report.md"
    write_atomic(target, "old")
    write_atomic(target, b"new")
    assert target.read_text() == "new"

    def broken(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError):
        write_atomic(target, "newer")
    assert target.read_text() == "new"
    assert os.listdir(tmp_path) == ["report.md"]


def test_quoted_reasons_cannot_start_headings_or_lists() -> None:
    result = doc("files_clean")
    result["steps"][2]["reason"] = "# not a heading\n1. not a list\n- nor this <b>"
    step = section(render_markdown(RunResult.from_json(result)),
                   "## Step fsync\\_stacks: Where fsync is called from")
    assert "> \\# not a heading  \n> 1\\. not a list  \n> \\- nor this &lt;b&gt;" in step


def test_generated_c_is_linked_only_when_it_is_written(fired: str) -> None:
    assert "Generated C: [runq.c](runq.c)" in fired
    assert "offcpu.c" not in fired  # no text given for it, so no file and no dead link


def test_flame_graph_link_comes_before_the_stack_listing(fired: str) -> None:
    stacks = section(fired, "### stacks: sum by `begin.kstack`, `begin.ustack`, in ns")
    assert stacks.index("Flame graph: [offcpu-stacks.svg]") < stacks.index("Top 3 stacks")


def test_step_notes_are_listed() -> None:
    result = doc("runq_fired")
    result["steps"][0]["notes"] = ["capture culprit: no row <matched>"]
    runq = section(render_markdown(RunResult.from_json(result)), "## Step runq: Run-queue latency")
    assert "**Notes:**\n\n- capture culprit: no row &lt;matched&gt;" in runq


def test_interval_series_is_a_table_over_time() -> None:
    from bpfrun.report.markdown import render_markdown

    result = RunResult(
        RunbookInfo("t", "t.yaml", "T", ""), Host("h", "6.1"), "0.1.0", "2026-11-25T10:00:00Z",
        "2026-11-25T10:00:03Z", {}, "clean", 0,
        steps=(StepResult("s", "S", None, "ran", seconds=3.0, series=(
            SeriesPoint(1.0, {"calls": 10}), SeriesPoint(2.0, {"calls": 7}))),))
    text = render_markdown(result)
    assert "### Over time" in text
    assert "| 1s | 10 |" in text and "| 2s | 7 |" in text
