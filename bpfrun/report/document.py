"""What a report says: one result document (runbook-language.md §11) → a tree of blocks.

The reader is an on-call engineer, so findings come first, then each step: why it ran or why
not, what it attached, what it measured, what it lost, and the C it ran. Every decision about
content (order, wording, number formats, how many rows) is made here, once, for report.md and
report.html alike; `blocks` explains why the strings here are plain text. The output depends
on the document only: the same result gives the same blocks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import PurePath
from typing import Any

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
from bpfrun.report.flamegraph import (
    DURATION_UNITS,
    SIZE_UNITS,
    format_amount,
    is_stack_aggregation,
    stack_files,
    stack_summary,
    stacks_for,
)

DEFAULT_TOP = 20
EVENT_ROWS = 20
STACKS_SHOWN = 5
FRAMES_SHOWN = 8
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


def fmt_num(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return str(value)


def fmt_value(value: Any, unit: str | None) -> str:
    """A measured value for a reader: durations and sizes humanized, with their unit."""
    if value is None:
        return "—"
    if not isinstance(value, int | float) or isinstance(value, bool) or not unit:
        return fmt_num(value)
    if unit in DURATION_UNITS or unit in SIZE_UNITS:
        return format_amount(value, unit)
    return f"{fmt_num(value)} {unit}"


def fmt_seconds(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "—"
    if seconds >= 120:
        return f"{int(seconds // 60)}m {seconds % 60:.0f}s"
    return f"{seconds:.1f}s" if seconds >= 1 else f"{seconds * 1000:.0f}ms"


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


def program_file(step: Mapping[str, Any]) -> str:
    """Where a step's generated C is written, next to the report."""
    return PurePath(str(step.get("program") or f"{step.get('id')}.c")).name


def build_document(result: Mapping[str, Any], programs: Mapping[str, str] | None = None,
                   folded: Mapping[str, Mapping[str, int]] | None = None) -> Document:
    """The report of `result`. `programs`: step id → generated C (only those are shown);
    `folded`: as for `stacks_for` (flame graphs of stacks not in it come from the result)."""
    runbook = result.get("runbook") or {}
    title = str(runbook.get("title") or runbook.get("name") or "bpfrun report")
    blocks: list[Block] = []
    if runbook.get("description"):
        blocks.append(Prose(str(runbook["description"]).strip()))
    blocks.append(_header(result))
    blocks.append(_findings(result))
    for step in result.get("steps") or []:
        program = (programs or {}).get(str(step.get("id")))
        blocks.append(_step(step, program, folded or {}))
    return Document(title, tuple(blocks), str(result.get("status") or ""))


def _header(result: Mapping[str, Any]) -> Table:
    runbook = result.get("runbook") or {}
    host = result.get("host") or {}
    params = [inline(Code(str(k)), " = ", _capture(v))
              for k, v in (result.get("params") or {}).items()]
    status = str(result.get("status", "—"))
    rows = [
        ("Runbook", inline(f"{runbook.get('name', '—')} ({runbook.get('path', '—')})")),
        ("Host", inline(str(host.get("hostname", "—")))),
        ("Kernel", inline(str(host.get("kernel", "—")))),
        ("Started", inline(str(result.get("started") or "—"))),
        ("Finished", inline(str(result.get("finished") or "—"))),
        ("Duration", inline(_duration(result.get("started"), result.get("finished")))),
        ("Params", joined(params) if params else ("none",)),
        ("bpfrun", inline(str(result.get("bpfrun_version") or "—"))),
        ("Status", inline(Badge(status, status),
                          f" (exit code {result.get('exit_code', '—')})")),
    ]
    return Table(((), ()), tuple(((k,), v) for k, v in rows), (False, False))


