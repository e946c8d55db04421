"""Flame graphs: stacks → folded lines (stackcollapse format) → a self-contained SVG.

Folded lines are Brendan Gregg's format, root first: `main;worker;schedule_[k] 42`. Kernel
frames carry the `_[k]` annotation so that mixed user/kernel stacks stay readable.

The SVG follows flamegraph.pl's layout (root at the bottom, frame width proportional to the
inclusive value, children sorted by name so equal frames merge) without its JavaScript: every
frame has a <title> tooltip, which every browser shows on hover. No maintained PyPI package
renders folded stacks without Perl (flamegraph.pl) or a Rust binary (inferno), hence this module.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any
from xml.sax.saxutils import escape

from bpfrun.report.blocks import visible
from bpfrun.report.numbers import format_amount
from bpfrun.result import AggregationResult, RowValue, StatsValue

STACK_KEYS = frozenset({"kstack", "ustack", "begin.kstack", "begin.ustack"})
KERNEL_STACK_KEYS = frozenset({"kstack", "begin.kstack"})
KERNEL_SUFFIX = "_[k]"

WIDTH = 1200
XPAD = 10
FRAME_H = 16
TITLE_H = 36
BOTTOM = 10
FONT_SIZE = 12
CHAR_W = FONT_SIZE * 0.59  # Verdana's average advance, as flamegraph.pl assumes
MIN_WIDTH = 0.1  # px; narrower frames are invisible and only bloat the file

# Characters XML 1.0 forbids even when escaped; symbol names from arbitrary binaries may hold them.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _frame_name(name: object) -> str:
    """A frame name that cannot break a folded line: ';' separates frames, '\\n' ends lines."""
    text = str(name).replace(";", ":").replace("\r", " ").replace("\n", " ").strip()
    return text or "[unknown]"


def fold(rows: Iterable[tuple[Sequence[str], int]]) -> dict[str, int]:
    """Stacks given innermost frame first → {"root;...;leaf": count}, equal stacks summed."""
    out: dict[str, int] = {}
    for frames, count in rows:
        weight = int(round(count))
        if weight <= 0:
            continue
        names = [_frame_name(f) for f in reversed(list(frames))] or ["[no frames]"]
        key = ";".join(names)
        out[key] = out.get(key, 0) + weight
    return dict(sorted(out.items()))


def is_stack_aggregation(agg: AggregationResult) -> bool:
    return agg.folded is not None or any(k in STACK_KEYS for k in agg.keys)


def stack_files(step_id: str, agg_id: str, agg: AggregationResult) -> tuple[str, str]:
    """(folded, svg) file names of a stack aggregation, as named in the result or by default."""
    folded = PurePath(agg.folded or f"{step_id}-{agg_id}.folded").name
    svg = PurePath(agg.svg or f"{step_id}-{agg_id}.svg").name
    return folded, svg


def stacks_for(folded: Mapping[str, Mapping[str, int]], step_id: str, agg_id: str,
               agg: AggregationResult) -> dict[str, int]:
    """The folded stacks of one aggregation: from `folded` (keyed "<step>.<agg>" or by the
    folded file's name; the runner's copy holds every stack) or else folded from the rows the
    result kept, so a flame graph is never silently absent."""
    for key in (f"{step_id}.{agg_id}", stack_files(step_id, agg_id, agg)[0]):
        if key in folded:
            return dict(folded[key])
    return fold_aggregation(agg)


def row_weight(value: RowValue) -> float:
    """What a row weighs in a flame graph: its number, or the sum (else count) of its stats."""
    if isinstance(value, StatsValue):  # stats/hist keyed by stack: total time beats hit count
        value = value.sum if value.sum is not None else value.count
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def aggregation_stacks(agg: AggregationResult) -> list[tuple[list[str], float]]:
    """The rows of a stack aggregation as (frames innermost first, weight).

    Kernel frames come innermost (they run on top of the user code that entered the kernel),
    then user frames, then the other keys (comm, pid) as the roots, as BCC's profile.py does.
    """
    out = []
    for row in agg.rows:
        kernel: list[str] = []
        user: list[str] = []
        roots: list[str] = []
        for expr in agg.keys:
            value = row.key.get(expr)
            if expr in KERNEL_STACK_KEYS:
                kernel += [f if str(f).endswith(KERNEL_SUFFIX) else f"{f}{KERNEL_SUFFIX}"
                           for f in value or []]
            elif expr in STACK_KEYS:
                user += [str(f) for f in value or []]
            else:
                roots.append(str(value))
        out.append((kernel + user + roots[::-1], row_weight(row.value)))
    return out


def fold_aggregation(agg: AggregationResult | Mapping[str, Any]) -> dict[str, int]:
    """Folded stacks of one aggregation of a result (only the rows the result kept); an
    aggregation of a result.json document is read first."""
    if not isinstance(agg, AggregationResult):
        agg = AggregationResult.from_json(agg)
    return fold((frames, int(round(w))) for frames, w in aggregation_stacks(agg))


def stack_summary(agg: AggregationResult, stacks: int = 5, frames: int = 8) -> str:
    """Plain text of the heaviest stacks, innermost frame first, each cut to `frames` frames:
    in full (`main+0x4d (prog.c:14) [prog]`, inlined frames marked) when the rows carry them.

    Shares are given only when the result kept every row, since otherwise the total is unknown.
    """
    rows = agg.rows
    weights = [row_weight(r.value) for r in rows]
    total = sum(weights) if agg.total_rows <= len(rows) else 0
    blocks = []
    for i, row in enumerate(rows[:stacks]):
        share = f" ({100 * weights[i] / total:.1f}%)" if total else ""
        lines = [f"#{i + 1}  {format_amount(weights[i], agg.unit or '')}{share}"]
        for k in agg.keys:
            value = row.key.get(k)
            if k not in STACK_KEYS or not isinstance(value, list):
                lines.append(f"  {k}: {visible(value)}")
                continue
            lines.append(f"  {k}:")
            full = row.frames.get(k)  # the full form when the result has it
            texts = [f.text(reason=False) for f in full] if full else value
            lines += [f"    {visible(f)}" for f in texts[:frames]] or ["    (empty)"]
            if len(value) > frames:
                hidden = len(value) - frames
                lines.append(f"    … {hidden} more frame{'s' if hidden > 1 else ''}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def folded_text(folded: Mapping[str, int]) -> str:
    return "".join(f"{stack} {count}\n" for stack, count in sorted(folded.items()))


@dataclass
class _Node:
    name: str
    value: int = 0
    children: dict[str, _Node] = field(default_factory=dict)
    other: int = 0  # a differential graph's: the other run's value of this frame


def _tree(folded: Mapping[str, int]) -> _Node:
    root = _Node("all")
    for stack, count in sorted(folded.items()):
        if count <= 0:
            continue
        root.value += count
        node = root
        for name in stack.split(";"):
            node = node.children.setdefault(name, _Node(name))
            node.value += count
    return root


def _add_other(root: _Node, other: Mapping[str, int]) -> None:
    """The other run's values on the frames this graph draws (its other stacks have no
    width here: the reverse graph shows them)."""
    for stack, count in other.items():
        if count <= 0:
            continue
        root.other += count
        node: _Node | None = root
        for name in stack.split(";"):
            node = node.children.get(name) if node else None
            if node is None:
                break
            node.other += count


def diff_colour(delta: float, largest: float) -> str:
    """Brendan Gregg's differential colours: red for more, blue for less, deeper the larger
    the change; white for none."""
    if not largest or not delta:
        return "rgb(250,250,250)"
    fade = int(210 * (1 - min(abs(delta) / largest, 1.0)))
    return f"rgb(255,{fade},{fade})" if delta > 0 else f"rgb({fade},{fade},255)"


def _xml(text: str) -> str:
    return escape(_XML_INVALID.sub("\ufffd", text), {'"': "&quot;"})


def _colour(name: str) -> str:
    """Same name, same colour, on every run: red shades for user code, orange for the kernel."""
    digest = hashlib.md5(name.encode("utf-8", "replace")).digest()
    v1, v2 = digest[0] / 255, digest[1] / 255
    if name.endswith(KERNEL_SUFFIX):
        r, g, b = 190 + 65 * v1, 90 + 65 * v1, 55 * v2
    else:
        r, g, b = 200 + 55 * v1, 50 + 80 * v2, 50 + 80 * v2
    return f"rgb({int(r)},{int(g)},{int(b)})"


def _label(name: str, width: float) -> str:
    fits = int((width - 6) / CHAR_W)
    if fits < 3:
        return ""
    return name if len(name) <= fits else name[: fits - 2] + ".."


def render_svg(folded: Mapping[str, int], title: str, unit: str = "samples", *,
               id_prefix: str = "", standalone: bool = True,
               baseline: Mapping[str, int] | None = None, reverse: bool = False) -> str:
    """A flame graph of `folded` as an SVG document (deterministic).

    `standalone=False` leaves out the XML declaration, for an SVG inlined in HTML; there
    `id_prefix` keeps the ids of several graphs on one page apart. With `baseline` (the
    other run's stacks) it is a differential graph, as difffolded.pl's: widths from
    `folded`, each frame red where `folded` has more than `baseline`, blue where less;
    `reverse` says `folded` is the BEFORE run, so red still means more in AFTER.
    """
    root = _tree(folded)
    sign = -1 if reverse else 1
    if baseline is not None:
        _add_other(root, baseline)
    frames: list[tuple[_Node, int, float]] = []  # node, depth, offset in value units
    todo: list[tuple[_Node, int, float]] = [(root, 0, 0.0)]
    scale = (WIDTH - 2 * XPAD) / root.value if root.value else 0.0
    while todo:
        node, depth, offset = todo.pop()
        if node.value * scale < MIN_WIDTH:
            continue
        frames.append((node, depth, offset))
        child_offset = offset
        pending = []
        for name in sorted(node.children):
            child = node.children[name]
            pending.append((child, depth + 1, child_offset))
            child_offset += child.value
        todo.extend(reversed(pending))
    depth_max = max((d for _, d, _ in frames), default=0)
    largest = max((abs(n.value - n.other) for n, d, _ in frames if d), default=0)
    height = TITLE_H + (depth_max + 1) * FRAME_H + BOTTOM
    background = f"{id_prefix}background"
    out = [
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>',
        f'<svg version="1.1" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
        f'height="{height}" viewBox="0 0 {WIDTH} {height}" '
        f'font-family="Verdana, sans-serif" font-size="{FONT_SIZE}">',
        f'<defs><linearGradient id="{background}" x1="0" x2="0" y1="0" y2="1">'
        "<stop stop-color=\"#eeeeee\" offset=\"5%\"/><stop stop-color=\"#eeeeb0\" offset=\"95%\"/>"
        "</linearGradient></defs>",
        "<style>g.frame:hover rect { stroke: #000; stroke-width: 0.5; }</style>",
        f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="url(#{background})"/>',
        f'<text x="{WIDTH / 2:.0f}" y="24" text-anchor="middle" font-size="17">'
        f"{_xml(title)}</text>",
    ]
    if not root.value:
        out.append(f'<text x="{WIDTH / 2:.0f}" y="{TITLE_H + 12}" text-anchor="middle">'
                   "no data</text>")
    for node, depth, offset in frames:
        x = XPAD + offset * scale
        w = node.value * scale
        y = height - BOTTOM - (depth + 1) * FRAME_H
        shown = node.name.removesuffix(KERNEL_SUFFIX)
        pct = 100.0 * node.value / root.value
        tip = f"{shown} ({format_amount(node.value, unit)}, {pct:.2f}%)"
        colour = "rgb(200,200,200)" if depth == 0 else _colour(node.name)
        if baseline is not None:
            delta = sign * (node.value - node.other)
            tip += f"; change {'+' if delta >= 0 else '-'}{format_amount(abs(delta), unit)}"
            colour = diff_colour(delta, largest) if depth else colour
        out.append(f'<g class="frame"><title>{_xml(tip)}</title>'
                   f'<rect x="{x:.2f}" y="{y}" width="{w:.2f}" height="{FRAME_H - 1}" '
                   f'fill="{colour}" rx="2" ry="2"/>')
        label = _label(shown, w)
        if label:
            out.append(f'<text x="{x + 3:.2f}" y="{y + FRAME_H - 4.5:.1f}">{_xml(label)}</text>')
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out[0 if standalone else 1:]) + "\n"
