"""`sample: 1/N` without BPF (issue #18.4): the schema's form, the model's N, the refusals,
the per-CPU gate in the C after `where`, N on the AggPlan, values scaled when read, and the
explanation saying the probe is sampled."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from helpers.compiling import KERNEL, compile_first, compile_one, load

from bpfrun.compile.explain import explain_runbook
from bpfrun.compile.explain_text import probe_line
from bpfrun.compile.pipeline import Compiled
from bpfrun.compile.program import AggPlan
from bpfrun.errors import ValidationError
from bpfrun.frontend.params import resolve_params
from bpfrun.frontend.runbooks import load_runbook
from bpfrun.runtime.collect import build_view, unsampled
from bpfrun.runtime.runner import RawAgg

RUNBOOK = """\
    apiVersion: bpfrun/v1
    name: t
    title: T
    steps:
      - id: s
        probes:
          - probe: tracepoint:syscalls:sys_enter_write
            where: pid == 42
            {sample}
            aggregate:
              - {{id: writes, count: true, by: [comm]}}
              - {{id: bytes, sum: args.count, unit: bytes}}
              - {{id: biggest, max: args.count}}
    """


def write(tmp_path: Path, sample: str) -> Path:
    path = tmp_path / "t.yaml"
    path.write_text(textwrap.dedent(RUNBOOK.format(sample=sample)))
    return path


def compiled(tmp_path: Path, sample: str) -> Compiled:
    return compile_first(textwrap.dedent(RUNBOOK.format(sample=sample)), tmp_path / "t.yaml")


def test_the_kernel_records_every_nth_hit_after_where(tmp_path: Path) -> None:
    c = compiled(tmp_path, "sample: 1/10")
    assert load_runbook(tmp_path / "t.yaml").steps[0].probes[0].sample == 10
    assert [p.sample for p in c.program.aggs] == [10, 10, 10]
    gate = c.c_text.index("% 10) return 0;  /* sample: 1/10 */")
    assert c.c_text.index("42") < gate  # `where` first: 1 in 10 of the hits that count
    assert "BPF_PERCPU_ARRAY(bpfrun_s_sample" in c.c_text


def test_unsampled_probes_compile_as_before(tmp_path: Path) -> None:
    c = compiled(tmp_path, "")
    assert [p.sample for p in c.program.aggs] == [1, 1, 1]
    assert "sample:" not in c.c_text and "_sample" not in c.c_text


@pytest.mark.parametrize("sample", ["sample: 2/10", "sample: 1/0", "sample: 1/x", "sample: '10%'"])
def test_only_one_in_n_is_a_sample(tmp_path: Path, sample: str) -> None:
    with pytest.raises(ValidationError, match=r"must be 1/N, e.g. sample: 1/10"):
        load_runbook(write(tmp_path, sample))


def test_a_sampled_probe_cannot_emit(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(textwrap.dedent("""\
        apiVersion: bpfrun/v1
        name: t
        title: T
        steps:
          - id: s
            probes:
              - probe: tracepoint:syscalls:sys_enter_write
                sample: 1/10
                emit: [comm]
        """))
    with pytest.raises(ValidationError) as e:
        load_runbook(path)
    assert "a sampled probe cannot emit" in str(e.value.render())


def test_counts_sums_and_buckets_are_scaled_but_not_extremes() -> None:
    assert unsampled(7, 10) == 70
    stats = {"count": 3, "sum": 30, "min": 2, "max": 20}
    assert unsampled(stats, 10) == {"count": 30, "sum": 300, "min": 2, "max": 20}
    hist = {"slots": {3: 2, 5: 1}, "stats": stats}
    assert unsampled(hist, 4) == {"slots": {3: 8, 5: 4},
                                  "stats": {"count": 12, "sum": 120, "min": 2, "max": 20}}


def test_the_view_reads_a_sampled_aggregation_scaled(tmp_path: Path) -> None:
    plan: AggPlan = compiled(tmp_path, "sample: 1/10").program.aggs[0]
    view = build_view(RawAgg(plan, [({"comm": "a"}, 3), ({"comm": "b"}, 1)]))
    assert [int(r.value) for r in view.rows] == [30, 10]


def test_explain_says_the_probe_is_sampled(tmp_path: Path) -> None:
    rb = load_runbook(write(tmp_path, "sample: 1/10"))
    expl = explain_runbook(rb, resolve_params(rb, {}), KERNEL)
    assert expl.probes[0].sample == 10
    assert probe_line(expl.probes[0]).endswith("; sampled 1 in 10 (counts scaled)")


def test_an_aggregation_may_sample_itself_alone(tmp_path: Path) -> None:
    rb, params = load(textwrap.dedent(RUNBOOK.format(sample="")).replace(
        "{id: bytes, sum: args.count, unit: bytes}",
        "{id: bytes, sum: args.count, unit: bytes, sample: 1/4}"), tmp_path / "t.yaml")
    c = compile_one(rb, rb.steps[0], params)
    assert [p.sample for p in c.program.aggs] == [1, 4, 1]
    assert "% 4) break;  /* sample: 1/4 */" in c.c_text  # leaves its own block only
    expl = explain_runbook(rb, params, KERNEL)
    assert probe_line(expl.probes[0]).endswith("; aggregation bytes sampled 1 in 4 "
                                               "(counts scaled)")


def test_a_sampled_probe_and_aggregation_multiply(tmp_path: Path) -> None:
    c = compile_first(textwrap.dedent(RUNBOOK.format(sample="sample: 1/10")).replace(
        "{id: writes, count: true, by: [comm]}",
        "{id: writes, count: true, by: [comm], sample: 1/3}"), tmp_path / "t.yaml")
    assert [p.sample for p in c.program.aggs] == [30, 10, 10]


def test_a_pending_aggregation_cannot_be_sampled(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(textwrap.dedent("""\
        apiVersion: bpfrun/v1
        name: t
        title: T
        steps:
          - id: s
            span:
              begin: {probe: tracepoint:syscalls:sys_enter_read, key: tid}
              end: {probe: tracepoint:syscalls:sys_exit_read, key: tid}
              aggregate:
                - {id: lat, hist: duration, unit: us, sample: 1/10}
              pending:
                - {id: open, count: true, sample: 1/10}
        """))
    with pytest.raises(ValidationError) as e:
        load_runbook(path)
    assert "a pending aggregation is computed at the end" in str(e.value.render())
