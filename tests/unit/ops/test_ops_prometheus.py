"""The textfile collector's file: parsed with prometheus_client, written atomically."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers.paths import FIXTURES

from bpfrun.ops.prometheus import TOP_ROWS, escape_label, render_metrics, write_textfile
from bpfrun.result import AggregationResult, AggregationRow, RunResult

parser = pytest.importorskip("prometheus_client.parser")


def fixture(name: str) -> RunResult:
    return RunResult.from_json(json.loads((FIXTURES / "results" / f"{name}.json").read_text()))


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for fam in parser.text_string_to_metric_families(text) for s in fam.samples}


def value(found: dict, name: str, **labels: str) -> float:
    hits = [v for (n, ls), v in found.items() if n == name and set(labels.items()) <= ls]
    assert len(hits) == 1, (name, labels, hits)
    return hits[0]


def test_run_status_thresholds_and_histogram_parse() -> None:
    r = fixture("runq_fired")
    text = render_metrics(r.runbook.name, r.exit_code, r, None)
    found = samples(text)
    assert value(found, "bpfrun_last_run_exit_code") == 1
    assert value(found, "bpfrun_last_run_status", status="fired") == 1
    assert value(found, "bpfrun_last_run_status", status="clean") == 0
    assert value(found, "bpfrun_threshold_fired", threshold="slow", severity="warning") == 1
    assert value(found, "bpfrun_step_duration_seconds", step="runq") == r.steps[0].seconds
    # a fired run did not fail: it is a success for the timestamp
    assert value(found, "bpfrun_last_success_timestamp_seconds") == value(
        found, "bpfrun_last_run_timestamp_seconds")
    hist = r.steps[0].aggregations["dist"].rows[0].value
    buckets = sorted((float(dict(ls)["le"]), v) for (n, ls), v in found.items()
                     if n == "bpfrun_histogram_bucket" and ("aggregation", "dist") in ls)
    counts = [v for _, v in buckets]
    assert counts == sorted(counts) and counts[-1] == hist.count  # cumulative, +Inf last
    assert value(found, "bpfrun_histogram_count", aggregation="dist") == hist.count
    assert value(found, "bpfrun_histogram_sum", aggregation="dist") == pytest.approx(
        hist.sum * 1e-6)  # us → seconds
    for line in text.splitlines():  # no timestamps: name{labels} value, nothing after
        if not line.startswith("#"):
            assert len(line.rsplit("} ", 1)[1].split()) == 1


def test_threshold_without_data_is_absent() -> None:
    r = fixture("runq_fired")
    step = r.steps[0]
    t = step.thresholds["slow"]
    r = replace(r, steps=(replace(step, thresholds={"slow": replace(t, fired=None)}),
                          *r.steps[1:]))
    found = samples(render_metrics(r.runbook.name, r.exit_code, r, None))
    assert not [k for k in found if k[0] == "bpfrun_threshold_fired"]


def test_keyed_rows_are_cut_to_the_top_and_the_rest_summed_as_other() -> None:
    r = fixture("files_clean")
    rows = tuple(AggregationRow({"comm": f"p{i}\"\\\n"}, 100 - i) for i in range(TOP_ROWS + 5))
    agg = AggregationResult("count", ("comm",), None, None, len(rows), rows)
    step = replace(r.steps[0], aggregations={"calls": agg})
    r = replace(r, steps=(step,))
    found = samples(render_metrics(r.runbook.name, r.exit_code, r, None))
    keys = {dict(ls)["key"] for (n, ls), _ in found.items() if n == "bpfrun_row"}
    assert len(keys) == TOP_ROWS + 1 and "p0\"\\\n" in keys  # escaped, parsed back
    assert value(found, "bpfrun_row", key="other") == sum(100 - i for i in range(TOP_ROWS,
                                                                                 TOP_ROWS + 5))


def test_unkeyed_numbers_and_units() -> None:
    r = fixture("files_clean")
    found = samples(render_metrics(r.runbook.name, r.exit_code, r, None))
    assert value(found, "bpfrun_value", aggregation="total", stat="count") == 33488


def test_failed_run_keeps_the_previous_success_time(tmp_path: Path) -> None:
    ok = fixture("files_clean")
    path = write_textfile(tmp_path, ok.runbook.name, 0, ok)
    first = value(samples(path.read_text()), "bpfrun_last_success_timestamp_seconds")
    failed = replace(fixture("disk_failed"), runbook=ok.runbook)
    write_textfile(tmp_path, ok.runbook.name, 4, failed)
    found = samples(path.read_text())
    assert value(found, "bpfrun_last_success_timestamp_seconds") == first
    assert value(found, "bpfrun_last_run_status", status="failed") == 1
    write_textfile(tmp_path, ok.runbook.name, 3, None, datetime(2027, 1, 1, tzinfo=UTC))
    found = samples(path.read_text())
    assert value(found, "bpfrun_last_run_status", status="error") == 1
    assert value(found, "bpfrun_last_run_exit_code") == 3
    assert value(found, "bpfrun_last_success_timestamp_seconds") == first
    assert path.name == "bpfrun_file_activity.prom" and path.stat().st_mode & 0o777 == 0o644


def test_interrupted_write_leaves_the_previous_file(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    r = fixture("files_clean")
    path = write_textfile(tmp_path, r.runbook.name, 0, r)
    before = path.read_text()

    def killed(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        write_textfile(tmp_path, r.runbook.name, 4, fixture("disk_failed"))
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left


def test_escape_label() -> None:
    assert escape_label('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
