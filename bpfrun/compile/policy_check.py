"""The policy's rules that need the compiled facts: which probes run (after fallbacks), what
they read of user memory and what of it leaves the kernel (compile/explain.py).

`check_runbook_policy` is the whole check — these rules and the frontend's (origin,
durations) — that `validate` and `run` apply; each violation is a Diagnostic at the offending
probe, read or emitted field, naming the rule.
"""

from __future__ import annotations

from typing import Any

from bpfrun.compile.explain import Explanation, explain_runbook
from bpfrun.errors import Diagnostic, ValidationError
from bpfrun.frontend.model import Runbook
from bpfrun.frontend.policy import Policy, check_durations, check_origin, matches
from bpfrun.kernel.tracefs import Kernel

# Fields of system calls that hold the data a process reads or writes (read, write, pread64,
# pwrite64, sendto, recvfrom: buf or ubuf; readv, writev: vec).
RAW_BUFFER_FIELDS = ("buf", "ubuf", "vec")
# Library functions whose arguments are the data a program sends, receives or writes: any
# user memory read at their uprobes is that data (TLS plaintext included).
RAW_BUFFER_FUNCTIONS = ("SSL_write", "SSL_read", "SSL_write_ex", "SSL_read_ex",
                        "gnutls_record_send", "gnutls_record_recv", "PR_Write", "PR_Read",
                        "write", "read", "pwrite", "pread", "pwrite64", "pread64", "send",
                        "recv", "sendto", "recvfrom", "sendmsg", "recvmsg", "fwrite", "fread")


def check_runbook_policy(policy: Policy, runbook: Runbook, params: dict[str, Any],
                         kernel: Kernel, override: int | None = None,
                         explanation: Explanation | None = None,
                         scheduled: bool = False) -> Explanation:
    """Every rule of `policy` on `runbook` (`override`: run --duration; `scheduled`: a run
    nobody watches); raises ValidationError listing every violation, else returns the
    explanation it checked (computed here unless given)."""
    expl = explanation or explain_runbook(runbook, params, kernel)
    problems = check_origin(policy, runbook, scheduled)
    problems += check_durations(policy, runbook, params, override)
    problems += policy_problems(policy, expl)
    if problems:
        raise ValidationError(diagnostics=problems, sources={runbook.path: runbook.source})
    return expl


def policy_problems(policy: Policy, expl: Explanation) -> list[Diagnostic]:
    return _probe_problems(policy, expl) + _memory_problems(policy, expl)


def _probe_problems(policy: Policy, expl: Explanation) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for p in expl.probes:
        if policy.probe_kinds is not None and p.kind not in policy.probe_kinds:
            out.append(Diagnostic(
                f"{policy.rule('probes.kinds')}: {p.kind} probes are not allowed ({p.probe}); "
                "allowed: " + (", ".join(policy.probe_kinds) or "none"), p.loc))
        elif (p.category is not None and policy.tracepoint_categories is not None
              and not matches(policy.tracepoint_categories, p.category)):
            out.append(Diagnostic(
                f"{policy.rule('probes.tracepoint_categories')}: tracepoints of category "
                f"'{p.category}' are not allowed ({p.probe}); allowed: "
                + (", ".join(policy.tracepoint_categories) or "none"), p.loc))
        elif p.function is not None and policy.uprobe_targets is not None:
            names = [f"{p.target}:{p.function}"]
            names += [f"{p.binary}:{p.function}"] if p.binary else []
            if not matches(policy.uprobe_targets, *names):
                out.append(Diagnostic(
                    f"{policy.rule('probes.uprobe_targets')}: {p.function} in {p.target} may "
                    f"not be probed ({p.probe}); allowed: "
                    + (", ".join(policy.uprobe_targets) or "none"), p.loc))
    return out


def _memory_problems(policy: Policy, expl: Explanation) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    if not policy.user_memory_read:
        out += [Diagnostic(f"{policy.rule('user_memory.read')}: {r.expr} reads user memory "
                           f"at {p.probe}", r.loc, "read kernel fields and numbers instead")
                for p, r in expl.user_memory_reads]
    for o, f in expl.user_memory_exports:
        what = f"{f.expr} ({'event field' if o.what == 'events' else 'aggregation key'} of "\
               f"{o.step}.{o.id})"
        if not policy.user_memory_emit:
            out.append(Diagnostic(f"{policy.rule('user_memory.emit')}: {what} copies user "
                                  "memory out of the kernel", f.loc,
                                  "count or filter on it in the kernel instead of emitting it"))
        elif not policy.raw_buffers and _raw_buffer(f.probe, f.pointers):
            out.append(Diagnostic(
                f"{policy.rule('user_memory.raw_buffers')}: {what} copies the data a process "
                f"reads or writes out of the kernel, at {f.probe}", f.loc,
                "emit its length (args.count) instead, or allow it with "
                "user_memory: {raw_buffers: true} in a policy file (--policy FILE)"))
    return out


def _raw_buffer(probe: str, pointers: tuple[str, ...]) -> bool:
    kind, _, rest = probe.partition(":")
    if kind in ("uprobe", "uretprobe"):
        return rest.rsplit(":", 1)[-1] in RAW_BUFFER_FUNCTIONS
    if not probe.startswith("tracepoint:syscalls:"):
        return False
    return any(p.rsplit(".", 1)[-1] in RAW_BUFFER_FIELDS for p in pointers)
