"""A runbook's default target (issue #17): a param of type cgroup/unit/container/pod names
the cgroup the run is aimed at, as --cgroup/--unit/--container/--pod do (which win over it);
its form is checked where it is written, and a runbook has at most one."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bpfrun.errors import UsageError, ValidationError
from bpfrun.frontend.params import resolve_params, target_param
from bpfrun.frontend.runbooks import load_runbook

HEAD = "apiVersion: bpfrun/v1\nname: t\ntitle: T\n"
STEP = """\
    steps:
      - id: s
        title: S
        duration: 1s
        probes:
          - probe: tracepoint:sched:sched_switch
            aggregate:
              - {id: runs, count: true, by: [cgroup]}
    """


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def load(params: str):  # type: ignore[no-untyped-def]
    Path("t.yaml").write_text(HEAD + textwrap.dedent(params) + textwrap.dedent(STEP))
    return load_runbook("t.yaml")


def problems(params: str) -> list[str]:
    with pytest.raises(ValidationError) as info:
        load(params)
    return [f"{d.loc.line}:{d.loc.col}: {d.message}" for d in info.value.diagnostics
            if d.loc is not None]


def test_a_unit_param_is_the_default_target_and_a_given_value_replaces_it() -> None:
    rb = load("""\
        params:
          unit: {type: unit, default: checkout.service, description: the service to watch}
        """)
    assert target_param(rb, resolve_params(rb, {})) == ("unit", "checkout.service")
    assert target_param(rb, resolve_params(rb, {"unit": "batch.service"})) == \
        ("unit", "batch.service")


def test_an_empty_target_param_aims_at_nothing() -> None:
    rb = load("""\
        params:
          pod: {type: pod, default: ""}
        """)
    assert target_param(rb, resolve_params(rb, {})) is None


def test_a_bad_default_is_an_error_at_the_param() -> None:
    out = problems("""\
        params:
          unit: {type: unit, default: system.slice/checkout.service}
        """)
    assert any(p.startswith("5:") and "default of param 'unit'" in p and "not a unit name" in p
               for p in out), out


def test_a_second_target_param_is_an_error_at_it() -> None:
    out = problems("""\
        params:
          unit: {type: unit, default: ""}
          pod: {type: pod, default: ""}
        """)
    assert any(p.startswith("6:") and "second target param" in p for p in out), out


def test_a_bad_value_on_the_command_line_is_a_usage_error() -> None:
    rb = load("""\
        params:
          pod: {type: pod, default: ""}
        """)
    with pytest.raises(UsageError, match="not a pod"):
        resolve_params(rb, {"pod": "a/b/c"})


def test_an_unknown_type_is_still_refused_by_the_schema() -> None:
    out = problems("""\
        params:
          unit: {type: service, default: ""}
        """)
    assert any(p.startswith("5:") and "not a param type" in p for p in out), out
