"""Markdown reporter: one result document (runbook-language.md §11) → the text of report.md.

The reader is an on-call engineer, so findings come first, then each step with what it
measured. Strings from the kernel (comm, file names, symbols) and from the command line are
data: they go through `md_escape`, `md_code` or a fenced block before they enter Markdown. The
runbook's own Markdown (description, why) is placed as written. The output depends on the
document only: the same result gives byte-identical Markdown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import PurePath
from typing import Any
from urllib.parse import quote

from bpfrun.report.flamegraph import (
    DURATION_UNITS,
    SIZE_UNITS,
    format_amount,
    is_stack_aggregation,
    stack_files,
    stack_summary,
)

DEFAULT_TOP = 20
EVENT_ROWS = 20
STACKS_SHOWN = 5
FRAMES_SHOWN = 8
BAR_WIDTH = 40
SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
KIND_NAMES = {"hist": "log2 histogram", "lhist": "linear histogram"}
STATS_FIELDS = ("count", "sum", "min", "avg", "max")
LOST_HINTS = {
    "events": ("events lost", "the perf buffer overflowed: narrow the probe with `where:` or "
               "lower its `limit:`"),
    "stacks": ("stacks lost", "the stack storage was full (or a stack could not be walked): "
               "raise the stack storage size, or narrow the probe with `where:`"),
    "unpaired": ("unpaired begins", "a begin with no end inside the step; a few at the edges "
                 "of the window are normal, many mean the end probe misses events"),
    "map_full": ("updates dropped on full maps", "an aggregation map was full: raise its size "
                 "limit or narrow it with `where:`"),
}

_MD_ESCAPES = {"\\": "\\\\", "|": "\\|", "`": "\\`", "*": "\\*", "_": "\\_", "[": "\\[",
               "]": "\\]", "~": "\\~", "<": "&lt;", ">": "&gt;", "&": "&amp;", "\n": "\\n",
               "\r": "\\r", "\t": " "}
_CONTROL = re.compile("[\x00-\x1f\x7f]")


def md_escape(value: object) -> str:
    """Data as inert inline Markdown: no markup, no HTML, no table cell break, one line."""
    out = []
    for ch in str(value):
        if ch in _MD_ESCAPES:
            out.append(_MD_ESCAPES[ch])
        elif _CONTROL.match(ch):
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def _plain(value: object) -> str:
    """Data for a fenced block: Markdown is inert there, but line breaks must stay out."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))


