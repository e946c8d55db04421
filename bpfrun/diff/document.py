"""What a comparison report says: a `RunDiff` → blocks of bpfrun.report.blocks.

It leads with what changed most: the runs' differences (warnings), then thresholds and
captures that changed, then aggregations ranked by how much they moved: histograms with
percentiles before → after and their factor, buckets that appeared or emptied, both drawn;
rows and stacks that appeared, vanished, grew or shrank; a differential flame graph (widths
from AFTER, red more, blue less) and its reverse (widths from BEFORE, so vanished stacks
show). `diff_blocks` is also what `run --baseline` appends to a run's report.
"""

from __future__ import annotations

from bpfrun.diff.model import AggregationDiff, BucketCounts, HistChange, RowChange, RunDiff
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
    Para,
    Section,
    Strong,
    Table,
    inline,
)
from bpfrun.report.document import anchor
from bpfrun.report.numbers import fmt_num, fmt_value

ROWS_SHOWN = 10
STACK_FRAMES_SHOWN = 6
PERCENTILES_SHOWN = ("p50", "p90", "p99", "max")


def diff_document(diff: RunDiff) -> Document:
    """The whole comparison report (`bpfrun diff`)."""
    title = f"{diff.runbook}: before → after"
    return Document(title, tuple(diff_blocks(diff, level=2)),
                    "fired" if any(r.fired for r in diff.regressions.values()) else "clean")


def diff_blocks(diff: RunDiff, level: int = 2) -> list[Block]:
    """The comparison as blocks; `level` is its sections' heading level."""
    out: list[Block] = [_runs(diff), _headline(diff, level)]
    if diff.regressions:
        out.append(_regressions(diff, level))
    for agg in diff.aggregations:
        out.append(_aggregation(agg, level))
    return out


def _runs(diff: RunDiff) -> Table:
    b, a = diff.before, diff.after
    rows: list[tuple[Inline, ...]] = [(("",), ("before",), ("after",)),
            (("report",), (b.source or "—",), (a.source or "—",)),
            (("started",), (b.started,), (a.started,)),
            (("host",), (b.hostname,), (a.hostname,)),
            (("kernel",), (b.kernel,), (a.kernel,)),
            (("status",), (Badge(b.status, b.status),), (Badge(a.status, a.status),))]
    return Table(rows[0], tuple(rows[1:]), (False, False, False))


def _headline(diff: RunDiff, level: int) -> Section:
    out: list[Block] = []
    if diff.warnings:
        out += [Para((Strong("Warning:"), " the runs differ in more than time:")),
                BulletList(tuple((w,) for w in diff.warnings))]
    lines: list[Inline] = [(o.sentence,) for o in diff.outcomes if o.changed]
    lines += [_agg_line(a) for a in diff.aggregations if a.changed][:ROWS_SHOWN]
    if not diff.changed:
        out.append(Para(("No change: every threshold, capture and aggregation is the same "
                         "in both runs.",)))
    else:
        out.append(BulletList(tuple(lines)))
    return Section(level, ("What changed",), tuple(out), "what-changed")


def _agg_line(agg: AggregationDiff) -> Inline:
    where = Code(f"{agg.step}.{agg.id}")
    if agg.histograms:
        h = agg.histograms[0]
        shown = [f"{s.name} {_before_after(s.before, s.after, agg.unit)}"
                 for s in h.stats if s.name in ("p50", "p99")]
        return inline(where, ": ", ", ".join(shown), *_keyed(h, agg))
    moved = [r for r in agg.rows if r.change != "same"]
    counts = {k: sum(1 for r in moved if r.change == k)
              for k in ("appeared", "vanished", "grew", "shrank")}
    text = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    what = "stacks" if agg.stacks else "rows"
    return inline(where, f": {what} {text}" if text else ": unchanged")


def _keyed(h: HistChange, agg: AggregationDiff) -> tuple[str, ...]:
    return (f" (for {', '.join(f'{k}={v}' for k, v in h.key.items())})",) if agg.keys else ()


def factor_text(before: object, after: object) -> str:
    """"×16" when AFTER is 16 times BEFORE, "÷16" when it is a sixteenth; "" without one."""
    if not isinstance(before, int | float) or not isinstance(after, int | float) \
            or isinstance(before, bool) or not before:
        return "" if before != after else "="
    if not after:
        return "gone"
    f = after / before
    if f == 1:
        return "="
    return f"×{_times(f)}" if f > 1 else f"÷{_times(1 / f)}"


