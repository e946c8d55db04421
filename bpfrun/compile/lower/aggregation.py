"""Aggregations: key structs, per-CPU maps, histogram slots and the update code of each kind.

Keyed aggregations live in per-CPU hashes (no atomics on the hot path), or in a per-CPU array
indexed by a small integer key; unkeyed ones in a one-entry per-CPU array. A full map is
counted, never silent.
"""

from __future__ import annotations

from bpfrun.compile.cexpr import CompileError, ExprCompiler, Scope
from bpfrun.compile.cstr import c_comment
from bpfrun.compile.lower.context import StepContext
from bpfrun.compile.lower.limits import hist_limits
from bpfrun.compile.lower.stacks import grow_storage, user_stack_tgid
from bpfrun.compile.lower.units import slot_code, unit_of
from bpfrun.compile.lower.values import c_field, key_field
from bpfrun.compile.program import (
    DEFAULT_MAP_SIZE,
    HIST_SLOTS,
    INDEX_DOMAINS,
    LIMIT_SLOT,
    SPILL_MAP_SIZE,
    AggPlan,
    KeyField,
)
from bpfrun.frontend.model import Aggregation

Bounds = tuple[int, int, int] | None
VALUE_TYPES = ("int", "duration", "size", "ptr", "any", "bool")
SIZE_UNITS = ("bytes", "KiB", "MiB")


def lower_aggregation(ctx: StepContext, agg: Aggregation, scope: Scope) -> list[str]:
    """The statements that update one aggregation (a block that `break`s out early)."""
    comp = ExprCompiler(scope)
    reported = len(ctx.diags.items)
    body = where(ctx, agg, comp)
    if body is None:
        if len(ctx.diags.items) > reported:  # not "never holds": an error in the where
            check_rest(ctx, agg, comp)
        return []
    if agg.sample and agg.sample > 1:
        body += sample_gate(ctx, agg.sample, "break")
    keys = keys_of(ctx, agg, comp, body)
    value = value_of(ctx, agg, comp, body)
    if value is None:
        return []
    value_type, value_code = value
    unit, scale, lbounds = unit_of(ctx, agg, value_type)
    mname = agg_names(ctx, agg)[0]
    index = index_domain(agg, keys)
    limits = hist_limits(ctx, agg) if agg.kind in ("hist", "lhist") else ()
    if agg.by:
        update = hash_update(ctx, agg, keys, value_code, scale, lbounds, spill=bool(index),
                             limits=limits)
        if index:  # small values in the array, the rest in the hash
            update = [*indexed_update(ctx, agg, keys[0], value_code, index), "} else {",
                      *("    " + line for line in update), "}"]
        body += update
    else:
        # Without keys a per-CPU array indexed by slot (or 0) needs no hashing, no
        # key struct and no insertion: the cheapest update BPF has.
        body += array_update(ctx, agg, value_code, scale, lbounds, limits)
    stats_map = f"{mname}_stats" if agg.kind in ("hist", "lhist") and agg.by else None
    ctx.prog.aggs.append(AggPlan(agg.id, agg.kind, mname, stats_map, keys, value_type,
                                 unit, scale, agg.top, lbounds, array=not agg.by,
                                 index_map=f"{mname}_idx" if index else None, limits=limits,
                                 limit_slot=hist_slots(lbounds) if not agg.by else LIMIT_SLOT,
                                 sample=agg.sample or 1))
    return [f"/* {c_comment(f'aggregation {agg.id}: {agg.kind} (runbook {agg.loc})')} */",
            "do {", *("    " + line for line in body), "} while (0);"]


def check_rest(ctx: StepContext, agg: Aggregation, comp: ExprCompiler) -> None:
    """After an error in an aggregation's `where`, its keys and value are still compiled for
    their own errors (all of them at once); the step will not run, nothing is emitted."""
    keys_of(ctx, agg, comp, [])
    value_of(ctx, agg, comp, [])


