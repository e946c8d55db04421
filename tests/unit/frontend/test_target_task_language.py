"""target_task (issue #17) in the language: the schema takes it on a probe and on each side of
a span, the model keeps it as an expression with its place, and the checker reads it as a
kernel expression (its names checked, positioned) that, like a span key, is known at its own
event: no `duration`, no `begin.`."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bpfrun.errors import ValidationError
from bpfrun.frontend.model import Runbook
from bpfrun.frontend.runbooks import load_runbook

HEAD = "apiVersion: bpfrun/v1\nname: t\ntitle: T\n"
BODY = """\
steps:
  - id: s
    span:
      begin: {probe: tracepoint:sched:sched_wakeup, key: args.pid, target_task: args.pid}
      end: {probe: tracepoint:sched:sched_switch, key: args.next_pid, target_task: END}
      aggregate:
        - {id: dist, hist: duration}
    probes:
      - probe: tracepoint:sched:sched_process_exit
        target_task: args.pid
        aggregate:
          - {id: exits, count: true}
"""


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def load(end: str = "args.next_pid", body: str = BODY) -> Runbook:
    Path("t.yaml").write_text(HEAD + textwrap.dedent(body).replace("END", end))
    return load_runbook("t.yaml")


def test_the_model_keeps_each_target_task_with_its_place() -> None:
    step = load().steps[0]
    assert step.span is not None
    assert step.span.begin.target_task is not None
    assert step.span.begin.target_task.text == "args.pid"
    assert step.span.end.target_task is not None
    assert step.span.end.target_task.text == "args.next_pid"
    probe = step.probes[0]
    assert probe.target_task is not None and probe.target_task.text == "args.pid"
    assert probe.target_task.loc.line == 13


def test_it_is_optional() -> None:
    step = load(body=BODY.replace(", target_task: END", "")).steps[0]
    assert step.span is not None and step.span.end.target_task is None


def test_the_schema_wants_an_expression() -> None:
    with pytest.raises(ValidationError) as e:
        load(body=BODY.replace("target_task: args.pid\n", "target_task: [1]\n"))
    assert any("target_task" in d.message or (d.loc and d.loc.line == 13)
               for d in e.value.diagnostics), e.value.diagnostics


@pytest.mark.parametrize("end", ["duration", "begin.pid"])
def test_a_span_sides_target_task_is_known_at_its_own_event(end: str) -> None:
    with pytest.raises(ValidationError) as e:
        load(end)
    messages = [d.message for d in e.value.diagnostics]
    name = end.split(".")[0]
    assert f"a span end's target_task cannot use '{name}': it is known only once the key " \
           "has found the begin" in messages, messages
    d = next(d for d in e.value.diagnostics if "target_task" in d.message)
    assert d.loc is not None and d.loc.line == 8


def test_its_names_are_checked_at_their_place() -> None:
    with pytest.raises(ValidationError) as e:
        load("params.nope")
    [d] = e.value.diagnostics
    assert "nope" in d.message
    assert d.loc is not None and d.loc.line == 8
    line = Path("t.yaml").read_text().splitlines()[7]
    assert d.loc.col - 1 == line.index("params.nope")
