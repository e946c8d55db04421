"""What a report says: the result of a run (`bpfrun.result.RunResult`) → a tree of blocks.

The reader is an on-call engineer, so findings come first, then each step: why it ran or why
not, what it attached, what it measured, what it lost, and the C it ran. Every decision about
content (order, wording, number formats, how many rows) is made here, once, for report.md and
report.html alike; `blocks` explains why the strings here are plain text. The output depends
on the result only: the same result gives the same blocks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import PurePath
from typing import Any

from bpfrun.compile.explain import Explanation
from bpfrun.compile.explain_text import sections
from bpfrun.report.blocks import (
    Badge,
    Bar,
    Block,
    BulletList,
    Code,
    Document,
    FlameGraph,
    Histogram,
    Inline,
    InlineMarkdown,
    Para,
    Piece,
    Preformatted,
    Program,
    Prose,
    Quote,
    Section,
    Strong,
    Table,
    inline,
    joined,
)
from bpfrun.report.cgroupnames import CGROUP_KEY, target_label, with_cgroup_names
from bpfrun.report.flamegraph import is_stack_aggregation, stack_files, stack_summary, stacks_for
from bpfrun.report.numbers import fmt_num, fmt_seconds, fmt_value
from bpfrun.result import (
    AggregationResult,
    AggregationRow,
    EventsResult,
    Finding,
    HistValue,
    LostCounts,
    RowValue,
    RunResult,
    SeriesPoint,
    StatsValue,
    StepResult,
    SymbolCounts,
    ThresholdResult,
    as_run_result,
)

DEFAULT_TOP = 20
EVENT_ROWS = 20
STACKS_SHOWN = 5
FRAMES_SHOWN = 8
UNRESOLVED_SHOWN = 5  # modules named in a step's unresolved-frames line
SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
KIND_NAMES = {"hist": "log2 histogram", "lhist": "linear histogram"}
STATS_FIELDS = ("count", "sum", "min", "avg", "max")
LOST_HINTS: dict[str, tuple[str, Inline]] = {
    "events": ("events lost", inline(
        "the perf buffer overflowed: narrow the probe with ", Code("where:"), " or lower its ",
        Code("limit:"))),
    "stacks": ("stacks lost", inline(
        "more distinct stacks than the step's stack storage holds (or a stack could not be "
        "walked): raise the ", Code("size:"), " of the aggregation keyed by stacks (the "
        "storage grows with it), or narrow the probe with ", Code("where:"))),
    "unpaired": ("unpaired begins", inline(
        "a begin with no end inside the step; a few at the edges of the window are normal, "
        "many mean the end probe misses events")),
    "map_full": ("updates dropped on full maps", inline(
        "an aggregation map was full: raise its size limit or narrow it with ", Code("where:"))),
}
NO_DATA = Para(("no data",))


def _duration(started: Any, finished: Any) -> str:
    try:
        seconds = (datetime.fromisoformat(str(finished))
                   - datetime.fromisoformat(str(started))).total_seconds()
    except (ValueError, TypeError):  # unparsable, or one time zone-aware and one not
        return "—"
    return fmt_seconds(seconds)


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _dotted(*names: Any) -> str:
    return ".".join(str(n) for n in names)


def _capture(value: Any) -> str:
    if value is None:
        return "no data"
    if isinstance(value, str):
        return value or '""'
    return fmt_num(value)


def _key_text(value: Any) -> str:
    if isinstance(value, list):
        return " ← ".join(str(f) for f in value[:3]) + (" …" if len(value) > 3 else "")
    return fmt_num(value) if not isinstance(value, str) else (value or '""')


def anchor(*parts: object) -> str:
    """An HTML id from step and aggregation ids: stable, and safe in any attribute."""
    return "-".join(re.sub(r"[^A-Za-z0-9_.-]+", "_", str(p)) for p in parts)


def program_file(step_id: str, program: str | None = None) -> str:
    """Where a step's generated C is written, next to the report."""
    return PurePath(program or f"{step_id}.c").name


