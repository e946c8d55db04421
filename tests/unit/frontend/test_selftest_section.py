"""The `selftest:` section: the typed model with positions, and its checks against the runbook,
reported at file:line:col together with every other problem of the runbook."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from helpers.paths import REPO

from bpfrun.errors import Loc, ValidationError
from bpfrun.frontend.runbooks import load_runbook
from bpfrun.frontend.selftest import (
    CaptureExpectation,
    Ref,
    RowsExpectation,
    StatusExpectation,
)

SHIPPED = sorted((REPO / "runbooks").glob("*.yaml"))

# Line numbers below count from 1 at `apiVersion`.
RUNBOOK = """\
    apiVersion: bpfrun/v1
    name: t
    title: T
    params:
      pid: {type: pid, default: 0}
      threshold: {type: duration, default: 1ms}
    steps:
      - id: runq
        probes:
          - probe: tracepoint:sched:sched_wakeup
            id: wakeups
            emit: [pid]
            aggregate:
              - {id: by_comm, count: true, by: [comm]}
        thresholds:
          - {id: slow, when: "by_comm.total > 10"}
          - {id: quiet, when: "by_comm.total < 1"}
        capture:
          culprit: by_comm.top[0].comm
      - id: offcpu
        probes:
          - probe: tracepoint:sched:sched_switch
            aggregate:
              - {id: stacks, count: true}
    selftest:
      workload: [tests/workloads/runq_contention, --seconds, "30"]
      params: {pid: "${{ workload.pid }}", threshold: 5ms}
      timeout: 60s
      note: why
      expect:
        EXPECT
