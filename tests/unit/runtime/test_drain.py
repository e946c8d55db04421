"""Draining keyed maps during a step (runtime/drain.py), with stand-in BCC tables."""

from __future__ import annotations

import ctypes
from typing import Any

import pytest

from bpfrun.compile.program import AggPlan
from bpfrun.runtime import drain as drain_module
from bpfrun.runtime.drain import DRAIN_SHARE, FILL_MAP, Drain, drainable_maps, fold
from bpfrun.runtime.mapvalues import combine


class Key(ctypes.Structure):
    _fields_ = [("pid", ctypes.c_uint64)]


class Stats(ctypes.Structure):
    _fields_ = [("count", ctypes.c_uint64), ("sum", ctypes.c_int64), ("min", ctypes.c_int64),
                ("max", ctypes.c_int64)]


class Table(dict[bytes, Any]):
    """A per-CPU hash: bytes of the key → (key, per-CPU values)."""

    def __init__(self, max_entries: int, items: dict[int, list[Any]], batch: bool = True
                 ) -> None:
        super().__init__()
        self.max_entries = max_entries
        self.batch = batch
        for pid, per_cpu in items.items():
            self.put(pid, per_cpu)

    def put(self, pid: int, per_cpu: list[Any]) -> None:
        k = Key(pid)
        self[bytes(k)] = (k, per_cpu)

    def items_lookup_and_delete_batch(self) -> Any:
        if not self.batch:
            raise Exception("BPF_MAP_LOOKUP_AND_DELETE_BATCH has failed: Invalid argument")
        taken = list(self.values())
        self.clear()
        yield from taken

    def keys(self) -> Any:  # type: ignore[override]
        return [k for k, _ in self.values()]

    def __getitem__(self, k: Any) -> Any:
        return super().__getitem__(bytes(k))[1]

    def __delitem__(self, k: Any) -> None:
        super().__delitem__(bytes(k))

    def items(self) -> Any:  # type: ignore[override]
        return list(self.values())


class Fill:
    """bpfrun_fill_map: one entry, per CPU an array of keys inserted by slot."""

    def __init__(self, *inserted: int) -> None:
        self.n = list(inserted)

    def __getitem__(self, _index: Any) -> Any:
        class Cpu(ctypes.Structure):
            _fields_ = [("n", ctypes.c_uint64 * len(self.n))]
        return [Cpu((ctypes.c_uint64 * len(self.n))(*self.n)),
                Cpu((ctypes.c_uint64 * len(self.n))())]


def plan(name: str, **kw: Any) -> AggPlan:
    p = AggPlan.__new__(AggPlan)
    for k, v in {"map": name, "stats_map": None, "pending": False, "array": False, **kw}.items():
        object.__setattr__(p, k, v)
    return p


def test_only_keyed_hash_maps_are_drained() -> None:
    plans = [plan("a"), plan("h", stats_map="h_st"), plan("p", pending=True),
             plan("arr", array=True)]
    assert drainable_maps(plans) == ["a", "h", "h_st"]


def test_the_kernels_insert_count_decides_without_walking_the_keys() -> None:
    a = Table(10, {i: [1, 0] for i in range(6)})
    b = Table(10, {0: [5, 0]})
    fill = Fill(6, 1)
    drain = Drain({"a": a, "b": b, FILL_MAP: fill}, [plan("a"), plan("b")], ["a", "b"])
    assert drain.wanted
    a.keys = None  # type: ignore[assignment,method-assign]  # walking would fail
    drain.check()
    assert len(a) == 0 and len(b) == 1  # b is under the mark: left alone
    assert drain.deleted["a"] == 6 and drain.drained == 6
    drain.check()  # inserted 6, drained 6: empty, nothing to do
    assert drain.deleted["a"] == 6


def test_drained_keys_fold_into_one_entry_and_read_back_whole(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(drain_module.time, "monotonic", lambda: 100.0)  # drains take no time
    a = Table(4, {1: [2, 3], 2: [1, 0], 3: [1, 1]})
    fill = Fill(3)
    drain = Drain({"a": a, FILL_MAP: fill}, [plan("a")], ["a"])
    drain.check()
    a.put(1, [4, 0])
    a.put(2, [1, 0])
    fill.n = [6]
    drain.check()  # 6 inserted, 3 drained: 3 > 2 again
    assert len(drain.saved["a"]) == 3  # one entry per key, however often drained
    a.put(1, [10, 0])  # still in the map at the end
    totals: dict[int, int] = {}
    for k, per_cpu in drain.items("a"):
        totals[k.pid] = totals.get(k.pid, 0) + combine("count", per_cpu)
    assert totals == {1: 19, 2: 2, 3: 2}


def test_without_batch_operations_the_keys_are_walked() -> None:
    a = Table(4, {1: [1], 2: [1], 3: [1]}, batch=False)
    drain = Drain({"a": a, FILL_MAP: Fill(3)}, [plan("a")], ["a"])
    drain.check()
    assert len(a) == 0 and drain.drained == 3 and not drain.batch


def test_a_map_without_a_fill_counter_is_walked_at_the_progress_tick() -> None:
    a = Table(4, {1: [1], 2: [1], 3: [1]})
    drain = Drain({"a": a}, [plan("a")])
    assert not drain.wanted
    drain.check()
    assert len(a) == 3
    drain.check(walk=True)
    assert len(a) == 0


def test_stats_fold_like_combine() -> None:
    per_cpu = [Stats(2, 10, 3, 7), Stats(0, 0, 0, 0), Stats(1, 1, 1, 1)]
    once = fold(per_cpu)
    again = fold([*once, Stats(1, 100, 100, 100)])
    assert combine("stats", once) == combine("stats", per_cpu)
    assert combine("stats", again) == {"count": 4, "sum": 111, "min": 1, "max": 100}
    assert fold([3, 4]) == [7]


def test_draining_a_map_takes_at_most_its_share_of_the_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # 6 of 10 keys in use all the time refill the map at once: draining them every 20 ms
    # would spend bpfrun's CPU folding the same keys. A drain that took 5 ms makes the map
    # wait 5 ms / DRAIN_SHARE from its start before the next.
    clock = {"now": 100.0, "step": 0.0}

    def monotonic() -> float:
        clock["now"] += clock["step"]
        return clock["now"]

    monkeypatch.setattr(drain_module.time, "monotonic", monotonic)
    a = Table(10, {i: [1] for i in range(6)})
    fill = Fill(6)
    drain = Drain({"a": a, FILL_MAP: fill}, [plan("a")], ["a"])
    clock["step"] = 0.005  # each reading of the clock: 5 ms later (the drain took 5 ms)
    drain.check()
    assert drain.deleted["a"] == 6
    clock["step"] = 0.0
    wait = drain.next_drain["a"] - clock["now"]
    assert wait == pytest.approx(0.005 / DRAIN_SHARE - 0.005)
    for i in range(6):
        a.put(i, [1])
    fill.n = [12]
    drain.check()
    assert drain.deleted["a"] == 6  # refilled at once, but not due yet
    clock["now"] += wait
    drain.check()
    assert drain.deleted["a"] == 12
