"""Container and pod names from the runtimes' metadata files (issue #17): a made-up host
(tests/fixtures/containers, laid out as / with each runtime's files in their own format:
docker's config.v2.json alone and under dockershim, containerd's CRI and nerdctl bundles,
CRI-O's userdata/config.json, podman's containers.json rootful and rootless, the kubelet's
/var/log/pods, and malformed files) names the cgroup paths each runtime makes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from helpers.paths import FIXTURES

from bpfrun.errors import UsageError
from bpfrun.kernel.cgroups import CgroupNames, name_of_path, resolve_target
from bpfrun.kernel.containers import MAX_FILE, ContainerMetadata, HostPaths, Pod

HOST = FIXTURES / "containers"
D_NGINX = "4f1c0ffee2b0" + "5e7a" * 13
D_K8S, D_K8S_POD = "d0c4e5" + "ab" * 29, "d0c4e6" + "ab" * 29
C_APP, C_SAND, C_OLD = "9b2d" + "1" * 60, "9b2e" + "2" * 60, "9b2f" + "3" * 60
O_APP, O_SAND = "c1" + "4" * 62, "c2" + "5" * 62
P_WEB, P_ALICE, N_CTL = "e5" + "6" * 62, "e6" + "7" * 62, "f1" + "8" * 62
UID_SHOP = "7d9f0a1b-2c3d-4e5f-8a9b-0c1d2e3f4a5b"
UID_API = "5c6b0a1b-2c3d-4e5f-8a9b-0c1d2e3f4a5b"
UID_OLD = "01dd0a1b-2c3d-4e5f-8a9b-0c1d2e3f4a5b"
UID_DS = "d5d50a1b-2c3d-4e5f-8a9b-0c1d2e3f4a5b"
SHOP = f"kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" \
       f"{UID_SHOP.replace('-', '_')}.slice"
API = f"kubepods.slice/kubepods-pod{UID_API.replace('-', '_')}.slice"


@pytest.fixture
def meta() -> ContainerMetadata:
    return ContainerMetadata(HostPaths().under(HOST))


NAMES = [
    (f"system.slice/docker-{D_NGINX}.scope", "container nginx (4f1c0ffee2b0, docker)"),
    (f"docker/{D_NGINX}", "container nginx (4f1c0ffee2b0, docker)"),  # cgroupfs driver
    (f"kubepods/burstable/pod{UID_DS}/{D_K8S}",  # dockershim, named by the kubelet's labels
     "pod kube-system/fluentd-x2k9p, container fluentd"),
    (f"kubepods/burstable/pod{UID_DS}/{D_K8S_POD}", "pod kube-system/fluentd-x2k9p, sandbox"),
    (f"{SHOP}/cri-containerd-{C_APP}.scope", "pod shop/web-7d9f, container nginx"),
    (f"{SHOP}/cri-containerd-{C_SAND}.scope", "pod shop/web-7d9f, sandbox"),
    (SHOP, "pod shop/web-7d9f"),  # no /var/log/pods for it: the bundles' annotations
    (f"kubepods/besteffort/pod{UID_OLD}/{C_OLD}", "pod jobs/batch-1, container worker"),
    (f"kubepods/besteffort/pod{UID_OLD}", "pod jobs/batch-1"),  # UID from its cgroupsPath
    (f"system.slice/nerdctl-{N_CTL}.scope", "container redis (f18888888888, containerd)"),
    (f"{API}/crio-{O_APP}.scope", "pod shop/api-5c6b, container api"),
    (f"{API}/crio-conmon-{O_APP}.scope", "pod shop/api-5c6b, container api"),
    (f"{API}/crio-{O_SAND}.scope", "pod shop/api-5c6b, sandbox"),
    (f"machine.slice/libpod-{P_WEB}.scope", "container web (e56666666666, podman)"),
    (f"user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{P_ALICE}.scope/"
     "container", "container notes (e67777777777, podman)"),  # rootless, in alice's home
    ("system.slice/checkout.service", "unit checkout.service"),
]


@pytest.mark.parametrize(("path", "name"), NAMES)
def test_names_from_each_runtimes_metadata(meta: ContainerMetadata, path: str,
                                           name: str) -> None:
    assert name_of_path(path, meta=meta) == name


@pytest.mark.parametrize("cid", ["0bad" + "0" * 60, "0bae" + "0" * 60, "0baf" + "0" * 60,
                                 "0bb0" + "0" * 60])
def test_malformed_or_missing_metadata_falls_back_to_the_short_id(meta: ContainerMetadata,
                                                                   cid: str) -> None:
    assert name_of_path(f"system.slice/docker-{cid}.scope", meta=meta) == \
        f"container {cid[:12]} (docker)"


def test_a_host_without_any_runtime_names_by_short_id(tmp_path: Path) -> None:
    meta = ContainerMetadata(HostPaths().under(tmp_path))
    assert name_of_path(f"{SHOP}/cri-containerd-{C_APP}.scope", meta=meta) == \
        f"pod {UID_SHOP}, container 9b2d11111111 (containerd)"
    assert meta.pods() == {}


def test_an_oversized_file_is_not_read(tmp_path: Path) -> None:
    folder = tmp_path / "var/lib/docker/containers" / D_NGINX
    folder.mkdir(parents=True)
    doc = json.dumps({"Name": "/nginx", "Pad": "x" * MAX_FILE})
    (folder / "config.v2.json").write_text(doc)
    meta = ContainerMetadata(HostPaths().under(tmp_path))
    assert meta.container("docker", D_NGINX) is None


def test_a_fifo_in_place_of_a_file_names_nothing_and_does_not_block(tmp_path: Path) -> None:
    folder = tmp_path / "var/lib/docker/containers" / D_NGINX
    folder.mkdir(parents=True)
    os.mkfifo(folder / "config.v2.json")  # nobody writes it: a blocking open would hang
    meta = ContainerMetadata(HostPaths().under(tmp_path))
    assert meta.container("docker", D_NGINX) is None


def test_a_users_store_names_only_its_podman_containers(tmp_path: Path) -> None:
    """A rootless store is its user's to write: its annotations name no pod, and no
    container of another runtime."""
    store = tmp_path / "home/mallory" / ".local/share/containers/storage/overlay-containers"
    (store / O_APP / "userdata").mkdir(parents=True)
    (store / O_APP / "userdata/config.json").write_text(json.dumps({"annotations": {
        "io.kubernetes.container.name": "api", "io.kubernetes.pod.name": "fake",
        "io.kubernetes.pod.namespace": "kube-system", "io.kubernetes.pod.uid": UID_API}}))
    meta = ContainerMetadata(HostPaths().under(tmp_path))
    assert name_of_path(f"{API}/crio-{O_APP}.scope", meta=meta) == \
        f"pod {UID_API}, container c14444444444 (cri-o)"
    assert meta.pod_uid("kube-system/fake") is None
    (store / "containers.json").write_text(json.dumps([{"id": D_NGINX, "names": ["fake"]}]))
    assert name_of_path(f"docker/{D_NGINX}", meta=meta) == "container 4f1c0ffee2b0 (docker)"


def test_unprintable_names_are_cleaned(tmp_path: Path) -> None:
    folder = tmp_path / "var/lib/docker/containers" / D_NGINX
    folder.mkdir(parents=True)
    (folder / "config.v2.json").write_text(json.dumps({"Name": "/ng\x1b[31minx\n"}))
    meta = ContainerMetadata(HostPaths().under(tmp_path))
    assert name_of_path(f"docker/{D_NGINX}", meta=meta) == \
        "container ng[31minx (4f1c0ffee2b0, docker)"


def test_each_file_is_read_once_per_run(tmp_path: Path) -> None:
    shutil.copytree(HOST, tmp_path / "host")
    meta = ContainerMetadata(HostPaths().under(tmp_path / "host"))
    assert meta.container("docker", D_NGINX) is not None
    shutil.rmtree(tmp_path / "host/var/lib/docker")
    assert name_of_path(f"docker/{D_NGINX}", meta=meta) == \
        "container nginx (4f1c0ffee2b0, docker)"  # the cgroup outlived its metadata
    assert ContainerMetadata(HostPaths().under(tmp_path / "host")).container(
        "docker", D_NGINX) is None


def test_pods_listed_from_annotations_labels_and_kubelet_folders(
        meta: ContainerMetadata) -> None:
    assert meta.pods() == {
        UID_SHOP: Pod("shop", "web-7d9f", UID_SHOP), UID_API: Pod("shop", "api-5c6b", UID_API),
        UID_OLD: Pod("jobs", "batch-1", UID_OLD),
        UID_DS: Pod("kube-system", "fluentd-x2k9p", UID_DS)}
    assert meta.pod_uid("shop/web-7d9f") == UID_SHOP
    assert meta.pod_uid("shop/nosuch") is None


def test_kubelet_folders_name_pods_without_any_runtime(tmp_path: Path) -> None:
    (tmp_path / f"var/log/pods/shop_web-7d9f_{UID_SHOP}").mkdir(parents=True)
    meta = ContainerMetadata(HostPaths().under(tmp_path))
    assert name_of_path(SHOP, meta=meta) == "pod shop/web-7d9f"


def test_host_paths_move_under_a_root(tmp_path: Path) -> None:
    moved = HostPaths().under(tmp_path)
    assert moved.docker == tmp_path / "var/lib/docker/containers"
    assert moved.stores[1] == tmp_path / "run/containers/storage"
    assert moved.rootless_stores() == [tmp_path / "root/.local/share/containers/storage"]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for rel in (f"system.slice/docker-{D_NGINX}.scope", f"{SHOP}/cri-containerd-{C_APP}.scope"):
        (tmp_path / rel).mkdir(parents=True)
    return tmp_path


def test_pod_by_namespace_and_name_without_kubelet_folders(tree: Path,
                                                           meta: ContainerMetadata) -> None:
    t = resolve_target("pod", "shop/web-7d9f", tree, meta)
    assert (t.path, t.level, t.label) == (SHOP, 3, "pod shop/web-7d9f")


def test_a_missing_pod_names_every_place_looked_in(tree: Path, meta: ContainerMetadata
                                                   ) -> None:
    with pytest.raises(UsageError) as e:
        resolve_target("pod", "shop/nosuch", tree, meta)
    for place in ("no pod shop/nosuch", "var/log/pods", "config.v2.json",
                  "io.containerd.runtime.v2.task", "userdata/config.json"):
        assert place in e.value.message
    with pytest.raises(UsageError, match=f"pod jobs/batch-1 \\(UID {UID_OLD}\\)"):
        resolve_target("pod", "jobs/batch-1", tree, meta)  # known, but no cgroup here


def test_container_target_is_labelled_by_name(tree: Path, meta: ContainerMetadata) -> None:
    assert resolve_target("container", "4f1c", tree, meta).label == \
        "container nginx (4f1c0ffee2b0, docker)"


def test_container_target_by_name_when_no_id_starts_so(tree: Path, meta: ContainerMetadata
                                                       ) -> None:
    with pytest.raises(UsageError, match="no cgroup for container redis"):
        resolve_target("container", "redis", tree, meta)  # named, but not running here
    (tree / f"system.slice/nerdctl-{N_CTL}.scope").mkdir()
    t = resolve_target("container", "redis", tree, meta)
    assert (t.path, t.label) == (f"system.slice/nerdctl-{N_CTL}.scope",
                                 "container redis (f18888888888, containerd)")
    with pytest.raises(UsageError, match="container nginx matches 2 cgroups"):
        resolve_target("container", "nginx", tree, meta)  # docker's and the pod's
    for scope in (f"crio-{O_APP}.scope", f"crio-conmon-{O_APP}.scope"):
        (tree / API / scope).mkdir(parents=True)
    assert resolve_target("container", "api", tree, meta).path == f"{API}/crio-{O_APP}.scope"
    assert resolve_target("container", O_APP[:6], tree, meta).path == \
        f"{API}/crio-{O_APP}.scope"  # not its conmon's scope beside it


def test_names_taken_during_the_run_use_the_metadata(tree: Path,
                                                     meta: ContainerMetadata) -> None:
    names = CgroupNames(tree, meta)
    names.refresh()
    cid = os.stat(tree / f"{SHOP}/cri-containerd-{C_APP}.scope").st_ino
    assert names.name(cid) == "pod shop/web-7d9f, container nginx"
    assert names.name(os.stat(tree / SHOP).st_ino) == "pod shop/web-7d9f"
