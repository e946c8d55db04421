"""What `bpfrun merge` reads: result.json files, report folders, or trees of them (Ansible's
`fetch` leaves `results/<inventory_hostname>/result.json`), and the inventory of hosts expected.

A result found by searching a tree is named by its folder there (the inventory's name for the
host); one given as a file or a report folder by the hostname it records. Two results of one
host name are told apart as `name~2`, `name~3` in the order of their paths. A fleet result
in a tree (an earlier merge written into it) is left out; given by name, it is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bpfrun.diff.locate import RESULT_FILE, folded_stacks, load_run
from bpfrun.errors import UsageError
from bpfrun.result import RunResult


@dataclass(frozen=True)
class HostRun:
    """One host's result: its name in the fleet, where it was read, the run, its stacks."""

    host: str
    source: str
    run: RunResult
    stacks: dict[str, dict[str, int]]  # "<step>.<aggregation>" → folded stacks


def find_results(specs: list[str]) -> list[tuple[Path, str | None]]:
    """(result.json, the host's folder name when found in a tree) for every spec."""
    found: list[tuple[Path, str | None]] = []
    for spec in specs:
        path = Path(spec).expanduser()
        if path.is_file():
            found.append((path, None))
        elif (path / RESULT_FILE).is_file():
            found.append((path / RESULT_FILE, None))
        elif path.is_dir():
            tree = sorted(path.rglob(RESULT_FILE))
            if not tree:
                raise UsageError(f"{spec}: no result.json in this folder",
                                 hint="give result.json files, report folders or a tree")
            found += [(f, f.relative_to(path).parts[0]) for f in tree]
        else:
            raise UsageError(f"{spec}: no such result.json or folder")
    return found


def load_hosts(specs: list[str]) -> list[HostRun]:
    """Every result named by `specs`, read and checked (UsageError, exit 2, when one is not a
    result), named, sorted by host name."""
    loaded = []
    for path, folder in find_results(specs):
        run = load_run(path)
        if run.hosts is not None:  # a fleet report: in a tree, the previous merge's
            if folder is not None:
                continue
            raise UsageError(f"{path}: a fleet result (bpfrun merge), not one host's",
                             hint="merge the hosts' results it was made from")
        loaded.append((folder or run.host.hostname or path.parent.name, str(path), run,
                       folded_stacks(path, run)))
    loaded.sort(key=lambda item: (item[0], item[1]))
    out: list[HostRun] = []
    seen: dict[str, int] = {}
    for name, source, run, stacks in loaded:
        seen[name] = seen.get(name, 0) + 1
        out.append(HostRun(name if seen[name] == 1 else f"{name}~{seen[name]}", source, run,
                           stacks))
    return out


def read_inventory(path: Path) -> list[str]:
    """Host names of an inventory: one per line, or an Ansible INI inventory (groups'
    headers, `:vars` sections and `key=value` words are skipped). Sorted, without repeats."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--inventory {path}: cannot read it: {e}") from e
    hosts: set[str] = set()
    in_vars = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            in_vars = line.rstrip("]").endswith(":vars") or line.rstrip("]").endswith(
                ":children")
            continue
        word = line.split()[0]
        if not in_vars and "=" not in word:
            hosts.add(word)
    return sorted(hosts)