def build_document(result: RunResult | Mapping[str, Any],
                   programs: Mapping[str, str] | None = None,
                   folded: Mapping[str, Mapping[str, int]] | None = None,
                   explanation: Explanation | None = None) -> Document:
    """The report of `result` (a result.json document is read into a RunResult first).
    `programs`: step id → generated C (only those are shown); `folded`: as for `stacks_for`
    (flame graphs of stacks not in it come from the result); `explanation`: what the runbook
    reads and costs, shown after the header."""
    run = with_cgroup_names(as_run_result(result))
    title = run.runbook.title or run.runbook.name or "bpfrun report"
    blocks: list[Block] = []
    if run.runbook.description:
        blocks.append(Prose(run.runbook.description.strip()))
    blocks.append(_header(run))
    if explanation is not None:
        blocks.append(_explanation(explanation))
    blocks.append(_findings(run))
    for step in run.steps:
        blocks.append(_step(step, (programs or {}).get(step.id), folded or {}))
    return Document(title, tuple(blocks), run.status)


def _header(run: RunResult) -> Table:
    params = [inline(Code(k), " = ", _capture(v)) for k, v in run.params.items()]
    rows = [
        ("Runbook", inline(f"{run.runbook.name} ({run.runbook.path})")),
        ("Host", inline(run.host.hostname)),
        ("Kernel", inline(run.host.kernel)),
        ("Started", inline(run.started or "—")),
        ("Finished", inline(run.finished or "—")),
        ("Duration", inline(_duration(run.started, run.finished))),
        ("Params", joined(params) if params else ("none",)),
        ("bpfrun", inline(run.bpfrun_version or "—")),
        ("Status", inline(Badge(run.status, run.status), f" (exit code {run.exit_code})")),
    ]
    target = target_label(run)
    if target:  # --cgroup/--unit/--container/--pod: only its tasks were seen
        rows.insert(3, ("Target", inline(target)))
    return Table(((), ()), tuple(((k,), v) for k, v in rows), (False, False))


def _explanation(expl: Explanation) -> Section:
    out: list[Block] = []
    for heading, lines in sections(expl):
        out += [Para((Strong(heading),)), BulletList(tuple((line,) for line in lines))]
    return Section(2, ("What this runbook reads and costs",), tuple(out), "explanation")


def _findings(run: RunResult) -> Section:
    out: list[Block] = []
    if run.error:
        what = "failed" if run.status == "failed" else "interrupted"
        out += [Para((Strong(f"Run {what}:"),)), Quote(run.error)]
    findings = sorted(run.findings,
                      key=lambda f: SEVERITY_ORDER.get(f.severity, len(SEVERITY_ORDER)))
    if findings:
        out.append(BulletList(tuple(_finding(f) for f in findings)))
    else:
        out.append(Para(("No threshold fired.",)))
    no_data = [Code(_dotted(s.id, t)) for s in run.steps
               for t, th in s.thresholds.items() if th.fired is None]
    if no_data:
        out.append(Para(inline("No data to decide: ", *joined([(c,) for c in no_data]), ".")))
    fired_steps = {f.step for f in findings}
    captures = [inline(Code(_dotted(s.id, name)), " = ", _capture(value))
                for s in run.steps if s.id in fired_steps
                for name, value in s.captures.items()]
    if captures:
        out += [Para(("Captured where thresholds fired:",)), BulletList(tuple(captures))]
    return Section(2, ("Findings",), tuple(out), "findings", run.status)


def _finding(finding: Finding) -> Inline:
    where = Code(_dotted(finding.step, finding.threshold))
    return inline(Badge(finding.severity.upper(), finding.severity), " ", where, ": ",
                  _message(finding.message, finding.message_markdown))


def _message(plain: str, markdown: str | None) -> Piece:
    """A threshold message: the author's Markdown where the run recorded it, else plain text."""
    return InlineMarkdown(markdown) if markdown is not None else plain


