"""Resolution, the pass before lowering: every probe of a runbook looked up at once, its
problems returned together and with their places, and lowering given only the answers."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from helpers.paths import FIXTURES

from bpfrun.compile.pipeline import check_against_kernel, compile_step, placeholder_values
from bpfrun.compile.resolution import resolve_step
from bpfrun.errors import MachineError, ValidationError
from bpfrun.frontend.model import Runbook, Template
from bpfrun.frontend.params import resolve_params
from bpfrun.frontend.runbooks import load_runbook
from bpfrun.kernel.tracefs import FakeKernel

KERNEL = FakeKernel(FIXTURES / "tracefs")  # no kprobes
HEAD = "apiVersion: bpfrun/v1\nname: t\ntitle: T\n"  # 3 lines: steps start on line 4

BAD_NAMES = """\
    steps:
      - id: a
        span:
          begin: {probe: "tracepoint:sched", key: tid}
          end: {probe: tracepoint:sched:nope, key: tid}
          aggregate: [{id: d, count: true}]
        probes:
          - probe: tracepoint:sched:sched_switch
            aggregate: [{id: hits, count: true, by: [args.no_such_field]}]
      - id: b
        probes:
          - probe: kprobe:vfs_read
            fallbacks: [tracepoint:sched:nope2]
            aggregate: [{id: reads, count: true}]
          - probe: profile:hz:0
            aggregate: [{id: other, count: true}]
    """
MISSING_ONLY = """\
    steps:
      - id: a
        probes:
          - probe: tracepoint:sched:nope
            aggregate: [{id: hits, count: true}]
      - id: b
        probes:
          - probe: kprobe:vfs_read
            aggregate: [{id: reads, count: true}]
    """


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def load(body: str) -> Runbook:
    Path("t.yaml").write_text(HEAD + textwrap.dedent(body))
    return load_runbook("t.yaml")


def literal(template: Template) -> str:
    return template.text


def test_one_pass_finds_every_problem_of_a_step_with_its_place() -> None:
    step = load(BAD_NAMES).steps[0]
    probes = resolve_step(step, KERNEL, literal)
    (bad,) = probes.problems
    assert bad.message == "'tracepoint:sched' does not have the shape tracepoint:CATEGORY:EVENT"
    assert str(bad.loc) == "t.yaml:7:14"
    (missing,) = probes.missing
    assert missing.message.startswith("step 'a': no usable probe: tracepoint sched:nope does "
                                      "not exist on this kernel")
    assert str(missing.loc) == "t.yaml:8:12" and missing.hint and "bpfrun probes" in missing.hint
    assert probes.begin is None  # a bad name: nothing to lower
    assert probes.end is not None and not probes.end.checked  # lowered as written
    assert probes.notes == ["probe tracepoint:sched:nope cannot run here: tracepoint "
                            "sched:nope does not exist on this kernel (did you mean "
                            "tracepoint:sched:sched_wakeup?)"]
    (switch,) = probes.probes
    assert switch is not None and switch.ctx.fmt is not None and switch.checked


def test_a_runbooks_bad_names_and_type_errors_come_together() -> None:
    rb = load(BAD_NAMES)
    with pytest.raises(ValidationError) as info:
        check_against_kernel(rb, resolve_params(rb, {}), KERNEL)
    found = [(str(d.loc), d.message.split(";")[0]) for d in info.value.diagnostics]
    assert found == [
        ("t.yaml:7:14", "'tracepoint:sched' does not have the shape tracepoint:CATEGORY:EVENT"),
        ("t.yaml:12:50", "tracepoint:sched:sched_switch has no field 'no_such_field'"),
        ("t.yaml:18:9", "'profile:hz:0' does not have the shape profile:hz:99"),
    ]


def test_every_missing_probe_of_a_runbook_is_named_before_a_run() -> None:
    rb = load(MISSING_ONLY)
    params = resolve_params(rb, {})
    with pytest.raises(MachineError) as info:
        check_against_kernel(rb, params, KERNEL, strict=True)
    lines = info.value.message.splitlines()
    assert lines == [
        "step 'a': no usable probe: tracepoint sched:nope does not exist on this kernel (did "
        "you mean tracepoint:sched:sched_wakeup?) (runbook t.yaml:7:9)",
        "step 'b': no usable probe: kprobes are not available on this kernel: CONFIG_KPROBES "
        "is off (runbook t.yaml:11:9)",
    ]
    notes = check_against_kernel(rb, params, KERNEL)  # validate: noted, not refused
    assert [n.split(":")[0] for n in notes] == ["step a", "step b"]


def test_compile_shows_the_first_candidate_a_run_refuses() -> None:
    rb = load(MISSING_ONLY)
    params = resolve_params(rb, {})
    step = rb.steps[1]
    compiled = compile_step(rb, step, params, placeholder_values(rb, step), KERNEL,
                            require_probes=False)
    (plan,) = compiled.program.attaches
    assert (plan.kind, plan.target) == ("kprobe", ("vfs_read",))
    with pytest.raises(MachineError):
        compile_step(rb, step, params, placeholder_values(rb, step), KERNEL)
