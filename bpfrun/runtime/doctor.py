"""Can this machine run BPF programs, and what exactly to do if not (`bpfrun doctor`).

Each check inspects the file system of the machine below `Machine.root` (so tests can fake a
machine in a temporary folder) and says what it saw and the one command that fixes it. Runs that
need BPF call `require_runnable()` first, so that a missing prerequisite is reported as one clear
MachineError (exit 3) listing every problem instead of a BCC traceback halfway through a run.
"""

from __future__ import annotations

import gzip
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from bpfrun.errors import MachineError
from bpfrun.kernel.kernelcache import CACHE_ENV, DEFAULT_FOLDER, KernelCache
from bpfrun.kernel.symbolize_llvm import LlvmSymbolizer
from bpfrun.kernel.tracefs import LiveKernel
from bpfrun.runtime.bccload import bcc_status

CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39

BccProbe = Callable[[], tuple[bool, str, str | None]]
SymbolizerProbe = Callable[[], str | None]  # the source-level symbolizer, described; or None

# Names of the checks that run_checks() can report; `require_runnable(needs=...)` takes these.
CHECK_NAMES = frozenset(
    {
        "privileges",
        "bcc",
        "kernel headers",
        "tracefs",
        "kernel cache",
        "btf",
        "kernel config",
        "bpf",
        "perf events",
        "kprobes",
        "uprobes",
        "syscall tracepoints",
        "symbolizer",
    }
)


def _ok(test: Callable[[], bool]) -> bool:
    """A file test that reads "cannot tell" (EACCES for non-root, say) as False."""
    try:
        return test()
    except OSError:
        return False


_TRACEPOINT_FIX = "use tracepoint probes (`bpfrun probes` lists them)"
_MOUNT_FIX = "mount -t tracefs nodev /sys/kernel/tracing (as root; `make setup` does it)"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str | None = None
    required: bool = True


@dataclass(frozen=True)
class Machine:
    """The machine being inspected: its file-system root, kernel release and effective uid."""

    root: Path = Path("/")
    release: str = field(default_factory=lambda: os.uname().release)
    euid: int = field(default_factory=os.geteuid)

    def path(self, absolute: str, follow_last: bool = True) -> Path:
        """`absolute` as seen on that machine: symlinks are followed relative to `root`.

        With `follow_last=False` a symlink in the last component is kept (to inspect the link).
        """
        parts = PurePosixPath(absolute).parts[1:]
        current = self.root
        for i, part in enumerate(parts):
            current = current / part
            if i == len(parts) - 1 and not follow_last:
                break
            for _ in range(40):  # the kernel's own limit on nested links
                if not _ok(current.is_symlink):
                    break
                try:
                    target = os.readlink(current)
                except OSError:
                    break
                if target.startswith("/"):
                    current = self.root / target.lstrip("/")
                else:
                    current = current.parent / target
        return current

    def shown(self, path: Path) -> str:
        """A path below `root` written as on that machine, for messages."""
        try:
            return "/" + str(path.relative_to(self.root))
        except ValueError:
            return str(path)


# --- kernel configuration ------------------------------------------------------------------


def _config_sources(machine: Machine) -> list[str]:
    return ["/proc/config.gz", f"/boot/config-{machine.release}"]


def kernel_config(machine: Machine | None = None) -> dict[str, str] | None:
    """Options set in the running kernel's config (`CONFIG_X` → "y"/"m"/value), None if unreadable.

    Options that are off ("# CONFIG_X is not set") are absent from the dict.
    """
    m = machine or Machine()
    for source in _config_sources(m):
        path = m.path(source)
        try:
            raw = path.read_bytes()
            text = (gzip.decompress(raw) if source.endswith(".gz") else raw).decode(
                "utf-8", "replace"
            )
        except (OSError, EOFError, gzip.BadGzipFile):
            continue
        config: dict[str, str] = {}
        for line in text.splitlines():
            name, sep, value = line.partition("=")
            if sep and name.startswith("CONFIG_"):
                config[name] = value.strip().strip('"')
        return config
    return None


def _config_source(machine: Machine) -> str | None:
    for source in _config_sources(machine):
        if _ok(machine.path(source).is_file):
            return source
    return None