def sample_gate(ctx: StepContext, n: int, leave: str) -> list[str]:
    """Runs `leave` (return 0 from a probe, break from an aggregation) but on every `n`th
    hit, counted per CPU: exact and repeatable (a test can count on it), unlike
    bpf_get_prandom_u32() % n, and a per-CPU array slot costs no lock or atomic. It comes
    after `where` (1 in n of the hits that count) and before any other map work."""
    name = ctx.fresh(f"bpfrun_{ctx.step.id}_sample")
    ctx.prog.maps.append(f"BPF_PERCPU_ARRAY({name}, u64, 1);")
    return [f"int {name}_slot = 0;",
            f"u64 *{name}_n = {name}.lookup(&{name}_slot);",
            f"if (!{name}_n || (*{name}_n)++ % {n}) {leave};  /* sample: 1/{n} */"]


def where(ctx: StepContext, agg: Aggregation, comp: ExprCompiler) -> list[str] | None:
    """The aggregation's own predicate as statements; None when it can never hold."""
    cond = condition(ctx, agg, comp)
    if cond is None:
        return None
    return [] if cond == ALWAYS else [*comp.take_pre(), f"if (!{cond}) break;"]


ALWAYS = "1"


def condition(ctx: StepContext, agg: Aggregation, comp: ExprCompiler) -> str | None:
    """The aggregation's `where` as a C condition (ALWAYS without one); None when it never
    holds or could not be compiled (reported). Statements it needs first are in comp.pre."""
    if agg.where is None:
        return ALWAYS
    try:
        w = comp.predicate(agg.where.node)
    except CompileError as e:
        ctx.compile_error(e, agg.where)
        return None
    if w.is_const:
        return ALWAYS if w.const else None
    return str(w.code)


def keys_of(ctx: StepContext, agg: Aggregation, comp: ExprCompiler,
            body: list[str]) -> list[KeyField]:
    """Fill the key struct `k` (statements into `body`) and describe its fields."""
    if agg.by:
        body += [f"struct {agg_names(ctx, agg)[1]} k;", "__builtin_memset(&k, 0, sizeof(k));"]
    keys: list[KeyField] = []
    for i, b in enumerate(agg.by):
        kf = key_field(ctx, comp, b, b.node, f"k{i}", "k.", body)
        if kf is not None:
            keys.append(kf)
    grow_storage(ctx, agg, keys)
    tgid = user_stack_tgid(comp.scope, keys)
    if tgid is not None:  # user stacks symbolize per process: the tgid is kept (not shown)
        body.append(f"k.tgid = {tgid};")
    return keys


def value_of(ctx: StepContext, agg: Aggregation, comp: ExprCompiler,
             body: list[str]) -> tuple[str, str] | None:
    """The type and C of the aggregated value ("int", "1" for a count); None after an error."""
    if agg.value is None:
        return "int", "1"
    try:
        v = comp.value(agg.value.node)
    except CompileError as e:
        ctx.compile_error(e, agg.value)
        return None
    if v.type not in VALUE_TYPES:
        ctx.error(f"{agg.kind} needs a number, duration or size, not a {v.type}",
                  agg.value.loc)
        return None
    body += comp.take_pre()
    value_type = v.type if v.type in ("duration", "size") else "int"
    if value_type == "int" and agg.unit:  # a plain number's unit says what it is
        value_type = "size" if agg.unit in SIZE_UNITS else "duration"
    return value_type, v.code if not v.is_const else str(v.code)


def agg_names(ctx: StepContext, agg: Aggregation) -> tuple[str, str]:
    """Map and key-struct names, unique by the aggregation's position (ids such as `lat`
    and `lat_stats` must not meet as `agg_lat_stats`)."""
    n = len(ctx.prog.aggs)
    return f"agg{n}_{agg.id}", f"bpfrun_agg{n}_{agg.id}_key"