def _findings(result: Mapping[str, Any]) -> Section:
    out: list[Block] = []
    error = result.get("error")
    if error:
        what = "failed" if result.get("status") == "failed" else "interrupted"
        out += [Para((Strong(f"Run {what}:"),)), Quote(str(error))]
    findings = sorted(result.get("findings") or [],
                      key=lambda f: SEVERITY_ORDER.get(str(f.get("severity")), len(SEVERITY_ORDER)))
    if findings:
        out.append(BulletList(tuple(_finding(f) for f in findings)))
    else:
        out.append(Para(("No threshold fired.",)))
    steps = result.get("steps") or []
    no_data = [Code(f"{s.get('id')}.{t}") for s in steps
               for t, th in (s.get("thresholds") or {}).items() if th.get("fired") is None]
    if no_data:
        out.append(Para(inline("No data to decide: ", *joined([(c,) for c in no_data]), ".")))
    fired_steps = {f.get("step") for f in findings}
    captures = [inline(Code(_dotted(s.get("id"), name)), " = ", _capture(value))
                for s in steps if s.get("id") in fired_steps
                for name, value in (s.get("captures") or {}).items()]
    if captures:
        out += [Para(("Captured where thresholds fired:",)), BulletList(tuple(captures))]
    return Section(2, ("Findings",), tuple(out), "findings", str(result.get("status") or ""))


def _finding(finding: Mapping[str, Any]) -> Inline:
    severity = str(finding.get("severity", ""))
    where = Code(_dotted(finding.get("step"), finding.get("threshold")))
    return inline(Badge(severity.upper(), severity), " ", where, ": ",
                  str(finding.get("message") or ""))


def _step(step: Mapping[str, Any], program: str | None,
          folded: Mapping[str, Mapping[str, int]]) -> Section:
    step_id = str(step.get("id"))
    title = inline("Step ", step_id, *((": ", str(step["title"])) if step.get("title") else ()))
    out: list[Block] = []
    if step.get("why"):
        out.append(Prose(str(step["why"]).strip()))
    status = str(step.get("status", "—"))
    if status == "ran":
        compile_s = step.get("compile_seconds")
        extra = f" (compiled in {fmt_seconds(compile_s)})" if compile_s is not None else ""
        ran = f" ran for {fmt_seconds(step.get('seconds'))}{extra}."
        out.append(Para((Strong("Status:"), ran)))
    else:
        out.append(Para((Strong("Status:"), f" {status}.")))
        if step.get("reason"):
            out.append(Quote(str(step["reason"])))
    out += _probes(step)
    for agg_id, agg in (step.get("aggregations") or {}).items():
        out.append(_aggregation(step, str(agg_id), agg, folded))
    for events in step.get("events") or []:
        out.append(_events(events))
    if (step.get("series") or {}).get("points"):
        out.append(_series(step["series"]["points"]))
    if step.get("thresholds"):
        out.append(_thresholds(step["thresholds"]))
    if step.get("captures"):
        out.append(Section(3, ("Captures",), (BulletList(tuple(
            inline(Code(str(name)), " = ", _capture(v))
            for name, v in step["captures"].items())),)))
    if step.get("notes"):
        out += [Para((Strong("Notes:"),)), BulletList(tuple((str(n),) for n in step["notes"]))]
    out += _lost(step.get("lost") or {})
    if program is not None:
        out.append(Program(program_file(step), program))
    return Section(2, title, tuple(out), anchor("step", step_id), status)


def _probes(step: Mapping[str, Any]) -> list[Block]:
    out: list[Block] = []
    if step.get("probes"):
        out.append(Para(inline(Strong("Probes:"), " ",
                               *joined([(Code(str(p)),) for p in step["probes"]]))))
    if step.get("fallbacks"):
        out += [Para((Strong("Fallbacks used:"),)), BulletList(tuple(
            inline(Code(str(req)), " is not available here; used ", Code(str(used)))
            for req, used in step["fallbacks"].items()))]
    if step.get("predicates"):
        out += [Para((Strong("Predicates:"),)), BulletList(tuple(
            inline(Code(str(probe)), ": ", Code(str(where)))
            for probe, where in step["predicates"].items()))]
    return out