def _enabled(config: dict[str, str], option: str) -> bool:
    return config.get(option) in ("y", "m")


def _tracing_dir(machine: Machine) -> Path | None:
    for candidate in ("/sys/kernel/tracing", "/sys/kernel/debug/tracing"):
        path = machine.path(candidate)
        if _ok((path / "events").is_dir):
            return path
    return None


def has_kprobes(machine: Machine | None = None) -> bool:
    """Whether kprobes can be attached: CONFIG_KPROBES, or tracefs offers kprobe_events."""
    m = machine or Machine()
    config = kernel_config(m)
    if config is not None and _enabled(config, "CONFIG_KPROBES"):
        return True
    return any(
        _ok(m.path(f"{d}/kprobe_events").exists)
        for d in ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
    )


# --- the checks ----------------------------------------------------------------------------


def _capabilities(machine: Machine) -> int | None:
    try:
        status = machine.path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("CapEff:"):
            try:
                return int(line.split(":", 1)[1].strip(), 16)
            except ValueError:
                return None
    return None


def check_privileges(machine: Machine) -> Check:
    caps = _capabilities(machine)

    def has(cap: int) -> bool:
        return caps is not None and bool(caps >> cap & 1)

    fix = "run with sudo (or as root)"
    if machine.euid == 0:
        if caps is not None and not (has(CAP_SYS_ADMIN) or (has(CAP_BPF) and has(CAP_PERFMON))):
            return Check(
                "privileges",
                False,
                "root, but without CAP_SYS_ADMIN or CAP_BPF+CAP_PERFMON (a restricted container?)",
                "run with full capabilities (e.g. docker run --privileged)",
            )
        return Check("privileges", True, "running as root")
    if has(CAP_BPF) and has(CAP_PERFMON):
        return Check("privileges", True, f"uid {machine.euid} with CAP_BPF and CAP_PERFMON")
    return Check(
        "privileges", False, f"not root (uid {machine.euid}) and no CAP_BPF+CAP_PERFMON", fix
    )


def check_bcc(probe: BccProbe) -> Check:
    ok, detail, fix = probe()
    return Check("bcc", ok, detail, fix)


def check_headers(machine: Machine) -> Check:
    modules = f"/lib/modules/{machine.release}"
    fix = (
        "run `make setup` as root, or install the kernel headers package "
        f"(apt install linux-headers-{machine.release} / dnf install kernel-devel-"
        f"{machine.release})"
    )
    moddir = machine.path(modules, follow_last=False)
    build = machine.path(f"{modules}/build")
    if _ok(build.is_dir):
        # `make setup` links either the whole folder or, in a real folder, build/ and source/.
        for link, shown in ((moddir, modules), (moddir / "build", f"{modules}/build")):
            target = os.readlink(link) if _ok(link.is_symlink) else ""
            other = PurePosixPath(target).parts[3:4] if target.startswith("/lib/modules/") else ()
            if other and other[0] != machine.release:
                return Check(
                    "kernel headers",
                    True,
                    f"{shown} is a symlink to {target}: headers of kernel "
                    f"{other[0]}, not {machine.release} (the custom-kernel workaround of `make "
                    "setup`; fine for tracepoints, perf events and uprobes, wrong for kernel "
                    "struct layouts)",
                )
        return Check("kernel headers", True, f"{modules}/build → {machine.shown(build)}")
    if _ok(machine.path("/sys/kernel/kheaders.tar.xz").is_file):
        return Check("kernel headers", True, "from /sys/kernel/kheaders.tar.xz (CONFIG_IKHEADERS)")
    if _ok((moddir / "build").is_symlink):
        detail = f"{modules}/build points to {os.readlink(moddir / 'build')}, which is missing"
    else:
        detail = f"no {modules}/build and no /sys/kernel/kheaders.tar.xz"
    return Check("kernel headers", False, detail + ": BCC cannot compile programs", fix)


