"""HTML reporter: the report's blocks (`bpfrun.report.document`) → one self-contained page.

report.html says what report.md says, for people who open it in a browser: styles inline,
flame graphs inlined as SVG (hover a frame for its name and share), histograms as bars, the
generated C collapsed. Nothing is fetched and nothing runs: the page carries no script, and
its Content-Security-Policy forbids scripts and remote loads, so even a kernel string that
slipped through escaping could not act. Every string goes through `html.escape`, with
control characters shown rather than acted on.

The runbook author's Markdown (`Prose`: description, why) is rendered by markdown-it-py as
CommonMark plus the two GitHub extensions an on-call reader meets in runbooks (tables,
strikethrough), so it reads as it does in report.md on GitHub. Raw HTML in it is shown as
text, links keep only http, https, mailto and in-page `#anchors`, images become links (the
page loads nothing), and its headings sit below the section that holds them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import cache
from html import escape
from typing import Any
from urllib.parse import quote

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import OptionsDict

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
from bpfrun.report.flamegraph import render_svg

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

STYLE = """
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --soft: #f6f8fa; --bar: #4c78a8; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff; line-height: 1.5;
  font: 15px/1.5 -apple-system, "Segoe UI", "Noto Sans", Helvetica, Arial, sans-serif; }
main { max-width: 1260px; margin: 0 auto; padding: 24px 32px 64px; }
h1 { font-size: 1.9em; margin: 0 0 .3em; }
h2 { font-size: 1.4em; margin: 0 0 .6em; padding-bottom: .2em;
  border-bottom: 1px solid var(--line); }
