"""Progress on stderr: plain lines off a terminal, a Rich live line on one, nothing when quiet."""

from __future__ import annotations

import io
import re

import pytest

from bpfrun.runtime.progress import Progress

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run_one_step(p: Progress, clock: Clock) -> None:
    p.step_started("runq", "Run-queue latency")
    p.attached("runq", 2, 3)
    clock.now += 0.8
    p.tick(1234)
    p.step_done("runq", "ran", 3.04)
    p.step_done("offcpu", "skipped", 0.0, "steps.runq.slow is false\nsecond line")
    p.step_done("who", "failed", 1.25, "cannot attach uprobe")
    p.note("fell back to [bold]tracepoint[/bold]")
    p.close()


def test_plain_lines_when_stderr_is_not_a_terminal() -> None:
    out, clock = io.StringIO(), Clock()
    p = Progress(out, clock=clock)
    assert not p.live_mode
    run_one_step(p, clock)
    assert out.getvalue().splitlines() == [
        "bpfrun: step runq: compiling (Run-queue latency)",
        "bpfrun: step runq: attached 2 probe(s), measuring for 3s",
        "bpfrun: step runq: done in 3.0s, 1,234 events",
        "bpfrun: step offcpu: skipped (steps.runq.slow is false\\x0asecond line)",
        "bpfrun: step who: failed after 1.2s (cannot attach uprobe)",
        "bpfrun: fell back to [bold]tracepoint[/bold]",
    ]
    assert "\x1b" not in out.getvalue()


def test_fractional_durations_are_printed_as_given() -> None:
    out = io.StringIO()
    Progress(out).attached("syscalls", 1, 0.5)
    assert "step syscalls: attached 1 probe(s), measuring for 0.5s" in out.getvalue()


def test_live_line_on_a_terminal() -> None:
    out, clock = io.StringIO(), Clock()
    p = Progress(out, force_terminal=True, clock=clock)
    assert p.live_mode
    p.step_started("runq", "Run-queue latency")
    assert p.status_line() == "runq ▸ compiling · Run-queue latency"
    p.attached("runq", 2, 3)
    assert p.status_line() == "runq ▸ measuring 3.0s left · 2 probes"
    clock.now += 0.8
    p.tick(1234)
    assert p.status_line() == "runq ▸ measuring 2.2s left · 1,234 events"
    shown = ANSI.sub("", out.getvalue())
    assert "runq ▸ measuring 2.2s left · 1,234 events" in shown
    clock.now += 5
    assert p.status_line() == "runq ▸ reading results · 1,234 events"
    p.step_done("runq", "ran", 3.04)
    p.step_done("offcpu", "skipped", 0.0, "steps.runq.slow is false")
    p.note("fell back to [bold]tracepoint[/bold]")
    p.close()
    text = out.getvalue()
    assert "\x1b[" in text  # drawn in place, with colour
    plain = ANSI.sub("", text)
    assert "✓ runq done in 3.0s, 1,234 events\n" in plain
    assert "– offcpu skipped (steps.runq.slow is false)\n" in plain
    assert "fell back to [bold]tracepoint[/bold]\n" in plain  # data, not Rich markup
    assert "bpfrun: " not in plain
    assert text.endswith("\n") and "\x1b[?25h" in text  # the cursor is given back


def test_long_steps_count_down_in_minutes() -> None:
    clock = Clock()
    p = Progress(io.StringIO(), force_terminal=True, clock=clock)
    p.step_started("cpu", None)
    p.attached("cpu", 1, 600)
    clock.now += 5
    p.tick(None)
    assert p.status_line() == "cpu ▸ measuring 9m 55s left · 1 probe"
    p.close()


def test_quiet_prints_nothing_in_either_mode() -> None:
    for terminal in (False, True):
        out, clock = io.StringIO(), Clock()
        run_one_step(Progress(out, quiet=True, force_terminal=terminal, clock=clock), clock)
        assert out.getvalue() == ""


def test_cli_choice_is_quiet_for_json_output() -> None:
    assert Progress.for_cli(quiet=False, json_output=True).quiet
    assert Progress.for_cli(quiet=True, json_output=False).quiet
    assert not Progress.for_cli(quiet=False, json_output=False).quiet


def test_dumb_terminal_gets_plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "dumb")
    out = io.StringIO()
    p = Progress(out, force_terminal=True)
    assert not p.live_mode
    p.attached("runq", 2, 3)
    assert out.getvalue() == "bpfrun: step runq: attached 2 probe(s), measuring for 3s\n"


def test_a_progress_is_also_a_plain_message_callback() -> None:
    out = io.StringIO()
    with Progress(out) as p:
        p("step runq: attached 2 probe(s), measuring for 3s")
    assert out.getvalue() == "bpfrun: step runq: attached 2 probe(s), measuring for 3s\n"


def test_a_closed_stderr_does_not_break_the_run() -> None:
    out = io.StringIO()
    p = Progress(out)
    out.close()
    p.attached("runq", 2, 3)  # no exception: progress is optional


def test_titles_and_reasons_cannot_drive_the_terminal() -> None:
    from bpfrun.runtime.progress import visible

    # ESC/CSI (C0 and C1) and a bidi override from a runbook are shown, not acted on.
    assert visible("a\x1b[31mb\u202ec\x9bd") == "a\\x1b[31mb\\u202ec\\x9bd"
