"""Lowering of aggregations and events: key structs, per-CPU maps, histogram slots, the
update code of each aggregation kind, and event records with their limits.
"""

from __future__ import annotations

from typing import Any

from bpfrun.compile.cexpr import CompileError, ExprCompiler, Scope
from bpfrun.compile.cstr import c_comment
from bpfrun.compile.cvalue import PID_TGID
from bpfrun.compile.lower_base import LowererBase
from bpfrun.compile.program import (
    DEFAULT_MAP_SIZE,
    HIST_SLOTS,
    INDEX_DOMAINS,
    SPILL_MAP_SIZE,
    AggPlan,
    EventPlan,
    KeyField,
)
from bpfrun.expr.nodes import Attr, Name
from bpfrun.expr.parser import parse_template
from bpfrun.frontend.model import Aggregation, Probe, Template
from bpfrun.kernel.resolve import Resolved
from bpfrun.units import HIST_UNITS, parse_duration, parse_size


class AggregationLowering(LowererBase):
    def aggregation(self, agg: Aggregation, scope: Scope) -> list[str]:
        comp = ExprCompiler(scope)
        mname, sname = self.agg_names(agg)
        body: list[str] = []
        if agg.where is not None:
            try:
                w = comp.predicate(agg.where.node)
            except CompileError as e:
                self.compile_error(e, agg.where)
                return []
            if w.is_const and not w.const:
                return []
            if not w.is_const:
                body += [*comp.pre, f"if (!{w.code}) break;"]
                comp.pre.clear()
        if agg.by:
            body += [f"struct {sname} k;", "__builtin_memset(&k, 0, sizeof(k));"]
        keys: list[KeyField] = []
        for i, b in enumerate(agg.by):
            kf = self.key_field(comp, b, b.node, f"k{i}", "k", body)
            if kf is not None:
                keys.append(kf)
        stack_keys = sum(k.kind in ("stack", "ustack") for k in keys)
        if stack_keys and agg.size:  # room for as many distinct stacks as the map has keys
            self.prog.stack_storage = max(self.prog.stack_storage, agg.size * stack_keys)
        if any(k.kind == "ustack" for k in keys):
            # User stacks symbolize per process: keep the tgid in the key (not shown). A
            # stack taken at a span's begin belongs to the begin task, not the current one.
            tgid = f"{PID_TGID} >> 32"
            if scope.begin_ref and any(k.kind == "ustack" and k.expr.startswith("begin.")
                                       for k in keys):
                tgid = scope.begin_ref(Attr(0, 0, Name(0, 0, "begin"), "pid")).code
            body.append(f"k.tgid = {tgid};")
        value_type, value_code = "int", "1"
        if agg.value is not None:
            try:
                v = comp.value(agg.value.node)
            except CompileError as e:
                self.compile_error(e, agg.value)
                return []
            if v.type not in ("int", "duration", "size", "ptr", "any", "bool"):
                self.error(f"{agg.kind} needs a number, duration or size, not a {v.type}",
                           agg.value.loc)
                return []
            body += comp.pre
            value_type = v.type if v.type in ("duration", "size") else "int"
            if value_type == "int" and agg.unit:  # a plain number's unit says what it is
                value_type = "size" if agg.unit in ("bytes", "KiB", "MiB") else "duration"
            value_code = v.code if not v.is_const else str(v.code)
        unit, scale, lbounds = self.unit_of(agg, value_type)
        index = self.index_domain(agg, keys)
        if agg.by:
            update = self.hash_update(agg, keys, value_code, scale, lbounds,
                                      spill=bool(index))
            if index:  # small values in the array, the rest in the hash
                update = [*self.indexed_update(agg, keys[0], value_code, index), "} else {",
                          *("    " + line for line in update), "}"]
            body += update
        else:
            # Without keys a per-CPU array indexed by slot (or 0) needs no hashing, no
            # key struct and no insertion: the cheapest update BPF has.
            body += self.array_update(agg, value_code, scale, lbounds)
        stats_map = f"{mname}_stats" if agg.kind in ("hist", "lhist") and agg.by else None
        self.prog.aggs.append(AggPlan(agg.id, agg.kind, mname, stats_map, keys, value_type,
                                      unit, scale, agg.top, lbounds, array=not agg.by,
                                      index_map=f"{mname}_idx" if index else None))
        return [f"/* {c_comment(f'aggregation {agg.id}: {agg.kind} (runbook {agg.loc})')} */",
                "do {", *("    " + line for line in body), "} while (0);"]

    def hash_update(self, agg: Aggregation, keys: list[KeyField], value_code: str, scale: int,
                    lbounds: tuple[int, int, int] | None, spill: bool = False) -> list[str]:
        """The update of a per-CPU hash keyed by the struct `k`; `spill`: the hash only
        takes the values an indexed array has no room for, so it can be small."""
        mname, sname = self.agg_names(agg)
        body: list[str] = []
        fields = [self.c_field(k) for k in keys]
        if any(k.kind == "ustack" for k in keys):
            fields.append("u32 tgid;")
        if agg.kind in ("hist", "lhist"):
            fields.append("u32 slot;")
            body.append(f"u64 x = {value_code};")
            body.append(f"k.slot = {self.slot_code(agg, scale, lbounds)};")
            body += self.counter_update(mname, "1", "k")
            body.append("k.slot = 0xFFFFFFFF;  /* the per-key stats entry */")
            body += self.stats_update(f"{mname}_stats", "x", "k")
        elif agg.kind in ("count", "sum"):
            body += self.counter_update(mname, "1" if agg.kind == "count" else value_code, "k")
        else:
            body.append(f"s64 x = (s64)({value_code});")
            body += self.stats_update(mname, "x", "k")
        self.prog.structs.append(f"struct {sname} {{ " + " ".join(fields) + " };")
        size = agg.size or (SPILL_MAP_SIZE if spill else DEFAULT_MAP_SIZE)
        vtype = "u64" if agg.kind in ("count", "sum", "hist", "lhist") else "struct bpfrun_stats"
        hsize = size * 8 if agg.kind in ("hist", "lhist") else size
        self.prog.maps.append(f"BPF_PERCPU_HASH({mname}, struct {sname}, {vtype}, {hsize});")
        if agg.kind in ("hist", "lhist"):
            self.prog.maps.append(f"BPF_PERCPU_HASH({mname}_stats, struct {sname}, "
                                  f"struct bpfrun_stats, {size});")
        return body

    @staticmethod
    def index_domain(agg: Aggregation, keys: list[KeyField]) -> int:
        """Entries of the array an aggregation keyed by one small integer uses (0: none).
        Histograms keep their hash: an array of every value × every bucket is too big."""
        if len(keys) != 1 or len(agg.by) != 1 or agg.kind in ("hist", "lhist"):
            return 0
        return INDEX_DOMAINS.get(keys[0].decode or "", 0)

    def indexed_update(self, agg: Aggregation, key: KeyField, value_code: str,
                       size: int) -> list[str]:
        """The update of an array indexed by the key's value (measured in bench/: cheaper
        than a hash lookup, and the array cannot fill); larger values fall to the hash."""
        mname, _ = self.agg_names(agg)
        counter = agg.kind in ("count", "sum")
        vtype = "u64" if counter else "struct bpfrun_stats"
        self.prog.maps.append(f"BPF_PERCPU_ARRAY({mname}_idx, {vtype}, {size});")
        update = (f"*v_{mname} += {'1' if agg.kind == 'count' else value_code};" if counter
                  else f"bpfrun_stats_add(v_{mname}, (s64)({value_code}));")
        return [f"if ((u64)k.{key.name} < {size}) {{",
                f"    u32 i_{mname} = k.{key.name};",
                f"    {vtype} *v_{mname} = {mname}_idx.lookup(&i_{mname});",
                f"    if (v_{mname}) {update}"]

    def agg_names(self, agg: Aggregation) -> tuple[str, str]:
        """Map and key-struct names, unique by the aggregation's position (ids such as `lat`
        and `lat_stats` must not meet as `agg_lat_stats`)."""
        n = len(self.prog.aggs)
        return f"agg{n}_{agg.id}", f"bpfrun_agg{n}_{agg.id}_key"

    def array_update(self, agg: Aggregation, value_code: str, scale: int,
                     lbounds: tuple[int, int, int] | None) -> list[str]:
        mname, _ = self.agg_names(agg)
        if agg.kind in ("hist", "lhist"):
            # Buckets and stats in one entry: a single lookup per event (measured in bench/:
            # one array entry beats a bucket array plus a stats array on the hot path).
            slots = (lbounds[1] - lbounds[0]) // lbounds[2] + 2 if lbounds else HIST_SLOTS + 1
            hname = f"bpfrun_{mname}_hist"
            self.prog.structs.append(f"struct {hname} {{ u64 slots[{slots}]; "
                                     "struct bpfrun_stats st; };")
            self.prog.maps.append(f"BPF_PERCPU_ARRAY({mname}, struct {hname}, 1);")
            return [f"u64 x = {value_code};",
                    f"u32 slot = {self.slot_code(agg, scale, lbounds)};",
                    "u32 zero = 0;",
                    f"struct {hname} *h_{mname} = {mname}.lookup(&zero);",
                    f"if (!h_{mname}) break;",
                    f"if (slot < {slots}) h_{mname}->slots[slot] += 1;",
                    f"bpfrun_stats_add(&h_{mname}->st, (s64)x);"]
        counter = agg.kind in ("count", "sum")
        vtype = "u64" if counter else "struct bpfrun_stats"
        self.prog.maps.append(f"BPF_PERCPU_ARRAY({mname}, {vtype}, 1);")
        body = ["u32 zero = 0;", f"{vtype} *v_{mname} = {mname}.lookup(&zero);"]
        if counter:
            amount = "1" if agg.kind == "count" else value_code
            return [*body, f"if (v_{mname}) *v_{mname} += {amount};"]
        return [*body, f"if (v_{mname}) bpfrun_stats_add(v_{mname}, (s64)({value_code}));"]

    def unit_of(self, agg: Aggregation, vtype: str) -> tuple[str | None, int,
                                                             tuple[int, int, int] | None]:
        unit = agg.unit or {"duration": "ns", "size": "bytes"}.get(vtype)
        scale = HIST_UNITS.get(unit, 1) if unit else 1
        if vtype == "duration" and unit in ("bytes", "KiB", "MiB"):
            self.error(f"'{unit}' is not a unit of time", agg.loc, "use ns, us, ms or s")
        lbounds = None
        if agg.kind == "lhist" and agg.bounds:
            try:
                lo, hi, st = (self.bound(b, scale, vtype) for b in agg.bounds)
            except ValueError as e:
                self.error(f"lhist bounds: {e}", agg.loc)
                lo, hi, st = 0, 100, 10
            if st <= 0 or hi <= lo or (hi - lo) // st > 1000:
                self.error("lhist needs min < max and 0 < step, with at most 1000 buckets",
                           agg.loc)
                lo, hi, st = 0, 100, 10
            lbounds = (lo, hi, st)
        elif agg.kind == "lhist":
            self.error("lhist needs min, max and step", agg.loc)
            lbounds = (0, 100, 10)
        return unit, scale, lbounds

    def bound(self, value: Any, scale: int, vtype: str) -> int:
        if value is None:
            raise ValueError("min, max and step are all required")
        if isinstance(value, int) and not isinstance(value, bool):
            return value * scale
        text = str(value)
        if "${{" in text:
            text = self.substitute(Template(text, tuple(parse_template(text)), self.step.loc))
        return parse_duration(text) if vtype == "duration" else parse_size(text)

    @staticmethod
    def slot_code(agg: Aggregation, scale: int, lb: tuple[int, int, int] | None) -> str:
        if agg.kind == "lhist" and lb:
            lo, hi, st = lb
            n = (hi - lo) // st
            return (f"x < {lo}ULL ? 0 : (x >= {hi}ULL ? {n + 1} : "
                    f"(u32)((x - {lo}ULL) / {st}ULL) + 1)")
        return f"bpf_log2l(x / {scale}ULL)" if scale != 1 else "bpf_log2l(x)"

    @staticmethod
    def counter_update(mname: str, amount: str, key: str) -> list[str]:
        return [f"u64 z_{mname} = 0;",
                f"u64 *v_{mname} = {mname}.lookup_or_try_init(&{key}, &z_{mname});",
                f"if (v_{mname}) *v_{mname} += {amount}; else bpfrun_lost(LOST_MAP_FULL);"]

    @staticmethod
    def stats_update(mname: str, x: str, key: str) -> list[str]:
        v = f"st_{mname}"
        return [f"struct bpfrun_stats z_{mname} = {{}};",
                f"struct bpfrun_stats *{v} = {mname}.lookup_or_try_init(&{key}, &z_{mname});",
                f"if ({v}) bpfrun_stats_add({v}, (s64){x}); else bpfrun_lost(LOST_MAP_FULL);"]

    # -- probes, events, spans ---------------------------------------------------------

    def events(self, probe: Probe, res: Resolved, scope: Scope) -> list[str]:
        index = len(self.prog.events)
        sname = f"bpfrun_ev{index}"
        comp = ExprCompiler(scope)
        body: list[str] = []
        fills: list[str] = []
        fields: list[KeyField] = []
        for i, e in enumerate(probe.emit):
            kf = self.key_field(comp, e, e.node, f"f{i}", "(*e)", fills)
            if kf is not None:
                fields.append(kf)
        if any(k.kind == "ustack" for k in fields):
            fills.append(f"e->tgid = {PID_TGID} >> 32;")
        cfields = [self.c_field(k) for k in fields]
        cfields.append("u32 tgid;")
        self.prog.structs.append(f"struct {sname} {{ u32 probe; " + " ".join(cfields) + " };")
        if probe.limit:
            body += [f"if (!bpfrun_emit_allowed({index}, {probe.limit})) break;"]
        else:
            body += [f"bpfrun_emit_allowed({index}, 0);"]
        if self.prog.event_buffer == "ringbuf":
            body += [f"struct {sname} *e = events.ringbuf_reserve(sizeof(struct {sname}));",
                     "if (!e) { bpfrun_lost(LOST_EVENTS); break; }",
                     f"e->probe = {index};", "e->tgid = 0;"]
            body += [line.replace("(*e).", "e->") for line in fills]
            body.append("events.ringbuf_submit(e, 0);")
        else:  # perf buffer: the record is built on the stack; user space counts losses
            body += [f"struct {sname} e;", "__builtin_memset(&e, 0, sizeof(e));",
                     f"e.probe = {index};"]
            body += [line.replace("(*e).", "e.") for line in fills]
            body.append("events.perf_submit(ctx, &e, sizeof(e));")
        self.prog.events.append(EventPlan(index, res.ref.canonical,
                                          probe.id or f"events{index}", fields, probe.limit))
        return ["/* events */", "do {", *("    " + line for line in body), "} while (0);"]