def md_code(value: object, *, table: bool = False) -> str:
    """An inline code span holding `value` verbatim, whatever backticks it contains."""
    text = _plain(value)
    if not text:
        return '""'
    if table:  # GFM splits cells on '|' even inside code spans
        text = text.replace("|", "\\|")
    fence = "`" * (max((len(r) for r in re.findall("`+", text)), default=0) + 1)
    pad = " " if text[0] in "` " or text[-1] in "` " else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def fenced(body: str, info: str = "") -> str:
    """A fenced block that no line of `body` can close early."""
    longest = max((len(r) for r in re.findall("`{3,}", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{body}\n{fence}"


def fmt_num(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.3f}".rstrip("0").rstrip(".")
    if isinstance(value, int):
        return str(value)
    return md_escape(value)


def fmt_value(value: Any, unit: str | None) -> str:
    """A measured value for a reader: durations and sizes humanized, with their unit."""
    if value is None:
        return "—"
    if not isinstance(value, int | float) or isinstance(value, bool):
        return md_escape(value)
    if not unit:
        return fmt_num(value)
    if unit in DURATION_UNITS or unit in SIZE_UNITS:
        return md_escape(format_amount(value, unit))
    return f"{fmt_num(value)} {md_escape(unit)}"


_BLOCK_START = re.compile(r"^(\s*\d*)([#=+-]|(?<=\d)[.)])")


def _quote_lines(text: str) -> str:
    """A blockquote of data: one quoted line per line, none read as a heading or a list."""
    lines = [_BLOCK_START.sub(r"\1\\\2", md_escape(line)) for line in str(text).splitlines()]
    return "\n".join(f"> {line}  " for line in lines or [""]).rstrip()


def _link(name: str) -> str:
    return f"[{md_escape(name)}]({quote(name)})"


def _duration(started: Any, finished: Any) -> str:
    try:
        seconds = (datetime.fromisoformat(str(finished))
                   - datetime.fromisoformat(str(started))).total_seconds()
    except (ValueError, TypeError):  # unparsable, or one time zone-aware and one not
        return "—"
    return _seconds(seconds)


def _seconds(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "—"
    if seconds >= 120:
        return f"{int(seconds // 60)}m {seconds % 60:.0f}s"
    return f"{seconds:.1f}s" if seconds >= 1 else f"{seconds * 1000:.0f}ms"


def render_markdown(result: Mapping[str, Any], programs: Mapping[str, str] | None = None) -> str:
    runbook = result.get("runbook") or {}
    title = runbook.get("title") or runbook.get("name") or "bpfrun report"
    parts = [f"# {md_escape(title)}"]
    if runbook.get("description"):
        parts.append(str(runbook["description"]).strip())
    parts.append(_header(result))
    parts.append(_findings(result))
    for step in result.get("steps") or []:
        parts.append(_step(step, (programs or {}).get(str(step.get("id")))))
    return "\n\n".join(p for p in parts if p) + "\n"


def _header(result: Mapping[str, Any]) -> str:
    runbook = result.get("runbook") or {}
    host = result.get("host") or {}
    params = result.get("params") or {}
    shown = ", ".join(f"{md_code(k, table=True)} = {_capture(v)}" for k, v in params.items())
    name, path = md_escape(runbook.get("name", "—")), md_escape(runbook.get("path", "—"))
    rows = [
        ("Runbook", f"{name} ({path})"),
        ("Host", md_escape(host.get("hostname", "—"))),
        ("Kernel", md_escape(host.get("kernel", "—"))),
        ("Started", md_escape(result.get("started") or "—")),
        ("Finished", md_escape(result.get("finished") or "—")),
        ("Duration", _duration(result.get("started"), result.get("finished"))),
        ("Params", shown or "none"),
        ("bpfrun", md_escape(result.get("bpfrun_version") or "—")),
        ("Status", f"**{md_escape(result.get('status', '—'))}** "
                   f"(exit code {md_escape(result.get('exit_code', '—'))})"),
    ]
    return "\n".join(["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows])


def _findings(result: Mapping[str, Any]) -> str:
    out = ["## Findings"]
    error = result.get("error")
    if error:
        what = "failed" if result.get("status") == "failed" else "interrupted"
        out.append(f"**Run {what}:**\n\n{_quote_lines(error)}")
    findings = sorted(result.get("findings") or [],
                      key=lambda f: SEVERITY_ORDER.get(str(f.get("severity")), len(SEVERITY_ORDER)))
    if findings:
        out.append("\n".join(_finding(f) for f in findings))
    else:
        out.append("No threshold fired.")
    no_data = [f"{s.get('id')}.{t}" for s in result.get("steps") or []
               for t, th in (s.get("thresholds") or {}).items() if th.get("fired") is None]
    if no_data:
        out.append("No data to decide: " + ", ".join(md_code(n) for n in no_data) + ".")
    fired_steps = {f.get("step") for f in findings}
    captures = [f"- {md_code(_dotted(s.get('id'), name))} = {_capture(value)}"
                for s in result.get("steps") or [] if s.get("id") in fired_steps
                for name, value in (s.get("captures") or {}).items()]
    if captures:
        out.append("Captured where thresholds fired:\n\n" + "\n".join(captures))
    return "\n\n".join(out)


def _dotted(*names: Any) -> str:
    return ".".join(str(n) for n in names)


def _finding(finding: Mapping[str, Any]) -> str:
    severity = md_escape(str(finding.get("severity", "")).upper())
    where = md_code(_dotted(finding.get("step"), finding.get("threshold")))
    return f"- **{severity}** {where}: {md_escape(finding.get('message') or '')}"


def _capture(value: Any) -> str:
    if value is None:
        return "no data"
    if isinstance(value, str):
        return md_escape(value) if value else '""'
    return fmt_num(value)


def _step(step: Mapping[str, Any], program: str | None) -> str:
    step_id = str(step.get("id"))
    title = step.get("title")
    out = [f"## Step {md_escape(step_id)}" + (f": {md_escape(title)}" if title else "")]
    if step.get("why"):
        out.append(str(step["why"]).strip())
    status = str(step.get("status", "—"))
    if status == "ran":
        compile_s = step.get("compile_seconds")
        extra = f" (compiled in {_seconds(compile_s)})" if compile_s is not None else ""
        out.append(f"**Status:** ran for {_seconds(step.get('seconds'))}{extra}.")
    else:
        out.append(f"**Status:** {md_escape(status)}.")
        if step.get("reason"):
            out.append(_quote_lines(step["reason"]))
    out += _probes(step)
    for agg_id, agg in (step.get("aggregations") or {}).items():
        out.append(_aggregation(step_id, str(agg_id), agg))
    for events in step.get("events") or []:
        out.append(_events(events))
    if step.get("thresholds"):
        out.append(_thresholds(step["thresholds"]))
    if step.get("captures"):
        out.append("### Captures\n\n" + "\n".join(
            f"- {md_code(name)} = {_capture(v)}" for name, v in step["captures"].items()))
    lost = _lost(step.get("lost") or {})
    if lost:
        out.append(lost)
    if program is not None:
        out.append(_program(program_file(step), program))
    return "\n\n".join(out)


def _probes(step: Mapping[str, Any]) -> list[str]:
    out = []
    if step.get("probes"):
        out.append("**Probes:** " + ", ".join(md_code(p) for p in step["probes"]))
    if step.get("fallbacks"):
        out.append("**Fallbacks used:**\n\n" + "\n".join(
            f"- {md_code(req)} is not available here; used {md_code(used)}"
            for req, used in step["fallbacks"].items()))
    if step.get("predicates"):
        out.append("**Predicates:**\n\n" + "\n".join(
            f"- {md_code(probe)}: {md_code(where)}" for probe, where in step["predicates"].items()))
    return out


def _aggregation(step_id: str, agg_id: str, agg: Mapping[str, Any]) -> str:
    kind = str(agg.get("kind", "?"))
    keys = [str(k) for k in agg.get("keys") or []]
    unit = agg.get("unit")
    what = KIND_NAMES.get(kind, kind)
    if keys:
        what += " by " + ", ".join(md_code(k) for k in keys)
    if unit:
        what += f", in {md_escape(unit)}"
    out = [f"### {md_escape(agg_id)}: {what}"]
    rows = list(agg.get("rows") or [])
    if is_stack_aggregation(agg):
        out.append(_stacks(step_id, agg_id, agg))
    elif not rows:
        out.append("no data")
    elif kind in ("hist", "lhist"):
        out += _hist_rows(agg, rows)
    elif not keys and kind != "stats":
        out.append(f"{md_escape(kind)}: {fmt_value(rows[0].get('value'), unit)}")
    else:
        out.append(_table(agg, rows))
    return "\n\n".join(out)


def _limit(agg: Mapping[str, Any]) -> int:
    top = agg.get("top")
    return top if isinstance(top, int) and top > 0 else DEFAULT_TOP


def _more(agg: Mapping[str, Any], shown: int) -> str:
    hidden = max(int(agg.get("total_rows") or 0), len(agg.get("rows") or [])) - shown
    return f"… and {_plural(hidden, 'more row')}" if hidden > 0 else ""


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _key_text(value: Any) -> str:
    if isinstance(value, list):
        return " ← ".join(md_escape(f) for f in value[:3]) + (" …" if len(value) > 3 else "")
    return fmt_num(value) if not isinstance(value, str) else (md_escape(value) or '""')


def _hist_rows(agg: Mapping[str, Any], rows: list[Mapping[str, Any]]) -> list[str]:
    keys = [str(k) for k in agg.get("keys") or []]
    out = []
    for row in rows[: _limit(agg)]:
        key = row.get("key") or {}
        if keys:
            out.append(", ".join(f"{md_code(k)} = {_key_text(key.get(k))}" for k in keys) + ":")
        out.append(render_hist(row.get("value") or {}, agg.get("unit")))
    more = _more(agg, min(len(rows), _limit(agg)))
    return out + ([more] if more else [])


def render_hist(value: Mapping[str, Any], unit: str | None) -> str:
    """Bars for the non-empty buckets, then the summary; percentiles as bucket upper bounds."""
    buckets = [b for b in value.get("buckets") or [] if b.get("count")]
    if not value.get("count") or not buckets:
        return "no data"
    peak = max(b["count"] for b in buckets)
    suffix = f" {_plain(unit)}" if unit else ""
    labels = [f"[{fmt_num(b.get('low'))}, {fmt_num(b.get('high'))}){suffix}" for b in buckets]
    width = max(len(label) for label in labels)
    bars = [f"{label.ljust(width)} │{'█' * max(1, round(b['count'] / peak * BAR_WIDTH))} "
            f"{b['count']}" for label, b in zip(labels, buckets, strict=True)]
    summary = f"count {fmt_num(value.get('count'))}, " + ", ".join(
        f"{name} {fmt_value(value.get(name), unit)}" for name in ("min", "avg", "max"))
    pcts = ", ".join(f"{p} ≤ {fmt_value(value.get(p), unit)}" for p in ("p50", "p90", "p99"))
    return f"{fenced(chr(10).join(bars))}\n\n{summary}  \n{pcts}"


def _table(agg: Mapping[str, Any], rows: list[Mapping[str, Any]]) -> str:
    keys = [str(k) for k in agg.get("keys") or []]
    kind = str(agg.get("kind"))
    unit = agg.get("unit")
    columns = list(STATS_FIELDS) if kind == "stats" else [kind]
    head = [md_code(k, table=True) for k in keys] + columns
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(keys) + "---:|" * len(columns)]
    for row in rows[: _limit(agg)]:
        key = row.get("key") or {}
        value = row.get("value")
        if kind == "stats":
            stats = value if isinstance(value, Mapping) else {}
            cells = [fmt_num(stats.get("count"))] + [fmt_value(stats.get(f), unit)
                                                     for f in STATS_FIELDS[1:]]
        else:
            cells = [fmt_num(value) if kind == "count" else fmt_value(value, unit)]
        lines.append("| " + " | ".join([_key_text(key.get(k)) for k in keys] + cells) + " |")
    more = _more(agg, min(len(rows), _limit(agg)))
    return "\n".join(lines) + (f"\n\n{more}" if more else "")


def _stacks(step_id: str, agg_id: str, agg: Mapping[str, Any]) -> str:
    folded_name, svg_name = stack_files(step_id, agg_id, agg)
    links = f"Flame graph: {_link(svg_name)} · folded stacks: {_link(folded_name)}"
    rows = list(agg.get("rows") or [])
    if not rows:
        return f"no data\n\n{links}"
    shown = f"Top {min(len(rows), STACKS_SHOWN)} stacks, innermost frame first:"
    summary = fenced(stack_summary(agg, STACKS_SHOWN, FRAMES_SHOWN))
    more = _more(agg, min(len(rows), STACKS_SHOWN))
    return "\n\n".join(p for p in (shown, summary, more, links) if p)


def _events(events: Mapping[str, Any]) -> str:
    fields = [str(f) for f in events.get("fields") or []]
    rows = list(events.get("rows") or [])
    out = [f"### Events from {md_code(events.get('probe', '?'))}"]
    if rows:
        lines = ["| " + " | ".join(md_code(f, table=True) for f in fields) + " |",
                 "|" + "---|" * len(fields)]
        lines += ["| " + " | ".join(_key_text(r.get(f)) for f in fields) + " |"
                  for r in rows[:EVENT_ROWS]]
        out.append("\n".join(lines))
        if len(rows) > EVENT_ROWS:
            hidden = _plural(len(rows) - EVENT_ROWS, "more row")
            out.append(f"{hidden} not shown (they are in result.json).")
    else:
        out.append("no data")
    counts = [f"{_plural(n, 'event')} {what}"
              for what, n in (("dropped past the limit", events.get("dropped")),
                              ("lost", events.get("lost"))) if isinstance(n, int) and n > 0]
    if counts:
        out.append(", ".join(counts) + ".")
    return "\n\n".join(out)


def _thresholds(thresholds: Mapping[str, Mapping[str, Any]]) -> str:
    lines = ["### Thresholds", "", "| threshold | result | severity | condition | message |",
             "|---|---|---|---|---|"]
    for tid, th in thresholds.items():
        fired = th.get("fired")
        result = "**fired**" if fired else ("no data" if fired is None else "not fired")
        lines.append(f"| {md_escape(tid)} | {result} | {md_escape(th.get('severity') or '—')} | "
                     f"{md_code(th.get('when') or '—', table=True)} | "
                     f"{md_escape(th.get('message') or '')} |")
    return "\n".join(lines)


def _lost(lost: Mapping[str, Any]) -> str:
    counts = [(what, n) for what, n in lost.items() if isinstance(n, int) and n > 0]
    if not counts:
        return ""
    text = ", ".join(f"{n} {LOST_HINTS.get(w, (md_escape(w), ''))[0]}" for w, n in counts)
    hints = [f"- {LOST_HINTS[w][0]}: {LOST_HINTS[w][1]}" for w, _ in counts if w in LOST_HINTS]
    return f"**Lost:** {text}." + ("\n\n" + "\n".join(hints) if hints else "")


def program_file(step: Mapping[str, Any]) -> str:
    """Where a step's generated C is written, next to the report."""
    return PurePath(str(step.get("program") or f"{step.get('id')}.c")).name


def _program(name: str, text: str) -> str:
    return (f"Generated C: {_link(name)}\n\n<details><summary>Generated C</summary>\n\n"
            f"{fenced(text.rstrip(), 'c')}\n\n</details>")