def _step(step: StepResult, program: str | None,
          folded: Mapping[str, Mapping[str, int]]) -> Section:
    title = inline("Step ", step.id, *((": ", step.title) if step.title else ()))
    out: list[Block] = []
    if step.why:
        out.append(Prose(step.why.strip()))
    if step.status == "ran":
        ran = f" ran for {fmt_seconds(step.seconds)} " \
              f"(compiled in {fmt_seconds(step.compile_seconds)})."
        out.append(Para((Strong("Status:"), ran)))
        out += _overhead(step)
    else:
        out.append(Para((Strong("Status:"), f" {step.status}.")))
        if step.reason:
            out.append(Quote(step.reason))
    out += _probes(step)
    for agg_id, agg in step.aggregations.items():
        out.append(_aggregation(step, agg_id, agg, folded))
    out += [_events(events) for events in step.events]
    if step.series:
        out.append(_series(step.series))
    if step.thresholds:
        out.append(_thresholds(step.thresholds))
    if step.captures:
        out.append(Section(3, ("Captures",), (BulletList(tuple(
            inline(Code(name), " = ", _capture(v)) for name, v in step.captures.items())),)))
    if step.notes:
        out += [Para((Strong("Notes:"),)), BulletList(tuple((n,) for n in step.notes))]
    out += _lost(step.lost)
    out += _unresolved(step.symbols)
    if program is not None:
        out.append(Program(program_file(step.id, step.program), program))
    return Section(2, title, tuple(out), anchor("step", step.id), step.status)


def _unresolved(symbols: SymbolCounts | None) -> list[Block]:
    """One line: how many user frames stayed unnamed, and why, most first."""
    if symbols is None or not symbols.unresolved:
        return []
    parts: list[Inline] = [(f"{u.frames:,} in ", Code(u.module or "no mapping"),
                            f" ({u.reason})") for u in symbols.by_reason[:UNRESOLVED_SHOWN]]
    rest = sum(u.frames for u in symbols.by_reason[UNRESOLVED_SHOWN:])
    if rest:
        parts.append((f"{rest:,} elsewhere",))
    return [Para(inline(Strong("Unresolved frames:"), f" {symbols.unresolved:,} of "
                        f"{symbols.user_frames:,} user frames unresolved: ", *joined(parts)))]


def _probes(step: StepResult) -> list[Block]:
    out: list[Block] = []
    if step.probes:
        out.append(Para(inline(Strong("Probes:"), " ",
                               *joined([(Code(p),) for p in step.probes]))))
    if step.fallbacks:
        out += [Para((Strong("Fallbacks used:"),)), BulletList(tuple(
            inline(Code(req), " is not available here; used ", Code(used))
            for req, used in step.fallbacks.items()))]
    if step.predicates:
        out += [Para((Strong("Predicates:"),)), BulletList(tuple(
            inline(Code(probe), ": ", Code(where)) for probe, where in step.predicates.items()))]
    return out


def _aggregation(step: StepResult, agg_id: str, agg: AggregationResult,
                 folded: Mapping[str, Mapping[str, int]]) -> Section:
    title: list[Any] = [agg_id, ": ", KIND_NAMES.get(agg.kind, agg.kind)]
    if agg.keys:
        title += [" by ", *joined([(Code(k),) for k in agg.keys])]
    if agg.unit:
        title.append(f", in {agg.unit}")
    out: list[Block]
    if is_stack_aggregation(agg):
        out = _stacks(step, agg_id, agg, folded)
    elif not agg.rows:
        out = [NO_DATA]
    elif agg.kind in ("hist", "lhist"):
        out = _hist_rows(agg)
    elif not agg.keys and agg.kind != "stats":
        out = [Para((f"{agg.kind}: {fmt_value(agg.rows[0].value, agg.unit)}",))]
    else:
        out = _table(agg)
    return Section(3, inline(*title), tuple(out), anchor(step.id, agg_id))


