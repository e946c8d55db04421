""""ok" means it compiles and loads (issue #13): the C of every fixture runbook that
`validate` accepts, and of runbooks drawn by the fuzz tests' generator, goes through BCC's
own clang and into the kernel.

There is no clang binary on the test machines (gcc cannot parse BPF C), so BCC, which embeds
clang, compiles the C here; tests/unit/fuzz checks the C of many more fuzzed runbooks without
root. Shipped runbooks load in their self-tests (test_selftest_runs.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.fuzz_runbooks import Drawn, dump, outcome, runbooks
from helpers.paths import FIXTURES, TESTS
from hypothesis import HealthCheck, given, settings

from bpfrun.compile.cexpr import NullInput
from bpfrun.compile.pipeline import check_against_kernel, compile_step, placeholder_values
from bpfrun.errors import ValidationError
from bpfrun.frontend.params import placeholder_params
from bpfrun.frontend.runbooks import load_runbook
from bpfrun.kernel.tracefs import default_kernel

pytestmark = pytest.mark.bpf

CASES = sorted((FIXTURES / "hostile").glob("*.yaml")) + sorted(
    (TESTS / "runbooks" / "valid").glob("*.yaml"))


def validated(path: Path) -> bool:
    try:
        rb = load_runbook(path)
        check_against_kernel(rb, placeholder_params(rb), default_kernel(), near_misses=True)
    except ValidationError:
        return False
    return True


def compile_and_load(path: Path) -> None:
    from bpfrun.runtime.bccload import import_bcc  # noqa: PLC0415

    bcc = import_bcc()
    rb = load_runbook(path)
    kernel = default_kernel()
    for step in rb.steps:
        try:
            compiled = compile_step(rb, step, placeholder_params(rb),
                                    placeholder_values(rb, step), kernel, require_probes=False)
        except NullInput:
            continue
        program = bcc.BPF(text=compiled.c_text.encode(), cflags=["-Wno-unused-value"])
        program.cleanup()


def test_every_fixture_that_validates_compiles_and_loads() -> None:
    # Most hostile fixtures are refused by validate (that is their point); the ones it
    # accepts, and every valid fixture, must compile and load. One test over all of them,
    # rather than a skipped test per refused fixture.
    accepted = [p for p in CASES if validated(p)]
    assert len(accepted) >= len(sorted((TESTS / "runbooks" / "valid").glob("*.yaml")))
    failures = []
    for path in accepted:
        try:
            compile_and_load(path)
        except Exception as e:  # BCC raises plain Exceptions: list each with its file
            failures.append(f"{path.relative_to(TESTS)}: {type(e).__name__}: {e}")
    assert not failures, "\n".join(failures)


@settings(max_examples=12, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(drawn=runbooks())
def test_drawn_runbooks_that_validate_compile_and_load(drawn: Drawn, tmp_path: Path) -> None:
    from bpfrun.runtime.bccload import import_bcc  # noqa: PLC0415

    bcc = import_bcc()
    path = tmp_path / "drawn.yaml"
    path.write_text(dump(drawn.data), encoding="utf-8")
    for c_text in outcome(path).c_texts:  # empty when validate refused it
        bcc.BPF(text=c_text.encode(), cflags=["-Wno-unused-value"]).cleanup()
