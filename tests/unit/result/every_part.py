"""A result built in code with every part result.json can hold, for the model and schema tests
(a module, not a conftest.py: `import conftest` elsewhere must keep finding tests/conftest.py)."""

from __future__ import annotations

from bpfrun.result import (
    AggregationResult,
    AggregationRow,
    Bucket,
    EventsResult,
    Finding,
    HistValue,
    Host,
    LostCounts,
    RunbookInfo,
    RunResult,
    SeriesPoint,
    StackFrame,
    StatsValue,
    StepResult,
    SymbolCounts,
    ThresholdResult,
    UnresolvedFrames,
)


def every_part() -> RunResult:
    """A run with every part result.json can hold: each aggregation kind, stacks with their
    files, events, a series, notes, a skipped and a failed step."""
    hist = HistValue(5, 40.5, 1, 20, 8.1, 4, 16, 20,
                     (Bucket(0, 2, 1), Bucket(2, 4, 1), Bucket(8, 16, 2), Bucket(16, 32, 1)))
    lhist = HistValue(3, 300, None, None, None, 100, 100, 100,
                      (Bucket(None, 0, 1), Bucket(1000, None, 2)))
    aggs = {
        "calls": AggregationResult("count", ("comm",), None, 2, 3, (
            AggregationRow({"comm": "a"}, 10), AggregationRow({"comm": "b"}, 7))),
        "bytes": AggregationResult("sum", (), "KiB", None, 1, (AggregationRow({}, 1.5),)),
        "worst": AggregationResult("max", ("pid",), "us", None, 1,
                                   (AggregationRow({"pid": 42}, None),)),
        "lat": AggregationResult("stats", ("comm",), "ms", None, 1, (
            AggregationRow({"comm": "a"}, StatsValue(2, 3.5, 1, 2.5, 1.75)),)),
        "dist": AggregationResult("hist", (), "us", None, 1, (AggregationRow({}, hist),)),
        "lin": AggregationResult("lhist", ("cpu",), None, None, 1,
                                 (AggregationRow({"cpu": 0}, lhist),)),
        "stacks": AggregationResult("count", ("comm", "kstack"), None, None, 1, (
            AggregationRow({"comm": "x", "kstack": ["schedule_[k]", "do_idle_[k]"]}, 3),),
            folded="s-stacks.folded", svg="s-stacks.svg"),
        "ustacks": AggregationResult("count", ("ustack",), None, None, 1, (AggregationRow(
            {"ustack": ["spin [prog]", "main [prog]", "[unknown] [anon]"]}, 9,
            {"ustack": (StackFrame("spin", None, "/src/prog.c", 11, "prog", True),
                        StackFrame("main", 0x4d, "/src/prog.c", 14, "prog"),
                        StackFrame(None, module="anon", reason="anonymous memory (JIT?)"))}),)),
    }
    ran = StepResult(
        "s", "Everything", "Because.\n", "ran", None, 1.002, 0.9, "s.c",
        ("tracepoint:sched:sched_switch",), {"kprobe:finish_task_switch":
                                             "tracepoint:sched:sched_switch"},
        {"tracepoint:sched:sched_switch": "pid != 0"}, aggs,
        (EventsResult("tracepoint:syscalls:sys_enter_openat", "opens",
                      ("pid", "str(args.filename)"),
                      ({"pid": 1, "str(args.filename)": "/etc/hosts"},), 4, 5),),
        {"busy": ThresholdResult(True, "critical", "busy: 10 calls", "calls.total > 5"),
         "quiet": ThresholdResult(None, "info", "quiet", "lat.avg < 1ms")},
        {"who": "a", "rate": 2.5, "none": None, "slow": "1.5ms", "many": [1, 2]},
        LostCounts(1, 2, 3, 4), (SeriesPoint(0.5, {"calls": 4}), SeriesPoint(1.0, {"calls": 6})),
        ("capture none: no row",),
        SymbolCounts(3, 1, (UnresolvedFrames("anonymous memory (JIT?)", "anon", 1),)))
    return RunResult(
        RunbookInfo("every-part", "runbooks/every-part.yaml", "Every part", "All of it.\n"),
        Host("h", "6.18.44"), "0.1.0", "2026-11-25T10:00:00Z", "2026-11-25T10:00:03Z",
        {"comm": "", "threshold": "5ms"}, "failed", 4,
        (Finding("s", "busy", "critical", "busy: 10 calls"),),
        (ran, StepResult("t", "Next", None, "failed", "cannot attach: no such symbol"),
         StepResult("u", "Last", None, "skipped", "an earlier step failed")),
        "cannot attach: no such symbol", False)
