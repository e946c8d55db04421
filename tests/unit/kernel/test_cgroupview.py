"""bpfrun inside a cgroup namespace (issue #17): paths as /proc/PID/cgroup writes them are
placed through the namespace's root, levels stay global when the host's hierarchy is mounted,
and a mount of the namespace's own part gives only a floor for levels and says that cgroups
outside it cannot be aimed at. A made-up hierarchy (a folder tree; ids are inode numbers)
with made-up /proc/self/mountinfo and /proc/self/cgroup files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bpfrun.errors import UsageError
from bpfrun.kernel.cgroups import CgroupNames, resolve_target, unified_root
from bpfrun.kernel.cgroupview import CgroupView, cgroup2_mounts, view_of
from bpfrun.kernel.containers import HostPaths

PID = 4242


@pytest.fixture(autouse=True)
def no_runtimes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bpfrun.kernel.containers.HOST", HostPaths().under(tmp_path / "host"))


def hierarchy(tmp_path: Path, *dirs: str, part: bool = False) -> Path:
    mount = tmp_path / "cgroup"
    for rel in dirs:
        (mount / rel).mkdir(parents=True, exist_ok=True)
    if part:  # what the kernel gives every cgroup but the real root
        (mount / "cgroup.events").write_text("populated 1\n")
    return mount


def seen_from(tmp_path: Path, mount: Path, mount_root: str, own: str,
              holder: str | None = None) -> CgroupView:
    """The view of a process whose cgroup is `own` in its namespace and lives in `holder`."""
    info = tmp_path / "mountinfo"
    point = str(mount).replace(" ", "\\040")
    info.write_text(f"30 20 0:26 / /proc rw - proc proc rw\n"
                    f"41 31 0:38 {mount_root} {point} rw,relatime - cgroup2 cgroup2 rw\n")
    self_cgroup = tmp_path / "self-cgroup"
    self_cgroup.write_text(f"1:cpu:/\n0::{own}\n")
    if holder is not None:
        (mount / holder / "cgroup.procs").write_text(f"1\n{PID}\n")
    return view_of(mount, info, self_cgroup, PID)


def test_outside_any_namespace_paths_are_the_mounts(tmp_path: Path) -> None:
    mount = hierarchy(tmp_path, "system.slice/x.service")
    view = seen_from(tmp_path, mount, "/", "/")
    assert (view.whole, view.in_namespace, view.ns_root) == (True, False, "")
    assert view.from_namespace("/system.slice/x.service") == "system.slice/x.service"
    assert view.level("system.slice/x.service") == (2, True)


def test_host_hierarchy_seen_from_a_namespace_is_placed_by_its_root(tmp_path: Path) -> None:
    mount = hierarchy(tmp_path, "bpfrun.slice/ns.scope/sub", "bpfrun.slice/other.scope",
                      "decoy.slice/ns.scope/sub")
    view = seen_from(tmp_path, mount, "/../..", "/sub", holder="bpfrun.slice/ns.scope/sub")
    assert (view.whole, view.in_namespace, view.ns_root) == (True, True, "bpfrun.slice/ns.scope")
    assert view.from_namespace("/") == "bpfrun.slice/ns.scope"
    assert view.from_namespace("/sub") == "bpfrun.slice/ns.scope/sub"
    assert view.from_namespace("/../other.scope") == "bpfrun.slice/other.scope"
    assert view.from_namespace("/../../../x") is None  # above the mount
    t = resolve_target("cgroup", "/", view=view)
    assert (t.path, t.level, t.exact) == ("bpfrun.slice/ns.scope", 2, True)
    assert t.id == os.stat(mount / "bpfrun.slice/ns.scope").st_ino
    assert resolve_target("cgroup", "/sub", view=view).level == 3
    assert resolve_target("cgroup", "decoy.slice", view=view).level == 1  # relative: the mount's


def test_a_namespace_root_not_found_refuses_its_paths(tmp_path: Path) -> None:
    mount = hierarchy(tmp_path, "a.slice/ns.scope")
    view = seen_from(tmp_path, mount, "/../..", "/")  # no cgroup.procs holds this process
    assert view.ns_root is None and view.from_namespace("/") is None
    with pytest.raises(UsageError) as e:
        resolve_target("cgroup", "/", view=view)
    assert "as /proc/PID/cgroup writes it in this cgroup namespace" in e.value.message
    assert resolve_target("cgroup", "a.slice/ns.scope", view=view).level == 2


def test_a_mount_below_the_namespace_root(tmp_path: Path) -> None:
    mount = hierarchy(tmp_path, "y", part=True)
    view = seen_from(tmp_path, mount, "/x", "/")
    assert view.from_namespace("/x/y") == "y" and view.from_namespace("/x") == ""
    assert view.from_namespace("/z") is None


def test_the_namespaces_own_part_gives_a_floor_for_levels(tmp_path: Path) -> None:
    mount = hierarchy(tmp_path, "web/app", part=True)
    view = seen_from(tmp_path, mount, "/", "/")
    assert (view.whole, view.in_namespace, view.ns_root) == (False, True, "")
    t = resolve_target("cgroup", "/", view=view)
    assert (t.path, t.level, t.exact) == ("", 1, False)  # not the root: every task
    assert t.label == "cgroup / (the root of this cgroup namespace)"
    t = resolve_target("cgroup", "/web/app", view=view)
    assert (t.path, t.level, t.exact) == ("web/app", 3, False)


@pytest.mark.parametrize(("kind", "asked", "named"), [
    ("unit", "checkout.service", "systemd unit checkout.service"),
    ("cgroup", "system.slice", "no cgroup system.slice"),
    ("cgroup", "/system.slice", "no cgroup /system.slice"),
    ("container", "4f1c0ffee2b0", "container 4f1c0ffee2b0"),
])
def test_a_target_outside_the_namespaces_part_says_so(tmp_path: Path, kind: str, asked: str,
                                                      named: str) -> None:
    view = seen_from(tmp_path, hierarchy(tmp_path, "web", part=True), "/", "/")
    with pytest.raises(UsageError) as e:
        resolve_target(kind, asked, view=view)
    assert named in e.value.message
    assert "only a part of the cgroup hierarchy is mounted" in e.value.message


def test_names_in_the_namespaces_own_part(tmp_path: Path) -> None:
    mount = hierarchy(tmp_path, "system.slice/web.service", part=True)
    names = CgroupNames(mount)
    assert names.name(os.stat(mount).st_ino) == "cgroup / (the root of this cgroup namespace)"
    assert names.name(os.stat(mount / "system.slice/web.service").st_ino) == \
        "unit web.service"
    assert names.name(1) == "cgroup 1 (gone, or outside this cgroup namespace)"


def test_mount_table_escapes_and_hidden_mounts(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text("41 31 0:38 /../.. /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
                    "42 31 0:39 / /host\\040cg rw shared:5 - cgroup2 none rw\n"
                    "58 48 0:38 / /sys/fs/cgroup/unified rw - cgroup2 none rw\n"
                    "59 48 0:40 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n")
    assert cgroup2_mounts(info) == [(Path("/host cg"), "/"),
                                    (Path("/sys/fs/cgroup/unified"), "/")]


def test_the_whole_hierarchy_is_preferred_to_a_namespaces_part(tmp_path: Path) -> None:
    part = hierarchy(tmp_path / "p", "web", part=True)
    whole = hierarchy(tmp_path / "w", "system.slice")
    mounts = tmp_path / "mounts"
    mounts.write_text(f"cgroup2 {part} cgroup2 rw 0 0\ncgroup2 {whole} cgroup2 rw 0 0\n")
    assert unified_root(mounts) == whole
    mounts.write_text(f"cgroup2 {part} cgroup2 rw 0 0\n")
    assert unified_root(mounts) == part
