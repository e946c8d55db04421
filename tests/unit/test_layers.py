"""The package layout is the design: stages import only down the pipeline, and never in a circle.

    errors, units, paths  →  expr  →  frontend  →  kernel  →  compile  →  result  →  report
                                                 →  diff  →  fleet  →  ops  →  runtime  →  cli

A module may import its own stage and the stages before it, never a later one. Every import
counts, including the ones inside functions (the CLI imports lazily to start fast). The runtime
sees the compiler only through its IR (`compile.program`) and its entry points
(`compile.pipeline`, and `compile.policy_check` for a policy's rules on compiled facts), so
the generated program is the one contract between the two.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from helpers.paths import REPO

PACKAGE = REPO / "bpfrun"

# Stage of each top-level module or package of bpfrun, in pipeline order.
STAGES = [
    {"bpfrun", "bpfrun.errors", "bpfrun.units", "bpfrun.paths"},
    {"bpfrun.expr"},
    {"bpfrun.frontend"},
    {"bpfrun.kernel"},
    {"bpfrun.compile"},
    {"bpfrun.result"},
    {"bpfrun.report"},
    {"bpfrun.diff"},
    {"bpfrun.fleet"},
    {"bpfrun.ops"},
    {"bpfrun.runtime"},
    {"bpfrun.cli", "bpfrun.__main__"},
]
# The compiler's IR, its entry point, and the policy check over a compiled runbook.
RUNTIME_VIEW_OF_COMPILE = {"bpfrun.compile.program", "bpfrun.compile.pipeline",
                           "bpfrun.compile.policy_check"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def stage_of(module: str) -> int:
    for rank in range(len(STAGES) - 1, -1, -1):
        for prefix in STAGES[rank]:
            if prefix != "bpfrun" and (module == prefix or module.startswith(prefix + ".")):
                return rank
    if module == "bpfrun":
        return 0
    raise AssertionError(f"{module} belongs to no stage: add it to STAGES in {__file__}")


def imports_of(path: Path) -> set[str]:
    """The bpfrun modules a file imports (`from bpfrun.x import y` counts y when it is a
    module), anywhere in the file."""
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "bpfrun"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != "bpfrun":
                continue
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                is_module = (REPO / Path(*sub.split("."))).with_suffix(".py").is_file() or (
                    REPO / Path(*sub.split(".")) / "__init__.py").is_file()
                found.add(sub if is_module else node.module)
    return found


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_has_a_stage() -> None:
    for module in graph():
        stage_of(module)


def test_no_import_from_a_later_stage() -> None:
    wrong = [f"{m} (stage {stage_of(m)}) imports {i} (stage {stage_of(i)})"
             for m, imported in graph().items() for i in sorted(imported)
             if stage_of(i) > stage_of(m)]
    assert not wrong, "imports against the pipeline:\n" + "\n".join(wrong)


def test_runtime_sees_the_compiler_only_through_its_ir_and_entry_point() -> None:
    wrong = [f"{m} imports {i}" for m, imported in graph().items()
             if m.startswith("bpfrun.runtime") for i in sorted(imported)
             if i.startswith("bpfrun.compile") and i not in RUNTIME_VIEW_OF_COMPILE]
    assert not wrong, "\n".join(wrong)


def test_no_import_circle() -> None:
    g = graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for nxt in sorted(g.get(m, ())):
            if nxt not in g or nxt == m:
                continue
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                pytest.fail("import circle: " + " → ".join(cycle))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[m] = 2

    for module in g:
        if module not in state:
            visit(module)


def test_the_checker_sees_a_later_stage_import(tmp_path: Path) -> None:
    """The rule is live: a frontend module importing the runtime is caught."""
    probe = PACKAGE / "frontend" / "model.py"
    assert "bpfrun.runtime.runner" not in imports_of(probe)
    fake = tmp_path / "x.py"
    fake.write_text("def f():\n    from bpfrun.runtime import runner\n")
    assert imports_of(fake) == {"bpfrun.runtime.runner"}
    assert stage_of("bpfrun.runtime.runner") > stage_of("bpfrun.frontend.model")


def test_the_cli_package_is_the_last_stage() -> None:
    """Every module of bpfrun/cli/ (one per command group) sits with its package at the end."""
    cli_modules = [m for m in graph() if m.split(".")[:2] == ["bpfrun", "cli"]]
    assert "bpfrun.cli.common" in cli_modules
    assert {stage_of(m) for m in cli_modules} == {len(STAGES) - 1}