"""
# Where EXPECT is: line 31, col 5.
EXPECT_LINE = 31


def write(expect: str, runbook: str = RUNBOOK) -> Path:
    text = textwrap.dedent(runbook.replace("EXPECT", expect))
    Path("t.yaml").write_text(text)
    return Path("t.yaml")


def problems(expect: str, runbook: str = RUNBOOK) -> list[str]:
    """`line:col: message | hint` of every diagnostic, in order."""
    with pytest.raises(ValidationError) as info:
        load_runbook(write(expect, runbook))
    out = []
    for d in info.value.diagnostics:
        assert d.loc is not None and d.loc.file == "t.yaml"
        out.append(f"{d.loc.line}:{d.loc.col}: {d.message}" + (f" | {d.hint}" if d.hint else ""))
    return out


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


# --- the typed model -------------------------------------------------------------------------

def test_the_selftest_is_typed_and_every_part_knows_where_it_was_written() -> None:
    rb = load_runbook(write("fired: [runq.slow]\n        not_fired: [runq.quiet]\n"
                            "        captures: {runq.culprit: bpfr_hog}\n"
                            "        steps: {offcpu: ran}\n"
                            "        rows: {offcpu.stacks: {min: 1}, runq.wakeups: {min: 2}}"))
    st = rb.selftest
    assert st is not None
    assert st.workload.argv == ("tests/workloads/runq_contention", "--seconds", "30")
    assert (st.workload.loc.line, st.workload.loc.col) == (26, 13)
    assert [(p.name, p.value) for p in st.params] == [("pid", "${{ workload.pid }}"),
                                                      ("threshold", "5ms")]
    assert (st.params[1].loc.line, st.params[1].loc.col) == (27, 40)  # the name
    assert (st.params[1].value_loc.line, st.params[1].value_loc.col) == (27, 51)
    assert st.param_values(4242) == {"pid": "4242", "threshold": "5ms"}
    assert st.timeout is not None and st.timeout.text == "60s"
    assert (st.timeout.loc.line, st.timeout.loc.col) == (28, 12)
    assert st.note == "why"
    e = st.expect
    at = Loc("t.yaml", EXPECT_LINE, 13, "", 9)
    assert e.fired == (Ref("runq", "slow", at),)
    assert str(e.fired[0]) == "runq.slow"
    assert [str(r) for r in e.not_fired] == ["runq.quiet"]
    assert e.captures == (CaptureExpectation(Ref("runq", "culprit", Loc("t.yaml", 33, 16, "", 12)),
                                             "bpfr_hog", Loc("t.yaml", 33, 30, "", 8)),)
    assert e.steps == (StatusExpectation("offcpu", "ran", Loc("t.yaml", 34, 13, "", 6)),)
    assert e.rows[1] == RowsExpectation(Ref("runq", "wakeups", Loc("t.yaml", 35, 37, "", 12)),
                                        2, Loc("t.yaml", 35, 51))
    assert (e.status_of("offcpu"), e.status_of("runq")) == ("ran", None)


def test_a_runbook_without_selftest_has_none() -> None:
    text = textwrap.dedent(RUNBOOK)
    Path("t.yaml").write_text(text[:text.index("selftest:")])
    assert load_runbook("t.yaml").selftest is None


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_runbook_has_a_valid_selftest(path: Path) -> None:
    st = load_runbook(path).selftest
    assert st is not None and st.workload.argv
    e = st.expect
    assert e.fired or e.not_fired or e.captures or e.rows or e.steps
    for ref in [*e.fired, *e.not_fired, *(c.ref for c in e.captures), *(r.ref for r in e.rows)]:
        assert ref.loc.file == str(path) and ref.loc.line > 1


# --- positioned problems ---------------------------------------------------------------------

def test_an_unknown_threshold_is_reported_where_it_is_written_with_the_real_ones() -> None:
    assert problems("fired: [runq.nope]") == [
        f"{EXPECT_LINE}:13: selftest expect fired: step runq has no threshold 'nope' "
        "| its thresholds: slow, quiet"]


def test_every_bad_expectation_is_reported_at_once_with_the_runbooks_other_problems() -> None:
    runbook = RUNBOOK.replace("by_comm.total < 1", "by_comm.total < params.thresold")
    found = problems("fired: [runq.slow, offcpu.deep]\n        not_fired: [nope.quiet]\n"
                     "        captures: {runq.who: x}\n        steps: {later: ran}\n"
                     "        rows: {runq.culprit: {min: 1}, offcpu.stacks: {min: 1}}",
                     runbook)
    assert found == [
        "17:44: unknown param 'thresold' | did you mean 'threshold'?",  # a threshold's problem
        f"{EXPECT_LINE}:24: selftest expect fired: step offcpu has no threshold 'deep' "
        "| its thresholds: none",
        f"{EXPECT_LINE + 1}:17: selftest expect not_fired: no step 'nope' "
        "| steps: runq, offcpu",
        f"{EXPECT_LINE + 2}:16: selftest expect captures: step runq has no capture 'who' "
        "| its captures: culprit",
        f"{EXPECT_LINE + 3}:13: selftest expect steps: no step 'later' | steps: runq, offcpu",
        f"{EXPECT_LINE + 4}:12: selftest expect rows: step runq has no aggregation 'culprit' "
        "| its aggregations: by_comm, wakeups",
    ]


def test_bad_params_and_timeout_are_reported_at_their_values() -> None:
    runbook = (RUNBOOK.replace('{pid: "${{ workload.pid }}", threshold: 5ms}',
                               '{pid: "${{ workload.tid }}", threshold: 5, nope: 1}')
               .replace("timeout: 60s", 'timeout: "${{ params.threshold }}"')
               .replace("      threshold: {type: duration, default: 1ms}",
                        "      threshold: {type: duration, default: 1ms}\n"
                        "      comm: {type: string}"))
    assert problems("fired: [runq.slow]", runbook) == [
        "28:17: selftest params can only use ${{ workload.pid }}, not 'workload.tid'",
        "28:51: selftest param 'threshold' (duration): 5 has no unit (write e.g. 5ms or 5s)",
        "28:54: selftest param 'nope' is not a param of t | params: pid, threshold, comm",
        "26:1: the selftest does not set param 'comm', which has no default "
        "| add it to the selftest's params: {comm: ...}",
        "29:12: the selftest timeout must be a plain duration such as 60s",
    ]


def test_validate_reports_a_bad_expectation_like_any_runbook_error(
        capsys: pytest.CaptureFixture[str]) -> None:
    from bpfrun.cli import app  # noqa: PLC0415

    write("captures: {offcpu.nope: x}")
    with pytest.raises(SystemExit) as info:
        app(["validate", "t.yaml"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert (f"t.yaml:{EXPECT_LINE}:16: error: selftest expect captures: step offcpu has no "
            "capture 'nope'") in err
    assert "hint: its captures: none" in err