def check_tracefs(machine: Machine) -> Check:
    found = _tracing_dir(machine)
    if found is not None:
        return Check("tracefs", True, f"mounted at {machine.shown(found)}")
    try:
        os.listdir(machine.path("/sys/kernel/tracing"))
    except PermissionError:
        # tracefs is root-only: it may well be mounted, but this user cannot tell.
        return Check(
            "tracefs",
            False,
            "cannot look into /sys/kernel/tracing: permission denied",
            "run with sudo (or as root)",
        )
    except OSError:
        pass
    return Check(
        "tracefs",
        False,
        "tracefs is not mounted (no /sys/kernel/tracing/events): no tracepoint can be "
        "found or attached",
        _MOUNT_FIX,
    )


def check_kernel_cache(machine: Machine, refresh: bool = False) -> Check:
    """Root's snapshot of the tracepoint formats, which bpfrun without root reads (tracefs is
    root-only). As root it is written when missing or out of date, and with `refresh` (the
    doctor command) anew."""
    folder = Path(os.environ.get(CACHE_ENV) or machine.root / DEFAULT_FOLDER.lstrip("/"))
    cache = KernelCache(folder, machine.root, machine.release)
    tracing = _tracing_dir(machine)
    if machine.euid == 0 and tracing is not None:
        kernel = LiveKernel(tracing, kallsyms=machine.path("/proc/kallsyms"), cache=cache)
        start = time.monotonic()
        try:
            if kernel.remember(force=refresh):
                took = f"{(time.monotonic() - start) * 1000:.0f} ms"
                return Check("kernel cache", True, f"saved {len(kernel.tracepoints())} "
                             f"tracepoint formats to {cache.path} ({took}) for bpfrun "
                             "without root", required=False)
        except OSError as e:
            return Check("kernel cache", False, f"cannot write {cache.path}: {e}",
                         f"make {folder} a folder only root can write, or set {CACHE_ENV}",
                         required=False)
    status = cache.status()
    if status == "present":
        return Check("kernel cache", True, f"{cache.path}: this kernel's tracepoint formats, "
                     "for compile and validate without root", required=False)
    seen = f"{cache.path} is another kernel build's" if status == "stale" else f"no {cache.path}"
    return Check("kernel cache", False, f"{seen}: without root, compile refuses tracepoint "
                 "probes and validate skips its kernel checks",
                 "run `sudo bpfrun doctor` once after each kernel update", required=False)


def check_btf(machine: Machine) -> Check:
    if _ok(machine.path("/sys/kernel/btf/vmlinux").is_file):
        return Check("btf", True, "/sys/kernel/btf/vmlinux present", required=False)
    return Check(
        "btf",
        False,
        "no /sys/kernel/btf/vmlinux: kfunc/fentry and BTF-typed raw tracepoints unavailable",
        "use a kernel built with CONFIG_DEBUG_INFO_BTF=y",
        required=False,
    )


# (check name, options, required, what is missing, consequence, fix other than a new kernel)
_OPTION_CHECKS: list[tuple[str, tuple[str, ...], bool, str, str, str]] = [
    ("bpf", ("CONFIG_BPF_SYSCALL", "CONFIG_BPF_EVENTS"), True,
     "BPF tracing programs are not available on this kernel", "no bpfrun step can load", ""),
    ("perf events", ("CONFIG_PERF_EVENTS",), True,
     "perf events are not available on this kernel", "no probe can be attached", ""),
    ("kprobes", ("CONFIG_KPROBES",), False,
     "kprobes are not available on this kernel",
     "kprobe/kretprobe probes will fail, use tracepoint fallbacks", _TRACEPOINT_FIX),
    ("uprobes", ("CONFIG_UPROBE_EVENTS",), False,
     "uprobes are not available on this kernel", "uprobe/uretprobe probes will fail", ""),
    ("syscall tracepoints", ("CONFIG_FTRACE_SYSCALLS",), False,
     "syscall tracepoints are not available on this kernel",
     "syscalls:sys_enter_*/sys_exit_* will fail, use raw_syscalls:sys_enter/sys_exit", ""),
]  # fmt: skip