def _limit(agg: AggregationResult) -> int:
    return agg.top if agg.top is not None and agg.top > 0 else DEFAULT_TOP


def _more(agg: AggregationResult, shown: int) -> list[Block]:
    hidden = max(agg.total_rows, len(agg.rows)) - shown
    return [Para((f"… and {_plural(hidden, 'more row')}",))] if hidden > 0 else []


def _hist_rows(agg: AggregationResult) -> list[Block]:
    out: list[Block] = []
    for row in agg.rows[: _limit(agg)]:
        if agg.keys:
            out.append(Para(inline(*joined([(Code(k), " = ", _key_text(row.key.get(k)))
                                             for k in agg.keys]), ":")))
        out.append(histogram(row.value, agg.unit))
    return out + _more(agg, min(len(agg.rows), _limit(agg)))


def histogram(value: RowValue, unit: str | None) -> Histogram | Para:
    """Bars for the non-empty buckets, then the summary; percentiles as bucket upper bounds."""
    buckets = [b for b in value.buckets if b.count] if isinstance(value, HistValue) else []
    if not isinstance(value, HistValue) or not value.count or not buckets:
        return NO_DATA
    suffix = f" {unit}" if unit else ""
    bars = tuple(Bar(f"[{fmt_num(b.low)}, {fmt_num(b.high)}){suffix}", b.count)
                 for b in buckets)
    summary = f"count {fmt_num(value.count)}, " + ", ".join(
        f"{name} {fmt_value(value.stat(name), unit)}" for name in ("min", "avg", "max"))
    pcts = ", ".join(f"{p} ≤ {fmt_value(value.stat(p), unit)}" for p in ("p50", "p90", "p99"))
    return Histogram(bars, (summary,), (pcts,))


def _table(agg: AggregationResult) -> list[Block]:
    columns = list(STATS_FIELDS) if agg.kind == "stats" else [agg.kind]
    body = []
    for row in agg.rows[: _limit(agg)]:
        body.append(tuple((c,) for c in [_key_text(row.key.get(k)) for k in agg.keys]
                          + _cells(agg, row)))
    others = _other_cgroups(agg)
    head = tuple((Code(k),) for k in agg.keys) + tuple((c,) for c in columns)
    table = Table(head, tuple(body) + ((others,) if others else ()),
                  (False,) * len(agg.keys) + (True,) * len(columns))
    return [table] if others else [table, *_more(agg, min(len(agg.rows), _limit(agg)))]


def _other_cgroups(agg: AggregationResult) -> tuple[tuple[str], ...] | None:
    """Rows by cgroup beyond the shown ones summed into one, "N other cgroups": short-lived
    cgroups (a container per job) would otherwise make a table of one-off ids. The sum is
    of the rows result.json kept; rows cut by the runbook's `top:` are counted but their
    values were not kept, so the sum is then a lower bound ("≥")."""
    hidden = max(agg.total_rows, len(agg.rows)) - min(len(agg.rows), _limit(agg))
    if agg.keys != (CGROUP_KEY,) or agg.kind not in ("count", "sum") or hidden <= 0:
        return None
    values = [r.value for r in agg.rows[_limit(agg):]]
    total = sum(v for v in values if isinstance(v, int | float))
    text = fmt_num(total) if agg.kind == "count" else fmt_value(total, agg.unit)
    if agg.total_rows > len(agg.rows):
        text = f"≥ {text}" if values else f"(beyond top: {agg.top})"
    return ((_plural(hidden, "other cgroup"),), (text,))


def _cells(agg: AggregationResult, row: AggregationRow) -> list[str]:
    value = row.value
    if isinstance(value, StatsValue):
        return [fmt_num(value.count)] + [fmt_value(value.stat(f), agg.unit)
                                         for f in STATS_FIELDS[1:]]
    return [fmt_num(value) if agg.kind == "count" else fmt_value(value, agg.unit)]