h3 { font-size: 1.12em; margin: 1.4em 0 .5em; }
section.l2 { margin: 28px 0; padding-left: 14px; border-left: 4px solid var(--line); }
section.tone-ran { border-left-color: #1a7f37; }
section.tone-skipped { border-left-color: #afb8c1; }
section.tone-failed, section.tone-fired { border-left-color: #cf222e; }
section.l2.tone-fired h2, section.l2.tone-failed h2 { color: #a40e26; }
section.tone-clean { border-left-color: #1a7f37; }
nav { color: var(--muted); margin: 0 0 18px; }
nav a { color: inherit; }
a { color: #0969da; }
code, pre { font-family: ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", Menlo, monospace;
  font-size: 0.88em; }
code { background: var(--soft); padding: .1em .35em; border-radius: 4px; }
pre { background: var(--soft); padding: 10px 12px; border-radius: 6px; overflow-x: auto; }
pre code { background: none; padding: 0; }
blockquote { margin: 0 0 1em; padding: .2em 1em; color: var(--muted);
  border-left: 4px solid #d0a03a; background: #fff8e6; }
table { border-collapse: collapse; margin: 0 0 1em; }
th, td { border: 1px solid var(--line); padding: 4px 10px; text-align: left;
  vertical-align: top; overflow-wrap: anywhere; }
thead th { background: var(--soft); white-space: nowrap; overflow-wrap: normal; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.meta th { background: var(--soft); font-weight: 600; white-space: nowrap; }
.badge { display: inline-block; padding: 0 .5em; border-radius: 10px; font-size: .85em;
  font-weight: 600; color: #fff; background: var(--muted); }
.badge.tone-critical, .badge.tone-failed { background: #cf222e; }
.badge.tone-warning, .badge.tone-fired { background: #bc4c00; }
.badge.tone-info { background: #0969da; }
.badge.tone-clean, .badge.tone-ran { background: #1a7f37; }
table.hist { border: none; font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace;
  font-size: .85em; width: 100%; max-width: 900px; }
table.hist td { border: none; padding: 1px 6px; }
table.hist td.label { white-space: nowrap; text-align: right; color: var(--muted); width: 1%; }
table.hist td.bar { width: 100%; }
table.hist div { background: var(--bar); height: 14px; border-radius: 2px; min-width: 2px; }
table.hist td.num { width: 1%; }
p.summary { color: var(--muted); }
figure.flame { margin: 0 0 1em; }
figure.flame svg { display: block; width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: .9em; margin-top: 4px; }
details { margin: 0 0 1em; }
summary { cursor: pointer; color: var(--muted); }
"""

_PRE_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f]")
_PROSE_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # \r is a line break there
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_LINK_SCHEMES = frozenset({"http", "https", "mailto"})


def render_html(result: Mapping[str, Any], programs: Mapping[str, str] | None = None,
                folded: Mapping[str, Mapping[str, int]] | None = None) -> str:
    """report.html of a result document (`programs` and `folded` as for `build_document`)."""
    return html_text(build_document(result, programs, folded))


def html_text(doc: Document) -> str:
    nav = [(s.anchor, s.title) for s in doc.blocks if isinstance(s, Section) and s.anchor]
    links = " · ".join(f'<a href="#{_attr(a)}">{_inline(t)}</a>' for a, t in nav)
    body = "\n".join(_block(b, 1) for b in doc.blocks)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="generator" content="bpfrun">\n'
        f"<title>{_text(doc.title)}</title>\n<style>{STYLE}</style>\n</head>\n"
        f'<body class="status-{_attr(doc.status)}">\n<main>\n<h1>{_text(doc.title)}</h1>\n'
        f"<nav>{links}</nav>\n{body}\n</main>\n</body>\n</html>\n"
    )


def _text(value: object) -> str:
    return escape(visible(value))


def _attr(value: object) -> str:
    return escape(visible(value), quote=True)


def _inline(pieces: Inline) -> str:
    out = []
    for p in pieces:
        if isinstance(p, str):
            out.append(_text(p))
        elif isinstance(p, Code):
            out.append(f"<code>{_text(p.text)}</code>")
        elif isinstance(p, Strong):
            out.append(f"<strong>{_text(p.text)}</strong>")
        elif isinstance(p, Badge):
            out.append(f'<span class="badge tone-{_attr(p.tone)}">{_text(p.text)}</span>')
        elif isinstance(p, Link):
            out.append(_link(p.text, p.href))
        elif isinstance(p, Break):
            out.append("<br>")
        elif isinstance(p, InlineMarkdown):
            out.append(_markdown().renderInline(
                _PROSE_CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", p.text)))
    return "".join(out)


def _link(text: str, href: str) -> str:
    return f'<a href="{_attr(quote(href))}">{_text(text)}</a>'


def _block(block: Block, level: int) -> str:
    """`block` inside a heading of `level` (1: the page's title)."""
    if isinstance(block, Section):
        ident = f' id="{_attr(block.anchor)}"' if block.anchor else ""
        tone = f" tone-{_attr(block.tone)}" if block.tone else ""
        inner = "\n".join(_block(b, block.level) for b in block.blocks)
        return (f'<section class="l{block.level}{tone}"{ident}>\n'
                f"<h{block.level}>{_inline(block.title)}</h{block.level}>\n{inner}\n</section>")
    if isinstance(block, Para):
        return f"<p>{_inline(block.text)}</p>"
    if isinstance(block, Prose):
        return _prose(block.text, level)
    if isinstance(block, Quote):
        lines = block.text.splitlines() or [""]
        return f"<blockquote><p>{'<br>'.join(_text(line) for line in lines)}</p></blockquote>"
    if isinstance(block, BulletList):
        return "<ul>\n" + "\n".join(f"<li>{_inline(i)}</li>" for i in block.items) + "\n</ul>"
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Histogram):
        return _histogram(block)
    if isinstance(block, Preformatted):
        return f"<pre>{_pre(block.text)}</pre>"
    if isinstance(block, FlameGraph):
        return _flame_graph(block)
    if isinstance(block, Program):
        return (f'<details class="program"><summary>Generated C ({_text(block.file)})</summary>\n'
                f"<p>{_link(block.file, block.file)}</p>\n"
                f'<pre><code class="language-c">{_pre(block.text.rstrip())}</code></pre>\n'
                "</details>")
    raise TypeError(f"no HTML for {type(block).__name__}")


def _prose(text: str, level: int) -> str:
    """The runbook's Markdown as HTML, its headings below the enclosing heading `level`."""
    md = _markdown()
    tokens = md.parse(_PROSE_CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text))
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(6, level + int(token.tag[1:]))}"
    return md.renderer.render(tokens, md.options, {}).rstrip("\n")


class _ProseMarkdown(MarkdownIt):
    """markdown-it-py with links limited to schemes that navigate and nothing else."""

    def validateLink(self, url: str) -> bool:
        scheme = _SCHEME.match(url)
        if scheme:
            return scheme.group(1).lower() in _LINK_SCHEMES
        # A path would resolve against the report's file:// address, "//host/x" to a file
        # server; an in-page anchor ("see #findings") is the one safe relative link.
        return url.startswith("#")


class _ProseRenderer(RendererHTML):
    def image(self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: Any) -> str:
        """A link to the image, not the image: the page fetches nothing and works offline."""
        token = tokens[idx]
        src = str(token.attrGet("src") or "")
        text = self.renderInlineAsText(token.children or [], options, env) or src
        return f'<a href="{escape(src, quote=True)}">{escape(text)}</a>'


@cache
def _markdown() -> MarkdownIt:
    md = _ProseMarkdown("commonmark", {"html": False, "xhtmlOut": False},
                        renderer_cls=_ProseRenderer)
    return md.enable(["table", "strikethrough"])


def _pre(text: str) -> str:
    """Several lines of data: line breaks and tabs kept, other control characters shown."""
    return escape(_PRE_CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text))


def _table(table: Table) -> str:
    def cell(tag: str, content: Inline, numeric: bool) -> str:
        cls = ' class="num"' if numeric else ""
        return f"<{tag}{cls}>{_inline(content)}</{tag}>"

    if not any(table.head):  # key/value pairs: the key is the row's header
        rows = [f"<tr><th scope=\"row\">{_inline(r[0])}</th>"
                + "".join(cell("td", c, n) for c, n in zip(r[1:], table.numeric[1:], strict=True))
                + "</tr>" for r in table.rows]
        return '<table class="meta">\n' + "\n".join(rows) + "\n</table>"
    head = "".join(cell("th", h, n) for h, n in zip(table.head, table.numeric, strict=True))
    rows = ["<tr>" + "".join(cell("td", c, n) for c, n in zip(r, table.numeric, strict=True))
            + "</tr>" for r in table.rows]
    return (f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(rows)
            + "\n</tbody>\n</table>")


def _histogram(hist: Histogram) -> str:
    peak = max(b.count for b in hist.bars)
    rows = [f'<tr><td class="label">{_text(b.label)}</td><td class="bar">'
            f'<div style="width:{100 * b.count / peak:.2f}%"></div></td>'
            f'<td class="num">{b.count}</td></tr>' for b in hist.bars]
    return ('<table class="hist">\n' + "\n".join(rows) + "\n</table>\n"
            f'<p class="summary">{_inline(hist.summary)}<br>{_inline(hist.percentiles)}</p>')


def _flame_graph(graph: FlameGraph) -> str:
    svg = render_svg(graph.stacks, graph.title, graph.unit, id_prefix=f"{graph.anchor}-",
                     standalone=False, baseline=graph.baseline, reverse=graph.reverse)
    return (f'<figure class="flame" id="{_attr(graph.anchor)}">\n{svg}'
            f"<figcaption>Flame graph (hover a frame for its name and share): "
            f"{_link(graph.svg, graph.svg)} · folded stacks: {_link(graph.folded, graph.folded)}"
            "</figcaption>\n</figure>")