def config_checks(machine: Machine) -> list[Check]:
    """What the kernel's build options allow; one informational check when they cannot be read."""
    config = kernel_config(machine)
    if config is None:
        tried = " or ".join(_config_sources(machine))
        skipped = f"cannot read {tried}: kernel feature checks skipped"
        checks = [Check("kernel config", True, skipped, required=False)]
        if _tracing_dir(machine) is not None and not has_kprobes(machine):
            detail = (
                "kprobes are not available on this kernel: tracefs has no kprobe_events — "
                "kprobe/kretprobe probes will fail, use tracepoint fallbacks"
            )
            fix = f"{_TRACEPOINT_FIX}, or use a kernel built with CONFIG_KPROBES=y"
            checks.append(Check("kprobes", False, detail, fix, required=False))
        return checks

    checks = [Check("kernel config", True, f"read from {_config_source(machine)}", required=False)]
    for name, options, required, missing, consequence, alternative in _OPTION_CHECKS:
        off = [o for o in options if not _enabled(config, o)]
        if not off:
            on = " and ".join(f"{o}=y" for o in options)
            checks.append(Check(name, True, on, required=required))
            continue
        verb = "is" if len(off) == 1 else "are"
        detail = f"{missing}: {' and '.join(off)} {verb} off — {consequence}"
        fix = "use a kernel built with " + " and ".join(f"{o}=y" for o in options)
        checks.append(Check(name, False, detail, f"{alternative}, or {fix}" if alternative else fix,
                            required=required))  # fmt: skip
    return checks


def find_symbolizer() -> str | None:
    found = LlvmSymbolizer.find()
    return found.describe() if found else None


def check_symbolizer(symbolizer: SymbolizerProbe) -> Check:
    """Source-level stack frames (file:line, inlined functions) need llvm-symbolizer."""
    found = symbolizer()
    if found:
        return Check("symbolizer", True, found, required=False)
    return Check("symbolizer", False,
                 "llvm-symbolizer (LLVM ≥ 14) not found: stack frames get function names "
                 "only, no file:line or inlined frames",
                 "apt install llvm-14 (Debian/Ubuntu) or dnf install llvm (Fedora/RHEL)",
                 required=False)


def run_checks(machine: Machine | None = None, bcc: BccProbe = bcc_status,
               symbolizer: SymbolizerProbe = find_symbolizer,
               refresh_cache: bool = False) -> list[Check]:
    """Every check, in the order a person would fix them; `refresh_cache`: write root's
    snapshot of the tracepoint formats even when it looks current."""
    m = machine or Machine()
    return [
        check_privileges(m),
        check_bcc(bcc),
        check_headers(m),
        check_tracefs(m),
        check_kernel_cache(m, refresh_cache),
        check_btf(m),
        *config_checks(m),
        check_symbolizer(symbolizer),
    ]


def failures(checks: Iterable[Check], needs: Iterable[str] = ()) -> list[Check]:
    """Failed checks that matter: every required one, plus the optional ones named in `needs`."""
    wanted = set(needs)
    return [c for c in checks if not c.ok and (c.required or c.name in wanted)]


def require_runnable(
    needs: set[str] | None = None,
    machine: Machine | None = None,
    bcc: BccProbe = bcc_status,
) -> None:
    """Raise MachineError (exit 3) listing every failed check this run depends on.

    The required checks always count; `needs` adds optional ones by name (e.g. {"kprobes"} for
    a runbook with kprobe probes). A needed check that could not be made (unreadable kernel
    config) does not block the run: attaching will tell.
    """
    unknown = set(needs or ()) - CHECK_NAMES
    if unknown:
        raise ValueError(f"unknown check names: {sorted(unknown)}")
    failed = failures(run_checks(machine, bcc), needs or ())
    if not failed:
        return
    lines = ["this machine cannot run BPF programs:"]
    for c in failed:
        lines.append(f"  {c.name}: {c.detail}")
        if c.fix:
            lines.append(f"    fix: {c.fix}")
    raise MachineError("\n".join(lines), hint="`bpfrun doctor` shows every check")


def render_checks(checks: Iterable[Check]) -> str:
    """The doctor's text report: one line per check, its fix indented below a failure."""
    out = []
    for c in checks:
        mark = "ok  " if c.ok else ("FAIL" if c.required else "warn")
        out.append(f"[{mark}] {c.name}: {c.detail}")
        if not c.ok and c.fix:
            out.append(f"       fix: {c.fix}")
    return "\n".join(out)
