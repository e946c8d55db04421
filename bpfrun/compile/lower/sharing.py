"""Aggregations of one handler that share their map work: the hot path's lookups.

Each keyed aggregation costs a hash lookup on every hit, and on a probe such as sys_exit
(every system call of the machine) the lookups are most of the program's cost. Two cases
need fewer, decided from the runbook alone, before any C is written:

- **Derived** (a projection): `count by [pid, comm]` next to `count by [pid, comm, syscall]`
  with the same `where` is the second one's rows summed over the key it does not have. No
  map of its own: user space sums (AggPlan.derived_from).
- **Shared** (one map, several members): counts and stats keyed by the same expressions
  live in one entry, a struct with a member each (AggPlan.field). One lookup, then each
  member whose `where` holds is updated. An entry exists once any member recorded; user
  space shows a member's row only where that member recorded something.

Anything else (sums, histograms, stacks, sampling, one-key aggregations that may use an
indexed array) is lowered on its own, as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bpfrun.compile.cexpr import CompileError, ExprCompiler, Scope
from bpfrun.compile.cstr import c_comment
from bpfrun.compile.lower.aggregation import (
    agg_names,
    check_rest,
    condition,
    keys_of,
    lookup_or_insert,
    lower_aggregation,
    value_of,
)
from bpfrun.compile.lower.context import StepContext
from bpfrun.compile.lower.units import unit_of
from bpfrun.compile.lower.values import c_field
from bpfrun.compile.program import DEFAULT_MAP_SIZE, AggPlan
from bpfrun.expr.nodes import unparse
from bpfrun.frontend.model import Aggregation, Expr

SHAREABLE = ("count", "stats")


@dataclass
class Sharing:
    """How one handler's aggregations are lowered: alone, in a shared map, or derived."""

    groups: list[list[Aggregation]] = field(default_factory=list)  # in order; 1 = alone
    derived: dict[str, Aggregation] = field(default_factory=dict)  # id → its source


def text(e: Expr | None) -> str | None:
    return None if e is None else unparse(e.node)


def key_texts(agg: Aggregation) -> tuple[str, ...]:
    return tuple(unparse(b.node) for b in agg.by)


def plain(agg: Aggregation) -> bool:
    """Keyed by at least two plain values (no stacks: their keys carry more than the value;
    one key may be an indexed array), every hit recorded."""
    return (len(agg.by) >= 2 and not agg.sample
            and not any("stack" in t for t in key_texts(agg)))


def plan_sharing(aggs: tuple[Aggregation, ...] | list[Aggregation]) -> Sharing:
    out = Sharing()
    counts = [a for a in aggs if a.kind == "count" and plain(a)]
    for a in aggs:
        if a.kind != "count" or not a.by or a.sample or any("stack" in t for t in key_texts(a)):
            continue
        for b in counts:
            if b is not a and text(a.where) == text(b.where) \
                    and set(key_texts(a)) < set(key_texts(b)) and b.id not in out.derived:
                out.derived[a.id] = b
                break
    by_keys: dict[tuple[str, ...], list[Aggregation]] = {}
    for a in aggs:
        if a.id in out.derived:
            continue
        if a.kind in SHAREABLE and plain(a):
            group = by_keys.setdefault(key_texts(a), [])
            if not group:
                out.groups.append(group)
            group.append(a)
        else:
            out.groups.append([a])
    return out


def lower_aggregations(ctx: StepContext, aggs: tuple[Aggregation, ...] | list[Aggregation],
                       scope: Scope) -> list[str]:
    """The statements that update a handler's aggregations; their AggPlans in runbook order
    (a derived one right after its source's group)."""
    sharing = plan_sharing(aggs)
    start = len(ctx.prog.aggs)
    body: list[str] = []
    for group in sharing.groups:
        first = len(ctx.prog.aggs)
        try:
            body += lower_shared(ctx, group, scope) if len(group) > 1 else \
                lower_aggregation(ctx, group[0], scope)
        except CompileError as e:  # raised from a span's BeginValues.ref
            ctx.error(str(e), group[0].loc, e.hint)
        made = {p.id for p in ctx.prog.aggs[first:]}
        for agg_id, source in sharing.derived.items():
            if source.id in made:
                derived_plan(ctx, next(a for a in aggs if a.id == agg_id), source)
    order = {a.id: i for i, a in enumerate(aggs)}
    ctx.prog.aggs[start:] = sorted(ctx.prog.aggs[start:], key=lambda p: order[p.id])
    return body


