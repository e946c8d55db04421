"""Markdown reporter: the report's blocks (`bpfrun.report.document`) → the text of report.md.

Renders well on GitHub and in a terminal (`less report.md`). Strings from the kernel (comm,
file names, symbols) and the command line are data: they go through `md_escape`, `md_code` or
a fenced block before they enter Markdown. The runbook's own Markdown (description, why) is
placed as written. The same result gives byte-identical Markdown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from bpfrun.report.blocks import (
    Badge,
    Block,
    Break,
    BulletList,
    Code,
    Document,
    FlameGraph,
    Histogram,
    Inline,
    InlineMarkdown,
    Link,
    Para,
    Preformatted,
    Program,
    Prose,
    Quote,
    Section,
    Strong,
    Table,
    visible,
)
from bpfrun.report.document import build_document
from bpfrun.result import RunResult

BAR_WIDTH = 40

_MD_ESCAPES = {"\\": "\\\\", "|": "\\|", "`": "\\`", "*": "\\*", "_": "\\_", "[": "\\[",
               "]": "\\]", "~": "\\~", "<": "&lt;", ">": "&gt;", "&": "&amp;", "\n": "\\n",
               "\r": "\\r", "\t": " "}
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_BARE_PIPE = re.compile(r"(?<!\\)\|")
_TICK_RUN = re.compile(r"(?<!\\)`+")
_BLOCK_START = re.compile(r"^(\s*\d*)([#=+-]|(?<=\d)[.)])")


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


def md_template_value(value: str, before: str) -> str:
    """A value filled into the author's inline Markdown (a threshold message), inert where it
    lands: escaped like any data, or, inside a code span the author opened (an odd number of
    unescaped backtick runs before it), kept verbatim but for the backticks that would close
    the span early (shown as ˋ) and control characters."""
    if len(_TICK_RUN.findall(before)) % 2:
        return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", value).replace("`", "ˋ")
    return md_escape(value)


def md_code(value: object, *, table: bool = False) -> str:
    """An inline code span holding `value` verbatim, whatever backticks it contains."""
    text = visible(value)
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


def render_markdown(result: RunResult | Mapping[str, Any],
                    programs: Mapping[str, str] | None = None) -> str:
    """report.md of a run's result (or of a result.json document); `programs` maps step id →
    generated C to include."""
    return markdown_text(build_document(result, programs))


def markdown_text(doc: Document) -> str:
    parts = [f"# {md_escape(doc.title)}"] + [_block(b) for b in doc.blocks]
    return "\n\n".join(p for p in parts if p) + "\n"


def _inline(pieces: Inline, table: bool = False) -> str:
    out = []
    for p in pieces:
        if isinstance(p, str):
            out.append(md_escape(p))
        elif isinstance(p, Code):
            out.append(md_code(p.text, table=table))
        elif isinstance(p, Strong | Badge):
            out.append(f"**{md_escape(p.text)}**")
        elif isinstance(p, Link):
            out.append(_link(p.text, p.href))
        elif isinstance(p, Break):
            out.append("  \n")
        elif isinstance(p, InlineMarkdown):
            out.append(_inline_markdown(p.text, table))
    return "".join(out)


def _inline_markdown(text: str, table: bool) -> str:
    """The author's inline Markdown kept on one line (and in its table cell: a bare `|` would
    end the cell); control characters shown, as everywhere in the report."""
    one_line = " ".join(_CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", line)
                        for line in text.splitlines())
    return _BARE_PIPE.sub(r"\\|", one_line) if table else one_line


def _link(text: str, href: str) -> str:
    return f"[{md_escape(text)}]({quote(href)})"


def _block(block: Block) -> str:
    if isinstance(block, Section):
        head = f"{'#' * block.level} {_inline(block.title)}"
        return "\n\n".join([head] + [_block(b) for b in block.blocks])
    if isinstance(block, Para):
        return _inline(block.text)
    if isinstance(block, Prose):
        return block.text
    if isinstance(block, Quote):
        return _quote_lines(block.text)
    if isinstance(block, BulletList):
        return "\n".join(f"- {_inline(item)}" for item in block.items)
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Histogram):
        return _histogram(block)
    if isinstance(block, Preformatted):
        return fenced(block.text)
    if isinstance(block, FlameGraph):
        return (f"Flame graph: {_link(block.svg, block.svg)} · "
                f"folded stacks: {_link(block.folded, block.folded)}")
    if isinstance(block, Program):
        return (f"Generated C: {_link(block.file, block.file)}\n\n<details><summary>Generated C"
                f"</summary>\n\n{fenced(block.text.rstrip(), 'c')}\n\n</details>")
    raise TypeError(f"no Markdown for {type(block).__name__}")


def _quote_lines(text: str) -> str:
    """A blockquote of data: one quoted line per line, none read as a heading or a list."""
    lines = [_BLOCK_START.sub(r"\1\\\2", md_escape(line)) for line in str(text).splitlines()]
    return "\n".join(f"> {line}  " for line in lines or [""]).rstrip()


def _table(table: Table) -> str:
    if any(table.head):
        head = "| " + " | ".join(_inline(h, table=True) for h in table.head) + " |"
    else:  # GFM needs a header row; an empty one keeps key/value tables compact
        head = "|" + " |" * len(table.head)
    align = "|" + "".join("---:|" if n else "---|" for n in table.numeric)
    rows = ["| " + " | ".join(_inline(c, table=True) for c in row) + " |" for row in table.rows]
    return "\n".join([head, align, *rows])


def _histogram(hist: Histogram) -> str:
    peak = max(b.count for b in hist.bars)
    labels = [visible(b.label) for b in hist.bars]
    width = max(len(label) for label in labels)
    bars = [f"{label.ljust(width)} │{'█' * max(1, round(b.count / peak * BAR_WIDTH))} {b.count}"
            for label, b in zip(labels, hist.bars, strict=True)]
    return (f"{fenced(chr(10).join(bars))}\n\n{_inline(hist.summary)}  \n"
            f"{_inline(hist.percentiles)}")
