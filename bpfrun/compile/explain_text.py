"""An Explanation in words: the same sentences for `bpfrun explain`, the comment at the top
of `bpfrun compile`'s output and the report's "What this runbook reads and costs" section.

`sections` gives (heading, lines) pairs that each reader lays out its own way; `text` is the
plain-text layout the CLI prints.
"""

from __future__ import annotations

from bpfrun.compile.explain import NUMBER, Explanation, Field, Output, ProbeUse

READ_ORDER = ("user memory", "function argument", "kernel field", "kernel memory",
              "kernel stack", "user stack")


def summary(expl: Explanation) -> list[str]:
    """The few sentences a reviewer reads first."""
    out = []
    user_reads = expl.user_memory_reads
    user_out = expl.user_memory_exports
    if user_out:
        fields = ", ".join(dict.fromkeys(f"{f.expr} ({o.step}.{o.id})" for o, f in user_out))
        out.append(f"Copies user memory out of the kernel: {fields}.")
    elif user_reads:
        out.append("Reads user memory ("
                   + ", ".join(dict.fromkeys(r.expr for _, r in user_reads))
                   + ") in the kernel, but exports none of it.")
    else:
        out.append("Reads no user memory.")
    if expl.aggregates_only:
        out.append("Only aggregated numbers leave the kernel (keyed by numbers, task names "
                   "and stacks); no event records, no strings read from memory.")
    else:
        kinds = sorted({f.kind for o in expl.outputs for f in o.fields} - {NUMBER})
        events = [o for o in expl.outputs if o.what == "events"]
        what = ", ".join(kinds) if kinds else "numbers"
        out.append(f"Leaves the kernel: {what}"
                   + (f"; {len(events)} event stream(s), one record per hit" if events else "")
                   + ".")
    busiest = [p for p in expl.probes if p.cost.rate == "very frequent"]
    if busiest:
        out.append("Most costly: " + "; ".join(dict.fromkeys(
            f"{p.probe} ({p.cost.per})" for p in busiest)) + ".")
    if expl.unknown_steps:
        out.append("Steps compiled only at run time (they need earlier steps' values; their "
                   "keys are guessed from the runbook): " + ", ".join(expl.unknown_steps) + ".")
    return out


def probe_line(p: ProbeUse) -> str:
    if not p.processes:
        who = "all processes"
    elif p.all_processes:
        who = "all processes with these params (narrowed by " + ", ".join(p.processes) + ")"
    else:
        who = "processes picked by " + ", ".join(p.processes)
    reads = sorted({r.what for r in p.reads}, key=READ_ORDER.index)
    detail = "; ".join(f"{what}: " + ", ".join(dict.fromkeys(r.expr for r in p.reads
                                                             if r.what == what))
                       for what in reads) or "nothing but the task's identity"
    return (f"step {p.step}, {p.role} {p.probe} ({p.loc.line}:{p.loc.col}): {who}; "
            f"reads {detail}; runs {p.cost.per} [{p.cost.rate}]"
            + (f"; sampled 1 in {p.sample} (counts scaled)" if p.sample else "")
            + "".join(f"; aggregation {a} sampled 1 in {n} (counts scaled)"
                      for a, n in p.sampled))


def output_line(o: Output) -> str:
    if o.what == "events":
        fields = ", ".join(_field(f) for f in o.fields)
        return f"step {o.step}, events {o.id} from {o.probe}: one record per hit with {fields}"
    keys = ", ".join(_field(f) for f in o.fields)
    return f"step {o.step}, {o.id}: numbers" + (f" by {keys}" if keys else "")


def _field(f: Field) -> str:
    return f.expr if f.kind == NUMBER else f"{f.expr} ({f.kind})"


def sections(expl: Explanation) -> list[tuple[str, list[str]]]:
    return [
        ("Summary", summary(expl)),
        ("Probes: what each attaches to, reads and costs", [probe_line(p) for p in expl.probes]),
        ("What leaves the kernel", [output_line(o) for o in expl.outputs]),
    ]


def text(expl: Explanation) -> str:
    """`bpfrun explain`'s output."""
    lines = [f"{expl.runbook} ({expl.path})"]
    for heading, items in sections(expl):
        lines += ["", f"{heading}:"]
        lines += [f"  - {item}" for item in items] or ["  (none)"]
    return "\n".join(lines) + "\n"


def c_comment(expl: Explanation) -> str:
    """The explanation as a C comment, at the top of `bpfrun compile`'s output."""
    body = text(expl).replace("*/", "* /")  # a runbook's text cannot end the comment
    return "/*\n" + "".join(f" * {line}".rstrip() + "\n" for line in body.splitlines()) + " */\n"
