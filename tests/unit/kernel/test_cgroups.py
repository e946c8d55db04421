"""cgroup path conventions (issue #17): names of recorded cgroup paths of each runtime, and
targets resolved on a made-up unified hierarchy (a folder tree; ids are inode numbers)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bpfrun.errors import MachineError, UsageError
from bpfrun.kernel.cgroups import CgroupNames, name_of_path, resolve_target, unified_root
from bpfrun.kernel.containers import HostPaths

DOCKER = "4f1c0ffee2b0" + "a" * 52
CTRD = "9b2d" + "1" * 60
UID = "7d9f0a1b-2c3d-4e5f-8a9b-0c1d2e3f4a5b"
POD = f"kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID.replace('-', '_')}" \
      ".slice"

NAMES = [
    ("system.slice/checkout.service", "unit checkout.service"),
    ("system.slice/docker-" + DOCKER + ".scope", "container 4f1c0ffee2b0 (docker)"),
    ("docker/" + DOCKER, "container 4f1c0ffee2b0 (docker)"),  # cgroupfs driver
    (f"{POD}/cri-containerd-{CTRD}.scope", f"pod {UID}, container 9b2d11111111 (containerd)"),
    (f"kubepods.slice/kubepods-pod{UID.replace('-', '_')}.slice/crio-{CTRD}.scope",
     f"pod {UID}, container 9b2d11111111 (cri-o)"),
    (f"kubepods/besteffort/pod{UID}/{CTRD}", f"pod {UID}, container 9b2d11111111 (cri)"),
    (f"machine.slice/libpod-{CTRD}.scope", "container 9b2d11111111 (podman)"),
    (f"libpod_parent/libpod-{CTRD}", "container 9b2d11111111 (podman)"),  # cgroupfs
    (f"kubepods/burstable/pod{UID}/crio-{CTRD}", f"pod {UID}, container 9b2d11111111 (cri-o)"),
    (f"user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{CTRD}.scope/container",
     "container 9b2d11111111 (podman)"),
    (POD, f"pod {UID}"),
    ("user.slice/user-1000.slice/session-3.scope", "scope session-3.scope"),
    ("kubepods.slice", "cgroup /kubepods.slice"),
    ("", "cgroup / (the root: every task)"),
]


@pytest.mark.parametrize(("path", "name"), NAMES)
def test_names_of_recorded_paths(path: str, name: str) -> None:
    assert name_of_path(path) == name


def test_pod_named_by_namespace_and_name_when_known() -> None:
    assert name_of_path(f"{POD}/cri-containerd-{CTRD}.scope", {"shop/web-7d9f": UID}) == \
        "pod shop/web-7d9f, container 9b2d11111111 (containerd)"


@pytest.fixture(autouse=True)
def no_runtimes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """This host's container metadata stays out of these tests (test_containers has its own)."""
    monkeypatch.setattr("bpfrun.kernel.containers.HOST", HostPaths().under(tmp_path / "host"))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for rel in ("system.slice/checkout.service", f"system.slice/docker-{DOCKER}.scope",
                f"{POD}/cri-containerd-{CTRD}.scope", f"{POD}/crio-conmon-{CTRD}.scope"):
        (tmp_path / rel).mkdir(parents=True, exist_ok=True)
    return tmp_path


def test_unit_with_or_without_suffix(root: Path) -> None:
    t = resolve_target("unit", "checkout", root)
    assert (t.path, t.level, t.label) == ("system.slice/checkout.service", 2,
                                          "unit checkout.service")
    assert t.id == os.stat(root / t.path).st_ino


def test_container_by_prefix(root: Path) -> None:
    t = resolve_target("container", "4F1C0F", root)
    assert t.path.endswith(f"docker-{DOCKER}.scope")


def test_pod_by_uid_is_the_pod_slice(root: Path) -> None:
    t = resolve_target("pod", UID, root)
    assert (t.path, t.level) == (POD, 3)


def test_cgroup_relative_and_absolute(root: Path) -> None:
    assert resolve_target("cgroup", "system.slice", root).level == 1
    assert resolve_target("cgroup", str(root / "system.slice"), root).path == "system.slice"
    assert resolve_target("cgroup", "/system.slice/checkout.service", root).level == 2
    assert resolve_target("cgroup", "/", root).level == 0


@pytest.mark.parametrize(("kind", "asked", "named"), [
    ("unit", "nosuch.service", "systemd unit nosuch.service"),
    ("container", "deadbeef", "container deadbeef"),
    ("pod", "shop/web", "pod shop/web"),
    ("cgroup", "no/such", "no cgroup no/such"),
    ("cgroup", "../etc", "no cgroup ../etc"),
])
def test_missing_target_names_what_was_looked_for(root: Path, kind: str, asked: str,
                                                  named: str) -> None:
    with pytest.raises(UsageError) as e:
        resolve_target(kind, asked, root)
    assert named in e.value.message


def test_ambiguous_prefix_is_refused(root: Path) -> None:
    (root / f"system.slice/docker-{'4f' + 'b' * 62}.scope").mkdir()
    with pytest.raises(UsageError, match="matches 2 cgroups"):
        resolve_target("container", "4f", root)


def test_pure_v1_says_targeting_needs_the_unified_hierarchy(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text("cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n")
    monkeypatch.setattr("bpfrun.kernel.cgroups.UNIFIED_FALLBACKS", ())
    with pytest.raises(MachineError, match="unified"):
        unified_root(mounts)


def test_hybrid_mount_is_found(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text("cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n"
                      "cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n")
    assert unified_root(mounts) == Path("/sys/fs/cgroup/unified")


def test_names_cache_keeps_gone_cgroups(root: Path) -> None:
    names = CgroupNames(root)
    names.refresh()
    cid = os.stat(root / "system.slice/checkout.service").st_ino
    (root / "system.slice/checkout.service").rmdir()
    assert names.name(cid) == "unit checkout.service"
    assert names.name(1) == "cgroup 1 (gone)"
