"""Values read from BPF maps: per-CPU values combined, rows merged, keys decoded.

Pure functions the runner applies to what it reads (no BCC object is needed except for
syscall names): per-CPU slots → one value, two rows of the same key → one, a key → a
hashable identity, and the decoders of syscall numbers and TCP states.
"""

from __future__ import annotations

from typing import Any

TCP_STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
              6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN",
              11: "CLOSING", 12: "NEW_SYN_RECV"}


def combine(kind: str, per_cpu: Any) -> Any:
    """Per-CPU values → one value (counts and sums add; min/max/stats combine)."""
    if kind in ("count", "sum"):
        return int(sum(per_cpu))
    live = [v for v in per_cpu if v.count]
    return {"count": sum(int(v.count) for v in live), "sum": sum(int(v.sum) for v in live),
            "min": min((int(v.min) for v in live), default=None),
            "max": max((int(v.max) for v in live), default=None)}


def merge(kind: str, a: Any, b: Any) -> Any:
    if kind in ("count", "sum"):
        return a + b
    out = {"count": a["count"] + b["count"], "sum": a["sum"] + b["sum"]}
    mins = [x for x in (a["min"], b["min"]) if x is not None]
    maxs = [x for x in (a["max"], b["max"]) if x is not None]
    out["min"] = min(mins) if mins else None
    out["max"] = max(maxs) if maxs else None
    return out


def merge_any(a: Any, b: Any) -> Any:
    """Two values of rows that turned out to have the same key: counts, sums, stats, hists."""
    if not isinstance(a, dict):
        return a + b
    if "slots" not in a:
        return merge("stats", a, b)
    slots = dict(a["slots"])
    for slot, n in b["slots"].items():
        slots[slot] = slots.get(slot, 0) + n
    stats = a["stats"] if b["stats"] is None else \
        b["stats"] if a["stats"] is None else merge("stats", a["stats"], b["stats"])
    return {"slots": slots, "stats": stats}


def member(per_cpu: Any, field: str | None) -> Any:
    """The values of one aggregation in a map it shares (AggPlan.field), per CPU."""
    return per_cpu if field is None else [getattr(v, field) for v in per_cpu]


def recorded(kind: str, value: Any) -> bool:
    """Whether a combined value holds anything: an entry of a shared map exists once any of
    its members recorded, so the others' parts of it may be empty."""
    return value != 0 if kind in ("count", "sum") else bool(value["count"])


def project(rows: list[tuple[dict[str, Any], Any]], exprs: list[str]
            ) -> list[tuple[dict[str, Any], Any]]:
    """Count rows summed over the keys not in `exprs` (AggPlan.derived_from)."""
    out: dict[tuple[Any, ...], tuple[dict[str, Any], Any]] = {}
    for key, value in rows:
        sub = {e: key[e] for e in exprs}
        ident = freeze(sub)
        out[ident] = (sub, out[ident][1] + value if ident in out else value)
    return list(out.values())


def freeze(key: dict[str, Any]) -> tuple[Any, ...]:
    return tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in key.items())


def syscall_name(nr: int) -> str:
    from bcc.syscall import syscall_name  # noqa: PLC0415 (import_bcc made it importable)

    name = syscall_name(nr)
    return name.decode() if isinstance(name, bytes) else str(name)


def text(name: Any) -> str:
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
