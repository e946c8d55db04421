"""Golden C of representative runbooks, and the fixture runbooks through the whole compiler.

The golden files pin the generated C byte for byte (after normalizing the version line), so
that every change to it is a reviewed diff. Regenerate them after an intended change with

    BPFRUN_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/compile/test_golden.py

Every tests/runbooks/valid/*.yaml must compile against the recorded kernel, and every
tests/runbooks/invalid/{check,type}-*.yaml must fail with the first diagnostic line in its
.expected sibling (tests/unit/frontend/test_schema.py covers the load and schema fixtures).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from helpers.paths import REPO

from bpfrun.compile.pipeline import check_against_kernel, compile_step, placeholder_values
from bpfrun.errors import ValidationError
from bpfrun.frontend.params import resolve_params
from bpfrun.frontend.runbooks import load_runbook
from bpfrun.kernel.tracefs import FakeKernel

REPO = REPO
TRACEFS = REPO / "tests" / "fixtures" / "tracefs"
GOLDEN = REPO / "tests" / "golden"
RUNBOOKS = REPO / "tests" / "runbooks"
# kprobes as on a kernel that has them, for runbooks whose first choice is a kprobe. The
# fake kernel's features (ring buffer, task storage, x86-64) are fixed, whatever this host has.
KERNEL = FakeKernel(TRACEFS, kprobes=True, functions=["vfs_read", "vfs_write",
                                                      "finish_task_switch"])

CASES = {  # golden name → (runbook, params)
    "syscalls": ("runbooks/syscalls.yaml", {"comm": "bash", "pid": "42"}),
    "runq-latency": ("tests/runbooks/valid/runq-latency.yaml", {}),
    "syscall-io": ("tests/runbooks/valid/syscall-io.yaml", {}),
}


@pytest.fixture(autouse=True)
def _at_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # runbook paths in the C are the relative ones given here


def normalize(c_text: str) -> str:
    return re.sub(r"^/\* bpfrun \S+:", "/* bpfrun VERSION:", c_text, flags=re.MULTILINE)


def generate(path: str, params: dict[str, str]) -> str:
    rb = load_runbook(path)
    values = resolve_params(rb, params)
    parts = []
    for step in rb.steps:
        compiled = compile_step(rb, step, values, placeholder_values(rb, step), KERNEL)
        parts.append(f"/* ===== step {step.id} ===== */\n" + normalize(compiled.c_text))
    return "\n".join(parts)


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_c(name: str) -> None:
    path, params = CASES[name]
    text = generate(path, params)
    golden = GOLDEN / f"{name}.c"
    if os.environ.get("BPFRUN_UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    assert golden.is_file(), f"no {golden}: run with BPFRUN_UPDATE_GOLDEN=1"
    assert text == golden.read_text(), (
        f"the C of {path} changed; if intended, regenerate with BPFRUN_UPDATE_GOLDEN=1 and "
        "review the diff of tests/golden/")


def test_normalize_only_touches_the_version() -> None:
    assert normalize("/* bpfrun 1.2.3: runbook x */\nint a; /* bpfrun 2: y */") == \
        "/* bpfrun VERSION: runbook x */\nint a; /* bpfrun 2: y */"


# --- fixture runbooks -----------------------------------------------------------------------

VALID = sorted((RUNBOOKS / "valid").glob("*.yaml"))
@pytest.mark.parametrize("path", [pytest.param(p, id=p.name) for p in VALID])
def test_valid_runbook_compiles(path: Path) -> None:
    rb = load_runbook(path.relative_to(REPO))
    params = resolve_params(rb, {})
    for step in rb.steps:
        c = compile_step(rb, step, params, placeholder_values(rb, step), KERNEL)
        assert c.program.attaches or c.program.interval, step.id
        assert f"runbook {rb.name}, step {step.id}." in c.c_text


INVALID = sorted(p for p in (RUNBOOKS / "invalid").glob("*.yaml")
                 if p.name.startswith(("check-", "type-")))


def first_problem(path: Path) -> str:
    try:
        rb = load_runbook(path.name)
        check_against_kernel(rb, resolve_params(rb, {}), KERNEL)
    except ValidationError as e:
        return e.diagnostics[0].render(e.sources).splitlines()[0]
    raise AssertionError(f"{path.name} compiled without a problem")


@pytest.mark.parametrize("path", INVALID, ids=[p.name for p in INVALID])
def test_invalid_runbook_fails_where_expected(path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(path.parent)  # diagnostics show the path as given: the bare file name
    expected = path.with_suffix(".expected").read_text(encoding="utf-8").strip()
    assert first_problem(path) == expected


def test_check_and_type_fixtures_are_complete() -> None:
    assert len([p for p in INVALID if p.name.startswith("check-")]) >= 8
    assert len([p for p in INVALID if p.name.startswith("type-")]) >= 8
    for p in INVALID:
        assert p.with_suffix(".expected").is_file(), p.name