def derived_plan(ctx: StepContext, agg: Aggregation, source: Aggregation) -> None:
    """The plan of a count summed in user space from `source`'s rows."""
    src = next(p for p in ctx.prog.aggs if p.id == source.id)
    wanted = key_texts(agg)
    keys = [k for k in src.keys if k.expr in wanted]
    keys.sort(key=lambda k: wanted.index(k.expr))
    ctx.prog.aggs.append(AggPlan(agg.id, "count", src.map, None, keys, "int", None, 1,
                                 agg.top, None, derived_from=source.id))


def lower_shared(ctx: StepContext, group: list[Aggregation], scope: Scope) -> list[str]:
    """One map for aggregations keyed alike: a condition each, one lookup, each member's
    update under its condition."""
    comp = ExprCompiler(scope)
    body: list[str] = []
    members: list[tuple[Aggregation, str, str, str]] = []  # agg, flag, value type, value C
    for i, agg in enumerate(group):
        reported = len(ctx.diags.items)
        cond = condition(ctx, agg, comp)
        if cond is None:
            if len(ctx.diags.items) > reported:  # an error in the where, not "never holds"
                check_rest(ctx, agg, comp)
            continue
        value = value_of(ctx, agg, comp, body)
        if value is None:
            continue  # an error already reported
        body += comp.take_pre()
        flag = f"w{i}"
        body.append(f"int {flag} = {cond};")
        members.append((agg, flag, *value))
    if not members:
        return []
    mname, sname = agg_names(ctx, members[0][0])
    body.append(f"if (!({' || '.join(m[1] for m in members)})) break;")
    keys = keys_of(ctx, members[0][0], comp, body)
    body += comp.take_pre()
    vname = f"{sname[:-len('_key')]}_val"
    fields, updates, lost = [], [], []
    for j, (agg, flag, value_type, code) in enumerate(members):
        m = f"m{j}"
        if agg.kind == "count":
            fields.append(f"u64 {m};")
            updates.append(f"if ({flag}) v_{mname}->{m} += 1;")
        else:
            fields.append(f"struct bpfrun_stats {m};")
            updates.append(f"if ({flag}) bpfrun_stats_add(&v_{mname}->{m}, (s64)({code}));")
        lost.append(f"if ({flag}) bpfrun_lost(LOST_MAP_FULL);")
        unit, scale, _ = unit_of(ctx, agg, value_type)
        ctx.prog.aggs.append(AggPlan(agg.id, agg.kind, mname, None, keys, value_type, unit,
                                     scale, agg.top, None, field=m))
    ctx.prog.structs.append(f"struct {sname} {{ " + " ".join(c_field(k) for k in keys) + " };")
    ctx.prog.structs.append(f"struct {vname} {{ " + " ".join(fields) + " };")
    ctx.prog.maps.append(f"BPF_PERCPU_HASH({mname}, struct {sname}, struct {vname}, "
                         f"{map_size(group)});")
    body += [f"struct {vname} z_{mname} = {{}};",
             *lookup_or_insert(ctx, f"struct {vname}", f"v_{mname}", mname, "k", f"z_{mname}"),
             f"if (!v_{mname}) {{", *("    " + line for line in lost), "    break;", "}",
             *updates]
    ids = ", ".join(m[0].id for m in members)
    note = c_comment(f"aggregations {ids}: one map, keyed alike (runbook {group[0].loc})")
    return [f"/* {note} */", "do {", *("    " + line for line in body), "} while (0);"]


def map_size(group: list[Aggregation]) -> int:
    return max(a.size or DEFAULT_MAP_SIZE for a in group)
