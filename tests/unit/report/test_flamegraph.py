"""Folding stacks and drawing flame graphs: layout, escaping, determinism."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers.paths import FIXTURES

from bpfrun.report.flamegraph import (
    fold,
    fold_aggregation,
    render_svg,
    stack_files,
)
from bpfrun.report.writers import write_folded
from bpfrun.result import AggregationResult, AggregationRow, RunResult, StatsValue

SVG = "{http://www.w3.org/2000/svg}"
RESULTS = FIXTURES / "results"


def aggregation(kind: str = "sum", keys: tuple[str, ...] = ("kstack",),
                rows: tuple[AggregationRow, ...] = (), **files: str) -> AggregationResult:
    return AggregationResult(kind, keys, None, None, len(rows), rows, **files)


@dataclass
class Frame:
    title: str
    name: str
    x: float
    y: float
    width: float
    fill: str
    label: str | None


def frames_of(svg: str) -> list[Frame]:
    """Every frame of a rendered graph: its tooltip, rect geometry, fill and label."""
    out = []
    for g in ET.fromstring(svg).iter(f"{SVG}g"):
        rect, title, text = g.find(f"{SVG}rect"), g.find(f"{SVG}title"), g.find(f"{SVG}text")
        if rect is None or title is None:
            continue
        tip = title.text or ""
        out.append(Frame(tip, tip.rsplit(" (", 1)[0], float(rect.attrib["x"]),
                         float(rect.attrib["y"]), float(rect.attrib["width"]),
                         rect.attrib["fill"], text.text if text is not None else None))
    return out


def by_name(svg: str) -> dict[str, Frame]:
    return {f.name: f for f in frames_of(svg)}


def test_fold_turns_innermost_first_frames_into_root_first_lines() -> None:
    folded = fold([
        (["schedule_[k]", "worker", "main"], 3),
        (["schedule_[k]", "worker", "main"], 2),
        (["idle", "main"], 4),
    ])
    assert folded == {"main;idle": 4, "main;worker;schedule_[k]": 5}


def test_fold_drops_empty_weights_and_keeps_lines_parseable() -> None:
    folded = fold([(["a;b", "x\ny"], 1), (["never"], 0), ([], 2)])
    assert folded == {"x y;a:b": 1, "[no frames]": 2}


def test_write_folded_is_sorted_and_deterministic(tmp_path: Path) -> None:
    folded = {"main;zeta": 1, "main;alpha;leaf": 7, "idle": 3}
    write_folded(folded, tmp_path / "a.folded")
    write_folded(dict(reversed(list(folded.items()))), tmp_path / "b.folded")
    text = (tmp_path / "a.folded").read_text()
    assert text == "idle 3\nmain;alpha;leaf 7\nmain;zeta 1\n"
    assert (tmp_path / "b.folded").read_text() == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.folded", "b.folded"]  # no temp


def test_svg_parses_and_widths_are_proportional_to_inclusive_values() -> None:
    folded = {"main;a;x": 3, "main;a;y": 1, "main;b": 4}
    frames = by_name(render_svg(folded, "test"))
    total = 8
    full = frames["all"].width
    assert frames["main"].width == pytest.approx(full)
    for name, value in {"a": 4, "b": 4, "x": 3, "y": 1}.items():
        assert frames[name].width == pytest.approx(full * value / total, abs=0.02)
    # A parent is exactly as wide as its children together (no self time here).
    children = frames["x"].width + frames["y"].width
    assert frames["a"].width == pytest.approx(children, abs=0.02)
    assert frames["main"].width == pytest.approx(frames["a"].width + frames["b"].width, abs=0.02)
    # Children sit side by side inside their parent, sorted by name.
    assert frames["a"].x == pytest.approx(frames["main"].x)
    assert frames["b"].x == pytest.approx(frames["a"].x + frames["a"].width, abs=0.02)
    assert frames["y"].x == pytest.approx(frames["x"].x + frames["x"].width, abs=0.02)


def test_root_is_at_the_bottom_and_each_level_is_above_its_parent() -> None:
    frames = by_name(render_svg({"main;a;x": 1}, "t"))
    ys = [frames[n].y for n in ("all", "main", "a", "x")]
    assert ys == sorted(ys, reverse=True)
    assert len(set(ys)) == 4


def test_tooltips_give_value_unit_and_share() -> None:
    frames = by_name(render_svg({"main;a;x": 3, "main;a;y": 1, "main;b": 4}, "t"))
    assert frames["x"].title == "x (3 samples, 37.50%)"
    assert frames["all"].title == "all (8 samples, 100.00%)"
    durations = by_name(render_svg({"main;wait": 2_350_000_000}, "t", unit="ns"))
    assert durations["wait"].title == "wait (2.35s, 100.00%)"


def test_kernel_frames_get_another_hue_and_lose_their_annotation_in_labels() -> None:
    frames = frames_of(render_svg({"main;read;vfs_read_[k]": 5}, "t"))
    kernel = next(f for f in frames if f.name == "vfs_read")
    user = next(f for f in frames if f.name == "read")
    r, g, b = map(int, re.findall(r"\d+", kernel.fill))
    assert g >= 90 and b <= 55  # orange: green well up, blue down
    ur, ug, ub = map(int, re.findall(r"\d+", user.fill))
    assert ug == ub  # red shades: green and blue move together
    assert kernel.label == "vfs_read"


def test_colours_are_deterministic_per_name() -> None:
    one = render_svg({"main;a": 1, "main;b": 2}, "t")
    two = render_svg({"main;b": 2, "main;a": 1}, "t")
    assert one == two
    fills = {f.name: f.fill for f in frames_of(one)}
    again = {f.name: f.fill for f in frames_of(render_svg({"x;a": 9}, "t"))}
    assert fills["a"] == again["a"]


def test_names_and_title_are_escaped_for_xml() -> None:
    evil = 'op<script>alert("x")</script>&amp\x01'
    svg = render_svg({f"main;{evil}": 2}, 'title <with> "quotes" & more')
    root = ET.fromstring(svg)  # would raise on bad escaping or an invalid character
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert 'title <with> "quotes" & more' in texts
    assert "<script>" not in svg
    titles = [t.text or "" for t in root.iter(f"{SVG}title")]
    assert any(t.startswith('op<script>alert("x")</script>&amp\ufffd') for t in titles)


def test_long_labels_are_cut_to_fit_and_narrow_frames_have_none() -> None:
    long = "a_really_long_function_name_that_cannot_fit_in_a_narrow_frame"
    frames = by_name(render_svg({f"main;{long}": 8, "main;other": 92}, "t"))
    label = str(frames[long].label)
    assert label.endswith("..")
    assert long.startswith(label[:-2])
    assert len(label) * 12 * 0.59 <= frames[long].width
    tiny = by_name(render_svg({"main;tiny": 1, "main;big": 1000}, "t"))
    assert tiny["tiny"].label is None


def test_empty_input_still_gives_a_valid_graph_saying_no_data() -> None:
    svg = render_svg({}, "nothing here")
    root = ET.fromstring(svg)
    assert "no data" in [t.text for t in root.iter(f"{SVG}text")]
    assert frames_of(svg) == []


def test_fold_aggregation_puts_user_under_kernel_and_other_keys_at_the_root() -> None:
    result = RunResult.from_json(json.loads((RESULTS / "disk_failed.json").read_text()))
    agg = result.steps[1].aggregations["samples"]
    folded = fold_aggregation(agg)
    assert folded["swapper/0;cpu_startup_entry_[k];do_idle_[k];default_idle_[k];"
                  "pv_native_safe_halt_[k]"] == 3910
    line = next(k for k in folded if k.endswith("copy_page_[k]"))
    assert line.startswith("mysqld;clone3;start_thread;")
    assert ";os_file_write_func;blk_mq_submit_bio_[k];copy_page_[k]" in line
    assert sum(folded.values()) == 5120 + 3910 + 2210 + 640


def test_fold_aggregation_marks_kernel_frames_and_weights_stats_by_sum() -> None:
    agg = aggregation("stats", ("kstack",), rows=(AggregationRow(
        {"kstack": ["schedule", "do_nanosleep"]}, StatsValue(3, 1500, 1, 1000, 500)),))
    assert fold_aggregation(agg) == {"do_nanosleep_[k];schedule_[k]": 1500}
    # An aggregation of a result.json document is read first.
    assert fold_aggregation(agg.to_json()) == fold_aggregation(agg)


def test_stack_files_come_from_the_result_or_default_and_never_leave_the_dir() -> None:
    assert stack_files("offcpu", "stacks", aggregation(folded="x.folded", svg="x.svg")) == \
        ("x.folded", "x.svg")
    assert stack_files("offcpu", "stacks", aggregation()) == \
        ("offcpu-stacks.folded", "offcpu-stacks.svg")
    assert stack_files("s", "a", aggregation(folded="../../etc/cron.d/x", svg="/tmp/y.svg")) \
        == ("x", "y.svg")