def _times(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def _before_after(before: object, after: object, unit: str | None) -> str:
    factor = factor_text(before, after)
    return f"{fmt_value(before, unit)} → {fmt_value(after, unit)}" + (
        f" ({factor})" if factor and factor != "=" else "")


def _regressions(diff: RunDiff, level: int) -> Section:
    rows = []
    for rid, r in diff.regressions.items():
        result = (Badge("fired", "fired"),) if r.fired else (
            ("no data" if r.fired is None else "not fired"),)
        rows.append(((rid,), result, (r.severity,), (Code(r.when),), (r.message,)))
    head = tuple((h,) for h in ("regression", "result", "severity", "condition", "message"))
    return Section(level, ("Regression gates",), (Table(head, tuple(rows), (False,) * 5),),
                   "regressions")


def _aggregation(agg: AggregationDiff, level: int) -> Section:
    title = inline(Code(f"{agg.step}.{agg.id}"), f": {agg.kind}",
                   f", in {agg.unit}" if agg.unit else "",
                   " (per second: the steps measured for different times)"
                   if agg.per_second else "")
    if agg.histograms:
        body: list[Block] = []
        for h in agg.histograms[:ROWS_SHOWN]:
            body += _histogram(h, agg)
    elif agg.stacks:
        body = _stacks(agg)
    else:
        body = [_rows_table(agg)]
    return Section(level + 1, title, tuple(body), anchor("diff", agg.step, agg.id))


def _histogram(h: HistChange, agg: AggregationDiff) -> list[Block]:
    out: list[Block] = []
    if agg.keys:
        out.append(Para(inline(*(f"{k} = {v}  " for k, v in h.key.items()))))
    rows = tuple(((s.name,), (fmt_value(s.before, agg.unit if s.name != "count" else None),),
                  (fmt_value(s.after, agg.unit if s.name != "count" else None),),
                  (factor_text(s.before, s.after),))
                 for s in h.stats if s.name in (*PERCENTILES_SHOWN, "count"))
    out.append(Table((("",), ("before",), ("after",), ("factor",)), rows,
                     (False, True, True, True)))
    for what, buckets in (("appeared", h.appeared), ("emptied", h.emptied)):
        if buckets:
            out.append(Para(inline(f"Buckets that {what}: ",
                                   ", ".join(_bucket(b, agg.unit) for b in buckets))))
    for side in ("before", "after"):
        bars = tuple(Bar(_bucket(b, agg.unit), getattr(b, side)) for b in h.buckets
                     if getattr(b, side))
        count = h.stat("count")
        total = getattr(count, side) if count else None
        out.append(Para((Strong(side.capitalize()), f": {fmt_num(total)} values")))
        out.append(Histogram(bars, (), ()) if total else Para(("no data",)))
    return out


def _bucket(b: BucketCounts, unit: str | None) -> str:
    return f"[{fmt_num(b.low)}, {fmt_num(b.high)})" + (f" {unit}" if unit else "")


def _rows_table(agg: AggregationDiff) -> Table:
    moved = [r for r in agg.rows if r.change != "same"] or list(agg.rows)
    body = tuple(_row(r, agg) for r in moved[:ROWS_SHOWN])
    keys = "stack, innermost frame first" if agg.stacks else ", ".join(agg.keys) or "row"
    head = ((keys,), ("before",), ("after",), ("change",))
    return Table(head, body, (False, True, True, False))


def _row(r: RowChange, agg: AggregationDiff) -> tuple[Inline, ...]:
    unit = None if agg.kind == "count" else agg.unit
    rate = "/s" if agg.per_second else ""
    factor = factor_text(r.before, r.after) if r.change in ("grew", "shrank") else ""
    label = _stack_label(r.label) if agg.stacks else r.label
    return ((label,), (fmt_value(_num(r.before), unit) + rate,),
            (fmt_value(_num(r.after), unit) + rate,),
            (r.change + (f" {factor}" if factor else ""),))


def _stack_label(folded: str) -> str:
    """A folded stack for a table, innermost frame first (as run reports list stacks): the
    innermost frame, then those nearest the root, where stacks of one program differ (the
    scheduler's frames on top are alike); the full lines are in the folded files."""
    frames = folded.split(";")[::-1]
    if len(frames) > STACK_FRAMES_SHOWN:
        frames = [frames[0], "…", *frames[1 - STACK_FRAMES_SHOWN:]]
    return " ← ".join(frames)


def _num(value: float | None) -> float | int | None:
    if value is None:
        return None
    return int(value) if float(value).is_integer() else round(value, 3)


def _stacks(agg: AggregationDiff) -> list[Block]:
    base = f"diff-{agg.step}-{agg.id}"
    unit = agg.unit or ("samples" if agg.kind == "count" else "")
    graphs: list[Block] = [
        FlameGraph(f"{base}.svg", f"{base}.folded", f"{agg.step}.{agg.id}: after, "
                   "coloured by change (red more, blue less)", unit, dict(agg.folded_after),
                   anchor(base, "after"), baseline=dict(agg.folded_before)),
        FlameGraph(f"{base}-reverse.svg", f"{base}-before.folded",
                   f"{agg.step}.{agg.id}: before, coloured by change (blue: gone or less)",
                   unit, dict(agg.folded_before), anchor(base, "before"),
                   baseline=dict(agg.folded_after), reverse=True)]
    return [*graphs, _rows_table(agg)]


__all__ = ["diff_blocks", "diff_document", "factor_text"]
