"""The host's policy: what runbooks may attach, read, export and how long they may run.

A policy file (`--policy FILE`, else /etc/bpfrun/policy.yaml when it exists, else the
default policy) is YAML checked against schema/policy.schema.json, each problem at its
file:line:col. Every rule is named by its key path (`user_memory.raw_buffers`); a runbook
that breaks one gets an error at the offending place in the runbook naming the rule (exit 2),
at `validate` and again at `run` before anything is loaded.

This module holds the policy and the rules that need only the runbook: where it comes from
(`runbooks.from`), how long its steps run (`max_duration`), and that the file run is the file
checked. The rules on probes and user memory need the compiled facts: compile/policy_check.py.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator

from bpfrun.errors import Diagnostic, Loc, ValidationError
from bpfrun.expr.evaluate import EvalError, render_template
from bpfrun.frontend.loader import Document, load_file
from bpfrun.frontend.model import Runbook
from bpfrun.paths import SYSTEM_POLICY, policy_schema_path, runbooks_dir
from bpfrun.units import format_duration, parse_duration

SHIPPED = "shipped"
DEFAULT_NAME = "default policy"
SCHEDULED_ENV = "BPFRUN_SCHEDULED"


@dataclass(frozen=True)
class Policy:
    """A policy; None for a list means no limit. `where` gives each rule's place in the policy
    file (or says it is the default), for messages."""

    source: str = DEFAULT_NAME  # the policy file, or DEFAULT_NAME
    probe_kinds: tuple[str, ...] | None = None
    tracepoint_categories: tuple[str, ...] | None = None
    uprobe_targets: tuple[str, ...] | None = None
    user_memory_read: bool = True
    user_memory_emit: bool = True
    raw_buffers: bool = False
    max_duration: int | None = None  # ns
    max_overhead: float | None = None  # percent of all CPUs; None: not set, 0: no limit
    runbooks_from: tuple[str, ...] | None = None
    scheduled_from: tuple[str, ...] | None = None  # the same, for scheduled runs
    where: dict[str, str] = field(default_factory=dict, compare=False)

    def rule(self, name: str) -> str:
        """`'user_memory.raw_buffers' (policy.yaml:7)` for messages."""
        return f"policy rule '{name}' ({self.where.get(name, self.source)})"


DEFAULT_POLICY = Policy()


def find_policy(option: str | os.PathLike[str] | None) -> Policy:
    """The policy in force: `--policy FILE`, else the system's file if any, else the default."""
    if option is not None:
        return load_policy(option)
    if SYSTEM_POLICY.is_file():
        return load_policy(SYSTEM_POLICY)
    return DEFAULT_POLICY


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Read and check a policy file; raises ValidationError with every problem at its place."""
    doc = load_file(path)
    problems = [_schema_problem(e, doc)
                for e in sorted(_validator().iter_errors(doc.data), key=lambda e: e.path)]
    if problems:
        raise ValidationError(diagnostics=problems, sources={doc.path: doc.text})
    data: dict[str, Any] = doc.data or {}
    probes, memory = data.get("probes", {}), data.get("user_memory", {})

    def opt(d: dict[str, Any], key: str) -> tuple[str, ...] | None:
        return tuple(d[key]) if key in d else None

    where = {f"{top}.{key}" if top else key: f"{doc.loc((top, key) if top else (key,))}"
             for top, keys in (("probes", probes), ("user_memory", memory),
                               ("runbooks", data.get("runbooks", {})), ("", data))
             for key in keys}
    return Policy(
        source=doc.path, probe_kinds=opt(probes, "kinds"),
        tracepoint_categories=opt(probes, "tracepoint_categories"),
        uprobe_targets=opt(probes, "uprobe_targets"),
        user_memory_read=memory.get("read", True), user_memory_emit=memory.get("emit", True),
        raw_buffers=memory.get("raw_buffers", False),
        max_duration=parse_duration(data["max_duration"]) if "max_duration" in data else None,
        max_overhead=data.get("max_overhead"),
        runbooks_from=opt(data.get("runbooks", {}), "from"),
        scheduled_from=opt(data.get("runbooks", {}), "scheduled"), where=where)


@functools.cache
def _validator() -> Draft7Validator:
    with open(policy_schema_path(), encoding="utf-8") as f:
        return Draft7Validator(json.load(f))


def _schema_problem(e: Any, doc: Document) -> Diagnostic:
    path = tuple(e.absolute_path)
    at = ".".join(str(p) for p in path) or "the policy"
    if e.validator == "additionalProperties" and isinstance(e.instance, dict):
        unknown = sorted(set(e.instance) - set(e.schema.get("properties", {})))
        known = ", ".join(e.schema.get("properties", {}))
        return Diagnostic(f"unknown key '{unknown[0]}' in {at}", doc.key_loc((*path, unknown[0])),
                          f"known keys: {known} (schema/policy.schema.json)")
    return Diagnostic(f"policy {at}: {e.message}", doc.loc(path))


def is_scheduled() -> bool:
    """A run nobody watches: BPFRUN_SCHEDULED=1, or no controlling terminal (cron, systemd)."""
    flag = os.environ.get(SCHEDULED_ENV, "")
    if flag:
        return flag != "0"
    try:
        os.close(os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY))
    except OSError:
        return True
    return False


def check_origin(policy: Policy, runbook: Runbook, scheduled: bool = False) -> list[Diagnostic]:
    """`runbooks.from` (and `runbooks.scheduled` for a scheduled run): the runbook file lies
    in one of the allowed folders."""
    rules = [("runbooks.from", policy.runbooks_from, "runbooks")]
    if scheduled:
        rules.append(("runbooks.scheduled", policy.scheduled_from, "scheduled runs' runbooks"))
    real = Path(runbook.path).resolve()
    out = []
    for name, allowed, what in rules:
        if allowed is None:
            continue
        folders = [runbooks_dir() if f == SHIPPED else Path(f) for f in allowed]
        if not any(real.is_relative_to(f.resolve()) for f in folders):
            out.append(Diagnostic(f"{policy.rule(name)}: {what} may only come from "
                                  + ", ".join(allowed) + f"; this one is {real}",
                                  Loc(runbook.path, 1, 1),
                                  "copy it into an allowed folder after review"))
    return out


def check_durations(policy: Policy, runbook: Runbook, params: dict[str, Any],
                    override: int | None = None) -> list[Diagnostic]:
    """`max_duration`: every step (or `run --duration`, which replaces them) within it."""
    limit = policy.max_duration
    if limit is None:
        return []
    rule = policy.rule("max_duration")
    if override is not None:
        return [] if override <= limit else [Diagnostic(
            f"{rule}: --duration {format_duration(override)} is longer than "
            f"{format_duration(limit)}", Loc(runbook.path, 1, 1))]
    out = []
    for step in runbook.steps:
        try:
            ns = parse_duration(render_template(step.duration.parts,
                                                {"params": params, "steps": {}}))
        except (EvalError, ValueError, KeyError, TypeError):
            continue  # known only during the run (an earlier step's value), or checked elsewhere
        if ns > limit:
            out.append(Diagnostic(f"{rule}: step '{step.id}' runs {format_duration(ns)}, longer "
                                  f"than {format_duration(limit)}", step.duration.loc,
                                  "shorten it, or pass a shorter --duration"))
    return out


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_unchanged(runbook: Runbook) -> None:
    """The file on disk is still the text that was checked; raises ValidationError if not
    (edited, replaced or removed between validation and loading into the kernel)."""
    try:
        now = Path(runbook.path).read_bytes().decode("utf-8", "replace")
    except OSError as e:
        now = f"<unreadable: {e}>"
    if digest(now) != digest(runbook.source):
        raise ValidationError(diagnostics=[Diagnostic(
            "the runbook file changed after it was validated; nothing was loaded",
            Loc(runbook.path, 1, 1), "run it again to check the new text")])


def matches(patterns: tuple[str, ...], *names: str) -> bool:
    return any(fnmatch.fnmatchcase(n, p) for p in patterns for n in names)
