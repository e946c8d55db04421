"""`bpfrun test` aims the run at the cgroup a runbook's target param names (issue #17), as
`bpfrun run` does: the selftest's own value wins over the default, "" aims at nothing, and a
target missing on this host is a usage error (exit 2). The cgroup tree is a made-up folder
tree and the investigation a stand-in that records its target: no root, no BPF."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bpfrun.compile.program import CgroupFilter
from bpfrun.errors import UsageError
from bpfrun.kernel.containers import HostPaths
from bpfrun.runtime import selftest
from bpfrun.runtime.selftest import run_selftest


class Aimed(Exception):
    """What the stand-in investigation was given, raised instead of running."""

    def __init__(self, target: CgroupFilter | None) -> None:
        super().__init__("aimed")
        self.target = target


class FakeInvestigation:
    def __init__(self, *args: Any, target: CgroupFilter | None = None, **kw: Any) -> None:
        raise Aimed(target)


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cgroup"
    (root / "system.slice/checkout.service").mkdir(parents=True)
    monkeypatch.setattr("bpfrun.kernel.cgroups.unified_root", lambda *a: root)
    monkeypatch.setattr("bpfrun.kernel.containers.HOST", HostPaths().under(tmp_path / "h"))
    monkeypatch.setattr(selftest, "require_runnable", lambda: None)
    monkeypatch.setattr(selftest, "default_kernel", lambda: None)
    monkeypatch.setattr(selftest, "check_against_kernel", lambda *a, **kw: None)
    monkeypatch.setattr(selftest, "Investigation", FakeInvestigation)
    monkeypatch.setattr(selftest, "START_WAIT", 0.0)
    return root


def runbook(folder: Path, default: str, test_value: str | None = None) -> Path:
    doc: dict[str, Any] = {
        "apiVersion": "bpfrun/v1", "name": "aimed", "title": "Opens of one unit",
        "params": {"unit": {"type": "unit", "default": default, "description": "the unit"}},
        "steps": [{"id": "s", "title": "Opens", "duration": "1s",
                   "probes": [{"probe": "tracepoint:syscalls:sys_enter_openat",
                               "aggregate": [{"id": "opens", "count": True,
                                              "by": ["cgroup"]}]}]}],
        "selftest": {"workload": ["/bin/sleep", "5"], "expect": {"steps": {"s": "ran"}}}}
    if test_value is not None:
        doc["selftest"]["params"] = {"unit": test_value}
    path = folder / "aimed.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def aimed_at(path: Path) -> CgroupFilter | None:
    with pytest.raises(Aimed) as e:
        run_selftest(path, root=path.parent)
    return e.value.target


def test_the_default_target_param_aims_the_test(host: Path, tmp_path: Path) -> None:
    target = aimed_at(runbook(tmp_path, "checkout.service"))
    assert target is not None
    assert (target.kind, target.path, target.label) == (
        "unit", "system.slice/checkout.service", "unit checkout.service")


def test_the_selftests_value_wins_and_empty_aims_at_nothing(host: Path, tmp_path: Path
                                                           ) -> None:
    assert aimed_at(runbook(tmp_path, "checkout.service", "")) is None
    (host / "system.slice/other.service").mkdir()
    target = aimed_at(runbook(tmp_path, "", "other"))
    assert target is not None and target.label == "unit other.service"


def test_a_missing_target_is_a_usage_error(host: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="systemd unit nosuch.service"):
        run_selftest(runbook(tmp_path, "nosuch.service"), root=tmp_path)
