"""Merging a fleet's results: three hosts of runq-latency in Ansible's fetch tree
(tests/fixtures/results/fleet/<host>/result.json) — alpha clean, bravo fired (a hog on the
victim's CPU), charlie failed (its off-CPU step could not attach; its run-queue step ran)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from helpers.paths import FIXTURES

from bpfrun.errors import EXIT_INVALID, EXIT_MACHINE, UsageError
from bpfrun.fleet import (
    Fleet,
    HostRun,
    load_hosts,
    merge_hosts,
    percentile,
    read_inventory,
    write_fleet,
)
from bpfrun.fleet.aggregate import host_local, merge_aggregation
from bpfrun.result import (
    AggregationResult,
    AggregationRow,
    Bucket,
    HistValue,
    RunResult,
    validate_result,
)

TREE = FIXTURES / "results" / "fleet"
INVENTORY = TREE / "inventory.ini"


@pytest.fixture(scope="module")
def hosts() -> list[HostRun]:
    return load_hosts([str(TREE)])


@pytest.fixture(scope="module")
def fleet(hosts: list[HostRun]) -> Fleet:
    return merge_hosts(hosts)


def test_hosts_are_named_by_their_folder_in_the_tree(hosts: list[HostRun]) -> None:
    assert [h.host for h in hosts] == ["alpha", "bravo", "charlie"]
    assert hosts[0].run.host.hostname == "alpha.example"


def test_coverage_counts_hosts_that_ran_and_names_the_failed_one(fleet: Fleet) -> None:
    hosts = fleet.result.hosts
    assert hosts is not None
    assert hosts["coverage"] == round(2 / 3, 4)
    assert hosts["expected"] is None and hosts["missing"] == []
    assert [(m["host"], m["status"]) for m in hosts["members"]] == [
        ("charlie", "failed"), ("bravo", "fired"), ("alpha", "clean")]  # worst first
    assert "charlie: step offcpu failed" in (fleet.result.error or "")


def test_inventory_names_the_missing_host(hosts: list[HostRun]) -> None:
    expected = read_inventory(INVENTORY)
    assert expected == ["alpha", "bravo", "charlie", "delta"]  # not ansible_user, not groups
    fleet = merge_hosts(hosts, expected, min_coverage=0.5)
    assert fleet.result.hosts is not None
    assert fleet.result.hosts["missing"] == ["delta"]
    assert fleet.result.hosts["coverage"] == 0.5
    assert fleet.result.hosts["expected"] == 4


def test_exit_code_is_the_worst_hosts(fleet: Fleet, hosts: list[HostRun]) -> None:
    assert (fleet.result.status, fleet.result.exit_code) == ("failed", 4)
    two = merge_hosts([h for h in hosts if h.host != "charlie"])
    assert (two.result.status, two.result.exit_code) == ("fired", 1)
    assert [f.message for f in two.result.findings] == [
        "bravo: p99 run-queue latency is 8.19ms (limit 1ms)"]


def test_coverage_below_the_minimum_exits_3(hosts: list[HostRun]) -> None:
    two = [h for h in hosts if h.host != "charlie"]
    fleet = merge_hosts(two, ["alpha", "bravo", "charlie", "delta"], min_coverage=0.75)
    assert (fleet.result.status, fleet.result.exit_code) == ("failed", EXIT_MACHINE)
    assert "coverage 50% is below 75%" in (fleet.result.error or "")
    enough = merge_hosts(two, ["alpha", "bravo", "charlie", "delta"], min_coverage=0.5)
    assert enough.result.exit_code == 1


def test_counts_add_exactly(fleet: Fleet) -> None:
    step = fleet.result.step("runq")
    assert step is not None and step.status == "ran"
    rows = [(r.key["args.prev_comm"], r.value) for r in step.aggregations["slow_by"].rows]
    # alpha 2+1, bravo 24+4+2, charlie 3+1 (its run-queue step ran before the run failed)
    assert rows == [("hog_thread", 24), ("kworker/1:2", 6), ("ksoftirqd/1", 5),
                    ("hog_thread", 2)]
    assert step.aggregations["slow_by"].total_rows == 4
    assert step.lost.unpaired == 9


def test_histograms_add_bucket_by_bucket(fleet: Fleet) -> None:
    step = fleet.result.step("runq")
    assert step is not None
    value = step.aggregations["dist"].rows[0].value
    assert isinstance(value, HistValue)
    buckets = {(b.low, b.high): b.count for b in value.buckets}
    assert buckets[(1, 2)] == 20 + 12 + 20
    assert buckets[(8, 16)] == 300 + 498 + 400
    assert buckets[(8192, 16384)] == 5
    assert value.count == 2800 == sum(buckets.values())
    assert value.sum == pytest.approx(8103.4 + 44109.7 + 9303.4)
    assert (value.min, value.max) == (1.1, 10034.5)


def test_percentiles_come_from_the_merged_buckets(fleet: Fleet) -> None:
    step = fleet.result.step("runq")
    assert step is not None
    value = step.aggregations["dist"].rows[0].value
    assert isinstance(value, HistValue)
    # Ranks 1400, 2520, 2772 of 2800: cumulative 52, 297, 1257, 2455 | 2725, 2765, 2770,
    # 2776: the p99 is in [1024, 2048), which no host's own p99 (64, 8192, 32) says.
    assert (value.p50, value.p90, value.p99) == (16, 32, 2048)


def test_percentile_is_capped_by_the_max_and_counted_limits() -> None:
    buckets = [Bucket(0, 8, 5), Bucket(8, 16, 5)]
    assert percentile(0.99, buckets, 1, 12, {}) == 12
    assert percentile(0.5, buckets, 1, 12, {}) == 8
    assert percentile(0.99, buckets, 1, 12, {10: 0}) == 10  # no value above 10


def test_failed_step_keeps_its_reason_and_stacks_come_from_folded_files(fleet: Fleet) -> None:
    step = fleet.result.step("offcpu")
    assert step is not None and step.status == "ran"  # on alpha and bravo
    assert fleet.stacks["offcpu.stacks"] == {
        "start_thread;worker_loop;futex_wait_[k]": 5_400_000_000,
        "start_thread;worker_loop;read_[k]": 600_000_000,
        "start_thread;main;epoll_wait_[k]": 900_000_000}


def test_an_outlier_host_is_flagged(fleet: Fleet) -> None:
    assert fleet.result.hosts is not None
    found = {(o["aggregation"], o["stat"], o["host"]) for o in fleet.result.hosts["outliers"]}
    assert ("dist", "p99", "bravo") in found
    assert ("dist", "avg", "bravo") in found
    assert not any(host in ("alpha", "charlie") for _, _, host in found)
    p99 = next(o for o in fleet.result.hosts["outliers"] if o["stat"] == "p99")
    assert (p99["median"], p99["value"]) == (64, 8192)


def test_the_fleet_result_is_a_result_json(fleet: Fleet) -> None:
    doc = fleet.result.to_json()
    assert validate_result(doc) == []
    assert RunResult.from_json(doc) == fleet.result


def test_merging_is_order_independent(hosts: list[HostRun]) -> None:
    docs = {json.dumps(merge_hosts(list(order)).result.to_json())
            for order in itertools.permutations(hosts)}
    assert len(docs) == 1
    stacks = {json.dumps(merge_hosts(list(order)).stacks, sort_keys=True)
              for order in itertools.permutations(hosts)}
    assert len(stacks) == 1


def test_results_of_different_runbooks_are_refused(hosts: list[HostRun]) -> None:
    disk = load_hosts([str(FIXTURES / "results" / "disk_failed.json")])
    with pytest.raises(UsageError, match="different runbooks") as e:
        merge_hosts([*hosts, *disk])
    assert e.value.exit_code == EXIT_INVALID


def test_pid_keys_stay_per_host() -> None:
    def agg(pid: int, n: int) -> AggregationResult:
        return AggregationResult("count", ("pid",), None, None, 1,
                                 (AggregationRow({"pid": pid}, n),))
    for keys in (("args.prev_pid",), ("cgroup",), ("comm", "tid")):
        assert host_local(keys, "count"), keys
    assert not host_local(("comm", "args.rwbs"), "count")
    assert host_local(("comm",), "avg")  # averages cannot be added up
    merged = merge_aggregation([("a", agg(7, 3)), ("b", agg(7, 5))])
    assert merged.keys == ("pid", "host")
    assert [(r.key, r.value) for r in merged.rows] == [
        ({"pid": 7, "host": "b"}, 5), ({"pid": 7, "host": "a"}, 3)]


def test_the_report_folder(fleet: Fleet, tmp_path: Path) -> None:
    written = write_fleet(tmp_path / "fleet", fleet)
    text = written["md"].read_text()
    assert text.index("## Coverage") < text.index("## Hosts, worst first") \
        < text.index("## Outlier hosts") < text.index("## Findings")
    assert "2 of 3 hosts ran" in text
    assert (tmp_path / "fleet" / "offcpu-stacks.svg").is_file()
    assert "5400000000" in (tmp_path / "fleet" / "offcpu-stacks.folded").read_text()
    assert validate_result(json.loads(written["json"].read_text())) == []
    assert "<h2" in written["html"].read_text()