def hash_update(ctx: StepContext, agg: Aggregation, keys: list[KeyField], value_code: str,
                scale: int, lbounds: Bounds, spill: bool = False,
                limits: tuple[int, ...] = ()) -> list[str]:
    """The update of a per-CPU hash keyed by the struct `k`; `spill`: the hash only
    takes the values an indexed array has no room for, so it can be small."""
    mname, sname = agg_names(ctx, agg)
    body: list[str] = []
    fields = [c_field(k) for k in keys]
    if any(k.kind == "ustack" for k in keys):
        fields.append("u32 tgid;")
    if agg.kind in ("hist", "lhist"):
        fields.append("u32 slot;")
        body.append(f"u64 x = {value_code};")
        body.append(f"k.slot = {slot_code(agg, scale, lbounds)};")
        body += counter_update(ctx, mname, "1", "k")
        for i, limit in enumerate(limits):  # a lookup more only for the values over a limit
            body += [f"if (x > {limit}ULL) {{", f"    k.slot = {LIMIT_SLOT + i}U;",
                     *("    " + line for line in counter_update(ctx, mname, "1", "k", f"l{i}")),
                     "}"]
        body.append("k.slot = 0xFFFFFFFF;  /* the per-key stats entry */")
        body += stats_update(ctx, f"{mname}_stats", "x", "k")
    elif agg.kind in ("count", "sum"):
        body += counter_update(ctx, mname, "1" if agg.kind == "count" else value_code, "k")
    else:
        body.append(f"s64 x = (s64)({value_code});")
        body += stats_update(ctx, mname, "x", "k")
    ctx.prog.structs.append(f"struct {sname} {{ " + " ".join(fields) + " };")
    size = agg.size or (SPILL_MAP_SIZE if spill else DEFAULT_MAP_SIZE)
    vtype = "u64" if agg.kind in ("count", "sum", "hist", "lhist") else "struct bpfrun_stats"
    hsize = size * 8 if agg.kind in ("hist", "lhist") else size
    ctx.prog.maps.append(f"BPF_PERCPU_HASH({mname}, struct {sname}, {vtype}, {hsize});")
    if agg.kind in ("hist", "lhist"):
        ctx.prog.maps.append(f"BPF_PERCPU_HASH({mname}_stats, struct {sname}, "
                             f"struct bpfrun_stats, {size});")
    return body


def index_domain(agg: Aggregation, keys: list[KeyField]) -> int:
    """Entries of the array an aggregation keyed by one small integer uses (0: none).
    Histograms keep their hash: an array of every value × every bucket is too big."""
    if len(keys) != 1 or len(agg.by) != 1 or agg.kind in ("hist", "lhist"):
        return 0
    return INDEX_DOMAINS.get(keys[0].decode or "", 0)


def indexed_update(ctx: StepContext, agg: Aggregation, key: KeyField, value_code: str,
                   size: int) -> list[str]:
    """The update of an array indexed by the key's value (measured in bench/: cheaper
    than a hash lookup, and the array cannot fill); larger values fall to the hash."""
    mname, _ = agg_names(ctx, agg)
    counter = agg.kind in ("count", "sum")
    vtype = "u64" if counter else "struct bpfrun_stats"
    ctx.prog.maps.append(f"BPF_PERCPU_ARRAY({mname}_idx, {vtype}, {size});")
    update = (f"*v_{mname} += {'1' if agg.kind == 'count' else value_code};" if counter
              else f"bpfrun_stats_add(v_{mname}, (s64)({value_code}));")
    return [f"if ((u64)k.{key.name} < {size}) {{",
            f"    u32 i_{mname} = k.{key.name};",
            f"    {vtype} *v_{mname} = {mname}_idx.lookup(&i_{mname});",
            f"    if (v_{mname}) {update}"]


def hist_slots(lbounds: Bounds) -> int:
    """Slots of an unkeyed histogram's buckets; its limit counters come after them."""
    return (lbounds[1] - lbounds[0]) // lbounds[2] + 2 if lbounds else HIST_SLOTS + 1


