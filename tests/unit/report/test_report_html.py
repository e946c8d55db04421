"""report.html from recorded result documents (no BPF, no browser): the same report as report.md,
self-contained, and inert whatever strings the kernel handed over."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from html.parser import HTMLParser
from typing import Any

import pytest
from helpers.paths import FIXTURES

from bpfrun.report.flamegraph import fold_aggregation, render_svg
from bpfrun.report.html import render_html
from bpfrun.report.markdown import render_markdown

RESULTS = FIXTURES / "results"
SVG = "{http://www.w3.org/2000/svg}"
VOID = {"meta", "br", "hr", "img", "input", "link", "wbr", "col", "area", "base", "source"}
HOSTILE = '</svg></pre></code><script>alert(1)</script><img src=x onerror=alert(2)>"\'&'


def load(name: str) -> dict[str, Any]:
    return json.loads((RESULTS / f"{name}.json").read_text())


class Page(HTMLParser):
    """Checks that tags nest and close, and collects headings, ids and text by element."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.headings: list[str] = []
        self._heading: list[str] | None = None
        self.feed(html)
        self.close()
        if self.stack:
            self.errors.append(f"unclosed: {self.stack}")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag in ("h2", "h3"):
            self._heading = []
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()
        if tag in ("h2", "h3") and self._heading is not None:
            self.headings.append("".join(self._heading))
            self._heading = None

    def handle_data(self, data: str) -> None:
        if self._heading is not None:
            self._heading.append(data)


def element(html: str, ident: str) -> str:
    """The source of the <section> or <figure> with id `ident` (sections nest; count them)."""
    start = html.index(f'id="{ident}"')
    start = html.rindex("<", 0, start)
    tag = re.match(r"<(\w+)", html[start:]).group(1)  # type: ignore[union-attr]
    depth, pos = 0, start
    for m in re.finditer(rf"<(/?){tag}\b", html[start:]):
        depth += -1 if m.group(1) else 1
        if depth == 0:
            pos = start + m.end()
            break
    return html[start: html.index(">", pos) + 1]


@pytest.fixture
def fired() -> str:
    return render_html(load("runq_fired"), {"runq": "if (a < b && c > d) return 0;\n"})


@pytest.fixture
def clean() -> str:
    return render_html(load("files_clean"))


def test_page_is_one_well_formed_self_contained_document(fired: str) -> None:
    page = Page(fired)
    assert page.errors == []
    assert fired.startswith("<!DOCTYPE html>\n<html lang=\"en\">")
    assert "<title>CPU run-queue latency</title>" in fired
    tags = {t for t, _ in page.tags}
    assert "script" not in tags and "link" not in tags and "iframe" not in tags
    assert not [a for _, attrs in page.tags for a in attrs if a == "src" or a.startswith("on")]
    csp = [a.get("content") for t, a in page.tags if a.get("http-equiv") ==
           "Content-Security-Policy"]
    assert csp == ["default-src 'none'; style-src 'unsafe-inline'; img-src data:"]
    assert "<style>" in fired


def test_html_has_the_same_sections_as_markdown_in_the_same_order() -> None:
    for name in ("runq_fired", "files_clean", "disk_failed"):
        result = load(name)
        md = render_markdown(result, {"runq": "int x;\n"})
        md_heads = [re.sub(r"\\(.)", r"\1", h).replace("`", "")
                    for h in re.findall(r"^#{2,3} (.*)$", md, re.M)]
        assert Page(render_html(result, {"runq": "int x;\n"})).headings == md_heads, name


def test_findings_come_first_with_severity_badges(fired: str) -> None:
    assert fired.index('id="findings"') < fired.index('id="step-runq"') \
        < fired.index('id="step-offcpu"')
    findings = element(fired, "findings")
    assert '<span class="badge tone-warning">WARNING</span> <code>runq.slow</code>: ' \
           "p99 run-queue latency is 8.19ms (limit 1ms)" in findings
    assert "<code>runq.culprit</code> = hog_thread" in findings
    assert '<section class="l2 tone-fired" id="findings">' in findings


