"""The fleet: many hosts' results of one runbook merged into one result and report.

`inputs` finds and names the hosts' results (files, report folders, Ansible's fetch tree)
and reads an inventory; `aggregate` merges one aggregation exactly (counts, sums, buckets,
percentiles from merged buckets); `steps` merges a step; `merge` the whole result with its
`hosts` section (coverage, members, outliers from `outliers`); `document` and `write` give
the fleet report.

Stage: after `diff` (it reads results with diff's locate), before `ops` and `runtime`.
"""

from __future__ import annotations

from bpfrun.fleet.aggregate import merge_aggregation, merge_hists, percentile
from bpfrun.fleet.inputs import HostRun, find_results, load_hosts, read_inventory
from bpfrun.fleet.merge import Fleet, merge_hosts
from bpfrun.fleet.outliers import Outlier, far_hosts, find_outliers
from bpfrun.fleet.write import fleet_document, write_fleet

__all__ = [
    "Fleet",
    "HostRun",
    "Outlier",
    "far_hosts",
    "find_outliers",
    "find_results",
    "fleet_document",
    "load_hosts",
    "merge_aggregation",
    "merge_hists",
    "merge_hosts",
    "percentile",
    "read_inventory",
    "write_fleet",
]