def _stacks(step: StepResult, agg_id: str, agg: AggregationResult,
            folded: Mapping[str, Mapping[str, int]]) -> list[Block]:
    folded_name, svg_name = stack_files(step.id, agg_id, agg)
    graph = FlameGraph(svg_name, folded_name, f"{step.title or step.id}: {agg_id}",
                       svg_unit(agg), stacks_for(folded, step.id, agg_id, agg),
                       anchor(step.id, agg_id, "flamegraph"))
    if not agg.rows:
        return [NO_DATA, graph]
    shown = Para((f"Top {min(len(agg.rows), STACKS_SHOWN)} stacks, innermost frame first:",))
    summary = Preformatted(stack_summary(agg, STACKS_SHOWN, FRAMES_SHOWN))
    return [graph, shown, summary, *_more(agg, min(len(agg.rows), STACKS_SHOWN))]


def svg_unit(agg: AggregationResult) -> str:
    if agg.unit:
        return agg.unit
    return "samples" if agg.kind == "count" else ""


def _events(events: EventsResult) -> Section:
    out: list[Block] = []
    if events.rows:
        out.append(Table(tuple((Code(f),) for f in events.fields),
                         tuple(tuple((_key_text(r.get(f)),) for f in events.fields)
                               for r in events.rows[:EVENT_ROWS]),
                         (False,) * len(events.fields)))
        if len(events.rows) > EVENT_ROWS:
            hidden = _plural(len(events.rows) - EVENT_ROWS, "more row")
            out.append(Para((f"{hidden} not shown (they are in result.json).",)))
    else:
        out.append(NO_DATA)
    if events.dropped > 0:
        out.append(Para((f"{_plural(events.dropped, 'event')} dropped past the limit.",)))
    return Section(3, ("Events from ", Code(events.probe)), tuple(out))


def _series(points: Sequence[SeriesPoint]) -> Section:
    """What each aggregation gained in each interval (interval probes)."""
    names = list(points[0].added)
    head = (("at",), *((n,) for n in names))
    rows = tuple(((f"{fmt_num(p.t)}s",), *((fmt_num(p.added.get(n)),) for n in names))
                 for p in points)
    return Section(3, ("Over time",), (Table(head, rows, (False,) + (True,) * len(names)),))


def _thresholds(thresholds: Mapping[str, ThresholdResult]) -> Section:
    rows = []
    for tid, th in thresholds.items():
        result = (Badge("fired", "fired"),) if th.fired else (
            ("no data" if th.fired is None else "not fired"),)
        rows.append(((tid,), result, (th.severity or "—",), (Code(th.when or "—"),),
                     (_message(th.message, th.message_markdown),)))
    head = tuple((h,) for h in ("threshold", "result", "severity", "condition", "message"))
    return Section(3, ("Thresholds",), (Table(head, tuple(rows), (False,) * 5),))


def _overhead(step: StepResult) -> list[Block]:
    """Every step that ran says what its own probes cost, and whether that stopped it."""
    o = step.overhead
    if o is None:
        return []
    budget = f"budget {o.budget_percent:g} %" if o.budget_percent else "no budget"
    timed = "" if o.timed_percent is None else \
        f"; estimated from the {o.timed_percent:g} % of the time the kernel timed them"
    text = (f" {o.cpu_percent:.2f} % of all CPUs in BPF programs "
            f"({o.bpf_ns / 1e6:,.1f} ms over {o.events:,} probe hits{timed}; {budget})")
    text += ": stopped early, over budget." if o.stopped else "."
    return [Para((Strong("Overhead:"), text))]


def _lost(lost: LostCounts) -> list[Block]:
    counts = [(what, n) for what, n in lost.to_json().items() if n > 0]
    if not counts:
        return []
    text = ", ".join(f"{n} {LOST_HINTS[w][0]}" for w, n in counts)
    out: list[Block] = [Para((Strong("Lost:"), f" {text}."))]
    hints = [inline(f"{LOST_HINTS[w][0]}: ", *LOST_HINTS[w][1]) for w, _ in counts]
    return out + [BulletList(tuple(hints))]