def test_skipped_step_says_why(clean: str) -> None:
    step = element(clean, "step-fsync_stacks")
    assert step.startswith('<section class="l2 tone-skipped" id="step-fsync_stacks">')
    assert "<p><strong>Status:</strong> skipped.</p>\n" \
           "<blockquote><p>steps.writes.heavy is false</p></blockquote>" in step


def test_histogram_is_drawn_as_bars_proportional_to_counts(fired: str) -> None:
    dist = element(fired, "runq-dist")
    bars = re.findall(r'<td class="label">(.*?)</td><td class="bar"><div style="width:([\d.]+)%">'
                      r'</div></td><td class="num">(\d+)</td>', dist)
    assert len(bars) == 11  # non-empty buckets only, as in report.md
    widths = {label: float(w) for label, w, _ in bars}
    assert widths["[8, 16) us"] == 100.0
    assert widths["[4, 8) us"] == pytest.approx(100 * 160 / 498, abs=0.01)
    for _, w, count in bars:
        assert float(w) == pytest.approx(100 * int(count) / 498, abs=0.01)
    assert "count 900, min 1.2us, avg 49us, max 10ms<br>p50 ≤ 16us, p90 ≤ 32us, p99 ≤ 8.19ms" \
        in dist


def test_tables_truncate_with_a_count_of_the_rest(clean: str) -> None:
    calls = element(clean, "step-writes")
    calls = calls[calls.index('id="writes-calls"'):]
    assert calls[: calls.index("</table>")].count("<tr>") == 1 + 5
    assert "<p>… and 52 more rows</p>" in calls
    events = clean[clean.index("Events from"):]
    assert events[: events.index("</table>")].count("<tr>") == 1 + 20
    assert "3 more rows not shown (they are in result.json)." in events
    assert "480 events dropped past the limit." in events


def test_flame_graph_is_inlined_with_widths_matching_the_stacks(fired: str) -> None:
    figure = element(fired, "offcpu-stacks-flamegraph")
    svg_text = figure[figure.index("<svg"): figure.index("</svg>") + 6]
    assert "<?xml" not in figure
    agg = load("runq_fired")["steps"][1]["aggregations"]["stacks"]
    expected = render_svg(fold_aggregation(agg), "Where the delayed task waits: stacks", "ns",
                          id_prefix="offcpu-stacks-flamegraph-", standalone=False)
    assert svg_text + "\n" == expected
    svg = ET.fromstring(svg_text)
    rects = {g.find(f"{SVG}title").text: float(g.find(f"{SVG}rect").attrib["width"])  # type: ignore[union-attr]
             for g in svg.iter(f"{SVG}g")}
    total = sum(int(round(r["value"])) for r in agg["rows"])
    root = next(w for t, w in rects.items() if t and t.startswith("all "))
    assert root == pytest.approx(1180, abs=0.01)
    fusion = next(w for t, w in rects.items() if t and t.startswith("fusion_worker_main "))
    assert fusion / root == pytest.approx(
        sum(int(round(r["value"])) for r in agg["rows"]
            if "fusion_worker_main" in r["key"]["begin.ustack"]) / total, abs=1e-3)
    assert 'href="offcpu-stacks.svg"' in figure and 'href="offcpu-stacks.folded"' in figure
    assert 'fill="url(#offcpu-stacks-flamegraph-background)"' in figure


def test_several_flame_graphs_keep_their_ids_apart() -> None:
    result = load("runq_fired")
    step = result["steps"][1]
    step["aggregations"]["again"] = dict(step["aggregations"]["stacks"], svg="b.svg",
                                         folded="b.folded")
    html = render_html(result)
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids))
    assert html.count("<svg ") == 2


