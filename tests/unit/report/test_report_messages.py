"""Threshold messages are the author's Markdown; the values filled into them are data.

A message such as `*${{ victim }}* waited while ${{ culprit }} held the CPU` renders its
emphasis, while a task named `[x](https://evil)` or `<img onerror=…>` stays the text it is, in
report.md, report.html and result.json alike.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from helpers.paths import FIXTURES

from bpfrun.expr.evaluate import render_template
from bpfrun.expr.parser import parse_template
from bpfrun.report.html import render_html
from bpfrun.report.markdown import md_template_value, render_markdown
from bpfrun.result import RunResult, validate_result

TEMPLATE = "*${{ victim }}* waited while `${{ culprit }}` held the CPU | see [runq](#step-runq)"
HOSTILE = {"victim": "[x](https://evil.example)", "culprit": "<img src=x onerror=alert(1)>"}


def fired_with_message(names: dict[str, Any]) -> RunResult:
    parts = tuple(parse_template(TEMPLATE))
    plain = render_template(parts, names)
    markdown = render_template(parts, names, quote=md_template_value)
    run = RunResult.from_json(json.loads((FIXTURES / "results" / "runq_fired.json").read_text()))
    steps = list(run.steps)
    runq = steps[0]
    slow = replace(runq.thresholds["slow"], message=plain, message_markdown=markdown)
    steps[0] = replace(runq, thresholds={**runq.thresholds, "slow": slow})
    findings = tuple(replace(f, message=plain, message_markdown=markdown) for f in run.findings)
    return replace(run, steps=tuple(steps), findings=findings)


def test_values_are_escaped_and_the_authors_text_is_kept() -> None:
    parts = tuple(parse_template(TEMPLATE))
    markdown = render_template(parts, HOSTILE, quote=md_template_value)
    assert markdown.startswith(r"*\[x\](https://evil.example)* waited while "
                               "`<img src=x onerror=alert(1)>` held")
    # A backtick in a value inside the author's code span would close it early.
    assert render_template(parts, {"victim": "v", "culprit": "a`b"}, quote=md_template_value
                           ).startswith("*v* waited while `aˋb` held")
    assert render_template(parts, HOSTILE).startswith("*[x](https://evil.example)* waited")


def test_html_renders_the_authors_markup_and_no_data_markup() -> None:
    html = render_html(fired_with_message(HOSTILE).to_json())
    start = html.index('id="findings"')
    findings = html[start:html.index("</section>", start)]
    assert "<em>[x](https://evil.example)</em>" in findings
    assert '<a href="#step-runq">runq</a>' in findings
    assert "evil.example\"" not in html and "<img" not in html
    assert "<code>&lt;img src=x onerror=alert(1)&gt;</code>" in findings


def test_markdown_keeps_the_message_on_one_line_and_its_table_cell_whole() -> None:
    md = render_markdown(fired_with_message(HOSTILE).to_json())
    finding = next(line for line in md.splitlines() if "runq.slow" in line)
    assert r"*\[x\](https://evil.example)* waited while" in finding
    row = next(line for line in md.splitlines() if line.startswith("| slow "))
    assert r"held the CPU \| see [runq](#step-runq)" in row
    assert row.count(" | ") == 4  # five cells: the author's `|` did not open a sixth


def test_result_json_carries_both_forms_and_validates() -> None:
    doc = fired_with_message(HOSTILE).to_json()
    assert validate_result(doc) == []
    finding = doc["findings"][0]
    assert finding["message"].startswith("*[x](https://evil.example)*")
    assert finding["message_markdown"].startswith(r"*\[x\](https://evil.example)*")
    assert RunResult.from_json(doc).to_json() == doc


def test_a_result_without_markdown_messages_reads_as_before() -> None:
    doc = json.loads((FIXTURES / "results" / "runq_fired.json").read_text())
    assert "message_markdown" not in json.dumps(doc)
    assert RunResult.from_json(doc).to_json() == doc
    assert "p99 run-queue latency is 8.19ms (limit 1ms)" in render_html(doc)