def _aggregation(step: Mapping[str, Any], agg_id: str, agg: Mapping[str, Any],
                 folded: Mapping[str, Mapping[str, int]]) -> Section:
    step_id = str(step.get("id"))
    kind = str(agg.get("kind", "?"))
    keys = [str(k) for k in agg.get("keys") or []]
    unit = agg.get("unit")
    title: list[Any] = [agg_id, ": ", KIND_NAMES.get(kind, kind)]
    if keys:
        title += [" by ", *joined([(Code(k),) for k in keys])]
    if unit:
        title.append(f", in {unit}")
    rows = list(agg.get("rows") or [])
    out: list[Block]
    if is_stack_aggregation(agg):
        out = _stacks(step, agg_id, agg, folded)
    elif not rows:
        out = [NO_DATA]
    elif kind in ("hist", "lhist"):
        out = _hist_rows(agg, rows)
    elif not keys and kind != "stats":
        out = [Para((f"{kind}: {fmt_value(rows[0].get('value'), unit)}",))]
    else:
        out = _table(agg, rows)
    return Section(3, inline(*title), tuple(out), anchor(step_id, agg_id))


def _limit(agg: Mapping[str, Any]) -> int:
    top = agg.get("top")
    return top if isinstance(top, int) and top > 0 else DEFAULT_TOP


def _more(agg: Mapping[str, Any], shown: int) -> list[Block]:
    hidden = max(int(agg.get("total_rows") or 0), len(agg.get("rows") or [])) - shown
    return [Para((f"… and {_plural(hidden, 'more row')}",))] if hidden > 0 else []


def _hist_rows(agg: Mapping[str, Any], rows: list[Mapping[str, Any]]) -> list[Block]:
    keys = [str(k) for k in agg.get("keys") or []]
    out: list[Block] = []
    for row in rows[: _limit(agg)]:
        key = row.get("key") or {}
        if keys:
            out.append(Para(inline(*joined([(Code(k), " = ", _key_text(key.get(k)))
                                             for k in keys]), ":")))
        out.append(histogram(row.get("value") or {}, agg.get("unit")))
    return out + _more(agg, min(len(rows), _limit(agg)))


def histogram(value: Mapping[str, Any], unit: str | None) -> Histogram | Para:
    """Bars for the non-empty buckets, then the summary; percentiles as bucket upper bounds."""
    buckets = [b for b in value.get("buckets") or [] if b.get("count")]
    if not value.get("count") or not buckets:
        return NO_DATA
    suffix = f" {unit}" if unit else ""
    bars = tuple(Bar(f"[{fmt_num(b.get('low'))}, {fmt_num(b.get('high'))}){suffix}",
                     int(b["count"])) for b in buckets)
    summary = f"count {fmt_num(value.get('count'))}, " + ", ".join(
        f"{name} {fmt_value(value.get(name), unit)}" for name in ("min", "avg", "max"))
    pcts = ", ".join(f"{p} ≤ {fmt_value(value.get(p), unit)}" for p in ("p50", "p90", "p99"))
    return Histogram(bars, (summary,), (pcts,))


def _table(agg: Mapping[str, Any], rows: list[Mapping[str, Any]]) -> list[Block]:
    keys = [str(k) for k in agg.get("keys") or []]
    kind = str(agg.get("kind"))
    unit = agg.get("unit")
    columns = list(STATS_FIELDS) if kind == "stats" else [kind]
    body = []
    for row in rows[: _limit(agg)]:
        key = row.get("key") or {}
        value = row.get("value")
        if kind == "stats":
            stats = value if isinstance(value, Mapping) else {}
            cells = [fmt_num(stats.get("count"))] + [fmt_value(stats.get(f), unit)
                                                     for f in STATS_FIELDS[1:]]
        else:
            cells = [fmt_num(value) if kind == "count" else fmt_value(value, unit)]
        body.append(tuple((c,) for c in [_key_text(key.get(k)) for k in keys] + cells))
    head = tuple((Code(k),) for k in keys) + tuple((c,) for c in columns)
    table = Table(head, tuple(body), (False,) * len(keys) + (True,) * len(columns))
    return [table, *_more(agg, min(len(rows), _limit(agg)))]