def test_given_folded_stacks_win_over_the_rows() -> None:
    html = render_html(load("runq_fired"), {}, {"offcpu.stacks": {"main;only_this_[k]": 7}})
    figure = element(html, "offcpu-stacks-flamegraph")
    assert "only_this (7ns, 100.00%)" in figure and "fusion_worker_main" not in figure


def test_generated_c_is_escaped_in_a_collapsed_block(fired: str) -> None:
    runq = element(fired, "step-runq")
    assert '<details class="program"><summary>Generated C (runq.c)</summary>' in runq
    assert "if (a &lt; b &amp;&amp; c &gt; d) return 0;" in runq
    assert "<details" not in element(fired, "step-offcpu")


def test_every_kernel_string_is_escaped() -> None:
    result = load("runq_fired")
    result["runbook"]["title"] = HOSTILE
    result["runbook"]["description"] = HOSTILE + "\n\nuse `x<y`"
    result["params"]["comm"] = HOSTILE
    result["findings"][0]["message"] = HOSTILE
    runq, offcpu = result["steps"]
    runq["aggregations"]["slow_by"]["rows"][0]["key"]["args.next_comm"] = HOSTILE
    runq["aggregations"]["dist"]["unit"] = HOSTILE
    offcpu["aggregations"]["stacks"]["rows"][0]["key"]["begin.ustack"][0] = HOSTILE
    offcpu["status"], offcpu["reason"] = "failed", HOSTILE + "\nsecond line"
    offcpu["id"] = HOSTILE
    html = render_html(result, {"runq": HOSTILE})
    page = Page(html)
    assert page.errors == []
    assert {"script", "img"}.isdisjoint(t for t, _ in page.tags)
    assert not [a for _, attrs in page.tags for a in attrs if a.startswith("on")]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<code>x&lt;y</code>" in html  # the runbook's own `code` is kept, escaped
    assert html.count("<svg ") == 1 and html.count("</svg>") == 1


def test_control_characters_are_shown_not_acted_on(clean: str) -> None:
    assert "<td>/tmp/evil`name\\x0a| x</td>" in clean
    assert "a|b&lt;script&gt;" in clean


def test_output_is_deterministic() -> None:
    result = load("disk_failed")
    assert render_html(result) == render_html(json.loads(json.dumps(result)))


MARKDOWN = """Find **who** held the CPU and where *victim* waits; see `runq.slow`.

- first ~~guess~~ check
- then read [the docs](https://docs.kernel.org/scheduler/ "sched") or <oncall@example.com>

| symptom | action |
|---|--:|
| p99 high | page `#sched` |
"""

INJECTIONS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(2)>",
    "a <span onclick=alert(3)>inline</span> b",
    "<div>\n<iframe src=javascript:alert(4)></iframe>\n</div>",
    "[click](javascript:alert(5)) [two](JaVaScRiPt:alert(6)) [three](java&#x73;cript:alert(7))",
    "[ref][r]\n\n[r]: javascript:alert(8)",
    "<javascript:alert(9)> [d](data:text/html,<script>alert(10)</script>) [v](vbscript:x)",
    "[f](file:///etc/passwd) [p](//fileserver/share) [rel](../secret)",
    "[q](http://a\"onmouseover=alert(11))",
    "&lt;script&gt;alert(12)&lt;/script&gt; &#60;script&#62;alert(13)&#60;/script&#62;",
    "</p></section></main></body><script>alert(14)</script>",
    '<meta http-equiv="Content-Security-Policy" content="default-src *">',
    "![x](http://tracker.example/pixel.png) ![](data:image/png;base64,AAAA)",
]


def with_prose(description: str, why: str = "") -> str:
    result = load("runq_fired")
    result["runbook"]["description"] = description
    if why:
        result["steps"][0]["why"] = why
    return render_html(result)


def prose_of(html: str) -> str:
    """The description: what lies between the page's navigation and its run table."""
    return html[html.index("</nav>") + 7: html.index('<table class="meta">')]


