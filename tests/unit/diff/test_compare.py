"""Comparing two result.json fixtures: runq_fired (hog on the victim's CPU) and
runq_split_clean (moved away: the tail gone, the threshold quiet, the hog absent)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from helpers.paths import FIXTURES

from bpfrun.diff import RunDiff, compare_runs, load_run
from bpfrun.diff.document import diff_document, factor_text
from bpfrun.diff.validate import validate_diff
from bpfrun.errors import EXIT_INVALID, UsageError
from bpfrun.report.markdown import markdown_text
from bpfrun.result import RunResult

RESULTS = FIXTURES / "results"


@pytest.fixture()
def fired() -> RunResult:
    return load_run(RESULTS / "runq_fired.json")


@pytest.fixture()
def split() -> RunResult:
    return load_run(RESULTS / "runq_split_clean.json")


@pytest.fixture()
def diff(fired: RunResult, split: RunResult) -> RunDiff:
    return compare_runs(fired, split, "before", "after")


def test_identical_runs_give_no_change(fired: RunResult) -> None:
    same = compare_runs(fired, fired)
    assert not same.changed and not same.warnings
    assert all(not o.changed for o in same.outcomes)
    assert all(a.score == 0 for a in same.aggregations)
    assert "No change" in markdown_text(diff_document(same))


def test_a_shifted_histogram_gives_each_percentile_its_factor(diff: RunDiff) -> None:
    dist = diff.aggregation("runq", "dist")
    assert dist is not None and len(dist.histograms) == 1
    hist = dist.histograms[0]
    factors = {s.name: s.factor for s in hist.stats}
    assert factors["p50"] == 8 / 16 and factors["p90"] == 16 / 32
    assert factors["p99"] == 64 / 8192 and factors["count"] == 1
    assert factors["max"] == pytest.approx(50.3 / 10034.5)
    # Buckets past 64us emptied; none appeared (the split run's are all below).
    assert [(b.low, b.high) for b in hist.emptied] == [
        (64, 128), (1024, 2048), (2048, 4096), (4096, 8192), (8192, 16384)]
    assert hist.appeared == ()
    # The largest change of p50, p90, p99 and max (here max's) ranks it, in log2 steps.
    assert dist.score == pytest.approx(math.log2(10034.5 / 50.3))
    assert diff.aggregations[0] is dist  # and it leads


def test_rows_that_appeared_vanished_and_shrank_are_listed_largest_change_first(
        diff: RunDiff) -> None:
    slow_by = diff.aggregation("runq", "slow_by")
    assert slow_by is not None and not slow_by.per_second
    changes = [(r.label, r.change, r.before, r.after) for r in slow_by.rows]
    assert changes == [
        ("fusion_thread, hog_thread", "vanished", 24, None),
        ("fusion_thread, kworker/1:2", "shrank", 4, 1),
        ("fusion_thread, ksoftirqd/1", "appeared", None, 2),
        ("sshd, hog_thread", "vanished", 2, None)]


def test_stacks_that_appeared_vanished_and_grew_are_listed(diff: RunDiff) -> None:
    stacks = diff.aggregation("offcpu", "stacks")
    assert stacks is not None and stacks.stacks
    kinds = {r.label.split(";")[3]: r.change for r in stacks.rows}
    assert kinds == {"fusion_wait_for_work": "vanished", "fusion_mix_block": "grew",
                     "fusion_backoff": "same", "fusion_spin": "appeared"}
    assert sum(stacks.folded_after.values()) == 2_420_000_000 + 280_000_000 + 500_000_000


def test_thresholds_and_captures_that_changed_are_said_in_words(diff: RunDiff) -> None:
    said = {o.id: o.sentence for o in diff.outcomes if o.changed}
    assert said == {
        "slow": "runq.slow no longer fires",
        "culprit": "runq.culprit was hog_thread, now kworker/1:2: hog_thread no longer "
                   "appears in runq.slow_by"}
    text = markdown_text(diff_document(diff))
    assert text.index("runq.slow no longer fires") < text.index("runq.dist")
    assert "8.19ms → 64us (÷128)" in text


def test_durations_that_differ_compare_counts_per_second(fired: RunResult,
                                                          split: RunResult) -> None:
    longer = replace(split, steps=(replace(split.steps[0], seconds=10.0), *split.steps[1:]))
    diff = compare_runs(fired, longer)
    slow_by = diff.aggregation("runq", "slow_by")
    assert slow_by is not None and slow_by.per_second
    kworker = next(r for r in slow_by.rows if "kworker" in r.label)
    assert kworker.before == pytest.approx(4 / 5.02) and kworker.after == pytest.approx(0.1)
    assert any("measured for 5.02s, then 10s" in w for w in diff.warnings)
    dist = diff.aggregation("runq", "dist")
    assert dist is not None and dist.histograms[0].stat("p99").after == 64  # never a rate


def test_kernel_host_and_params_that_differ_are_warned_about(fired: RunResult) -> None:
    other = replace(fired, host=replace(fired.host, kernel="6.19.0", hostname="b"),
                    params={**fired.params, "threshold": "5ms"})
    assert compare_runs(fired, other).warnings == (
        "kernels differ: 6.18.44-fc-v657 → 6.19.0", "hosts differ: ci-runner-7 → b",
        "param threshold differs: '1ms' → '5ms'")


def test_runs_of_different_runbooks_are_refused_with_exit_2(fired: RunResult) -> None:
    files = load_run(RESULTS / "files_clean.json")
    with pytest.raises(UsageError) as e:
        compare_runs(fired, files)
    assert e.value.exit_code == EXIT_INVALID
    assert "different runbooks" in e.value.message


def test_the_json_form_reads_back_equal(diff: RunDiff) -> None:
    assert RunDiff.from_json(diff.to_json()) == diff


@pytest.mark.parametrize(("before", "after", "text"), [
    (8192, 64, "÷128"), (64, 128, "×2"), (5, 5, "="), (0, 3, ""), (4, 0, "gone"),
    (16384, 16, "÷1,024"), (3, 10, "×3.33")])
def test_factors_read_as_times_or_divided_by(before: int, after: int, text: str) -> None:
    assert factor_text(before, after) == text


def test_diff_json_and_the_baseline_section_follow_schema_diff_json(
        diff: RunDiff, fired: RunResult) -> None:
    assert validate_diff(diff.to_json()) == []
    assert validate_diff(compare_runs(fired, fired).to_json()) == []
    broken = {**diff.to_json(), "changed": "yes"}
    assert validate_diff(broken) == ["$.changed: 'yes' is not of type 'boolean'"]
