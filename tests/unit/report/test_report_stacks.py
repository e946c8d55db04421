"""Stacks in the report (issue #12): stack tables show each frame in full when the result
has it (`main+0x4d (prog.c:14) [prog]`, inlined frames marked), and a step whose user frames
were not all named says how many, where and why."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from bpfrun.report.markdown import render_markdown
from bpfrun.result import SymbolCounts, UnresolvedFrames

# The result tests' run with every part, stacks in full included.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "result"))
from every_part import every_part  # noqa: E402


def test_stack_tables_show_frames_in_full_and_mark_inlined_ones() -> None:
    text = render_markdown(every_part())
    assert "spin (prog.c:11) [prog] (inlined)" in text
    assert "main+0x4d (prog.c:14) [prog]" in text
    assert "schedule_[k]" in text  # rows without frames keep their names


def test_unresolved_frames_are_counted_by_module_and_reason() -> None:
    run = every_part()
    symbols = SymbolCounts(9310, 412, (
        UnresolvedFrames("stripped binary with no debug file", "/usr/bin/foo", 400),
        UnresolvedFrames("anonymous memory (JIT?)", "anon", 12)))
    run = replace(run, steps=(replace(run.steps[0], symbols=symbols), *run.steps[1:]))
    text = render_markdown(run)
    assert ("412 of 9,310 user frames unresolved: 400 in `/usr/bin/foo` (stripped binary "
            "with no debug file), 12 in `anon` (anonymous memory (JIT?))") in text


def test_no_unresolved_line_when_every_frame_was_named() -> None:
    run = every_part()
    step = replace(run.steps[0], symbols=SymbolCounts(50))
    assert "unresolved" not in render_markdown(replace(run, steps=(step, *run.steps[1:])))
