"""Check: ids and references across a runbook, each problem at file:line:col with a hint."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bpfrun.errors import ValidationError
from bpfrun.frontend.runbooks import load_runbook

HEAD = "apiVersion: bpfrun/v1\nname: t\ntitle: T\n"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def problems(body: str) -> list[str]:
    """`line:col: message | hint` of every diagnostic, in order."""
    Path("t.yaml").write_text(HEAD + textwrap.dedent(body))
    with pytest.raises(ValidationError) as info:
        load_runbook("t.yaml")
    out = []
    for d in info.value.diagnostics:
        assert d.loc is not None and d.loc.file == "t.yaml"
        out.append(f"{d.loc.line}:{d.loc.col}: {d.message}" + (f" | {d.hint}" if d.hint else ""))
    return out


def ok(body: str) -> None:
    Path("t.yaml").write_text(HEAD + textwrap.dedent(body))
    load_runbook("t.yaml")


TWO_STEPS = """\
    params:
      comm: {type: string, default: ""}
      threshold: {type: duration, default: 1ms}
    steps:
      - id: writes
        probes:
          - probe: tracepoint:syscalls:sys_enter_write
            where: WHERE1
            aggregate:
              - {id: calls, count: true, by: [comm]}
              - {id: dist, hist: args.count}
        thresholds:
          - {id: busy, when: "WHEN1"}
        capture:
          writer: calls.top[0].comm
      - id: follow
        when: WHEN2
        probes:
          - probe: tracepoint:syscalls:sys_enter_read
            where: WHERE2
            aggregate:
              - {id: reads, count: true}
    """


def two_steps(where1: str = "true", when1: str = "calls.top[0].value > 10",
              when2: str = "steps.writes.busy", where2: str = "true") -> str:
    return (TWO_STEPS.replace("WHERE1", where1).replace("WHEN1", when1)
            .replace("WHEN2", when2).replace("WHERE2", where2))


def test_the_fixture_is_fine() -> None:
    ok(two_steps())
    ok(two_steps(when2="steps.writes.writer == \"x\" && steps.writes.dist.p99 > 1ms",
                 where2="comm == steps.writes.writer"))


def test_unknown_param_with_did_you_mean() -> None:
    assert problems(two_steps(where1="comm == params.com")) == [
        "11:24: unknown param 'com' | did you mean 'comm'?"]


def test_unknown_param_lists_the_params_when_none_is_close() -> None:
    assert problems(two_steps(where1="pid == params.xyz")) == [
        "11:23: unknown param 'xyz' | known: comm, threshold"]


def test_unknown_step_with_did_you_mean() -> None:
    assert problems(two_steps(when2="steps.write.busy")) == [
        "20:11: unknown step 'write' | did you mean 'writes'?"]


def test_later_step_is_not_visible() -> None:
    assert problems(two_steps(where1="pid == steps.follow.reads")) == [
        "11:23: step 'follow' runs later; only earlier steps can be used"]


def test_own_step_through_steps_is_explained() -> None:
    assert problems(two_steps(when1="steps.writes.calls.total > 1")) == [
        "16:27: steps.writes is this step: its results are not known until it has run"
        " | in thresholds and captures, write 'calls' without 'steps.writes.'"]


def test_unknown_capture_of_an_earlier_step() -> None:
    assert problems(two_steps(where2='comm == steps.writes.writr')) == [
        "23:24: step 'writes' has no threshold, capture or aggregation 'writr'"
        " | did you mean 'writer'?"]


def test_threshold_on_a_missing_aggregation() -> None:
    assert problems(two_steps(when1="cals.top[0].value > 10")) == [
        "16:27: unknown name 'cals' here | did you mean 'calls'?"]


def test_threshold_on_a_missing_bare_name() -> None:
    assert problems(two_steps(when1="dsit.p99 > params.threshold")) == [
        "16:27: unknown name 'dsit' here | did you mean 'dist'?"]


def test_step_when_cannot_use_bare_names() -> None:
    assert problems(two_steps(when2="busy")) == ["20:11: unknown name 'busy' here"]


def test_message_template_references_are_checked() -> None:
    body = two_steps().replace('when: "calls.top[0].value > 10"}',
                               'when: "calls.top[0].value > 10", '
                               'message: "${{ calls.top[0].comm }} > ${{ params.thresold }}"}')
    assert problems(body) == [
        "16:94: unknown param 'thresold' | did you mean 'threshold'?"]


def test_duplicate_ids() -> None:
    body = """\
        steps:
          - id: s
            probes:
              - probe: tracepoint:syscalls:sys_enter_write
                id: calls
                emit: [pid]
              - probe: tracepoint:syscalls:sys_enter_read
                aggregate:
                  - {id: calls, count: true}
                  - {id: calls, count: true}
            thresholds:
              - {id: calls, when: "true"}
          - id: s
            probes:
              - probe: tracepoint:syscalls:sys_enter_write
                aggregate:
                  - {id: calls, count: true}
        """
    first = "the first is at t.yaml:7:9"
    assert problems(body) == [
        f"12:13: aggregation id 'calls' is used twice in step 's' | {first}",
        f"13:13: aggregation id 'calls' is used twice in step 's' | {first}",
        f"15:9: threshold id 'calls' is used twice in step 's' | {first}",
        "16:5: step id 's' is used twice | the first is at t.yaml:5:5",
    ]


def test_all_problems_are_reported_at_once() -> None:
    found = problems(two_steps(where1="comm == params.com", when1="cals.total > 1",
                               when2="steps.write.busy"))
    assert [f.split(":")[0] for f in found] == ["11", "16", "20"]


def test_capture_cannot_use_another_capture() -> None:
    body = two_steps().replace("writer: calls.top[0].comm",
                               "writer: calls.top[0].comm\n          again: writer")
    assert problems(body) == ["19:14: unknown name 'writer' here | known: calls, dist, elapsed, "
                                "series"]


def test_elapsed_is_a_name_of_every_step_and_cannot_be_an_id() -> None:
    ok(two_steps(when1="calls.top[0].value * 1s / elapsed > 10"))
    assert problems(two_steps().replace("{id: busy,", "{id: elapsed,"))[0] == (
        "16:9: threshold id 'elapsed' is reserved: it is the time this step's probes were "
        "attached | rename the threshold")
