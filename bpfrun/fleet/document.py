"""What a fleet report says before the merged steps: coverage (hosts that ran, fired, were
clean, failed or were interrupted, with the reasons, and the inventory's missing hosts), a
table of hosts worst first with their findings, and the outlier hosts per number."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bpfrun.report.blocks import Block, BulletList, Code, Para, Section, Table, inline
from bpfrun.report.numbers import fmt_num

ANCHOR = "fleet"


def fleet_blocks(hosts: Mapping[str, Any]) -> list[Block]:
    """The fleet's sections, from a fleet result's `hosts` (merge's JSON form)."""
    return [_coverage(hosts), _members(hosts), _outliers(hosts)]


def _count(members: list[Mapping[str, Any]], status: str) -> int:
    if status == "interrupted":
        return sum(1 for m in members if m["interrupted"])
    return sum(1 for m in members if m["status"] == status and not m["interrupted"])


def _coverage(hosts: Mapping[str, Any]) -> Section:
    members = list(hosts["members"])
    expected = hosts["expected"] if hosts["expected"] is not None else len(members)
    ran = _count(members, "clean") + _count(members, "fired")
    items = [
        inline(f"{ran} of {expected} hosts ran ({hosts['coverage']:.0%}; at least "
               f"{hosts['min_coverage']:.0%} wanted)"),
        inline(f"fired: {_count(members, 'fired')}, clean: {_count(members, 'clean')}, "
               f"failed: {_count(members, 'failed')}, "
               f"interrupted: {_count(members, 'interrupted')}"),
    ]
    for m in members:
        if m["status"] == "failed" or m["interrupted"]:
            why = "interrupted" if m["interrupted"] else m["error"] or "failed"
            items.append(inline(Code(m["host"]), f": {why}"))
    if hosts["missing"]:
        items.append(inline("missing from the inventory's hosts: ",
                            ", ".join(hosts["missing"])))
    return Section(2, ("Coverage",), (BulletList(tuple(items)),), f"{ANCHOR}-coverage")


def _members(hosts: Mapping[str, Any]) -> Section:
    rows = []
    for m in hosts["members"]:
        status = "interrupted" if m["interrupted"] else m["status"]
        found = "; ".join(m["findings"]) or (m["error"] or "—")
        rows.append((inline(m["host"]), inline(status), inline(str(m["exit_code"])),
                     inline(m["kernel"]), inline(found)))
    table = Table((("Host",), ("Status",), ("Exit",), ("Kernel",), ("Findings",)),
                  tuple(rows), (False, False, True, False, False))
    return Section(2, ("Hosts, worst first",), (table,), f"{ANCHOR}-hosts")


def _outliers(hosts: Mapping[str, Any]) -> Section:
    outliers = list(hosts["outliers"])
    if not outliers:
        body: tuple[Block, ...] = (Para(("No host is far from the fleet's median.",)),)
    else:
        rows = tuple(
            (inline(o["host"]), inline(Code(f"{o['step']}.{o['aggregation']}")),
             inline(_key(o["key"])), inline(o["stat"]), inline(fmt_num(o["value"])),
             inline(fmt_num(o["median"])),
             inline("—" if o["score"] is None else fmt_num(o["score"])))
            for o in outliers)
        body = (Para(("Hosts whose number is far from the fleet's median (modified z-score "
                      "over 3.5 by the median absolute deviation):",)),
                Table((("Host",), ("Aggregation",), ("Key",), ("Number",), ("Value",),
                       ("Fleet median",), ("Score",)), rows,
                      (False, False, False, False, True, True, True)))
    return Section(2, ("Outlier hosts",), body, f"{ANCHOR}-outliers")


def _key(key: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in key.items()) or "(all)"
