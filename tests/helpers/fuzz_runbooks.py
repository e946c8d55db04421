"""Runbooks for the fuzz tests: made from the schema's shapes, and mutated into hostile ones.

`runbooks()` draws a runbook as plain data (dict/list/str/int) whose strings — titles,
descriptions, messages, string literals in expressions, string param defaults — come from
`texts()`, which favours what could break C or a terminal: quotes, backslashes, newlines,
`*/`, `#define`, `%`, trigraphs, NUL, template and Jinja syntax. `mutations()` then swaps a
value for one of another type, an extreme number, or such a string, anywhere in a runbook.
The harness (`outcome`) runs `bpfrun validate` in-process against the recorded tracefs and
compiles what validates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st
from typer.testing import CliRunner

import bpfrun.cli
from bpfrun.compile.cexpr import NullInput
from bpfrun.compile.pipeline import compile_step, placeholder_values
from bpfrun.frontend.params import placeholder_params
from bpfrun.frontend.runbooks import load_runbook
from bpfrun.kernel.tracefs import FakeKernel
from helpers.paths import FIXTURES

KERNEL = FakeKernel(FIXTURES / "tracefs")
HEADER = re.compile(r"^(?P<file>[^\s:]+):(?P<line>\d+):(?P<col>\d+): error: ")

HOSTILE_PIECES = ['"', "\\", "\n", "*/", "/*", "//", "#define X 1", "%s%n", "??=", "??/",
                  "\0", "\t", "\x1b[31m", "${{ 1 }}", "${{", "}}", "{{ x }}", "{% if %}",
                  "'", "`", "é", "\u202e", "\x7f", ";", "\\x41", "\\0", "??'"]
# Tracepoints the recorded tracefs has, with a numeric field to aggregate.
PROBES = [("tracepoint:syscalls:sys_enter_read", "args.count"),
          ("tracepoint:syscalls:sys_enter_write", "args.count"),
          ("tracepoint:sched:sched_switch", "args.prev_pid"),
          ("tracepoint:syscalls:sys_exit_read", "args.ret")]
EXTREMES: list[Any] = [0, -1, 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63) - 1, 10**40,
                       float("inf"), float("nan"), 1e400, -0.0, 0.5, True, False, None, "", [],
                       {}, [5], {"a": 1}, "1e400s", "0s", "99999999999999999999999h",
                       "${{ 1 << 99999999999 }}", "${{ -params.x }}", "${{ 1 >> -1 }}",
                       "n", "yes", "~", "0x", "1_000", "-5", "*/", "\0"]


def texts() -> st.SearchStrategy[str]:
    """Strings made mostly of hostile pieces, with some plain letters."""
    piece = st.one_of(st.sampled_from(HOSTILE_PIECES), st.text("abcxyz ", max_size=4),
                      st.characters(codec="utf-8", exclude_categories=["Cs"]).map(str))
    return st.lists(piece, min_size=1, max_size=6).map("".join)


def expr_string(s: str) -> str:
    """`s` as a string literal of bpfrun's expression language."""
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


@dataclass
class Drawn:
    """A runbook as data, and the runbook-supplied strings placed in it."""

    data: dict[str, Any]
    strings: list[str] = field(default_factory=list)


@st.composite
def runbooks(draw: st.DrawFn) -> Drawn:
    strings: list[str] = []

    def text() -> str:
        s = draw(texts())
        strings.append(s)
        return s

    steps = []
    for i in range(draw(st.integers(1, 2))):
        probe, value = draw(st.sampled_from(PROBES))
        kind = draw(st.sampled_from(["count", "sum", "hist", "stats", "max"]))
        agg: dict[str, Any] = {"id": f"a{i}", kind: True if kind == "count" else value}
        if draw(st.booleans()):
            agg["by"] = draw(st.sampled_from([["comm"], ["pid"], ["comm", "pid"]]))
        choice = draw(st.integers(0, 2))
        if choice == 0:
            where = f"comm == {expr_string(text())}"
        elif choice == 1:
            where = f"comm != {expr_string(text())} && pid > 0"
        else:
            where = "comm == params.name"
        step: dict[str, Any] = {"id": f"s{i}", "title": text(),
                                "probes": [{"probe": probe, "where": where,
                                            "aggregate": [agg]}]}
        if draw(st.booleans()):
            step["why"] = text()
        if draw(st.booleans()):
            step["thresholds"] = [{"id": f"t{i}", "when": f"a{i}.total > 5",
                                   "message": text()}]
        steps.append(step)
    data = {"apiVersion": "bpfrun/v1", "name": "fuzz", "title": text(),
            "description": text(),
            "params": {"name": {"type": "string", "default": text()}},
            "steps": steps}
    return Drawn(data, strings)


def paths_of(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into `value` (keys and indexes), the root included."""
    out = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            out += paths_of(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += paths_of(v, (*path, i))
    return out


def replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    """A copy of `value` with the part at `path` replaced by `new`."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {k: replaced(v, rest, new) if k == head else v for k, v in value.items()}
    return [replaced(v, rest, new) if i == head else v for i, v in enumerate(value)]


@st.composite
def mutated(draw: st.DrawFn, data: dict[str, Any]) -> dict[str, Any]:
    """`data` with one to three values swapped for extremes, hostile strings or other types."""
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths_of(data)[1:]))
        new = draw(st.one_of(st.sampled_from(EXTREMES), texts(),
                             texts().map(lambda s: {"probe": s}),
                             texts().map(lambda s: f"comm == {expr_string(s)}")))
        data = replaced(data, path, new)
    return data


def dump(data: Any) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=10_000)


@dataclass
class Outcome:
    code: int
    errors: list[str]  # the `file:line:col: error:` lines
    stderr: str
    c_texts: list[str]  # of every step, when the runbook validated


def outcome(path: Path) -> Outcome:
    """`bpfrun validate PATH` in-process, and the C of every step when it says ok."""
    runner = CliRunner()
    result = runner.invoke(bpfrun.cli.app, ["validate", str(path)])
    stderr = result.stderr
    errors = [line for line in stderr.splitlines() if HEADER.match(line)]
    c_texts: list[str] = []
    if result.exit_code == 0:
        rb = load_runbook(path)
        params = placeholder_params(rb)
        for step in rb.steps:
            try:
                compiled = compile_step(rb, step, params, placeholder_values(rb, step), KERNEL,
                                        require_probes=False)
            except NullInput:
                continue
            c_texts.append(compiled.c_text)
    return Outcome(result.exit_code, errors, stderr, c_texts)
