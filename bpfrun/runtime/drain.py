"""Draining keyed aggregation maps during a step, so that process churn cannot fill them.

A map keyed by pid or comm fills with the keys of processes that are gone; once full, the
kernel drops every update of a new key (counted as `lost.map_full`). The kernel counts the
keys it inserts into each keyed map (bpfrun_fill_map, compile/lower/aggregation.py), so one
read tells how full every map is: keys inserted minus keys drained. Checked every DRAIN_TICK
(one system call), a map more than DRAIN_AT full is moved into user space (draining takes at
most DRAIN_SHARE of the time, for maps whose live keys alone keep them past the mark) with
BPF_MAP_LOOKUP_AND_DELETE_BATCH (a handful of system calls, and atomic per hash bucket: no
update falls between reading and deleting a key), and folded there: one entry per key
however often it was drained, so memory grows with the distinct keys, not with the drains.
At the end of the step the folded entries are read together with what is left in the map,
and rows of the same key merge as they already do for one stack stored by several processes
(counts and sums add, min/max take the min/max, histogram slots add). Unkeyed per-CPU arrays
never fill, and a span's pending map must not be drained (its begins are waiting for their
ends), so neither is touched.

A kernel without batch operations (before 5.6) gets the key-by-key walk instead; an update
between reading a key and deleting it is then lost (a few microseconds, only for a key still
in use). An update while a map is full between two checks is still counted in
`lost.map_full`. A program without the fill counters (none compiled today) is walked at the
progress tick, as before them.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Iterable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from bpfrun.compile.program import AggPlan

DRAIN_AT = 0.5  # of max_entries: half the map stays free for the keys of the next ticks
DRAIN_TICK = 0.02  # seconds between fill checks (one read of bpfrun_fill_map)
# A map whose live keys alone pass DRAIN_AT (thousands of busy processes) refills at once:
# drained every tick, bpfrun would spend its CPU folding the same keys. Draining a map takes
# at most DRAIN_SHARE of the time: after a drain that took d seconds, that map waits
# d / DRAIN_SHARE before the next (a small map's drain takes microseconds: no wait).
DRAIN_SHARE = 0.05
FILL_MAP = "bpfrun_fill_map"


@dataclass
class Folded:
    """Stats of one key folded over several drains and CPUs (what combine() reads)."""

    count: int
    sum: int
    min: int
    max: int


def drainable_maps(plans: list[AggPlan]) -> list[str]:
    """The hash maps of keyed aggregations (and their histograms' stats maps)."""
    names: list[str] = []
    for p in plans:
        if p.pending or p.array:
            continue
        names += [n for n in (p.map, p.stats_map) if n and n not in names]
    return names


def fold(values: Iterable[Any]) -> list[Any]:
    """Per-CPU values (of one or several drains) → one value that combines the same way:
    counts add, stats combine, a shared map's struct folds member by member."""
    items = list(values)
    return [fold_one(items)] if items else []


def fold_one(items: list[Any]) -> Any:
    first = items[0]
    if isinstance(first, int):
        return sum(items)
    if hasattr(first, "count") and hasattr(first, "max"):
        live = [v for v in items if v.count]
        if not live:
            return Folded(0, 0, 0, 0)
        return Folded(sum(int(v.count) for v in live), sum(int(v.sum) for v in live),
                      min(int(v.min) for v in live), max(int(v.max) for v in live))
    names = [f[0] for f in first._fields_] if hasattr(first, "_fields_") else list(vars(first))
    return SimpleNamespace(**{n: fold_one([getattr(v, n) for v in items]) for n in names})


class Drain:
    """Entries moved out of the kernel's maps during a step, by map name."""

    def __init__(self, bpf: Any, plans: list[AggPlan], fill_maps: list[str] | None = None
                 ) -> None:
        self.bpf = bpf
        names = drainable_maps(plans)
        fill_maps = fill_maps or []
        self.slots = {n: fill_maps.index(n) for n in names if n in fill_maps}
        self.unslotted = [n for n in names if n not in self.slots]
        self.saved: dict[str, dict[bytes, tuple[Any, list[Any]]]] = {n: {} for n in names}
        self.deleted = dict.fromkeys(names, 0)
        self.capacity = {n: int(bpf[n].max_entries) for n in names}
        self.next_drain = dict.fromkeys(names, 0.0)  # monotonic time a map may drain again
        self.batch = True  # until the kernel refuses BPF_MAP_LOOKUP_AND_DELETE_BATCH

    @property
    def drained(self) -> int:
        """Entries moved out in all (not in result.json yet)."""
        return sum(self.deleted.values())

    @property
    def wanted(self) -> bool:
        """Whether checking more often than the progress tick pays (there are counters)."""
        return bool(self.slots)

    def check(self, walk: bool = False) -> None:
        """Drain every map more than DRAIN_AT full; `walk`: also the maps without a fill
        counter, whose keys must be walked to be counted (only at the progress tick)."""
        if self.slots:
            inserted = self._inserted()
            for name, slot in self.slots.items():
                entries = inserted[slot] - self.deleted[name]
                if entries > DRAIN_AT * self.capacity[name] and \
                        time.monotonic() >= self.next_drain[name]:
                    started = time.monotonic()
                    self._drain(name)
                    took = time.monotonic() - started
                    self.next_drain[name] = started + took / DRAIN_SHARE
        for name in self.unslotted if walk else ():
            if len(list(self.bpf[name].keys())) > DRAIN_AT * self.capacity[name]:
                self._drain(name)

    def _inserted(self) -> list[int]:
        per_cpu = self.bpf[FILL_MAP][ctypes.c_int(0)]
        width = len(per_cpu[0].n)
        return [sum(int(cpu.n[i]) for cpu in per_cpu) for i in range(width)]

    def _drain(self, name: str) -> None:
        table = self.bpf[name]
        entries = self._take_batch(table) if self.batch else None
        if entries is None:
            entries = self._take_walk(table)
        self.deleted[name] += len(entries)
        saved = self.saved[name]
        for k, per_cpu in entries:
            ident = bytes(k)
            old = saved.get(ident)
            # Copies: what the batch returns are views into one large buffer.
            key = old[0] if old else type(k).from_buffer_copy(k)
            saved[ident] = (key, fold([*(old[1] if old else ()), *per_cpu]))

    def _take_batch(self, table: Any) -> list[tuple[Any, Any]] | None:
        try:
            return list(table.items_lookup_and_delete_batch())
        except Exception:  # noqa: BLE001 (BCC raises plain Exception; any failure → walk)
            self.batch = False
            return None

    @staticmethod
    def _take_walk(table: Any) -> list[tuple[Any, Any]]:
        taken = []
        for k in list(table.keys()):
            try:
                value = table[k]
                del table[k]
            except KeyError:
                continue  # deleted meanwhile (cannot happen for ours; harmless)
            taken.append((k, value))
        return taken

    def items(self, name: str) -> list[tuple[Any, Any]]:
        """Everything map `name` held during the step: the drained entries, then the rest."""
        return [*self.saved.get(name, {}).values(), *self.bpf[name].items()]
