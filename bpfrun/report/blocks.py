"""The report as a tree of blocks, before it is Markdown or HTML.

`bpfrun.report.document` decides what a report says (order, wording, numbers, truncation);
`markdown` and `html` only decide how it looks. Every string in a block is plain text, never
markup: each renderer escapes it for its own format, so no kernel string (comm, file name,
symbol) can be written into a report unescaped, whatever the format. The one exception is
`Prose`, the runbook author's own Markdown (description, why), which each renderer treats as
it safely can.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeAlias

from bpfrun.errors import shown


def visible(value: object) -> str:
    """One line of data with its control characters (C0, C1) and format characters (bidi
    overrides, which reorder what a reader sees) shown as \\x07 / \\u202e instead of acted on."""
    return shown(str(value))


@dataclass(frozen=True)
class Code:
    """Inline code: an expression, probe or field name, shown verbatim."""

    text: str


@dataclass(frozen=True)
class Strong:
    text: str


@dataclass(frozen=True)
class Badge:
    """A status word (a severity, "fired", a step's status): bold in Markdown, coloured in HTML."""

    text: str
    tone: str  # critical | warning | info | fired | clean | failed | ran | skipped | muted


@dataclass(frozen=True)
class Link:
    text: str
    href: str  # a file next to the report


@dataclass(frozen=True)
class Break:
    """A hard line break inside a paragraph."""


@dataclass(frozen=True)
class InlineMarkdown:
    """A threshold message as inline Markdown: the runbook author's text as written, the
    values filled into it already escaped, so only the author's markup renders."""

    text: str


Piece: TypeAlias = str | Code | Strong | Badge | Link | Break | InlineMarkdown
Inline: TypeAlias = tuple[Piece, ...]


def inline(*pieces: Piece | None) -> Inline:
    """Pieces of a line, leaving out the empty ones (so optional parts can be written inline)."""
    return tuple(p for p in pieces if p is not None and p != "")


def joined(items: list[Inline], sep: str = ", ") -> Inline:
    out: list[Piece] = []
    for i, item in enumerate(items):
        if i:
            out.append(sep)
        out.extend(item)
    return tuple(out)


@dataclass(frozen=True)
class Para:
    text: Inline


@dataclass(frozen=True)
class Prose:
    """The runbook author's Markdown, placed as written in report.md."""

    text: str


@dataclass(frozen=True)
class Quote:
    """Quoted data (an error message, a skip reason): one quoted line per line of `text`."""

    text: str


@dataclass(frozen=True)
class BulletList:
    items: tuple[Inline, ...]


@dataclass(frozen=True)
class Table:
    head: tuple[Inline, ...]  # all empty: a table without a header row (key/value pairs)
    rows: tuple[tuple[Inline, ...], ...]
    numeric: tuple[bool, ...]  # per column: right-aligned


@dataclass(frozen=True)
class Bar:
    label: str  # the bucket, e.g. "[8, 16) us"
    count: int


@dataclass(frozen=True)
class Histogram:
    bars: tuple[Bar, ...]  # non-empty buckets only
    summary: Inline  # count, min, avg, max
    percentiles: Inline


@dataclass(frozen=True)
class Preformatted:
    text: str


@dataclass(frozen=True)
class FlameGraph:
    """A stack aggregation's graph: a link in Markdown, the SVG itself in HTML."""

    svg: str  # file names next to the report
    folded: str
    title: str
    unit: str
    stacks: Mapping[str, int]  # folded stacks, "root;...;leaf" → weight
    anchor: str
    # A differential graph (bpfrun diff): the other run's stacks, frames coloured by the
    # change (render_svg's `baseline`, `reverse`); None for a plain graph.
    baseline: Mapping[str, int] | None = None
    reverse: bool = False


@dataclass(frozen=True)
class Program:
    """A step's generated C: a link and a collapsed block."""

    file: str
    text: str


@dataclass(frozen=True)
class Section:
    level: int  # 2 for findings and steps, 3 for an aggregation, events, thresholds
    title: Inline
    blocks: tuple[Block, ...]
    anchor: str = ""
    tone: str = ""  # for HTML: a step's status


Block: TypeAlias = (Para | Prose | Quote | BulletList | Table | Histogram | Preformatted
                    | FlameGraph | Program | Section)


@dataclass(frozen=True)
class Document:
    title: str
    blocks: tuple[Block, ...]
    status: str = ""  # the run's: clean | fired | failed


def flame_graphs(blocks: tuple[Block, ...]) -> list[FlameGraph]:
    """Every flame graph of a document, in reading order."""
    out: list[FlameGraph] = []
    for block in blocks:
        if isinstance(block, FlameGraph):
            out.append(block)
        elif isinstance(block, Section):
            out += flame_graphs(block.blocks)
    return out
