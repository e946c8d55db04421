"""Draining keyed maps during a step (runtime/drain.py), with stand-in BCC tables."""

from __future__ import annotations

from typing import Any

from bpfrun.compile.program import AggPlan
from bpfrun.runtime.drain import Drain, drainable_maps


class Table(dict[Any, Any]):
    def __init__(self, max_entries: int, items: dict[Any, Any]) -> None:
        super().__init__(items)
        self.max_entries = max_entries


def plan(name: str, **kw: Any) -> AggPlan:
    p = AggPlan.__new__(AggPlan)
    for k, v in {"map": name, "stats_map": None, "pending": False, "array": False, **kw}.items():
        object.__setattr__(p, k, v)
    return p


def test_only_keyed_hash_maps_are_drained() -> None:
    plans = [plan("a"), plan("h", stats_map="h_st"), plan("p", pending=True),
             plan("arr", array=True)]
    assert drainable_maps(plans) == ["a", "h", "h_st"]


def test_a_map_past_the_mark_moves_to_user_space_and_reads_back_whole() -> None:
    bpf = {"a": Table(10, {i: [1] for i in range(8)}), "b": Table(10, {0: [5]})}
    drain = Drain(bpf, [plan("a"), plan("b")])
    drain.check()
    assert len(bpf["a"]) == 0 and len(bpf["b"]) == 1  # b is under the mark: left alone
    bpf["a"][3] = [2]  # the same key again after the drain: both are read, then merged
    assert sorted(k for k, _ in drain.items("a")) == [0, 1, 2, 3, 3, 4, 5, 6, 7]
    assert drain.drained == 8