def test_runbook_markdown_is_rendered() -> None:
    html = with_prose(MARKDOWN, why="Stacks of `comm` weighted by *time* off-CPU.")
    description = prose_of(html)
    assert Page(html).errors == []
    assert ("<p>Find <strong>who</strong> held the CPU and where <em>victim</em> waits; see "
            "<code>runq.slow</code>.</p>") in description
    assert "<li>first <s>guess</s> check</li>" in description
    assert '<a href="https://docs.kernel.org/scheduler/" title="sched">the docs</a>' \
        in description
    assert '<a href="mailto:oncall@example.com">oncall@example.com</a>' in description
    assert '<th style="text-align:right">action</th>' in description
    assert "<td>p99 high</td>" in description and "<code>#sched</code>" in description
    assert "*" not in description
    assert "<p>Stacks of <code>comm</code> weighted by <em>time</em> off-CPU.</p>" \
        in element(html, "step-runq")


def test_recorded_runbook_prose_renders_its_code(fired: str) -> None:
    assert "Kernel and user stacks of <code>fusion_thread</code> at the moment it left the " \
           "CPU,\nweighted by how long it stayed off." in element(fired, "step-offcpu")


@pytest.mark.parametrize("text", INJECTIONS)
def test_runbook_markdown_cannot_inject_markup(text: str) -> None:
    html = with_prose(text, why=text)
    page = Page(html)
    assert page.errors == []
    added = Counter(t for t, _ in page.tags) - Counter(t for t, _ in Page(with_prose("x")).tags)
    assert set(added) <= {"p", "a"}, added  # the prose's paragraphs and its allowed links
    assert not [a for _, attrs in page.tags for a in attrs if a.startswith("on") or a == "src"]
    hrefs = [str(attrs["href"]) for t, attrs in page.tags if t == "a"]
    assert all(re.match(r"(https?:|mailto:|#|[\w.-]+\.(c|svg|folded)$)", h) for h in hrefs), hrefs
    assert all(set(attrs) <= {"href", "title"} for t, attrs in page.tags if t == "a")
    csp = [a.get("content") for t, a in page.tags if a.get("http-equiv")]
    assert csp == ["default-src 'none'; style-src 'unsafe-inline'; img-src data:"]
    assert "<script" not in html and "<img" not in html


def test_refused_links_stay_as_the_text_the_author_wrote() -> None:
    description = prose_of(with_prose("[click](javascript:alert(1)) and [see](#findings)"))
    assert description == '<p>[click](javascript:alert(1)) and <a href="#findings">see</a></p>\n'


def test_images_become_links_so_the_page_loads_nothing() -> None:
    description = prose_of(with_prose("![a *graph*](https://example.com/g.png) ![](https://e/x)"))
    assert description == ('<p><a href="https://example.com/g.png">a graph</a> '
                           '<a href="https://e/x">https://e/x</a></p>\n')


def test_runbook_headings_sit_below_the_section_that_holds_them() -> None:
    html = with_prose("# Overview\n\n## Detail\n\n###### Deep\n\nSetext\n===",
                      why="# Why\n\ntext")
    assert [t for t, _ in Page(html).tags].count("h1") == 1
    assert "<h2>Overview</h2>\n<h3>Detail</h3>\n<h6>Deep</h6>\n<h2>Setext</h2>" in prose_of(html)
    assert "<h3>Why</h3>\n<p>text</p>" in element(html, "step-runq")


def test_runbook_control_characters_are_shown_not_acted_on() -> None:
    assert prose_of(with_prose("bell\x07 esc\x1b[31m\r\nnext")) == \
        "<p>bell\\x07 esc\\x1b[31m\nnext</p>\n"


def test_runbook_markdown_output_is_deterministic() -> None:
    assert with_prose(MARKDOWN + "\n# h\n" + "\n".join(INJECTIONS)) == \
        with_prose(MARKDOWN + "\n# h\n" + "\n".join(INJECTIONS))