def _stacks(step: Mapping[str, Any], agg_id: str, agg: Mapping[str, Any],
            folded: Mapping[str, Mapping[str, int]]) -> list[Block]:
    step_id = str(step.get("id"))
    folded_name, svg_name = stack_files(step_id, agg_id, agg)
    graph = FlameGraph(svg_name, folded_name, f"{step.get('title') or step_id}: {agg_id}",
                       svg_unit(agg), stacks_for(folded, step_id, agg_id, agg),
                       anchor(step_id, agg_id, "flamegraph"))
    rows = list(agg.get("rows") or [])
    if not rows:
        return [NO_DATA, graph]
    shown = Para((f"Top {min(len(rows), STACKS_SHOWN)} stacks, innermost frame first:",))
    summary = Preformatted(stack_summary(agg, STACKS_SHOWN, FRAMES_SHOWN))
    return [graph, shown, summary, *_more(agg, min(len(rows), STACKS_SHOWN))]


def svg_unit(agg: Mapping[str, Any]) -> str:
    if agg.get("unit"):
        return str(agg["unit"])
    return "samples" if agg.get("kind") == "count" else ""


def _events(events: Mapping[str, Any]) -> Section:
    fields = [str(f) for f in events.get("fields") or []]
    rows = list(events.get("rows") or [])
    out: list[Block] = []
    if rows:
        out.append(Table(tuple((Code(f),) for f in fields),
                         tuple(tuple((_key_text(r.get(f)),) for f in fields)
                               for r in rows[:EVENT_ROWS]),
                         (False,) * len(fields)))
        if len(rows) > EVENT_ROWS:
            hidden = _plural(len(rows) - EVENT_ROWS, "more row")
            out.append(Para((f"{hidden} not shown (they are in result.json).",)))
    else:
        out.append(NO_DATA)
    counts = [f"{_plural(n, 'event')} {what}"
              for what, n in (("dropped past the limit", events.get("dropped")),
                              ("lost", events.get("lost"))) if isinstance(n, int) and n > 0]
    if counts:
        out.append(Para((", ".join(counts) + ".",)))
    return Section(3, ("Events from ", Code(str(events.get("probe", "?")))), tuple(out))


def _series(points: list[Mapping[str, Any]]) -> Section:
    """What each aggregation gained in each interval (interval probes)."""
    names = [k for k in points[0] if k != "t"]
    head = (("at",), *((str(n),) for n in names))
    rows = tuple(((f"{fmt_num(p['t'])}s",), *((fmt_num(p.get(n)),) for n in names))
                 for p in points)
    return Section(3, ("Over time",), (Table(head, rows, (False,) + (True,) * len(names)),))


def _thresholds(thresholds: Mapping[str, Mapping[str, Any]]) -> Section:
    rows = []
    for tid, th in thresholds.items():
        fired = th.get("fired")
        result = (Badge("fired", "fired"),) if fired else (
            ("no data" if fired is None else "not fired"),)
        rows.append(((str(tid),), result, (str(th.get("severity") or "—"),),
                     (Code(str(th.get("when") or "—")),), (str(th.get("message") or ""),)))
    head = tuple((h,) for h in ("threshold", "result", "severity", "condition", "message"))
    return Section(3, ("Thresholds",), (Table(head, tuple(rows), (False,) * 5),))


def _lost(lost: Mapping[str, Any]) -> list[Block]:
    counts = [(str(what), n) for what, n in lost.items() if isinstance(n, int) and n > 0]
    if not counts:
        return []
    text = ", ".join(f"{n} {LOST_HINTS[w][0] if w in LOST_HINTS else w}" for w, n in counts)
    out: list[Block] = [Para((Strong("Lost:"), f" {text}."))]
    hints = [inline(f"{LOST_HINTS[w][0]}: ", *LOST_HINTS[w][1]) for w, _ in counts
             if w in LOST_HINTS]
    return out + ([BulletList(tuple(hints))] if hints else [])
