"""The differential flame graph: widths from AFTER, red where AFTER has more, blue where less;
its reverse draws BEFORE so that vanished stacks show (blue)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from helpers.paths import FIXTURES

from bpfrun.diff import compare_runs, load_run, write_diff
from bpfrun.report.flamegraph import WIDTH, XPAD, diff_colour, render_svg

SVG = "{http://www.w3.org/2000/svg}"
BEFORE = {"main;work;spin": 100, "main;work;wait": 100, "main;gone": 50}
AFTER = {"main;work;spin": 300, "main;work;wait": 100, "main;new": 100}


def frames(svg: str) -> dict[str, tuple[float, str]]:
    """Frame name → (width in px, fill)."""
    out = {}
    for g in ET.fromstring(svg).iter(f"{SVG}g"):
        rect, title = g.find(f"{SVG}rect"), g.find(f"{SVG}title")
        if rect is not None and title is not None:
            name = (title.text or "").split(" (", 1)[0]
            out[name] = (float(rect.attrib["width"]), rect.attrib["fill"])
    return out


def red(fill: str) -> bool:
    r, g, b = map(int, re.findall(r"\d+", fill))
    return r == 255 and g == b < 210


def blue(fill: str) -> bool:
    r, g, b = map(int, re.findall(r"\d+", fill))
    return b == 255 and r == g < 210


def test_widths_are_after_s_values_and_colours_follow_the_sign_of_the_change() -> None:
    graph = frames(render_svg(AFTER, "t", baseline=BEFORE))
    px = (WIDTH - 2 * XPAD) / sum(AFTER.values())
    assert graph["spin"][0] == round(300 * px, 2) and graph["new"][0] == round(100 * px, 2)
    assert graph["work"][0] == round(400 * px, 2)
    assert "gone" not in graph  # nothing of it in AFTER: the reverse graph shows it
    assert red(graph["spin"][1]) and red(graph["new"][1]) and red(graph["work"][1])
    assert graph["wait"][1] == "rgb(250,250,250)"  # unchanged: white
    # The largest change (main: +250) is the deepest red; spin's +200 a little lighter.
    assert graph["main"][1] == diff_colour(250, 250) == "rgb(255,0,0)"
    assert graph["spin"][1] == diff_colour(200, 250) == "rgb(255,41,41)"


def test_the_reverse_graph_draws_before_and_shows_vanished_stacks_in_blue() -> None:
    graph = frames(render_svg(BEFORE, "t", baseline=AFTER, reverse=True))
    px = (WIDTH - 2 * XPAD) / sum(BEFORE.values())
    assert graph["gone"][0] == round(50 * px, 2)
    assert blue(graph["gone"][1])
    assert red(graph["spin"][1])  # still red: more in AFTER
    assert "new" not in graph


def test_the_comparison_folder_holds_both_graphs_and_their_stacks(tmp_path: Path) -> None:
    results = FIXTURES / "results"
    diff = compare_runs(load_run(results / "runq_fired.json"),
                        load_run(results / "runq_split_clean.json"))
    written = write_diff(tmp_path, diff)
    assert set(written) == {"md", "html", "json"}
    svg = (tmp_path / "diff-offcpu-stacks.svg").read_text()
    reverse = (tmp_path / "diff-offcpu-stacks-reverse.svg").read_text()
    assert any(red(f) for _, f in frames(svg).values())
    assert blue(frames(reverse)["fusion_wait_for_work"][1])
    folded = (tmp_path / "diff-offcpu-stacks.folded").read_text()
    assert "fusion_spin" in folded and "fusion_wait_for_work" not in folded
    html = (tmp_path / "report.html").read_text()
    assert html.count("<svg") >= 2 and "runq.slow no longer fires" in html
    assert oct(tmp_path.joinpath("diff.json").stat().st_mode & 0o777) == "0o600"
