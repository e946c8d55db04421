"""Draining keyed aggregation maps during a step, so that process churn cannot fill them.

A map keyed by pid or comm fills with the keys of processes that are gone; once full, the
kernel drops every update of a new key (counted as `lost.map_full`). At the runner's
progress tick, each keyed map that is more than DRAIN_AT full is read into user space and
the keys read are deleted; at the end of the step the saved entries are read together with
what is left in the map, and rows of the same key merge as they already do for one stack
stored by several processes (counts and sums add, min/max take the min/max, histogram slots
add). Unkeyed per-CPU arrays never fill, and a span's pending map must not be drained (its
begins are waiting for their ends), so neither is touched.

An update between reading a key and deleting it is lost (a few microseconds, only for a key
still in use); an update while the map is full between two ticks is still counted in
`lost.map_full`.
"""

from __future__ import annotations

from typing import Any

from bpfrun.compile.program import AggPlan

DRAIN_AT = 0.7  # of max_entries: leaves 30 % of room for the next tick's new keys


def drainable_maps(plans: list[AggPlan]) -> list[str]:
    """The hash maps of keyed aggregations (and their histograms' stats maps)."""
    names: list[str] = []
    for p in plans:
        if p.pending or p.array:
            continue
        names += [n for n in (p.map, p.stats_map) if n and n not in names]
    return names


class Drain:
    """Entries moved out of the kernel's maps during a step, by map name."""

    def __init__(self, bpf: Any, plans: list[AggPlan]) -> None:
        self.bpf = bpf
        self.saved: dict[str, list[tuple[Any, Any]]] = {n: [] for n in drainable_maps(plans)}
        self.drained = 0  # entries moved, for the step's record

    def check(self) -> None:
        """Drain every map more than DRAIN_AT full."""
        for name, saved in self.saved.items():
            table = self.bpf[name]
            keys = list(table.keys())
            if len(keys) <= DRAIN_AT * int(table.max_entries):
                continue
            for k in keys:
                try:
                    value = table[k]
                    del table[k]
                except KeyError:
                    continue  # deleted meanwhile (cannot happen for ours; harmless)
                saved.append((k, value))
            self.drained += len(keys)

    def items(self, name: str) -> list[tuple[Any, Any]]:
        """Everything map `name` held during the step: the drained entries, then the rest."""
        return [*self.saved.get(name, ()), *self.bpf[name].items()]