def array_update(ctx: StepContext, agg: Aggregation, value_code: str, scale: int,
                 lbounds: Bounds, limits: tuple[int, ...] = ()) -> list[str]:
    """The update of an unkeyed aggregation's one-entry per-CPU array."""
    mname, _ = agg_names(ctx, agg)
    if agg.kind in ("hist", "lhist"):
        # Buckets and stats in one entry: a single lookup per event (measured in bench/:
        # one array entry beats a bucket array plus a stats array on the hot path).
        slots = hist_slots(lbounds)
        hname = f"bpfrun_{mname}_hist"
        # Limit counters are slots past the buckets: the same entry, no lookup more.
        ctx.prog.structs.append(f"struct {hname} {{ u64 slots[{slots + len(limits)}]; "
                                "struct bpfrun_stats st; };")
        ctx.prog.maps.append(f"BPF_PERCPU_ARRAY({mname}, struct {hname}, 1);")
        return [f"u64 x = {value_code};",
                f"u32 slot = {slot_code(agg, scale, lbounds)};",
                "u32 zero = 0;",
                f"struct {hname} *h_{mname} = {mname}.lookup(&zero);",
                f"if (!h_{mname}) break;",
                f"if (slot < {slots}) h_{mname}->slots[slot] += 1;",
                *(f"if (x > {limit}ULL) h_{mname}->slots[{slots + i}] += 1;"
                  for i, limit in enumerate(limits)),
                f"bpfrun_stats_add(&h_{mname}->st, (s64)x);"]
    counter = agg.kind in ("count", "sum")
    vtype = "u64" if counter else "struct bpfrun_stats"
    ctx.prog.maps.append(f"BPF_PERCPU_ARRAY({mname}, {vtype}, 1);")
    body = ["u32 zero = 0;", f"{vtype} *v_{mname} = {mname}.lookup(&zero);"]
    if counter:
        amount = "1" if agg.kind == "count" else value_code
        return [*body, f"if (v_{mname}) *v_{mname} += {amount};"]
    return [*body, f"if (v_{mname}) bpfrun_stats_add(v_{mname}, (s64)({value_code}));"]


def lookup_or_insert(ctx: StepContext, ctype: str, v: str, mname: str, key: str,
                     zero: str) -> list[str]:
    """`ctype *v`: the map's entry for the key, inserted (from `zero`) when new. What BCC's
    lookup_or_try_init does, plus a count of the keys inserted (bpfrun_fill_map), so that
    user space can tell how full the map is without walking its keys."""
    if mname not in ctx.prog.fill_maps:
        ctx.prog.fill_maps.append(mname)
    slot = ctx.prog.fill_maps.index(mname)
    return [f"{ctype} *{v} = {mname}.lookup(&{key});",
            f"if (!{v}) {{",
            f"    if ({mname}.insert(&{key}, &{zero}) == 0) bpfrun_filled({slot});",
            f"    {v} = {mname}.lookup(&{key});",
            "}"]


def counter_update(ctx: StepContext, mname: str, amount: str, key: str,
                   suffix: str = "") -> list[str]:
    z, v = f"z_{mname}{suffix}", f"v_{mname}{suffix}"
    return [f"u64 {z} = 0;",
            *lookup_or_insert(ctx, "u64", v, mname, key, z),
            f"if ({v}) *{v} += {amount}; else bpfrun_lost(LOST_MAP_FULL);"]


def stats_update(ctx: StepContext, mname: str, x: str, key: str) -> list[str]:
    v = f"st_{mname}"
    return [f"struct bpfrun_stats z_{mname} = {{}};",
            *lookup_or_insert(ctx, "struct bpfrun_stats", v, mname, key, f"z_{mname}"),
            f"if ({v}) bpfrun_stats_add({v}, (s64){x}); else bpfrun_lost(LOST_MAP_FULL);"]
