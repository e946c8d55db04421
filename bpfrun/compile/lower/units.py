"""Units and buckets of aggregated values: the display unit and its scale, lhist bounds in
base units (ns, bytes), and the C that picks a histogram slot."""

from __future__ import annotations

from typing import Any

from bpfrun.compile.lower.context import StepContext
from bpfrun.expr.parser import parse_template
from bpfrun.frontend.model import Aggregation, Template
from bpfrun.units import HIST_UNITS, parse_duration, parse_size

Bounds = tuple[int, int, int] | None
FALLBACK_BOUNDS = (0, 100, 10)  # after an error, so that lowering can go on
MAX_LHIST_BUCKETS = 1000


def unit_of(ctx: StepContext, agg: Aggregation, vtype: str) -> tuple[str | None, int, Bounds]:
    """The display unit, base units per display unit, and lhist bounds in base units."""
    unit = agg.unit or {"duration": "ns", "size": "bytes"}.get(vtype)
    scale = HIST_UNITS.get(unit, 1) if unit else 1
    if vtype == "duration" and unit in ("bytes", "KiB", "MiB"):
        ctx.error(f"'{unit}' is not a unit of time", agg.loc, "use ns, us, ms or s")
    if agg.kind != "lhist":
        return unit, scale, None
    if not agg.bounds:
        ctx.error("lhist needs min, max and step", agg.loc)
        return unit, scale, FALLBACK_BOUNDS
    try:
        lo, hi, st = (bound(ctx, b, scale, vtype) for b in agg.bounds)
    except ValueError as e:
        ctx.error(f"lhist bounds: {e}", agg.loc)
        lo, hi, st = FALLBACK_BOUNDS
    if st <= 0 or hi <= lo or (hi - lo) // st > MAX_LHIST_BUCKETS:
        ctx.error("lhist needs min < max and 0 < step, with at most 1000 buckets", agg.loc)
        lo, hi, st = FALLBACK_BOUNDS
    return unit, scale, (lo, hi, st)


def bound(ctx: StepContext, value: Any, scale: int, vtype: str) -> int:
    """One lhist bound in base units: a plain number is in the display unit."""
    if value is None:
        raise ValueError("min, max and step are all required")
    if isinstance(value, int) and not isinstance(value, bool):
        return value * scale
    text = str(value)
    if "${{" in text:
        text = ctx.substitute(Template(text, tuple(parse_template(text)), ctx.step.loc))
    return parse_duration(text) if vtype == "duration" else parse_size(text)


def slot_code(agg: Aggregation, scale: int, lb: Bounds) -> str:
    """The C of the histogram slot of `x`: log2 buckets, or lhist's linear ones."""
    if agg.kind == "lhist" and lb:
        lo, hi, st = lb
        n = (hi - lo) // st
        return (f"x < {lo}ULL ? 0 : (x >= {hi}ULL ? {n + 1} : "
                f"(u32)((x - {lo}ULL) / {st}ULL) + 1)")
    return f"bpf_log2l(x / {scale}ULL)" if scale != 1 else "bpf_log2l(x)"
